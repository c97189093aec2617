//! The server under load and abuse: the audit limit, slow clients, API
//! tokens and graceful shutdown. AWS is replaced by a loopback listener
//! that accepts connections and never answers, so an audit takes exactly
//! as long as the configured call timeout.

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::product::{free_port, http, Server, BINARY};

/// A loopback "AWS" that accepts and stays silent; kept open while alive.
struct Silent {
    port: u16,
    _thread: std::thread::JoinHandle<()>,
}

fn silent_aws() -> Silent {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let thread = std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().take(64).flatten() {
            held.push(stream);
        }
    });
    Silent {
        port,
        _thread: thread,
    }
}

fn slow_audit_env(aws: &Silent, call_timeout_ms: u64) -> Vec<(String, String)> {
    [
        ("AWS_REGION", "us-east-1".to_string()),
        ("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{}", aws.port)),
        ("AWS_ACCESS_KEY_ID", "ASIATESTSILENT".into()),
        ("AWS_SECRET_ACCESS_KEY", "silent-secret".into()),
        ("AWS_SESSION_TOKEN", "silent-token".into()),
        ("DSPM_AWS_MAX_ATTEMPTS", "1".into()),
        ("DSPM_AWS_CALL_TIMEOUT_MS", call_timeout_ms.to_string()),
        ("DSPM_MAX_CONCURRENT_AUDITS", "2".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

#[test]
fn audits_beyond_the_limit_get_429_at_once_and_health_stays_fast() {
    let aws = silent_aws();
    let server = Server::start(&[], &slow_audit_env(&aws, 3000));
    let port = server.port;
    let running: Vec<_> = (0..2)
        .map(|_| std::thread::spawn(move || http(port, "GET", "/v1/audit", &[], b"").0))
        .collect();
    std::thread::sleep(Duration::from_millis(500));

    let started = Instant::now();
    let (status, headers, body) = server.request("GET", "/v1/audit", &[], b"");
    assert_eq!(status, 429, "{}", String::from_utf8_lossy(&body));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "refused at once"
    );
    assert!(
        headers.contains(&("retry-after".into(), "10".into())),
        "{headers:?}"
    );

    let started = Instant::now();
    let (status, _, _) = server.request("GET", "/health", &[], b"");
    assert_eq!(status, 200);
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "health answers while audits run"
    );

    for audit in running {
        // The silent AWS times the caller-identity call out: 502, not a hang.
        assert_eq!(audit.join().expect("audit thread"), 502);
    }
    let (status, _, _) = server.request("GET", "/v1/checks", &[], b"");
    assert_eq!(status, 200);
}

#[test]
fn slow_clients_cannot_hold_the_server() {
    let env = vec![
        ("DSPM_HTTP_READ_TIMEOUT_MS".to_string(), "700".to_string()),
        ("DSPM_HTTP_WORKERS".to_string(), "2".to_string()),
    ];
    let server = Server::start(&["--demo"], &env);

    // A hundred clients (fifty times the workers) that send half a request
    // head and stall, and one that promises a body and trickles it.
    let mut stalled: Vec<TcpStream> = (0..100)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
            s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
                .expect("partial head");
            s
        })
        .collect();
    let mut trickle = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    trickle
        .write_all(b"POST /v1/audit HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
        .expect("head and one byte");

    for _ in 0..20 {
        let started = Instant::now();
        let (status, _, _) = server.request("GET", "/health", &[], b"");
        assert_eq!(status, 200);
        assert!(started.elapsed() < Duration::from_millis(500));
    }

    // Silent connections (no byte at all) are closed after the idle time.
    let mut silent = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    silent
        .set_read_timeout(Some(Duration::from_secs(8)))
        .expect("timeout");
    let started = Instant::now();
    let mut nothing = Vec::new();
    let _ = silent.read_to_end(&mut nothing);
    assert!(
        nothing.is_empty() && started.elapsed() < Duration::from_secs(7),
        "{:?}",
        started.elapsed()
    );

    // The stalled connections are closed by the server after the timeout.
    let mut answer = Vec::new();
    trickle
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let _ = trickle.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "trickling body: {answer:?}"
    );
    for s in &mut stalled {
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        let text = String::from_utf8_lossy(&buf);
        assert!(
            text.is_empty() || text.starts_with("HTTP/1.1 408"),
            "stalled head: {text:?}"
        );
    }
}

/// Raw bytes in, the status line out.
fn exchange(port: u16, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let _ = s.write_all(bytes);
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).to_string()
}

