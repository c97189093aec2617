//! Container credentials (ECS task role, EKS Pod Identity) against a
//! stand-in agent on 127.0.0.1. Nothing here is ever sent to 169.254.x.x or
//! any other non-loopback address: the relative URI goes to the stand-in
//! through the test-only `DSPM_TEST_CONTAINER_CREDENTIALS_BASE`, and the
//! disallowed-host cases are refused before any connection.

mod support;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dspm_audit::config::AwsSettings;
use dspm_audit::timestamp::Timestamp;
use support::creds_stub::{container_creds, CredsStub, Reply};

/// An RFC 3339 time `secs` from now, in UTC (`Z`).
fn in_secs(secs: i64) -> String {
    Timestamp(Timestamp::now().0 + secs).to_rfc3339()
}

/// The same instant written with a `+09:00` offset.
fn in_secs_seoul(secs: i64) -> String {
    let local = Timestamp(Timestamp::now().0 + secs + 9 * 3600).to_rfc3339();
    format!("{}+09:00", local.trim_end_matches('Z'))
}

fn settings(pairs: &[(&str, String)]) -> Result<AwsSettings, String> {
    let mut all: Vec<(String, String)> = vec![
        ("AWS_REGION".into(), "us-east-1".into()),
        // No AWS call is made here; should one be, it stays on loopback.
        ("AWS_ENDPOINT_URL".into(), "http://127.0.0.1:9".into()),
    ];
    all.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.clone())));
    let lookup = move |name: &str| {
        all.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.trim().is_empty())
    };
    AwsSettings::from_lookup(&lookup).map_err(|e| e.0)
}

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("creds-container-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// A stand-in agent serving key `ASIASTUB{n}` for its n-th request,
/// valid for `lifetime` seconds.
fn agent(lifetime: i64) -> CredsStub {
    CredsStub::start(move |r| {
        Reply::json(
            200,
            &container_creds(
                &format!("ASIASTUB{}", r.seq),
                "stub-secret",
                "stub-session-token",
                &in_secs(lifetime),
            ),
        )
    })
}

#[test]
fn relative_uri_goes_to_the_agent_base() {
    let stub = agent(3600);
    let aws = settings(&[
        (
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "/v2/credentials/task-4711?a=1".into(),
        ),
        ("DSPM_TEST_CONTAINER_CREDENTIALS_BASE", stub.base()),
    ])
    .expect("valid configuration");
    assert_eq!(
        aws.credentials.describe(),
        "container credentials (ECS task role)"
    );
    assert_eq!(stub.count(), 0, "building the chain sends nothing");
    let creds = aws.credentials.credentials().expect("credentials");
    assert_eq!(creds.access_key_id, "ASIASTUB0");
    assert_eq!(creds.session_token.as_deref(), Some("stub-session-token"));
    let requests = stub.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "GET");
    assert_eq!(requests[0].target, "/v2/credentials/task-4711?a=1");
    assert_eq!(requests[0].header("authorization"), None);

    // Cached: a second call sends nothing.
    aws.credentials.credentials().expect("credentials");
    assert_eq!(stub.count(), 1);
}

#[test]
fn the_test_base_must_be_loopback() {
    for base in [
        "http://169.254.170.2",
        "http://10.0.0.1:8080",
        "http://example.com",
        "http://127.0.0.1:80/prefix",
    ] {
        let err = settings(&[
            ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/x".into()),
            ("DSPM_TEST_CONTAINER_CREDENTIALS_BASE", base.into()),
        ])
        .err()
        .unwrap_or_else(|| panic!("{base} must be refused"));
        assert!(
            err.contains("DSPM_TEST_CONTAINER_CREDENTIALS_BASE") && err.contains("refused"),
            "{err}"
        );
    }
}

#[test]
fn full_uri_sends_the_token_from_the_environment_as_is() {
    let stub = agent(3600);
    let aws = settings(&[
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI", stub.url("/creds")),
        (
            "AWS_CONTAINER_AUTHORIZATION_TOKEN",
            "Basic c3R1Yi1hdXRoLXRva2Vu".into(),
        ),
    ])
    .expect("valid configuration");
    assert_eq!(
        aws.credentials.describe(),
        "container credentials (AWS_CONTAINER_CREDENTIALS_FULL_URI)"
    );
    aws.credentials.credentials().expect("credentials");
    let r = &stub.requests()[0];
    assert_eq!(r.target, "/creds");
    assert_eq!(
        r.header("authorization"),
        Some("Basic c3R1Yi1hdXRoLXRva2Vu")
    );
}

