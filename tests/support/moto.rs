//! A private moto server (the AWS stand-in) per test, seeded by
//! `tests/moto/seed.py` with boto3 as the independent reference client.
//!
//! ```ignore
//! mod support;
//! use support::moto::Moto;
//!
//! let moto = Moto::start();          // moto_server on 127.0.0.1:<free port>
//! let seeded = moto.seed();          // what was seeded, as JSON
//! let auditor = moto.auditor(&policy_file);
//! moto.set_auth(true);               // from now on every call is checked
//! ```
//!
//! `moto_server` comes from the venv that `make venv` builds from
//! `tests/moto/requirements.txt`; `make test` passes its python in
//! `DSPM_TEST_PYTHON`. Without it a test that needs moto panics: it never
//! passes silently. Every request here goes to 127.0.0.1 only.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// How long moto may take to answer `GET /moto-api/` after spawning.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Timeout of one request to moto's control API.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts at starting moto (another process may grab the port we picked).
const START_ATTEMPTS: usize = 3;

/// Numbers the log files of the servers one test binary starts.
static SERVER_COUNT: AtomicUsize = AtomicUsize::new(0);

/// A running `moto_server` on 127.0.0.1; killed when dropped.
pub struct Moto {
    child: Child,
    port: u16,
    python: PathBuf,
    log_path: PathBuf,
}

impl Moto {
    /// Start a fresh moto on a free loopback port and wait until it answers.
    ///
    /// Panics (with what to do, or the server log's tail) when the venv is
    /// missing or moto does not come up.
    pub fn start() -> Moto {
        let python = venv_python();
        let server = python.with_file_name("moto_server");
        if !server.is_file() {
            panic!(
                "moto_server not found at {} (next to the test python {}): \
                 run `make venv` (or `make test`) in {} to install the pinned moto",
                server.display(),
                python.display(),
                env!("CARGO_MANIFEST_DIR"),
            );
        }
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            match spawn_server(&server) {
                Ok((child, port, log_path)) => {
                    let mut moto = Moto {
                        child,
                        port,
                        python: python.clone(),
                        log_path,
                    };
                    match moto.wait_ready() {
                        Ok(()) => return moto,
                        // Exited early: most likely the port was taken; try
                        // another (dropping `moto` reaps the process).
                        Err(Startup::Exited(why)) => failures.push(why),
                        // Hung: retrying would only triple the wait.
                        Err(Startup::Hung(why)) => panic!("{why}"),
                    }
                }
                Err(why) => failures.push(why),
            }
        }
        panic!(
            "moto_server did not start ({} attempts):\n{}",
            START_ATTEMPTS,
            failures.join("\n---\n")
        );
    }

    /// `http://127.0.0.1:PORT`, the endpoint for every AWS service.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's combined stdout/stderr log.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Seed the account (S3, KMS, IAM, Organizations) and return seed.py's
    /// description of it. Do this before `set_auth(true)`.
    pub fn seed(&self) -> serde_json::Value {
        self.run_seed_py(&["seed"])
    }

    /// Create an assumable auditor role (default name `dspm-auditor`) carrying
    /// the IAM policy document in `policy_path`; return the assumed-role
    /// session credentials and the calling user's keys.
    pub fn auditor(&self, policy_path: &Path) -> serde_json::Value {
        self.auditor_with_role(policy_path, "dspm-auditor")
    }

    /// As [`Moto::auditor`], with a role name of the caller's choosing (one
    /// moto can hold several auditors).
    pub fn auditor_with_role(&self, policy_path: &Path, role_name: &str) -> serde_json::Value {
        let policy = policy_path
            .to_str()
            .unwrap_or_else(|| panic!("policy path is not UTF-8: {}", policy_path.display()));
        self.run_seed_py(&["auditor", "--policy-file", policy, "--role-name", role_name])
    }

    /// Turn moto's auth enforcement on (every later call must be signed by a
    /// known IAM user or assumed-role key and be allowed by its policies) or
    /// off.
    pub fn set_auth(&self, on: bool) {
        let body = if on { "0" } else { "inf" };
        let answer = self.post_ok("/moto-api/reset-auth", body);
        assert!(
            answer.contains("\"ok\""),
            "moto did not accept reset-auth {body}: {answer}"
        );
    }

    /// Clear all of moto's state (the auth setting is kept).
    pub fn reset(&self) {
        self.post_ok("/moto-api/reset", "");
    }

    /// An unsigned `GET` on the endpoint: status and body. For moto's own
    /// API (`/moto-api/...`) and smoke checks; AWS calls need SigV4.
    pub fn get(&self, path: &str) -> (u16, String) {
        http(self.port, "GET", path, "").unwrap_or_else(|err| {
            panic!(
                "GET {}{path} failed: {err}\nmoto log:\n{}",
                self.endpoint(),
                self.log_tail(20)
            )
        })
    }

    /// The last `lines` lines of the server log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log_path, lines)
    }

    fn wait_ready(&mut self) -> Result<(), Startup> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(Startup::Exited(format!(
                    "moto_server on port {} exited ({status}) before it was ready; log {}:\n{}",
                    self.port,
                    self.log_path.display(),
                    self.log_tail(40)
                )));
            }
            if let Ok((200, _)) = http(self.port, "GET", "/moto-api/", "") {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Startup::Hung(format!(
                    "moto_server on port {} not ready after {:?}; log {}:\n{}",
                    self.port,
                    READY_TIMEOUT,
                    self.log_path.display(),
                    self.log_tail(40)
                )));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn post_ok(&self, path: &str, body: &str) -> String {
        match http(self.port, "POST", path, body) {
            Ok((200, answer)) => answer,
            Ok((status, answer)) => panic!(
                "POST {}{path} answered {status}: {answer}\nmoto log:\n{}",
                self.endpoint(),
                self.log_tail(20)
            ),
            Err(err) => panic!(
                "POST {}{path} failed: {err}\nmoto log:\n{}",
                self.endpoint(),
                self.log_tail(20)
            ),
        }
    }

    /// Run `seed.py --endpoint ENDPOINT ARGS...`; parse its JSON stdout.
    fn run_seed_py(&self, args: &[&str]) -> serde_json::Value {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/moto/seed.py");
        let output: Output = Command::new(&self.python)
            .arg(&script)
            .arg("--endpoint")
            .arg(self.endpoint())
            .args(args)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|err| {
                panic!(
                    "cannot run {} {}: {err}",
                    self.python.display(),
                    script.display()
                )
            });
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            panic!(
                "seed.py {} failed ({}):\n{stderr}\n{stdout}\nmoto log:\n{}",
                args.join(" "),
                output.status,
                self.log_tail(20)
            );
        }
        serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
            panic!(
                "seed.py {} printed no JSON ({err}):\n{stdout}\n{stderr}",
                args.join(" ")
            )
        })
    }
}

