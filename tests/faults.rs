//! AWS-side faults on real, signature-checked traffic: a fault-injecting
//! proxy (tests/support/fault_proxy.rs) sits between the product and a
//! seeded moto, and answers chosen requests with 5xx, throttling, resets,
//! stalls, truncated, corrupt, mistyped or oversized bodies, or clock-skew
//! errors, letting everything else through to moto unchanged.
//!
//! For each fault kind: a transient fault (first one or two attempts) must
//! be retried within the standard budget (at most 3 attempts) and leave the
//! report identical to an unfaulted run against the same moto; a persistent
//! fault must turn exactly the checks fed by the faulted calls into ERROR
//! naming the error code, leave every other result as it was, and end
//! within a time that follows from the configured timeouts and attempts.
//!
//! moto runs with auth off (any credentials) for speed, except in the
//! clock-skew test that proves moto accepts the corrected signatures.

mod support;

use support::policy::{full_moto_policy, scratch};

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::fault_proxy::{Fault, FaultProxy, Nth, Protocol, Record, Rule};
use support::moto::Moto;

const ACCOUNT: &str = "123456789012";

/// The client settings every scan here runs with (DSPM_AWS_*).
const CONNECT_TIMEOUT_MS: u64 = 500;
const CALL_TIMEOUT_MS: u64 = 1500;
const MAX_ATTEMPTS: usize = 3;
const RETRY_BASE_MS: u64 = 20;

/// The longest one attempt may take: ureq's global timeout is the connect
/// timeout plus the call timeout.
const ATTEMPT_LIMIT: Duration = Duration::from_millis(CONNECT_TIMEOUT_MS + CALL_TIMEOUT_MS);
/// Slack on every time bound: process start, moto's own pace, a loaded CI.
const SLACK: Duration = Duration::from_secs(10);
/// A scan still running after this is killed and the test fails.
const SCAN_DEADLINE: Duration = Duration::from_secs(60);
/// A stall longer than any bound below: only the client's timeout ends it.
const STALL: Duration = Duration::from_secs(30);
/// More than the client's 32 MiB response limit.
const OVERSIZED_BYTES: u64 = 64 * 1024 * 1024;
const MAX_RESPONSE_BYTES: u64 = 32 * 1024 * 1024;

// ---- the seeded moto, shared while tests overlap ---------------------------

type Statuses = BTreeMap<(String, String), String>;

/// A seeded moto (auth off) and the report of an unfaulted scan of it.
struct Seeded {
    moto: Moto,
    baseline: Statuses,
    baseline_time: Duration,
}

/// One seeded moto serves every test that runs while it is up; the last
/// test to finish stops it (a static would never be dropped, leaving the
/// server behind).
static SHARED: Mutex<(Option<Arc<Seeded>>, usize)> = Mutex::new((None, 0));

struct Lease(Arc<Seeded>);

impl std::ops::Deref for Lease {
    type Target = Seeded;
    fn deref(&self) -> &Seeded {
        &self.0
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
        shared.1 -= 1;
        if shared.1 == 0 {
            // Dropped (moto killed) once the last lease is gone.
            shared.0 = None;
        }
    }
}

fn seeded() -> Lease {
    let mut shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
    if shared.0.is_none() {
        let moto = Moto::start();
        moto.seed();
        let started = Instant::now();
        let scan = scan(&moto.endpoint(), &[]);
        let baseline_time = started.elapsed();
        assert_eq!(scan.code, 1, "baseline: findings exist\n{}", scan.stderr);
        assert!(
            scan.errors().is_empty(),
            "baseline has ERROR results: {:#?}",
            scan.errors()
        );
        shared.0 = Some(Arc::new(Seeded {
            baseline: scan.statuses(),
            baseline_time,
            moto,
        }));
    }
    shared.1 += 1;
    Lease(shared.0.clone().expect("set above"))
}

/// For tests with a moto of their own: holding a lease meanwhile keeps the
/// shared moto from being stopped and re-seeded under the tests that run
/// alongside.
fn keep_shared_moto() -> Lease {
    seeded()
}

// ---- running the product ------------------------------------------------------

struct Scan {
    code: i32,
    report: Value,
    stderr: String,
    elapsed: Duration,
}

