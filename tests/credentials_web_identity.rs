//! EKS IRSA: `AssumeRoleWithWebIdentity` against moto (auth off: moto
//! refuses unsigned calls in auth mode), observed on the wire through a
//! recording proxy on 127.0.0.1; STS errors from a scripted stand-in.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use dspm_audit::config::AwsSettings;
use dspm_audit::timestamp::Timestamp;
use support::creds_stub::{replace_expiration, web_identity_answer, CredsStub, Reply};
use support::moto::Moto;
use support::product::scan;

const ROLE: &str = "arn:aws:iam::123456789012:role/irsa-audit";

fn in_secs(secs: i64) -> String {
    Timestamp(Timestamp::now().0 + secs).to_rfc3339()
}

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("creds-web-identity-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn settings(pairs: Vec<(&'static str, String)>) -> Result<AwsSettings, String> {
    let lookup = move |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    };
    AwsSettings::from_lookup(&lookup).map_err(|e| e.0)
}

#[test]
fn rotated_token_reaches_sts_on_the_next_refresh() {
    let moto = Moto::start();
    // moto's sessions last an hour; the proxy says two seconds, so that the
    // second call refreshes.
    let proxy = CredsStub::proxy(moto.port(), |req, body| {
        if req.form("Action").as_deref() == Some("AssumeRoleWithWebIdentity") {
            replace_expiration(&String::from_utf8_lossy(&body), &in_secs(2)).into_bytes()
        } else {
            body
        }
    });
    let dir = scratch("rotation");
    let token_file = dir.join("token");
    std::fs::write(&token_file, "eyJ.token-A.sig\n").expect("write token");
    let aws = settings(vec![
        ("AWS_REGION", "eu-west-1".into()),
        ("AWS_ENDPOINT_URL", moto.endpoint()),
        ("AWS_ENDPOINT_URL_STS", proxy.base()),
        (
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            token_file.display().to_string(),
        ),
        ("AWS_ROLE_ARN", ROLE.into()),
        ("AWS_ROLE_SESSION_NAME", "irsa-rotation".into()),
    ])
    .expect("valid configuration");
    assert_eq!(
        aws.credentials.describe(),
        format!("web identity (EKS IRSA), role {ROLE}")
    );
    assert_eq!(proxy.count(), 0, "nothing is sent before use");

    let first = aws.credentials.credentials().expect("first credentials");
    std::fs::write(&token_file, "eyJ.token-B.sig").expect("rotate token");
    std::thread::sleep(Duration::from_millis(2100));
    let second = aws
        .credentials
        .credentials()
        .expect("refreshed credentials");
    assert_ne!(
        first.access_key_id, second.access_key_id,
        "moto issued new keys"
    );
    assert!(first.access_key_id.starts_with("ASIA"));

    let calls = proxy.actions("AssumeRoleWithWebIdentity");
    assert_eq!(calls.len(), 2, "{calls:#?}");
    let tokens: Vec<Option<String>> = calls.iter().map(|r| r.form("WebIdentityToken")).collect();
    assert_eq!(
        tokens,
        [
            Some("eyJ.token-A.sig".into()),
            Some("eyJ.token-B.sig".into())
        ]
    );
    for call in &calls {
        assert_eq!(call.method, "POST");
        assert_eq!(call.form("Version").as_deref(), Some("2011-06-15"));
        assert_eq!(call.form("RoleArn").as_deref(), Some(ROLE));
        assert_eq!(
            call.form("RoleSessionName").as_deref(),
            Some("irsa-rotation")
        );
        assert_eq!(call.header("authorization"), None, "unsigned");
        assert_eq!(call.header("x-amz-security-token"), None);
        assert_eq!(call.status, 200, "{}", call.response_text());
    }
}

#[test]
fn an_audit_runs_as_the_web_identity_role() {
    let moto = Moto::start();
    moto.seed();
    let proxy = CredsStub::proxy(moto.port(), |_, body| body);
    let dir = scratch("audit");
    let token_file = dir.join("token");
    std::fs::write(&token_file, "eyJ.audit-token.sig").expect("write token");
    let env = vec![
        ("AWS_REGION".to_string(), "us-east-1".to_string()),
        ("AWS_ENDPOINT_URL".to_string(), moto.endpoint()),
        ("AWS_ENDPOINT_URL_STS".to_string(), proxy.base()),
        (
            "AWS_WEB_IDENTITY_TOKEN_FILE".to_string(),
            token_file.display().to_string(),
        ),
        ("AWS_ROLE_ARN".to_string(), ROLE.to_string()),
        (
            "AWS_ROLE_SESSION_NAME".to_string(),
            "irsa-audit".to_string(),
        ),
        ("DSPM_AWS_RETRY_BASE_MS".to_string(), "20".to_string()),
    ];
    let (code, report) = scan(&["--framework", "cis-aws-3.0"], &env);
    assert_eq!(code, 1, "the seeded account has findings");
    assert_eq!(
        report["account"]["caller_arn"],
        "arn:aws:sts::123456789012:assumed-role/irsa-audit/irsa-audit"
    );
    assert_eq!(proxy.actions("AssumeRoleWithWebIdentity").len(), 1);
    // Every other STS call was signed with the web identity session.
    let signed = proxy.actions("GetCallerIdentity");
    assert!(!signed.is_empty());
    assert!(signed
        .iter()
        .all(|r| r.header("x-amz-security-token").is_some()));
}

