//! Refresh ahead of expiry, single-flight, and failed refreshes, with
//! credentials that expire in 30 seconds (refreshed 15 s before expiry,
//! used until 10 s before it: see `src/aws/credentials/cache.rs`).
//! The source is a stand-in container agent on 127.0.0.1 that counts
//! fetches; the last test runs real audits against moto with auth on.

mod support;

use support::policy::{full_moto_policy, scratch};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use dspm_audit::config::AwsSettings;
use dspm_audit::timestamp::Timestamp;
use serde_json::json;
use support::creds_stub::{container_creds, CredsStub, Reply};
use support::moto::Moto;
use support::product::Server;

const LIFETIME: i64 = 30;

fn in_secs(secs: i64) -> String {
    Timestamp(Timestamp::now().0 + secs).to_rfc3339()
}

fn settings(full_uri: &str) -> AwsSettings {
    let pairs = [
        ("AWS_REGION", "us-east-1".to_string()),
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9".to_string()),
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI", full_uri.to_string()),
    ];
    let lookup = move |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    };
    AwsSettings::from_lookup(&lookup).expect("valid configuration")
}

/// Sleeps until `secs` seconds after `since`.
fn sleep_until(since: Instant, secs: f64) {
    let target = since + Duration::from_secs_f64(secs);
    if let Some(left) = target.checked_duration_since(Instant::now()) {
        std::thread::sleep(left);
    }
}

/// Calls `credentials()` from `n` threads at once; returns the key ids.
fn concurrently(aws: &Arc<AwsSettings>, n: usize) -> Vec<String> {
    let barrier = Arc::new(Barrier::new(n));
    let threads: Vec<_> = (0..n)
        .map(|_| {
            let (aws, barrier) = (aws.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                aws.credentials
                    .credentials()
                    .expect("credentials")
                    .access_key_id
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().expect("thread"))
        .collect()
}

#[test]
fn credentials_expiring_in_30_s_are_refreshed_ahead_by_one_caller() {
    // Each answer is slow enough for the callers to overlap.
    let stub = CredsStub::start(|r| {
        Reply::json(
            200,
            &container_creds(
                &format!("ASIAREFRESH{}", r.seq),
                "s",
                "t",
                &in_secs(LIFETIME),
            ),
        )
        .delayed(Duration::from_millis(300))
    });
    let aws = Arc::new(settings(&stub.url("/creds")));

    // First use: eight callers, one fetch.
    let started = Instant::now();
    let keys = concurrently(&aws, 8);
    assert!(keys.iter().all(|k| k == "ASIAREFRESH0"), "{keys:?}");
    assert_eq!(stub.count(), 1);

    // Still fresh: nothing fetched.
    sleep_until(started, 5.0);
    concurrently(&aws, 8);
    assert_eq!(stub.count(), 1);

    // Past the refresh point (15 s before expiry) but still usable: one
    // caller refreshes while the others go on with the current set.
    sleep_until(started, 16.5);
    let keys = concurrently(&aws, 8);
    assert_eq!(stub.count(), 2, "exactly one refresh");
    assert!(keys.iter().any(|k| k == "ASIAREFRESH1"), "{keys:?}");
    assert!(
        keys.iter()
            .all(|k| k == "ASIAREFRESH0" || k == "ASIAREFRESH1"),
        "{keys:?}"
    );
    assert_eq!(
        aws.credentials.credentials().expect("creds").access_key_id,
        "ASIAREFRESH1"
    );
    assert_eq!(stub.count(), 2);
}

#[test]
fn failed_refresh_keeps_valid_credentials_then_reports_the_error() {
    let failing = Arc::new(AtomicBool::new(false));
    let down = failing.clone();
    let stub = CredsStub::start(move |r| {
        if down.load(Ordering::SeqCst) {
            Reply::json(
                500,
                &json!({"code": "InternalError", "message": "agent down"}),
            )
        } else {
            Reply::json(
                200,
                &container_creds(&format!("ASIAKEEP{}", r.seq), "s", "t", &in_secs(LIFETIME)),
            )
        }
    });
    let aws = settings(&stub.url("/creds"));
    let started = Instant::now();
    assert_eq!(
        aws.credentials.credentials().expect("creds").access_key_id,
        "ASIAKEEP0"
    );
    failing.store(true, Ordering::SeqCst);

    // Refresh due, the agent fails (three attempts): the valid set is kept.
    sleep_until(started, 16.0);
    assert_eq!(
        aws.credentials
            .credentials()
            .expect("still valid")
            .access_key_id,
        "ASIAKEEP0"
    );
    assert_eq!(stub.count(), 1 + 3);
    // The next attempt waits: no new request right away.
    assert_eq!(
        aws.credentials
            .credentials()
            .expect("still valid")
            .access_key_id,
        "ASIAKEEP0"
    );
    assert_eq!(stub.count(), 4);

    // No longer usable (10 s before expiry): the refresh error.
    sleep_until(started, 21.0);
    let err = aws.credentials.credentials().expect_err("expired");
    assert!(
        err.0.contains("HTTP 500") && err.0.contains("agent down"),
        "{err}"
    );
    assert!(aws.credentials.ready().is_err());

    // The agent recovers: the next call fetches.
    failing.store(false, Ordering::SeqCst);
    assert!(aws.credentials.ready().is_ok());
}

#[test]
fn server_audits_refresh_30_s_credentials_once() {
    let moto = Moto::start();
    moto.seed();
    let creds = moto.auditor(&full_moto_policy(&scratch("creds-refresh", "server")));
    moto.set_auth(true);
    let field = |name: &str| creds[name].as_str().expect(name).to_string();
    let (key, secret, token) = (
        field("access_key_id"),
        field("secret_access_key"),
        field("session_token"),
    );
    // The agent hands out moto's session keys, saying they expire in 30 s.
    let stub = CredsStub::start(move |_| {
        Reply::json(
            200,
            &container_creds(&key, &secret, &token, &in_secs(LIFETIME)),
        )
        .delayed(Duration::from_millis(200))
    });
    let env = vec![
        ("AWS_REGION".to_string(), "us-east-1".to_string()),
        ("AWS_ENDPOINT_URL".to_string(), moto.endpoint()),
        (
            "AWS_CONTAINER_CREDENTIALS_FULL_URI".to_string(),
            stub.url("/v1/credentials"),
        ),
        ("DSPM_AWS_RETRY_BASE_MS".to_string(), "20".to_string()),
    ];
    let server = Server::start(&[], &env);
    assert_eq!(stub.count(), 0, "nothing fetched before it is needed");

    let started = Instant::now();
    let audit = |server: &Server| {
        let (status, report) = server.get_json("/v1/audit?framework=cis-aws-3.0");
        assert_eq!(status, 200, "{report}");
        assert_eq!(
            report["account"]["caller_arn"], creds["assumed_role_arn"],
            "the audit ran as the container's role"
        );
    };
    audit(&server);
    assert_eq!(stub.count(), 1, "one fetch for a whole audit");

    // After the refresh point: two audits at once, one refresh.
    sleep_until(started, 16.5);
    std::thread::scope(|s| {
        let a = s.spawn(|| audit(&server));
        let b = s.spawn(|| audit(&server));
        a.join().expect("audit");
        b.join().expect("audit");
    });
    assert_eq!(stub.count(), 2, "concurrent audits refreshed once");
}