#[test]
fn hostile_request_heads_get_clear_refusals() {
    let server = Server::start(&["--demo"], &[]);
    let big_header = format!(
        "GET /health HTTP/1.1\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(20 * 1024)
    );
    let many_headers = format!("GET /health HTTP/1.1\r\n{}\r\n", "X-A: b\r\n".repeat(100));
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (big_header.into_bytes(), "HTTP/1.1 431"),
        (many_headers.into_bytes(), "HTTP/1.1 431"),
        (
            b"GET /health HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(),
            "HTTP/1.1 411",
        ),
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(), "HTTP/1.1 400"),
        (b"GET /health HTTP/3.0\r\n\r\n".to_vec(), "HTTP/1.1 505"),
        (b"GET /health\r\n\r\n".to_vec(), "HTTP/1.1 400"),
        (b"GET /he\xffalth HTTP/1.1\r\n\r\n".to_vec(), "HTTP/1.1 400"),
        (
            b"GET /health HTTP/1.1\r\nA: b\r\n continued\r\n\r\n".to_vec(),
            "HTTP/1.1 400",
        ),
        (
            b"POST /v1/audit HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n".to_vec(),
            "HTTP/1.1 400",
        ),
        (
            b"POST /v1/audit HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n".to_vec(),
            "HTTP/1.1 413",
        ),
    ];
    for (bytes, want) in cases {
        let answer = exchange(server.port, &bytes);
        assert!(
            answer.starts_with(want),
            "{:?} -> {answer:?}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(60)])
        );
        assert!(
            answer.contains("\"message\""),
            "a JSON error body: {answer}"
        );
    }
    let (status, _, _) = server.request("GET", "/health", &[], b"");
    assert_eq!(status, 200, "the server keeps serving");
}

#[test]
fn keep_alive_and_pipelined_requests_are_answered_in_order() {
    let server = Server::start(&["--demo"], &[]);
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s.write_all(
        b"GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /v1/nothing HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .expect("two pipelined requests");
    std::thread::sleep(Duration::from_millis(300));
    s.write_all(b"GET /v1/checks HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("third request");
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    let statuses: Vec<&str> = text
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| &text[i + 9..i + 12])
        .collect();
    assert_eq!(statuses, ["200", "404", "200"], "{text}");
    assert!(text.contains("Connection: keep-alive") && text.trim_end().ends_with('}'));
}

#[test]
fn tokens_close_the_api_but_not_the_probes() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("token-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("token");
    std::fs::write(&file, "k8s-secret-token-0123456789\n").expect("write token");
    let env = vec![(
        "DSPM_API_TOKEN_FILE".to_string(),
        file.to_string_lossy().to_string(),
    )];
    let server = Server::start(&["--demo"], &env);
    let cases: &[(&str, &[(&str, &str)], u16)] = &[
        ("/health", &[], 200),
        ("/ready", &[], 200),
        ("/v1/audit", &[], 401),
        (
            "/v1/audit",
            &[("Authorization", "Bearer nope-nope-nope-nope-nope")],
            401,
        ),
        (
            "/v1/audit",
            &[("Authorization", "Bearer k8s-secret-token-0123456789")],
            200,
        ),
    ];
    for (path, headers, status) in cases {
        let (got, response_headers, _) = server.request("GET", path, headers, b"");
        assert_eq!(got, *status, "{path} {headers:?}");
        if got == 401 {
            assert!(response_headers
                .iter()
                .any(|(k, v)| k == "www-authenticate" && v.starts_with("Bearer")));
        }
    }
}

fn spawn_server(env: &[(String, String)], port: u16) -> std::process::Child {
    Command::new(BINARY)
        .arg("serve")
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("DSPM_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the server")
}

fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "server did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn terminate(child: &std::process::Child) {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .expect("kill");
    assert!(status.success());
}

#[test]
fn sigterm_lets_the_audit_in_flight_finish_then_exits_zero() {
    let aws = silent_aws();
    let port = free_port();
    let mut child = spawn_server(&slow_audit_env(&aws, 1500), port);
    wait_listening(port);
    let audit = std::thread::spawn(move || http(port, "GET", "/v1/audit", &[], b"").0);
    std::thread::sleep(Duration::from_millis(300));

    terminate(&child);
    assert_eq!(
        audit.join().expect("audit thread"),
        502,
        "the in-flight audit got its answer"
    );
    let status = child.wait().expect("exit");
    assert_eq!(status.code(), Some(0));
    let mut log = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut log)
        .expect("log");
    assert!(log.contains("shutting down"), "{log}");
    assert!(log.contains("all requests finished"), "{log}");
}

