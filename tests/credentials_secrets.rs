//! Nothing secret reaches the output, even at `RUST_LOG=trace`: full audits
//! against moto with credentials from web identity chained into an audit
//! role, and from a container agent with an authorization token. The test
//! knows every secret (it reads STS's answers off the wire through a
//! recording proxy) and looks for each in stdout and stderr.

mod support;

use support::policy::{full_moto_policy, scratch};

use std::process::Output;

use dspm_audit::timestamp::Timestamp;
use support::creds_stub::{container_creds, xml_texts, CredsStub, Reply};
use support::moto::Moto;
use support::product::run;

/// Everything at trace, as an operator debugging a problem would set it.
const TRACE: &str = "trace";

/// The secret part of each credential: the key id past its kind prefix,
/// the secret key, the session token.
fn credential_secrets(key: &str, secret: &str, token: &str) -> Vec<(String, String)> {
    vec![
        ("access key id".into(), key[4..].to_string()),
        ("secret access key".into(), secret.to_string()),
        ("session token".into(), token.to_string()),
    ]
}

fn assert_no_secret(what: &str, out: &Output, secrets: &[(String, String)]) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("TRACE"),
        "{what}: trace logging is on, or this test proves nothing:\n{stderr}"
    );
    assert!(
        stdout.contains("\"caller_arn\""),
        "{what}: the audit ran:\n{stderr}"
    );
    for (name, value) in secrets {
        assert!(
            value.len() >= 8,
            "{what}: {name} is too short to search for"
        );
        for (stream, text) in [("stdout", &stdout), ("stderr", &stderr)] {
            assert!(
                !text.contains(value.as_str()),
                "{what}: the {name} appears on {stream}"
            );
        }
    }
    for marker in [
        "Signature=",
        "AWS4-HMAC-SHA256",
        "X-Amz-Security-Token",
        "x-amz-security-token",
    ] {
        assert!(
            !stderr.contains(marker) && !stdout.contains(marker),
            "{what}: {marker} appears in the output"
        );
    }
}

#[test]
fn trace_logs_of_full_audits_carry_no_secret() {
    let moto = Moto::start();
    moto.seed();
    let auditor = moto.auditor(&full_moto_policy(&scratch("creds-secrets", "policy")));
    let field = |name: &str| auditor[name].as_str().expect(name).to_string();

    // 1. Web identity, chained into the audit role (moto's auth is off:
    //    it refuses unsigned calls otherwise).
    let proxy = CredsStub::proxy(moto.port(), |_, body| body);
    let web_token = "eyJhbGciOiJSUzI1NiJ9.web-identity-secret-token.c2lnbmF0dXJl";
    let token_file = scratch("creds-secrets", "web").join("token");
    std::fs::write(&token_file, web_token).expect("write token");
    let env = vec![
        ("RUST_LOG".to_string(), TRACE.to_string()),
        ("AWS_REGION".to_string(), "us-east-1".to_string()),
        ("AWS_ENDPOINT_URL".to_string(), moto.endpoint()),
        ("AWS_ENDPOINT_URL_STS".to_string(), proxy.base()),
        (
            "AWS_WEB_IDENTITY_TOKEN_FILE".to_string(),
            token_file.display().to_string(),
        ),
        (
            "AWS_ROLE_ARN".to_string(),
            "arn:aws:iam::123456789012:role/irsa".to_string(),
        ),
        ("DSPM_ASSUME_ROLE_ARN".to_string(), field("role_arn")),
        ("DSPM_AWS_RETRY_BASE_MS".to_string(), "20".to_string()),
    ];
    let out = run(&["scan", "--format", "json"], &env);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut secrets = vec![("web identity token".to_string(), web_token.to_string())];
    for action in ["AssumeRoleWithWebIdentity", "AssumeRole"] {
        let calls = proxy.actions(action);
        assert_eq!(calls.len(), 1, "{action}");
        let answer = calls[0].response_text();
        let one = |tag: &str| xml_texts(&answer, tag).pop().expect(tag);
        secrets.extend(credential_secrets(
            &one("AccessKeyId"),
            &one("SecretAccessKey"),
            &one("SessionToken"),
        ));
    }
    assert_no_secret("web identity + assume role", &out, &secrets);

    // 2. Container credentials with an authorization token, auth on.
    moto.set_auth(true);
    let auth_token = "Bearer container-authorization-secret-0123456789";
    let (key, secret, session) = (
        field("access_key_id"),
        field("secret_access_key"),
        field("session_token"),
    );
    let served = container_creds(
        &key,
        &secret,
        &session,
        &Timestamp(Timestamp::now().0 + 3600).to_rfc3339(),
    );
    let agent = CredsStub::start(move |_| Reply::json(200, &served));
    let env = vec![
        ("RUST_LOG".to_string(), TRACE.to_string()),
        ("AWS_REGION".to_string(), "us-east-1".to_string()),
        ("AWS_ENDPOINT_URL".to_string(), moto.endpoint()),
        (
            "AWS_CONTAINER_CREDENTIALS_FULL_URI".to_string(),
            agent.url("/v1/credentials"),
        ),
        (
            "AWS_CONTAINER_AUTHORIZATION_TOKEN".to_string(),
            auth_token.to_string(),
        ),
        ("DSPM_AWS_RETRY_BASE_MS".to_string(), "20".to_string()),
    ];
    let out = run(&["scan", "--format", "json"], &env);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(agent.count(), 1);
    assert_eq!(
        agent.requests()[0].header("authorization"),
        Some(auth_token),
        "the token was sent"
    );
    let mut secrets = vec![
        (
            "container authorization token".to_string(),
            auth_token.to_string(),
        ),
        (
            "container authorization token value".to_string(),
            "container-authorization-secret-0123456789".to_string(),
        ),
    ];
    secrets.extend(credential_secrets(&key, &secret, &session));
    assert_no_secret("container credentials", &out, &secrets);
}