/// Settings of every scan: the endpoint, throwaway keys (moto's auth is
/// off) and the client tuning above.
fn base_env(endpoint: &str) -> Vec<(String, String)> {
    [
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ACCESS_KEY_ID", "AKIAFAULTPROXYTEST01"),
        ("AWS_SECRET_ACCESS_KEY", "fault-proxy-secret-not-real"),
        ("AWS_SESSION_TOKEN", "fault-proxy-session-not-real"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .chain(client_tuning())
    .collect()
}

fn client_tuning() -> Vec<(String, String)> {
    [
        (
            "DSPM_AWS_CONNECT_TIMEOUT_MS",
            CONNECT_TIMEOUT_MS.to_string(),
        ),
        ("DSPM_AWS_CALL_TIMEOUT_MS", CALL_TIMEOUT_MS.to_string()),
        ("DSPM_AWS_MAX_ATTEMPTS", MAX_ATTEMPTS.to_string()),
        ("DSPM_AWS_RETRY_BASE_MS", RETRY_BASE_MS.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn scan(endpoint: &str, extra: &[(String, String)]) -> Scan {
    let mut env = base_env(endpoint);
    env.extend(extra.iter().cloned());
    scan_env(&env)
}

/// Runs `dspm-audit scan --format json` with exactly `env`; kills it after
/// [`SCAN_DEADLINE`].
fn scan_env(env: &[(String, String)]) -> Scan {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_dspm-audit"))
        .args(["scan", "--format", "json"])
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dspm-audit");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for dspm-audit") {
            break status;
        }
        if started.elapsed() >= SCAN_DEADLINE {
            // Our own child, by its handle.
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "scan did not finish within {SCAN_DEADLINE:?}; stderr:\n{}",
                err_reader.join().unwrap_or_default()
            );
        }
        thread::sleep(Duration::from_millis(10));
    };
    let elapsed = started.elapsed();
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    let code = status.code().expect("dspm-audit exited by a signal");
    let report = if code == 2 {
        Value::Null
    } else {
        serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("scan printed no JSON ({e}), exit {code}:\n{stderr}"))
    };
    Scan {
        code,
        report,
        stderr,
        elapsed,
    }
}

impl Scan {
    /// Results by (check, resource); a check that evidences several
    /// controls appears several times, identically.
    fn by_check(&self) -> BTreeMap<(String, String), Value> {
        let mut map: BTreeMap<(String, String), Value> = BTreeMap::new();
        for r in self.report["results"].as_array().expect("results") {
            let Some(check) = r["check"].as_str() else {
                continue; // manual controls
            };
            let key = (
                check.to_string(),
                r["resource"].as_str().unwrap_or("").to_string(),
            );
            if let Some(seen) = map.get(&key) {
                assert_eq!(
                    (&seen["status"], &seen["reason"]),
                    (&r["status"], &r["reason"]),
                    "{key:?} differs between controls"
                );
            }
            map.insert(key, r.clone());
        }
        map
    }

    fn statuses(&self) -> Statuses {
        self.by_check()
            .into_iter()
            .map(|(k, v)| (k, v["status"].as_str().unwrap_or("").to_string()))
            .collect()
    }

    fn errors(&self) -> BTreeMap<(String, String), Value> {
        self.by_check()
            .into_iter()
            .filter(|(_, v)| v["status"] == "ERROR")
            .collect()
    }
}

// ---- what is faulted, and what it feeds ------------------------------------------

/// A call the tests fault, and the results that depend on it.
struct Target {
    /// As the proxy names it.
    operation: &'static str,
    /// Bucket (or "" for account-level calls).
    resource: &'static str,
    protocol: Protocol,
    /// The IAM action the product names in ERROR results.
    action: &'static str,
    /// (check, resource) pairs that need this call.
    feeds: &'static [(&'static str, &'static str)],
}

fn bucket_arn(name: &str) -> String {
    format!("arn:aws:s3:::{name}")
}

/// One call per protocol: S3 REST-XML (per bucket), IAM query and
/// Organizations JSON. Each feeds checks of its own only.
const TARGETS: [Target; 3] = [
    Target {
        operation: "s3:GetBucketAcl",
        resource: "acme-public-acl",
        protocol: Protocol::RestXml,
        action: "s3:GetBucketAcl",
        feeds: &[("s3.bucket_not_public", "arn:aws:s3:::acme-public-acl")],
    },
    Target {
        operation: "iam:GetAccountPasswordPolicy",
        resource: "",
        protocol: Protocol::Query,
        action: "iam:GetAccountPasswordPolicy",
        feeds: &[
            ("iam.password_min_length", ACCOUNT),
            ("iam.password_reuse_prevention", ACCOUNT),
        ],
    },
    Target {
        operation: "organizations:DescribeOrganization",
        resource: "",
        protocol: Protocol::Json,
        action: "organizations:DescribeOrganization",
        feeds: &[("organizations.scp_in_force", ACCOUNT)],
    },
];

/// Who the audit runs as: its failure ends the audit, so it is faulted
/// only transiently (and separately, persistently).
const IDENTITY: Target = Target {
    operation: "sts:GetCallerIdentity",
    resource: "",
    protocol: Protocol::Query,
    action: "sts:GetCallerIdentity",
    feeds: &[],
};

fn rule(target: &Target, nth: Nth, fault: &Fault) -> Rule {
    let rule = Rule::new(target.operation, nth, fault.clone());
    if target.resource.is_empty() {
        rule
    } else {
        rule.on(target.resource)
    }
}

/// The error code a persistent `fault` leaves in the evidence.
fn expected_code(fault: &Fault, protocol: Protocol) -> &'static str {
    match fault {
        Fault::Reset | Fault::Truncate => "ConnectionFailed",
        Fault::Stall(_) => "Timeout",
        Fault::Corrupt | Fault::WrongContentType => "MalformedResponse",
        Fault::Oversized(_) => "ResponseTooLarge",
        other => other
            .error_code(protocol)
            .expect("an error-document fault has a code"),
    }
}