#[test]
fn token_file_wins_and_is_read_again_for_every_fetch() {
    // Two-second credentials: the next call after 1 s fetches again.
    let stub = agent(2);
    let dir = scratch("token-file");
    let file = dir.join("token");
    std::fs::write(&file, "pod-identity-token-A\n").expect("write token");
    let aws = settings(&[
        (
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            stub.url("/v1/credentials"),
        ),
        (
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
            file.display().to_string(),
        ),
        ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "from-env".into()),
    ])
    .expect("valid configuration");
    let first = aws.credentials.credentials().expect("credentials");

    // The platform rotates the file.
    std::fs::write(&file, "pod-identity-token-B").expect("rotate token");
    std::thread::sleep(Duration::from_millis(2100));
    let second = aws.credentials.credentials().expect("credentials");
    assert_ne!(first.access_key_id, second.access_key_id, "refreshed");

    let tokens: Vec<Option<String>> = stub
        .requests()
        .iter()
        .map(|r| r.header("authorization").map(str::to_string))
        .collect();
    assert_eq!(
        tokens,
        [
            Some("pod-identity-token-A".to_string()),
            Some("pod-identity-token-B".to_string())
        ]
    );
}

#[test]
fn unreadable_token_file_is_an_error_and_nothing_is_sent() {
    let stub = agent(3600);
    let missing = scratch("missing").join("no-such-token");
    let aws = settings(&[
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI", stub.url("/creds")),
        (
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
            missing.display().to_string(),
        ),
    ])
    .expect("the file is read on use, not at startup");
    let err = aws.credentials.credentials().expect_err("unreadable");
    assert!(
        err.0.contains("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE") && err.0.contains("no-such-token"),
        "{err}"
    );
    assert_eq!(stub.count(), 0);
}

#[test]
fn tokens_with_line_breaks_are_refused_unsent_and_unprinted() {
    let stub = agent(3600);
    // From the environment: refused with the configuration.
    for token in [
        "abc\r\nX-Injected: yes",
        "abc\ndef-secret",
        "abc\rdef-secret",
    ] {
        let err = settings(&[
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", stub.url("/creds")),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN", token.into()),
        ])
        .err()
        .expect("refused");
        assert!(err.contains("CR or LF"), "{err}");
        assert!(
            !err.contains("X-Injected") && !err.contains("def-secret"),
            "{err}"
        );
    }
    // From a file: refused when read, before the request.
    let file = scratch("crlf").join("token");
    std::fs::write(&file, "abc\r\nX-Injected: yes\n").expect("write");
    let aws = settings(&[
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI", stub.url("/creds")),
        (
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
            file.display().to_string(),
        ),
    ])
    .expect("valid configuration");
    let err = aws.credentials.credentials().expect_err("refused");
    assert!(err.0.contains("CR or LF"), "{err}");
    assert!(!err.0.contains("X-Injected"), "{err}");
    assert_eq!(stub.count(), 0, "nothing was sent");
}

#[test]
fn expirations_in_utc_and_with_offsets() {
    let expirations = [in_secs(3600), in_secs_seoul(3600)];
    for expiration in expirations {
        let answer = expiration.clone();
        let stub = CredsStub::start(move |_| {
            Reply::json(200, &container_creds("ASIAOFFSET", "s", "t", &answer))
        });
        let aws =
            settings(&[("AWS_CONTAINER_CREDENTIALS_FULL_URI", stub.url("/creds"))]).expect("valid");
        let creds = aws.credentials.credentials().expect("credentials");
        let want = Timestamp::parse(&expiration).expect("time");
        assert_eq!(creds.expiration, Some(want), "{expiration}");
        assert!(
            (want.0 - Timestamp::now().0 - 3600).abs() <= 2,
            "{expiration}"
        );
    }
}