/// Why a spawned moto_server did not become ready.
enum Startup {
    Exited(String),
    Hung(String),
}

impl Drop for Moto {
    fn drop(&mut self) {
        // Our own child, by its handle: nothing else is signalled.
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Keep the log of a failing test; drop the rest.
        if !thread::panicking() {
            let _ = fs::remove_file(&self.log_path);
        }
    }
}

/// The venv's python: `DSPM_TEST_PYTHON` (set by `make test`), else
/// `.venv/bin/python` in the crate. Not canonicalised: the venv's python is a
/// symlink, and `moto_server` lives next to the link.
fn venv_python() -> PathBuf {
    let python = match std::env::var_os("DSPM_TEST_PYTHON") {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"),
    };
    if !python.is_file() {
        panic!(
            "test python {} not found: run `make venv` (or `make test`) in {} \
             to install the pinned moto and boto3, or set DSPM_TEST_PYTHON to that venv's python",
            python.display(),
            env!("CARGO_MANIFEST_DIR"),
        );
    }
    python
}

/// Spawn `moto_server -H 127.0.0.1 -p PORT` with its output in a log file
/// under the target dir's tmp.
fn spawn_server(server: &Path) -> Result<(Child, u16, PathBuf), String> {
    let port = free_port().map_err(|err| format!("no free loopback port: {err}"))?;
    let log_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("moto");
    fs::create_dir_all(&log_dir)
        .map_err(|err| format!("cannot create {}: {err}", log_dir.display()))?;
    let log_path = log_dir.join(format!(
        "moto-{}-{}-{port}.log",
        std::process::id(),
        SERVER_COUNT.fetch_add(1, Ordering::Relaxed)
    ));
    let log = File::create(&log_path)
        .map_err(|err| format!("cannot create {}: {err}", log_path.display()))?;
    let log_err = log
        .try_clone()
        .map_err(|err| format!("cannot clone the log handle: {err}"))?;
    let child = Command::new(server)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .map_err(|err| format!("cannot spawn {}: {err}", server.display()))?;
    Ok((child, port, log_path))
}

/// A port the kernel just handed out on 127.0.0.1. Another process may take
/// it before moto binds it; `Moto::start` retries then.
fn free_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

fn log_tail(path: &Path, lines: usize) -> String {
    match fs::read_to_string(path) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(err) => format!("(cannot read {}: {err})", path.display()),
    }
}

/// One HTTP/1.1 request to moto on 127.0.0.1:`port`, `text/plain` body.
/// moto answers with `Connection: close`, so the answer is read to EOF.
/// Returns the status code and the body.
fn http(port: u16, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, HTTP_TIMEOUT)?;
    stream.set_read_timeout(Some(HTTP_TIMEOUT))?;
    stream.set_write_timeout(Some(HTTP_TIMEOUT))?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "malformed HTTP answer");
    let (head, answer) = text.split_once("\r\n\r\n").ok_or_else(bad)?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(bad)?;
    Ok((status, answer.to_string()))
}