/// Upper bound on a scan's duration when at most `attempts` faulted
/// attempts happen one after another (the collectors run S3, IAM and
/// Organizations side by side, so faults in different ones overlap): each
/// attempt ends by the client's timeout, plus the backoff ceilings.
fn time_bound(baseline: Duration, attempts: u32) -> Duration {
    let backoff: u64 = (0..attempts).map(|i| RETRY_BASE_MS << i.min(16)).sum();
    baseline + ATTEMPT_LIMIT * attempts + Duration::from_millis(backoff) + SLACK
}

fn describe(log: &[Record]) -> String {
    log.iter()
        .map(|r| {
            format!(
                "  #{} +{}ms {} {:?} nth={} fault={:?} upstream={:?} date={:?}",
                r.seq,
                r.at.as_millis(),
                r.operation,
                r.resource,
                r.nth,
                r.fault,
                r.upstream_status,
                r.amz_date
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

// ---- the two test shapes ------------------------------------------------------------

/// `fault` on the first `times` attempts of each target (and of
/// GetCallerIdentity): every call is retried and succeeds, within
/// `MAX_ATTEMPTS`, and the report equals the baseline.
fn transient(fault: Fault, times: usize) {
    assert!(times < MAX_ATTEMPTS);
    let seeded = seeded();
    let proxy = FaultProxy::start(seeded.moto.port());
    let targets: Vec<&Target> = TARGETS.iter().chain([&IDENTITY]).collect();
    for target in &targets {
        proxy.add(rule(target, Nth::First(times), &fault));
    }
    let scan = scan(&proxy.endpoint(), &[]);
    let log = proxy.log();
    let context = || {
        format!(
            "{fault:?}\nproxy log:\n{}\nstderr:\n{}",
            describe(&log),
            scan.stderr
        )
    };

    assert_eq!(scan.code, 1, "{}", context());
    assert!(
        scan.errors().is_empty(),
        "a transient fault left ERROR results: {:#?}\n{}",
        scan.errors(),
        context()
    );
    assert_eq!(
        scan.statuses(),
        seeded.baseline,
        "the report differs from the unfaulted run\n{}",
        context()
    );
    for target in &targets {
        let calls = proxy.calls(target.operation, target.resource);
        let faulted = calls.iter().filter(|r| r.fault.is_some()).count();
        assert_eq!(
            (faulted, calls.len()),
            (times, times + 1),
            "{}: {times} faulted attempts then one that reaches moto\n{}",
            target.operation,
            context()
        );
        assert!(calls.len() <= MAX_ATTEMPTS);
        let last = calls.last().expect("at least one call");
        assert!(
            last.fault.is_none() && last.upstream_status.is_some(),
            "{}: the last attempt reached moto\n{}",
            target.operation,
            context()
        );
        assert!(
            calls.iter().all(|r| r.signed && r.amz_date.is_some()),
            "every attempt is signed"
        );
    }
    // Nothing else was asked more than once: the fault stayed local.
    let faulted_ops: BTreeSet<(&str, &str)> =
        targets.iter().map(|t| (t.operation, t.resource)).collect();
    let repeated: Vec<&Record> = log
        .iter()
        .filter(|r| {
            r.nth > 1 && !faulted_ops.contains(&(r.operation.as_str(), r.resource.as_str()))
        })
        .filter(|r| r.operation != "iam:GenerateCredentialReport")
        .collect();
    assert!(repeated.is_empty(), "unexpected repeats: {repeated:#?}");

    // GetCallerIdentity is in series with everything else.
    let bound = time_bound(seeded.baseline_time, 2 * times as u32);
    assert!(
        scan.elapsed < bound,
        "took {:?}, bound {bound:?}\n{}",
        scan.elapsed,
        context()
    );
    assert!(proxy.problems().is_empty(), "{:?}", proxy.problems());
}

/// `fault` on every attempt of each target: exactly the checks they feed
/// are ERROR naming the action and the error code, every other result is
/// as in the baseline, each call made `attempts` attempts, and the scan
/// ended within the bound.
fn persistent(fault: Fault, attempts: std::ops::RangeInclusive<usize>) -> (Scan, FaultProxy) {
    let seeded = seeded();
    let proxy = FaultProxy::start(seeded.moto.port());
    for target in &TARGETS {
        proxy.add(rule(target, Nth::All, &fault));
    }
    let scan = scan(&proxy.endpoint(), &[]);
    let log = proxy.log();
    let context = || {
        format!(
            "{fault:?}\nproxy log:\n{}\nstderr:\n{}",
            describe(&log),
            scan.stderr
        )
    };
    assert_eq!(scan.code, 1, "{}", context());

    let mut expected_errors = BTreeSet::new();
    for target in &TARGETS {
        for (check, resource) in target.feeds {
            expected_errors.insert((check.to_string(), resource.to_string()));
        }
    }
    let errors = scan.errors();
    assert_eq!(
        errors.keys().cloned().collect::<BTreeSet<_>>(),
        expected_errors,
        "exactly the checks fed by the faulted calls are ERROR\n{}",
        context()
    );
    for target in &TARGETS {
        let code = expected_code(&fault, target.protocol);
        for (check, resource) in target.feeds {
            let r = &errors[&(check.to_string(), resource.to_string())];
            assert_eq!(r["evidence"]["action"], target.action, "{r}");
            assert_eq!(r["evidence"]["error_code"], code, "{r}");
            let reason = r["reason"].as_str().unwrap_or("");
            assert!(
                reason.contains(code) && reason.contains(target.action),
                "the reason names the action and the code: {reason}"
            );
        }
        let calls = proxy.calls(target.operation, target.resource);
        let first = &errors[&(target.feeds[0].0.to_string(), target.feeds[0].1.to_string())];
        eprintln!(
            "{}: {} attempts; {}",
            target.operation,
            calls.len(),
            first["reason"].as_str().unwrap_or("")
        );
        assert!(
            attempts.contains(&calls.len()),
            "{}: {} attempts, expected {attempts:?}\n{}",
            target.operation,
            calls.len(),
            context()
        );
        assert!(calls.iter().all(|r| r.fault.is_some()));
    }
    // Everything else as in the baseline, and nothing missing or extra.
    let statuses = scan.statuses();
    assert_eq!(
        statuses.keys().collect::<Vec<_>>(),
        seeded.baseline.keys().collect::<Vec<_>>(),
        "the same results exist"
    );
    for (key, status) in &statuses {
        if !expected_errors.contains(key) {
            assert_eq!(
                status,
                &seeded.baseline[key],
                "{key:?} changed\n{}",
                context()
            );
        }
    }
    let bound = time_bound(seeded.baseline_time, *attempts.end() as u32);
    assert!(
        scan.elapsed < bound,
        "took {:?}, bound {bound:?}\n{}",
        scan.elapsed,
        context()
    );
    assert!(proxy.problems().is_empty(), "{:?}", proxy.problems());
    (scan, proxy)
}

// ---- the proxy itself ----------------------------------------------------------------

/// Without rules the proxy changes nothing: the report through it equals
/// the report straight from moto, and it names every operation it saw.
#[test]
fn the_proxy_is_transparent_and_names_every_operation() {
    let seeded = seeded();
    let proxy = FaultProxy::start(seeded.moto.port());
    let scan = scan(&proxy.endpoint(), &[]);
    assert_eq!(scan.code, 1, "{}", scan.stderr);
    assert_eq!(scan.statuses(), seeded.baseline);
    let log = proxy.log();
    let operations: BTreeSet<&str> = log.iter().map(|r| r.operation.as_str()).collect();
    let expected: BTreeSet<&str> = [
        "sts:GetCallerIdentity",
        "s3control:GetPublicAccessBlock",
        "s3:ListBuckets",
        "s3:GetBucketLocation",
        "s3:GetPublicAccessBlock",
        "s3:GetBucketPolicy",
        "s3:GetBucketPolicyStatus",
        "s3:GetBucketAcl",
        "s3:GetBucketEncryption",
        "s3:GetBucketVersioning",
        "s3:GetBucketLogging",
        "iam:GetAccountSummary",
        "iam:GetAccountPasswordPolicy",
        "iam:GenerateCredentialReport",
        "iam:GetCredentialReport",
        "iam:ListUsers",
        "iam:ListAttachedUserPolicies",
        "iam:ListUserPolicies",
        "iam:ListPolicies",
        "iam:GetPolicyVersion",
        "organizations:DescribeOrganization",
        "organizations:ListParents",
        "organizations:ListPoliciesForTarget",
    ]
    .into_iter()
    .collect();
    assert_eq!(operations, expected, "\n{}", describe(&log));
    assert!(log
        .iter()
        .all(|r| r.fault.is_none() && r.upstream_status.is_some() && r.signed));
    // Per-bucket calls name their bucket; each is asked once.
    let acl_buckets: BTreeSet<&str> = log
        .iter()
        .filter(|r| r.operation == "s3:GetBucketAcl")
        .map(|r| r.resource.as_str())
        .collect();
    assert_eq!(acl_buckets.len(), 10, "{acl_buckets:?}");
    assert!(log
        .iter()
        .filter(|r| r.operation != "iam:GenerateCredentialReport")
        .all(|r| r.nth == 1));
    assert!(proxy.problems().is_empty(), "{:?}", proxy.problems());
}

/// The reset fault really is a TCP reset, not a polite close.
#[test]
fn the_reset_fault_sends_a_tcp_reset() {
    let seeded = seeded();
    let proxy = FaultProxy::start(seeded.moto.port());
    proxy.add(Rule::new("*", Nth::All, Fault::Reset));
    let mut stream = TcpStream::connect(("127.0.0.1", proxy.port())).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    stream
        .write_all(b"GET /acme-logs?acl HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n")
        .expect("send");
    let mut buf = [0u8; 64];
    let error = stream.read(&mut buf).expect_err("no answer, a reset");
    assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset, "{error}");
    let log = proxy.log();
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0].operation.as_str(), log[0].resource.as_str()),
        ("s3:GetBucketAcl", "acme-logs")
    );
}

