//! Running the product itself from tests: the CLI, and the server on a
//! free loopback port. Every run starts from an empty environment plus the
//! variables a test names, so nothing from the developer's shell leaks in.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BINARY: &str = env!("CARGO_BIN_EXE_dspm-audit");

/// Environment for auditing `endpoint` with the given session credentials.
pub fn aws_env(endpoint: &str, creds: &Value) -> Vec<(String, String)> {
    let field = |name: &str| {
        creds[name]
            .as_str()
            .unwrap_or_else(|| panic!("credentials lack {name}: {creds}"))
            .to_string()
    };
    vec![
        ("AWS_REGION".into(), "us-east-1".into()),
        ("AWS_ENDPOINT_URL".into(), endpoint.into()),
        ("AWS_ACCESS_KEY_ID".into(), field("access_key_id")),
        ("AWS_SECRET_ACCESS_KEY".into(), field("secret_access_key")),
        ("AWS_SESSION_TOKEN".into(), field("session_token")),
        ("DSPM_AWS_RETRY_BASE_MS".into(), "20".into()),
    ]
}

/// Runs `dspm-audit ARGS` with exactly `env`.
pub fn run(args: &[&str], env: &[(String, String)]) -> Output {
    Command::new(BINARY)
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("the dspm-audit binary runs")
}

/// Runs `scan --format json`; returns the exit code and the parsed report.
pub fn scan(extra: &[&str], env: &[(String, String)]) -> (i32, Value) {
    let mut args = vec!["scan", "--format", "json"];
    args.extend_from_slice(extra);
    let out = run(&args, env);
    let code = out.status.code().expect("exited normally");
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "scan printed no JSON report ({e}); exit {code}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (code, report)
}

/// A running `dspm-audit serve`, killed on drop.
pub struct Server {
    child: Child,
    pub port: u16,
}

impl Server {
    pub fn start(args: &[&str], env: &[(String, String)]) -> Server {
        let port = free_port();
        let mut full = vec!["serve"];
        full.extend_from_slice(args);
        let child = Command::new(BINARY)
            .args(&full)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("DSPM_LISTEN", format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the dspm-audit binary starts");
        let mut server = Server { child, port };
        server.wait_ready();
        server
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("dspm-audit serve exited early: {status}");
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "dspm-audit serve did not listen on {} within 10 s",
            self.port
        );
    }

    /// One request; returns status, lower-cased headers and body.
    pub fn request(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, Vec<(String, String)>, Vec<u8>) {
        http(self.port, method, target, headers, body)
    }

    pub fn get_json(&self, target: &str) -> (u16, Value) {
        let (status, _, body) = self.request("GET", target, &[], b"");
        let value = serde_json::from_slice(&body).unwrap_or_else(|e| {
            panic!(
                "GET {target}: not JSON ({e}): {}",
                String::from_utf8_lossy(&body)
            )
        });
        (status, value)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A minimal HTTP/1.1 exchange with `Connection: close`.
pub fn http(
    port: u16,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the server");
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .expect("timeout");
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).expect("send head");
    stream.write_all(body).expect("send body");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read the response");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response head");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, headers, body)
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&raw[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[eol + 2..eol + 2 + size]);
        raw = &raw[eol + 2 + size + 2..];
    }
}
