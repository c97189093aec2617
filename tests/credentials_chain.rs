//! Role chaining: `DSPM_ASSUME_ROLE_ARN` assumes the audit role with the
//! base credentials, on moto with signatures and IAM policy enforced. The
//! base is an IAM user's long-term keys (moto's users have no other kind),
//! allowed for this test with `DSPM_ALLOW_LONG_TERM_KEYS=true`; that user
//! may assume the audit role and do nothing else.

mod support;

use support::policy::{full_moto_policy, scratch};

use serde_json::Value;
use support::creds_stub::CredsStub;
use support::moto::Moto;
use support::product::{run, scan};

fn user_env(endpoint: &str, auditor: &Value) -> Vec<(String, String)> {
    let field = |name: &str| auditor[name].as_str().expect(name).to_string();
    vec![
        ("AWS_REGION".into(), "us-east-1".into()),
        ("AWS_ENDPOINT_URL".into(), endpoint.into()),
        ("AWS_ACCESS_KEY_ID".into(), field("user_access_key_id")),
        (
            "AWS_SECRET_ACCESS_KEY".into(),
            field("user_secret_access_key"),
        ),
        ("DSPM_AWS_RETRY_BASE_MS".into(), "20".into()),
    ]
}

#[test]
fn the_audit_runs_as_the_assumed_role() {
    let moto = Moto::start();
    moto.seed();
    let auditor = moto.auditor(&full_moto_policy(&scratch("creds-chain", "assume")));
    moto.set_auth(true);
    // Between the product and moto: a proxy that forwards the signed bytes
    // untouched and records them.
    let proxy = CredsStub::proxy(moto.port(), |_, body| body);
    let role_arn = auditor["role_arn"].as_str().expect("role arn");

    let mut env = user_env(&moto.endpoint(), &auditor);
    env.extend([
        ("AWS_ENDPOINT_URL_STS".to_string(), proxy.base()),
        ("DSPM_ALLOW_LONG_TERM_KEYS".to_string(), "true".to_string()),
        ("DSPM_ASSUME_ROLE_ARN".to_string(), role_arn.to_string()),
        (
            "DSPM_ASSUME_ROLE_SESSION_NAME".to_string(),
            "chained-audit".to_string(),
        ),
        (
            "DSPM_ASSUME_ROLE_EXTERNAL_ID".to_string(),
            "acme-4711".to_string(),
        ),
    ]);
    let (code, report) = scan(&[], &env);
    assert_eq!(code, 1, "the seeded account has findings: {report}");
    assert_eq!(
        report["account"]["caller_arn"],
        format!(
            "arn:aws:sts::123456789012:assumed-role/{}/chained-audit",
            auditor["role_name"].as_str().expect("name")
        )
    );
    let errors: Vec<&Value> = report["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter(|r| r["status"] == "ERROR")
        .collect();
    assert!(
        errors.is_empty(),
        "the role may read everything: {errors:#?}"
    );

    let assumed = proxy.actions("AssumeRole");
    assert_eq!(assumed.len(), 1, "one AssumeRole for the whole audit");
    let call = &assumed[0];
    assert_eq!(call.form("RoleArn").as_deref(), Some(role_arn));
    assert_eq!(
        call.form("RoleSessionName").as_deref(),
        Some("chained-audit")
    );
    assert_eq!(call.form("ExternalId").as_deref(), Some("acme-4711"));
    let user_key = auditor["user_access_key_id"].as_str().expect("user key");
    let authorization = call.header("authorization").expect("signed");
    assert!(
        authorization.contains(&format!("Credential={user_key}/")),
        "AssumeRole is signed with the user's keys"
    );
    assert_eq!(call.status, 200, "{}", call.response_text());
}

#[test]
fn chaining_failures_name_the_role_and_the_error() {
    let moto = Moto::start();
    let auditor = moto.auditor(&full_moto_policy(&scratch("creds-chain", "denied")));
    moto.set_auth(true);
    let mut env = user_env(&moto.endpoint(), &auditor);

    // Long-term base keys are still refused unless allowed.
    env.push((
        "DSPM_ASSUME_ROLE_ARN".to_string(),
        auditor["role_arn"].as_str().expect("arn").to_string(),
    ));
    let out = run(&["scan", "--format", "json"], &env);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("long-term access keys are refused"),
        "{stderr}"
    );

    // A role the user may not assume: moto denies, the product says so.
    let other = "arn:aws:iam::123456789012:role/not-for-this-user";
    env.retain(|(k, _)| k != "DSPM_ASSUME_ROLE_ARN");
    env.push(("DSPM_ALLOW_LONG_TERM_KEYS".to_string(), "true".to_string()));
    env.push(("DSPM_ASSUME_ROLE_ARN".to_string(), other.to_string()));
    let out = run(&["scan", "--format", "json"], &env);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("sts:AssumeRole for role") && stderr.contains(other),
        "{stderr}"
    );
    assert!(stderr.contains("AccessDenied"), "{stderr}");
    let secret = auditor["user_secret_access_key"].as_str().expect("secret");
    assert!(!stderr.contains(secret));
}