// ---- 500 and 503 ---------------------------------------------------------------------

#[test]
fn transient_500_is_retried() {
    transient(Fault::Status(500), 2);
}

#[test]
fn persistent_500_is_an_error_naming_the_code() {
    persistent(Fault::Status(500), MAX_ATTEMPTS..=MAX_ATTEMPTS);
}

#[test]
fn transient_503_is_retried() {
    transient(Fault::Status(503), 1);
}

#[test]
fn persistent_503_is_an_error_naming_the_code() {
    persistent(Fault::Status(503), MAX_ATTEMPTS..=MAX_ATTEMPTS);
}

// ---- throttling in each protocol's shape ----------------------------------------------

#[test]
fn transient_throttling_is_retried() {
    transient(Fault::Throttle, 2);
}

#[test]
fn persistent_throttling_is_an_error_naming_the_code() {
    persistent(Fault::Throttle, MAX_ATTEMPTS..=MAX_ATTEMPTS);
}

// ---- connection reset ----------------------------------------------------------------

#[test]
fn transient_reset_is_retried() {
    transient(Fault::Reset, 2);
}

#[test]
fn persistent_reset_is_an_error_naming_the_failure() {
    persistent(Fault::Reset, MAX_ATTEMPTS..=MAX_ATTEMPTS);
}

