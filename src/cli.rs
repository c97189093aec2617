//! The command line: argument parsing and one function per mode. Exit codes
//! are decided here and nowhere else.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use crate::audit::{self, Target};
use crate::config::{self, AwsSettings, ServerSettings};
use crate::report::render_table;
use crate::server;

pub const USAGE: &str = "\
dspm-audit: data security posture audit of an AWS account, mapped to compliance frameworks

USAGE:
  dspm-audit serve   [--demo | --inventory FILE]
  dspm-audit scan    [--framework ID]... [--format json|table] [--demo | --inventory FILE]
  dspm-audit collect [--demo]             (writes the inventory JSON to stdout)
  dspm-audit healthcheck                  (exit 0 when the local server is healthy)
  dspm-audit --version | --help

Frameworks: cis-aws-3.0, isms-p-2023 (default: all).
Live audits need AWS_REGION and temporary credentials from the platform
(EKS IRSA or Pod Identity, ECS task role) or AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN.
The server listens on DSPM_LISTEN (default 0.0.0.0:8103).

scan exits 0 when nothing fails, 1 when a result is FAIL or ERROR, and 2
when the audit could not run.";

/// Exit codes.
pub const EXIT_OK: i32 = 0;
pub const EXIT_FINDINGS: i32 = 1;
pub const EXIT_FAILED: i32 = 2;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Serve {
        source: SourceArg,
    },
    Scan {
        source: SourceArg,
        frameworks: Vec<String>,
        format: Format,
    },
    /// `--demo` prints the embedded demo inventory instead of collecting.
    Collect {
        demo: bool,
    },
    Healthcheck,
    Help,
    Version,
}

/// Where the inventory comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceArg {
    Aws,
    Demo,
    File(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Table,
}