#[test]
fn sigterm_exits_after_the_grace_period_even_if_an_audit_hangs() {
    let aws = silent_aws();
    let port = free_port();
    let mut env = slow_audit_env(&aws, 20_000);
    env.push(("DSPM_SHUTDOWN_GRACE".into(), "1".into()));
    let mut child = spawn_server(&env, port);
    wait_listening(port);
    let _audit = std::thread::spawn(move || http(port, "GET", "/v1/audit", &[], b""));
    std::thread::sleep(Duration::from_millis(300));

    let started = Instant::now();
    terminate(&child);
    let status = child.wait().expect("exit");
    assert_eq!(status.code(), Some(0));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
}

/// Starts `serve --demo` on `listen`, stops it with SIGTERM, returns its log.
fn startup_log(listen: &str, port: u16, extra: &[(&str, &str)]) -> String {
    let mut child = Command::new(BINARY)
        .args(["serve", "--demo"])
        .env_clear()
        .envs(extra.iter().copied())
        .env("DSPM_LISTEN", listen)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the server");
    wait_listening(port);
    terminate(&child);
    assert_eq!(child.wait().expect("exit").code(), Some(0));
    let mut log = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut log)
        .expect("log");
    log
}

#[test]
fn listening_beyond_loopback_without_a_token_warns_once() {
    const WARNING: &str = "beyond loopback without an API token";
    let port = free_port();
    let log = startup_log(&format!("0.0.0.0:{port}"), port, &[]);
    assert_eq!(log.matches(WARNING).count(), 1, "{log}");

    let port = free_port();
    let token = [("DSPM_API_TOKEN", "a-long-enough-api-token-0123")];
    let log = startup_log(&format!("0.0.0.0:{port}"), port, &token);
    assert!(!log.contains(WARNING), "{log}");
    assert!(
        !log.contains("a-long-enough-api-token-0123"),
        "the token is never logged: {log}"
    );

    let port = free_port();
    let log = startup_log(&format!("127.0.0.1:{port}"), port, &[]);
    assert!(!log.contains(WARNING), "{log}");
}

#[test]
fn clients_that_do_not_read_their_answers_hold_no_worker() {
    let env = vec![("DSPM_HTTP_WORKERS".to_string(), "2".to_string())];
    let server = Server::start(&["--demo"], &env);
    // Sixteen connections pipeline thousands of requests for a large answer
    // and never read: their answers pile up in the reactor, not in workers.
    let request = b"GET /v1/frameworks/isms-p-2023 HTTP/1.1\r\nHost: x\r\n\r\n".repeat(2000);
    let floods: Vec<TcpStream> = (0..16)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
            s.set_write_timeout(Some(Duration::from_millis(500)))
                .expect("timeout");
            let _ = s.write_all(&request);
            s
        })
        .collect();
    for _ in 0..10 {
        let started = Instant::now();
        let (status, _, _) = server.request("GET", "/health", &[], b"");
        assert_eq!(status, 200);
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(floods);
}

#[test]
fn a_request_sent_with_the_clients_fin_is_answered() {
    let server = Server::start(&["--demo"], &[]);
    for _ in 0..20 {
        let mut s = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("request");
        s.shutdown(std::net::Shutdown::Write).expect("half-close");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    }
}

#[test]
fn a_blank_api_token_setting_stops_the_server_from_starting() {
    for name in ["DSPM_API_TOKEN", "DSPM_API_TOKEN_FILE"] {
        let out = Command::new(BINARY)
            .args(["serve", "--demo"])
            .env_clear()
            .env(name, "   ")
            .env("DSPM_LISTEN", format!("127.0.0.1:{}", free_port()))
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(2), "{name}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("{name} is set but empty")),
            "{stderr}"
        );
    }
}

#[test]
fn every_answer_is_json_nosniff_and_not_cached() {
    let server = Server::start(&["--demo"], &[]);
    let answer = exchange(server.port, b"XX\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    for header in [
        "Content-Type: application/json",
        "X-Content-Type-Options: nosniff",
        "Cache-Control: no-store",
    ] {
        assert!(answer.contains(header), "refusal lacks {header}: {answer}");
    }
    let (status, headers, _) = server.request("DELETE", "/v1/audit", &[], b"");
    assert_eq!(status, 405);
    assert!(
        headers.contains(&("allow".into(), "GET, POST".into())),
        "{headers:?}"
    );
    assert!(headers.contains(&("cache-control".into(), "no-store".into())));
}