// ---- stall past the call timeout -----------------------------------------------------

#[test]
fn transient_stall_times_out_and_is_retried() {
    let seeded = seeded();
    let proxy = FaultProxy::start(seeded.moto.port());
    let target = &TARGETS[0];
    proxy.add(rule(target, Nth::First(1), &Fault::Stall(STALL)));
    let scan = scan(&proxy.endpoint(), &[]);
    assert_eq!(scan.statuses(), seeded.baseline, "{}", scan.stderr);
    let calls = proxy.calls(target.operation, target.resource);
    assert_eq!(calls.len(), 2, "{}", describe(&calls));
    // The client gave up by its own timeout (connect + call), not ours.
    let gave_up = calls[0]
        .client_gave_up_after
        .expect("the client hung up before the stall ended");
    eprintln!("the client gave up on the stalled call after {gave_up:?}");
    assert!(
        gave_up >= Duration::from_millis(CALL_TIMEOUT_MS - 100)
            && gave_up < ATTEMPT_LIMIT + Duration::from_secs(1),
        "gave up after {gave_up:?}; DSPM_AWS_CALL_TIMEOUT_MS={CALL_TIMEOUT_MS}"
    );
    assert!(scan.elapsed < time_bound(seeded.baseline_time, 1));
}

#[test]
fn persistent_stall_is_a_timeout_error_within_the_bound() {
    let (_, proxy) = persistent(Fault::Stall(STALL), MAX_ATTEMPTS..=MAX_ATTEMPTS);
    for record in proxy.log().iter().filter(|r| r.fault.is_some()) {
        let gave_up = record.client_gave_up_after.expect("the client hung up");
        assert!(
            gave_up < ATTEMPT_LIMIT + Duration::from_secs(1),
            "{gave_up:?}"
        );
    }
}

// ---- truncated body ------------------------------------------------------------------

#[test]
fn transient_truncated_body_is_retried() {
    transient(Fault::Truncate, 2);
}

#[test]
fn persistent_truncated_body_is_an_error_naming_the_failure() {
    persistent(Fault::Truncate, MAX_ATTEMPTS..=MAX_ATTEMPTS);
}

// ---- corrupt body, wrong content type, oversized body ----------------------------------

// A 2xx whose body is not a document of the protocol (garbled, an HTML
// page) is MalformedResponse and retried like other transient faults. An
// answer over the client's size limit is ResponseTooLarge and final: one
// attempt, since fetching it again would repeat the cost.

#[test]
fn transient_corrupt_body_is_retried() {
    transient(Fault::Corrupt, 2);
}

#[test]
fn persistent_corrupt_body_is_an_error_naming_the_failure() {
    persistent(Fault::Corrupt, MAX_ATTEMPTS..=MAX_ATTEMPTS);
}

#[test]
fn transient_wrong_content_type_is_retried() {
    transient(Fault::WrongContentType, 2);
}