pub fn parse(args: &[String]) -> Result<Command, String> {
    let Some((mode, rest)) = args.split_first() else {
        return Err("no command given".into());
    };
    let mut source = SourceArg::Aws;
    let mut frameworks = Vec::new();
    let mut format = Format::Json;
    let mut rest = rest.iter();
    let takes_source = matches!(mode.as_str(), "serve" | "scan");
    let is_scan = mode == "scan";
    if rest.clone().any(|a| a == "--help" || a == "-h") {
        return Ok(Command::Help);
    }
    while let Some(arg) = rest.next() {
        let mut value = |name: &str| {
            rest.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match arg.as_str() {
            "--demo" if takes_source || mode == "collect" => {
                set_source(&mut source, SourceArg::Demo)?
            }
            "--inventory" if takes_source => {
                set_source(&mut source, SourceArg::File(value("--inventory")?))?
            }
            "--framework" if is_scan => frameworks.push(value("--framework")?),
            "--format" if is_scan => {
                format = match value("--format")?.as_str() {
                    "json" => Format::Json,
                    "table" => Format::Table,
                    other => return Err(format!("unknown format {other:?}; use json or table")),
                }
            }
            other => return Err(format!("unexpected argument {other:?} for {mode}")),
        }
    }
    match mode.as_str() {
        "serve" => Ok(Command::Serve { source }),
        "scan" => Ok(Command::Scan {
            source,
            frameworks,
            format,
        }),
        "collect" => Ok(Command::Collect {
            demo: source == SourceArg::Demo,
        }),
        "healthcheck" => Ok(Command::Healthcheck),
        "help" | "--help" | "-h" => Ok(Command::Help),
        "version" | "--version" | "-V" => Ok(Command::Version),
        other => Err(format!("unknown command {other:?}")),
    }
}

fn set_source(source: &mut SourceArg, new: SourceArg) -> Result<(), String> {
    if *source != SourceArg::Aws {
        return Err("--demo and --inventory exclude each other".into());
    }
    *source = new;
    Ok(())
}

/// Runs a command; returns the process exit code.
pub fn run(command: Command) -> i32 {
    match command {
        Command::Help => {
            println!("{USAGE}");
            EXIT_OK
        }
        Command::Version => {
            println!("dspm-audit {}", env!("CARGO_PKG_VERSION"));
            EXIT_OK
        }
        Command::Serve { source } => serve(source),
        Command::Scan {
            source,
            frameworks,
            format,
        } => scan(source, &frameworks, format),
        Command::Collect { demo } => collect(demo),
        Command::Healthcheck => healthcheck(),
    }
}

/// Sets up logging to stderr: `RUST_LOG` if set, else `default` for our
/// own modules. HTTP and TLS libraries are held at `info` whatever
/// `RUST_LOG` says, since their debug output includes request headers.
pub fn init_logging(default: &str) {
    let mut builder = env_logger::Builder::new();
    builder.filter_level(log::LevelFilter::Warn);
    match config::env_var("RUST_LOG") {
        Some(spec) => {
            builder.parse_filters(&spec);
        }
        None => {
            builder.filter_module(
                "dspm_audit",
                default.parse().unwrap_or(log::LevelFilter::Info),
            );
        }
    }
    for noisy in ["ureq", "ureq_proto", "rustls"] {
        builder.filter_module(noisy, log::LevelFilter::Info);
    }
    builder.format_timestamp_millis();
    let _ = builder.try_init();
}

fn target(source: SourceArg) -> Result<Target, String> {
    match source {
        SourceArg::Demo => Ok(Target::demo()),
        SourceArg::File(path) => Target::from_file(&path).map_err(|e| e.to_string()),
        SourceArg::Aws => {
            let aws =
                AwsSettings::from_lookup(&config::process_env()).map_err(|e| e.to_string())?;
            Ok(Target::Aws(Arc::new(aws)))
        }
    }
}

fn serve(source: SourceArg) -> i32 {
    init_logging("info");
    let raw = |name: &str| std::env::var(name).ok();
    if let Err(e) = config::refuse_blank_token_settings(&raw) {
        return fail(&e.to_string());
    }
    let settings = match ServerSettings::from_lookup(&config::process_env()) {
        Ok(s) => s,
        Err(e) => return fail(&e.to_string()),
    };
    let target = match target(source) {
        Ok(t) => t,
        Err(e) => return fail(&e),
    };
    match server::serve(&settings, target) {
        Ok(()) => EXIT_OK,
        Err(e) => fail(&e),
    }
}

fn scan(source: SourceArg, frameworks: &[String], format: Format) -> i32 {
    init_logging("warn");
    let selected = match audit::select_frameworks(frameworks) {
        Ok(s) => s,
        Err(e) => return fail(&e.to_string()),
    };
    let target = match target(source) {
        Ok(t) => t,
        Err(e) => return fail(&e),
    };
    let report = match audit::run(&target, &selected) {
        Ok(r) => r,
        Err(e) => return fail(&e.to_string()),
    };
    // Written straight to stdout: a large account's report is megabytes,
    // not worth holding twice.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let written = match format {
        Format::Json => serde_json::to_writer_pretty(&mut out, &report)
            .map_err(std::io::Error::from)
            .and_then(|()| out.write_all(b"\n")),
        Format::Table => out.write_all(render_table(&report).as_bytes()),
    };
    if let Err(e) = written.and_then(|()| out.flush()) {
        return fail(&format!("cannot write the report: {e}"));
    }
    if report.has_failures_or_errors() {
        EXIT_FINDINGS
    } else {
        EXIT_OK
    }
}

fn collect(demo: bool) -> i32 {
    init_logging("warn");
    let inventory = if demo {
        crate::demo::inventory()
    } else {
        let aws = match AwsSettings::from_lookup(&config::process_env()) {
            Ok(a) => a,
            Err(e) => return fail(&e.to_string()),
        };
        match audit::collect_inventory(&aws) {
            Ok(i) => i,
            Err(e) => return fail(&e.to_string()),
        }
    };
    let text = serde_json::to_string_pretty(&inventory).unwrap_or_default() + "\n";
    match std::io::stdout().write_all(text.as_bytes()) {
        Ok(()) => EXIT_OK,
        Err(e) => fail(&format!("cannot write the inventory: {e}")),
    }
}