#[test]
fn incomplete_answers_give_clear_errors_without_secrets() {
    let cases: &[(serde_json::Value, &str)] = &[
        (
            serde_json::json!({"AccessKeyId": "ASIAINCOMPLETE", "SecretAccessKey": "incomplete-secret",
                "Token": "incomplete-token", "Expiration": ""}),
            "empty Expiration",
        ),
        (
            serde_json::json!({"AccessKeyId": "ASIAINCOMPLETE", "SecretAccessKey": "incomplete-secret",
                "Expiration": in_secs(3600)}),
            "without Token",
        ),
        (
            serde_json::json!({"AccessKeyId": "", "SecretAccessKey": "incomplete-secret",
                "Token": "incomplete-token", "Expiration": in_secs(3600)}),
            "empty AccessKeyId",
        ),
    ];
    for (answer, fragment) in cases {
        let body = answer.clone();
        let stub = CredsStub::start(move |_| Reply::json(200, &body));
        let aws =
            settings(&[("AWS_CONTAINER_CREDENTIALS_FULL_URI", stub.url("/creds"))]).expect("valid");
        let err = aws.credentials.credentials().expect_err("incomplete");
        assert!(err.0.contains(fragment), "{err}");
        for secret in ["INCOMPLETE", "incomplete-secret", "incomplete-token"] {
            assert!(!err.0.contains(secret), "{err}");
        }
        assert_eq!(stub.count(), 1, "a malformed answer is not retried");
    }
}

#[test]
fn server_error_then_success_is_retried() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let stub = CredsStub::start(move |_| {
        if seen.fetch_add(1, Ordering::SeqCst) == 0 {
            Reply::json(
                500,
                &serde_json::json!({"code": "InternalError", "message": "agent restarting"}),
            )
        } else {
            Reply::json(
                200,
                &container_creds("ASIARETRIED", "s", "t", &in_secs(3600)),
            )
        }
    });
    let aws =
        settings(&[("AWS_CONTAINER_CREDENTIALS_FULL_URI", stub.url("/creds"))]).expect("valid");
    let creds = aws
        .credentials
        .credentials()
        .expect("second attempt succeeds");
    assert_eq!(creds.access_key_id, "ASIARETRIED");
    assert_eq!(stub.count(), 2);
}

#[test]
fn failures_name_the_status_and_client_errors_are_not_retried() {
    let stub = CredsStub::start(|_| Reply::raw(503, "text/plain", "unavailable"));
    let aws =
        settings(&[("AWS_CONTAINER_CREDENTIALS_FULL_URI", stub.url("/creds"))]).expect("valid");
    let err = aws.credentials.credentials().expect_err("down");
    assert!(
        err.0.contains("HTTP 503") && err.0.contains("after 3 attempts"),
        "{err}"
    );
    assert_eq!(stub.count(), 3);

    let stub = CredsStub::start(|_| {
        Reply::json(
            403,
            &serde_json::json!({"code": "AccessDeniedException", "message": "token not valid for this pod"}),
        )
    });
    let aws = settings(&[
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI", stub.url("/creds")),
        (
            "AWS_CONTAINER_AUTHORIZATION_TOKEN",
            "denied-token-value".into(),
        ),
    ])
    .expect("valid");
    let err = aws.credentials.credentials().expect_err("denied");
    assert!(
        err.0.contains("HTTP 403") && err.0.contains("AccessDeniedException"),
        "{err}"
    );
    assert!(!err.0.contains("denied-token-value"), "{err}");
    assert_eq!(stub.count(), 1);
}

#[test]
fn disallowed_hosts_are_refused_before_anything_is_sent() {
    // The stand-in plays AWS for the binary: were anything sent anywhere,
    // the product would at least have called it.
    let aws_stub = agent(3600);
    for uri in [
        "http://169.254.171.23/v1/credentials",
        "http://example.com/credentials",
        "http://10.1.2.3:8080/credentials",
    ] {
        let err = settings(&[("AWS_CONTAINER_CREDENTIALS_FULL_URI", uri.into())])
            .err()
            .unwrap_or_else(|| panic!("{uri} must be refused"));
        assert!(err.contains("refused"), "{err}");

        let env = vec![
            ("AWS_REGION".to_string(), "us-east-1".to_string()),
            ("AWS_ENDPOINT_URL".to_string(), aws_stub.base()),
            (
                "AWS_CONTAINER_CREDENTIALS_FULL_URI".to_string(),
                uri.to_string(),
            ),
        ];
        let out = support::product::run(&["scan", "--format", "json"], &env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("refused"), "{stderr}");
    }
    assert_eq!(aws_stub.count(), 0, "nothing was sent");
}