#[test]
fn persistent_wrong_content_type_is_an_error_naming_the_failure() {
    persistent(Fault::WrongContentType, MAX_ATTEMPTS..=MAX_ATTEMPTS);
}

#[test]
fn persistent_oversized_body_is_refused_at_the_limit() {
    let (scan, proxy) = persistent(Fault::Oversized(OVERSIZED_BYTES), 1..=1);
    // The client stopped reading at its limit: it never took the whole body.
    for record in proxy.log().iter().filter(|r| r.fault.is_some()) {
        eprintln!(
            "{}: the client took {} of {OVERSIZED_BYTES} bytes",
            record.operation, record.body_bytes_sent
        );
        assert!(
            record.body_bytes_sent < OVERSIZED_BYTES,
            "{} took all {} bytes",
            record.operation,
            record.body_bytes_sent
        );
    }
    let errors = scan.errors();
    for r in errors.values() {
        let message = r["evidence"]["error_message"].as_str().unwrap_or("");
        assert!(
            message.contains(&format!("larger than {MAX_RESPONSE_BYTES} bytes")),
            "{r}"
        );
    }
}

// ---- clock skew -----------------------------------------------------------------------

const SKEW_SECS: i64 = 3 * 3600;

/// AWS's clock is 3 h ahead: every request signed by the local clock is
/// refused with `RequestTimeTooSkewed` and AWS's `Date`. The client learns
/// the offset from the first refusal, retries that call once, and signs
/// everything after with the corrected time.
#[test]
fn skewed_clock_is_corrected_from_the_date_header() {
    let seeded = seeded();
    let proxy = FaultProxy::start(seeded.moto.port());
    proxy.add(Rule::new(
        "*",
        Nth::All,
        Fault::Skewed {
            offset_secs: SKEW_SECS,
            accept_corrected: true,
        },
    ));
    let scan = scan(&proxy.endpoint(), &[]);
    let log = proxy.log();
    assert_eq!(scan.statuses(), seeded.baseline, "\n{}", describe(&log));
    assert_skew_corrected(&log);
}

/// The skew correction is done once per call: a server that keeps refusing
/// the corrected request gets exactly one retry, and the checks fed by the
/// call are ERROR naming `RequestTimeTooSkewed`.
#[test]
fn persistent_skew_errors_are_retried_once() {
    let fault = Fault::Skewed {
        offset_secs: SKEW_SECS,
        accept_corrected: false,
    };
    let (_, proxy) = persistent(fault, 2..=2);
    // The retry of each refused call was signed with the corrected time.
    for target in &TARGETS {
        let calls = proxy.calls(target.operation, target.resource);
        let offset = calls[1].signed_at().expect("x-amz-date") - calls[1].received_unix();
        assert!((offset - SKEW_SECS).abs() < 120, "{offset}");
    }
}

/// The first request is refused, its retry is signed about `SKEW_SECS`
/// later than local time, and so is every request after it.
fn assert_skew_corrected(log: &[Record]) {
    let first = &log[0];
    assert_eq!(first.operation, "sts:GetCallerIdentity");
    assert!(first.fault.is_some(), "{}", describe(log));
    let local = first.signed_at().expect("x-amz-date") - first.received_unix();
    assert!(
        local.abs() < 120,
        "first request signed {local} s off local time"
    );
    let second = &log[1];
    assert_eq!(
        (second.operation.as_str(), second.nth),
        ("sts:GetCallerIdentity", 2),
        "the refused call is retried at once\n{}",
        describe(log)
    );
    for record in &log[1..] {
        let offset = record.signed_at().expect("x-amz-date") - record.received_unix();
        assert!(
            (offset - SKEW_SECS).abs() < 120,
            "{} signed {offset} s from local time\n{}",
            record.operation,
            describe(log)
        );
        assert!(record.fault.is_none(), "only the first request is refused");
        assert!(record.upstream_status.is_some(), "forwarded to moto");
    }
    assert_eq!(log.iter().filter(|r| r.fault.is_some()).count(), 1);
}