fn fail(message: &str) -> i32 {
    eprintln!("dspm-audit: {message}");
    EXIT_FAILED
}

/// `GET /health` on the local server; 0 when it answers 200.
fn healthcheck() -> i32 {
    let listen = config::env_var("DSPM_LISTEN").unwrap_or_else(|| config::DEFAULT_LISTEN.into());
    match probe_health(&listen, Duration::from_secs(2)) {
        Ok(()) => EXIT_OK,
        Err(e) => {
            eprintln!("dspm-audit healthcheck: {e}");
            EXIT_FINDINGS
        }
    }
}

/// The address to probe for a listen address: a wildcard becomes loopback.
pub fn probe_address(listen: &str) -> Result<SocketAddr, String> {
    let addr = listen
        .to_socket_addrs()
        .map_err(|e| format!("DSPM_LISTEN {listen:?} is not an address: {e}"))?
        .next()
        .ok_or_else(|| format!("DSPM_LISTEN {listen:?} resolves to nothing"))?;
    let ip = match addr.ip() {
        std::net::IpAddr::V4(v4) if v4.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(v6) if v6.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    Ok(SocketAddr::new(ip, addr.port()))
}

pub fn probe_health(listen: &str, timeout: Duration) -> Result<(), String> {
    let addr = probe_address(listen)?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(timeout));
    let request = format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("cannot send to {addr}: {e}"))?;
    let mut head = [0u8; 64];
    let n = stream
        .read(&mut head)
        .map_err(|e| format!("no answer from {addr}: {e}"))?;
    let status_line = String::from_utf8_lossy(&head[..n]);
    if status_line.starts_with("HTTP/1.1 200") || status_line.starts_with("HTTP/1.0 200") {
        Ok(())
    } else {
        Err(format!(
            "{addr} answered {:?}",
            status_line.lines().next().unwrap_or("")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn parses_commands() {
        let cases: &[(&str, Result<Command, &str>)] = &[
            (
                "serve",
                Ok(Command::Serve {
                    source: SourceArg::Aws,
                }),
            ),
            (
                "serve --demo",
                Ok(Command::Serve {
                    source: SourceArg::Demo,
                }),
            ),
            (
                "serve --inventory inv.json",
                Ok(Command::Serve {
                    source: SourceArg::File("inv.json".into()),
                }),
            ),
            (
                "scan --framework cis-aws-3.0 --framework isms-p-2023 --format table --demo",
                Ok(Command::Scan {
                    source: SourceArg::Demo,
                    frameworks: vec!["cis-aws-3.0".into(), "isms-p-2023".into()],
                    format: Format::Table,
                }),
            ),
            ("collect", Ok(Command::Collect { demo: false })),
            ("collect --demo", Ok(Command::Collect { demo: true })),
            ("healthcheck", Ok(Command::Healthcheck)),
            ("--version", Ok(Command::Version)),
            ("scan --help", Ok(Command::Help)),
            ("", Err("no command")),
            ("scan --format xml", Err("unknown format")),
            ("scan --framework", Err("needs a value")),
            ("scan --demo --inventory x", Err("exclude each other")),
            ("collect --inventory x", Err("unexpected argument")),
            ("serve --framework x", Err("unexpected argument")),
            ("audit", Err("unknown command")),
        ];
        for (line, want) in cases {
            match (parse(&args(line)), want) {
                (Ok(got), Ok(want)) => assert_eq!(&got, want, "{line}"),
                (Err(e), Err(fragment)) => assert!(e.contains(fragment), "{line}: {e}"),
                (got, want) => panic!("{line}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn probes_loopback_for_wildcard_listens() {
        assert_eq!(
            probe_address("0.0.0.0:8103").expect("valid"),
            "127.0.0.1:8103".parse().expect("addr")
        );
        assert_eq!(
            probe_address("[::]:9").expect("valid"),
            "[::1]:9".parse().expect("addr")
        );
        assert_eq!(
            probe_address("127.0.0.2:80").expect("valid"),
            "127.0.0.2:80".parse().expect("addr")
        );
        assert!(probe_address("nonsense").is_err());
    }
}