#[test]
fn sts_errors_are_reported_by_name() {
    let dir = scratch("errors");
    let token_file = dir.join("token");
    std::fs::write(&token_file, "eyJ.error-token.sig").expect("write token");
    let cases: &[(u16, &str, &str, usize)] = &[
        (400, "InvalidIdentityToken", "OIDC provider", 1),
        (400, "ExpiredTokenException", "token has expired", 1),
        (403, "AccessDenied", "trust policy", 1),
        (
            403,
            "RegionDisabledException",
            "not activated in this region",
            1,
        ),
        // Transient: retried up to DSPM_AWS_MAX_ATTEMPTS (3), then named.
        (
            400,
            "IDPCommunicationError",
            "could not reach the identity provider",
            3,
        ),
    ];
    for (status, code, hint, attempts) in cases {
        let (status, code) = (*status, *code);
        let stub = CredsStub::start(move |_| {
            Reply::sts_error(status, code, "refused for token eyJ.error-token.sig")
        });
        let aws = settings(vec![
            ("AWS_REGION", "ap-northeast-2".into()),
            ("AWS_ENDPOINT_URL_STS", stub.base()),
            (
                "AWS_WEB_IDENTITY_TOKEN_FILE",
                token_file.display().to_string(),
            ),
            ("AWS_ROLE_ARN", ROLE.into()),
            ("DSPM_AWS_RETRY_BASE_MS", "1".into()),
        ])
        .expect("valid configuration");
        let err = aws.credentials.credentials().expect_err(code);
        assert!(err.0.contains(code), "{err}");
        assert!(err.0.contains(hint), "{err}");
        assert!(
            err.0.contains("sts:AssumeRoleWithWebIdentity") && err.0.contains(ROLE),
            "{err}"
        );
        assert!(
            !err.0.contains("eyJ.error-token.sig"),
            "the token is never shown: {err}"
        );
        assert_eq!(stub.count(), *attempts, "{code}");
    }
}

#[test]
fn idp_communication_error_is_retried_then_succeeds() {
    let dir = scratch("idp-retry");
    let token_file = dir.join("token");
    std::fs::write(&token_file, "eyJ.retry-token.sig").expect("write token");
    let stub = CredsStub::start(|r| {
        if r.seq == 0 {
            Reply::sts_error(400, "IDPCommunicationError", "IdP unreachable")
        } else {
            web_identity_answer("ASIARETRY", "retry-secret", "retry-session", &in_secs(3600))
        }
    });
    let aws = settings(vec![
        ("AWS_REGION", "ap-northeast-2".into()),
        ("AWS_ENDPOINT_URL_STS", stub.base()),
        (
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            token_file.display().to_string(),
        ),
        ("AWS_ROLE_ARN", ROLE.into()),
        ("DSPM_AWS_RETRY_BASE_MS", "1".into()),
    ])
    .expect("valid configuration");
    let creds = aws.credentials.credentials().expect("retried");
    assert_eq!(creds.access_key_id, "ASIARETRY");
    assert_eq!(stub.count(), 2);
    let default_name = stub.requests()[0]
        .form("RoleSessionName")
        .expect("session name");
    assert!(default_name.starts_with("dspm-audit-"), "{default_name}");
}

#[test]
fn configuration_errors() {
    let err = settings(vec![
        ("AWS_REGION", "us-east-1".into()),
        (
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "/var/run/secrets/eks/token".into(),
        ),
    ])
    .err()
    .expect("no role");
    assert!(err.contains("AWS_ROLE_ARN is not"), "{err}");

    // A missing token file is named on use; nothing is sent.
    let stub = CredsStub::start(|_| Reply::sts_error(500, "InternalError", "unexpected"));
    let aws = settings(vec![
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ENDPOINT_URL_STS", stub.base()),
        (
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            scratch("missing")
                .join("absent-token")
                .display()
                .to_string(),
        ),
        ("AWS_ROLE_ARN", ROLE.into()),
    ])
    .expect("the file is read on use");
    let err = aws.credentials.credentials().expect_err("missing file");
    assert!(
        err.0.contains("AWS_WEB_IDENTITY_TOKEN_FILE") && err.0.contains("absent-token"),
        "{err}"
    );
    assert_eq!(stub.count(), 0);
}