/// With moto checking every signature and policy: the skew-corrected
/// requests (signed with AWS's time, which moto does not compare with its
/// own clock) are accepted, and the audit is exactly as without the skew.
#[test]
fn skew_corrected_signatures_are_accepted_by_moto_with_auth_on() {
    let _shared = keep_shared_moto();
    let moto = Moto::start();
    moto.seed();
    let dir = scratch("faults", "skew-auth");
    let creds = moto.auditor(&full_moto_policy(&dir));
    moto.set_auth(true);
    let proxy = FaultProxy::start(moto.port());
    let env = |endpoint: &str| {
        let mut env = support::product::aws_env(endpoint, &creds);
        env.extend(client_tuning());
        env
    };

    let unskewed = scan_env(&env(&proxy.endpoint()));
    assert_eq!(unskewed.code, 1, "{}", unskewed.stderr);
    assert!(
        unskewed.errors().is_empty(),
        "auth on, no skew: {:#?}\n{}",
        unskewed.errors(),
        moto.log_tail(20)
    );
    proxy.reset();

    proxy.add(Rule::new(
        "*",
        Nth::All,
        Fault::Skewed {
            offset_secs: SKEW_SECS,
            accept_corrected: true,
        },
    ));
    let skewed = scan_env(&env(&proxy.endpoint()));
    let log = proxy.log();
    assert_eq!(skewed.code, 1, "{}\n{}", skewed.stderr, describe(&log));
    assert!(
        skewed.errors().is_empty(),
        "moto refused skew-corrected requests: {:#?}\n{}",
        skewed.errors(),
        describe(&log)
    );
    assert_eq!(skewed.statuses(), unskewed.statuses());
    assert_skew_corrected(&log);
    // moto verified and accepted the corrected signatures: no auth errors.
    let refused: Vec<&Record> = log[1..]
        .iter()
        .filter(|r| matches!(r.upstream_status, Some(401 | 403)))
        .collect();
    assert!(refused.is_empty(), "{}", describe(&log));
    assert!(
        log.iter()
            .filter(|r| r.operation.starts_with("s3:") || r.operation.starts_with("iam:"))
            .count()
            > 50,
        "signature-checked services were exercised"
    );

    // Control: through the same proxy, moto does check signatures. The
    // same skewed server, keys with a wrong secret: refused.
    proxy.reset();
    proxy.add(Rule::new(
        "*",
        Nth::All,
        Fault::Skewed {
            offset_secs: SKEW_SECS,
            accept_corrected: true,
        },
    ));
    let mut bad_env = env(&proxy.endpoint());
    for (k, v) in bad_env.iter_mut() {
        if k == "AWS_SECRET_ACCESS_KEY" {
            v.push('x');
        }
    }
    let bad = scan_env(&bad_env);
    let log = proxy.log();
    assert_eq!(bad.code, 2, "{}\n{}", bad.stderr, describe(&log));
    assert!(
        bad.stderr.contains("sts:GetCallerIdentity")
            && bad.stderr.contains("SignatureDoesNotMatch"),
        "{}",
        bad.stderr
    );
    // The refused request was the skew-corrected retry, forwarded to moto.
    let last = log.last().expect("requests");
    assert_eq!(
        (last.nth, last.upstream_status),
        (2, Some(403)),
        "{}",
        describe(&log)
    );
}

// ---- the identity call -------------------------------------------------------------

/// Without the caller's identity nothing can be attributed: the scan
/// fails (exit 2) naming the call and the code, after the full budget.
#[test]
fn persistent_identity_failure_stops_the_scan_within_the_bound() {
    let seeded = seeded();
    let proxy = FaultProxy::start(seeded.moto.port());
    proxy.add(rule(&IDENTITY, Nth::All, &Fault::Status(503)));
    let scan = scan(&proxy.endpoint(), &[]);
    assert_eq!(scan.code, 2, "{}", scan.stderr);
    assert!(
        scan.stderr.contains("sts:GetCallerIdentity") && scan.stderr.contains("ServiceUnavailable"),
        "{}",
        scan.stderr
    );
    let log = proxy.log();
    assert_eq!(log.len(), MAX_ATTEMPTS, "{}", describe(&log));
    assert!(log.iter().all(|r| r.operation == "sts:GetCallerIdentity"));
    assert!(scan.elapsed < time_bound(Duration::ZERO, MAX_ATTEMPTS as u32));
}

// ---- one per-bucket operation failing on every bucket -------------------------------

/// GetBucketVersioning fails for good on all ten buckets: every bucket's
/// versioning and MFA-delete checks are ERROR, nothing else changes, and
/// each call costs exactly `MAX_ATTEMPTS` attempts. (Ten calls spend 100
/// of the 500 retry tokens: at this size the quota does not bind, which is
/// the standard mode's intent; see the next test for where it does.)
#[test]
fn one_bucket_operation_failing_everywhere_costs_three_attempts_per_bucket() {
    let seeded = seeded();
    let proxy = FaultProxy::start(seeded.moto.port());
    proxy.add(Rule::new("s3:GetBucketVersioning", Nth::All, Fault::Status(503)).on("*"));
    let scan = scan(&proxy.endpoint(), &[]);
    assert_eq!(scan.code, 1, "{}", scan.stderr);
    let log = proxy.log();
    let buckets: BTreeSet<&str> = log
        .iter()
        .filter(|r| r.operation == "s3:GetBucketVersioning")
        .map(|r| r.resource.as_str())
        .collect();
    assert_eq!(buckets.len(), 10);
    for bucket in &buckets {
        let calls = proxy.calls("s3:GetBucketVersioning", bucket);
        assert_eq!(calls.len(), MAX_ATTEMPTS, "{bucket}\n{}", describe(&calls));
    }
    let expected: BTreeSet<(String, String)> = buckets
        .iter()
        .flat_map(|b| {
            ["s3.bucket_versioning", "s3.bucket_mfa_delete"]
                .map(|check| (check.to_string(), bucket_arn(b)))
        })
        .collect();
    let errors = scan.errors();
    assert_eq!(errors.keys().cloned().collect::<BTreeSet<_>>(), expected);
    assert!(errors
        .values()
        .all(|r| r["evidence"]["error_code"] == "ServiceUnavailable"
            && r["evidence"]["action"] == "s3:GetBucketVersioning"));
    for (key, status) in scan.statuses() {
        if !expected.contains(&key) {
            assert_eq!(status, seeded.baseline[&key], "{key:?}");
        }
    }
    // Ten buckets in parallel (8 workers): two rounds of faulted calls.
    assert!(scan.elapsed < time_bound(seeded.baseline_time, 2 * MAX_ATTEMPTS as u32));
}

// ---- the retry quota ------------------------------------------------------------------

/// Retry quota of the client (src/aws/client.rs): 500 tokens, 5 per retry,
/// 1 back per success.
const RETRY_QUOTA: usize = 500;
const RETRY_COST: usize = 5;

/// Every per-bucket read of many buckets fails with 500 for good. Without
/// a quota that is 3 attempts per call; with it, retries stop once the
/// 500 tokens are spent (5 per retry, one back per success), and later
/// calls are tried once.
#[test]
fn the_retry_quota_stops_hammering_a_failing_endpoint() {
    const BUCKETS: usize = 30;
    const FAILING: [&str; 7] = [
        "s3:GetPublicAccessBlock",
        "s3:GetBucketPolicy",
        "s3:GetBucketPolicyStatus",
        "s3:GetBucketAcl",
        "s3:GetBucketEncryption",
        "s3:GetBucketVersioning",
        "s3:GetBucketLogging",
    ];
    let _shared = keep_shared_moto();
    // An empty account but for many plain buckets (moto's auth is off:
    // unsigned PUTs create them).
    let moto = Moto::start();
    for i in 0..BUCKETS {
        let (status, answer) = raw_http(moto.port(), "PUT", &format!("/quota-bucket-{i:02}"));
        assert_eq!(status, 200, "{answer}");
    }
    let proxy = FaultProxy::start(moto.port());
    for op in FAILING {
        proxy.add(Rule::new(op, Nth::All, Fault::Status(500)).on("*"));
    }
    let scan = scan(&proxy.endpoint(), &[]);
    assert_eq!(scan.code, 1, "{}", scan.stderr);
    let log = proxy.log();

    let faulted: Vec<&Record> = log.iter().filter(|r| r.fault.is_some()).collect();
    let calls: BTreeSet<(&str, &str)> = faulted
        .iter()
        .map(|r| (r.operation.as_str(), r.resource.as_str()))
        .collect();
    let attempts = faulted.len();
    let retries = attempts - calls.len();
    let successes = log
        .iter()
        .filter(|r| r.upstream_status.is_some_and(|s| (200..300).contains(&s)))
        .count();
    let summary = format!(
        "{} failing calls, {attempts} attempts, {retries} retries, {successes} successes",
        calls.len()
    );
    assert!(calls.len() >= BUCKETS * 6, "{summary}");
    // Unlimited, every call would have taken MAX_ATTEMPTS attempts.
    assert!(attempts < calls.len() * MAX_ATTEMPTS, "{summary}");
    // The quota was spent before any retry was refused, and never overdrawn:
    // 5 tokens per retry out of 500 plus one per success.
    assert!(retries >= RETRY_QUOTA / RETRY_COST, "{summary}");
    assert!(retries * RETRY_COST <= RETRY_QUOTA + successes, "{summary}");
    // Once the quota is spent, calls are tried once.
    let mut per_call: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for r in &faulted {
        *per_call
            .entry((r.operation.as_str(), r.resource.as_str()))
            .or_default() += 1;
    }
    let tried_once = per_call.values().filter(|n| **n == 1).count();
    assert!(tried_once > 0, "{summary}");
    assert!(per_call.values().all(|n| *n <= MAX_ATTEMPTS));

    // Every bucket check is ERROR naming InternalError; nothing else is.
    let errors = scan.errors();
    assert!(errors
        .values()
        .all(|r| r["evidence"]["error_code"] == "InternalError"));
    assert!(errors
        .keys()
        .all(|(check, _)| check.starts_with("s3.bucket_")));
    for i in 0..BUCKETS {
        let arn = bucket_arn(&format!("quota-bucket-{i:02}"));
        assert!(
            errors.keys().any(|(_, r)| *r == arn),
            "{arn} has ERROR results"
        );
    }
    eprintln!("retry quota: {summary}, scan took {:?}", scan.elapsed);
}

// ---- helpers ---------------------------------------------------------------------------

/// One unsigned request to moto on 127.0.0.1:`port`: status and body.
fn raw_http(port: u16, method: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to moto");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).expect("send");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}
