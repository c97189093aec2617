//! The main job on real input: a moto server seeded by boto3 with a
//! realistic account, audited through the CLI, the HTTP API and a saved
//! inventory, with moto verifying every signature and evaluating IAM policy.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;
use support::moto::Moto;
use support::policy::{alias_group, moto_policy, policy_actions, scratch};
use support::product::{self, aws_env, scan, Server};

/// `(check, resource) -> status` from one framework's results.
fn statuses(report: &Value) -> BTreeMap<(String, String), String> {
    let mut map = BTreeMap::new();
    for r in report["results"].as_array().expect("results") {
        let Some(check) = r["check"].as_str() else {
            continue;
        };
        let key = (
            check.to_string(),
            r["resource"].as_str().expect("resource").to_string(),
        );
        let status = r["status"].as_str().expect("status").to_string();
        if let Some(previous) = map.insert(key.clone(), status.clone()) {
            assert_eq!(previous, status, "{key:?} differs between frameworks");
        }
    }
    map
}

const ACCOUNT: &str = "123456789012";

fn bucket(name: &str) -> String {
    format!("arn:aws:s3:::{name}")
}

fn user(name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:user/{name}")
}

/// What the seeded account must show, check by check and resource by
/// resource. Dates cannot be backdated in moto, so every credential is fresh.
fn expected() -> BTreeMap<(String, String), &'static str> {
    let mut e = BTreeMap::new();
    let mut put = |check: &str, resource: String, status: &'static str| {
        e.insert((check.to_string(), resource), status);
    };
    put("s3.account_block_public_access", ACCOUNT.into(), "FAIL");
    // bucket: BPA, not public, TLS-only, KMS, versioning, MFA delete, logging
    let buckets: &[(&str, [&str; 7])] = &[
        (
            "acme-public-policy",
            ["FAIL", "FAIL", "FAIL", "FAIL", "FAIL", "FAIL", "FAIL"],
        ),
        (
            "acme-public-acl",
            ["FAIL", "FAIL", "FAIL", "FAIL", "FAIL", "FAIL", "FAIL"],
        ),
        (
            "acme-tls-only",
            ["PASS", "PASS", "PASS", "PASS", "PASS", "FAIL", "PASS"],
        ),
        (
            "acme-sse-s3",
            ["FAIL", "PASS", "FAIL", "FAIL", "FAIL", "FAIL", "FAIL"],
        ),
        (
            "acme-logs",
            ["PASS", "PASS", "FAIL", "FAIL", "FAIL", "FAIL", "FAIL"],
        ),
        (
            "acme-eu-data",
            ["PASS", "PASS", "FAIL", "PASS", "FAIL", "FAIL", "FAIL"],
        ),
        (
            "acme-legacy-eu",
            ["FAIL", "PASS", "FAIL", "FAIL", "FAIL", "FAIL", "FAIL"],
        ),
        (
            "acme.dotted.name",
            ["FAIL", "PASS", "FAIL", "FAIL", "FAIL", "FAIL", "FAIL"],
        ),
        // moto stores no MFA delete state (see tests/moto/README.md).
        (
            "acme-mfa-delete",
            ["FAIL", "PASS", "FAIL", "FAIL", "PASS", "FAIL", "FAIL"],
        ),
        // Principal "*" pinned to a VPC endpoint is not public.
        (
            "acme-vpce-only",
            ["FAIL", "PASS", "FAIL", "FAIL", "FAIL", "FAIL", "FAIL"],
        ),
    ];
    let checks = [
        "s3.bucket_block_public_access",
        "s3.bucket_not_public",
        "s3.bucket_tls_only",
        "s3.bucket_default_encryption_kms",
        "s3.bucket_versioning",
        "s3.bucket_mfa_delete",
        "s3.bucket_access_logging",
    ];
    for (name, row) in buckets {
        for (check, status) in checks.iter().zip(row) {
            put(check, bucket(name), status);
        }
    }

    let root = format!("arn:aws:iam::{ACCOUNT}:root");
    put("iam.root_no_access_keys", root.clone(), "PASS");
    put("iam.root_mfa", root, "FAIL");
    put("iam.password_min_length", ACCOUNT.into(), "FAIL");
    put("iam.password_reuse_prevention", ACCOUNT.into(), "FAIL");
    put("iam.console_user_mfa", user("alice"), "PASS");
    put("iam.console_user_mfa", user("bob"), "FAIL");
    for name in [
        "alice",
        "bob",
        "carol",
        "dave",
        "erin",
        "dspm-auditor-caller",
    ] {
        put("iam.unused_credentials", user(name), "PASS");
        put(
            "iam.single_active_access_key",
            user(name),
            if name == "carol" { "FAIL" } else { "PASS" },
        );
        let own = matches!(name, "dave" | "dspm-auditor-caller");
        put(
            "iam.no_user_attached_policies",
            user(name),
            if own { "FAIL" } else { "PASS" },
        );
    }
    for name in ["bob", "carol", "dave", "dspm-auditor-caller"] {
        put("iam.access_key_rotation", user(name), "PASS");
    }
    let policy = |name: &str| format!("arn:aws:iam::{ACCOUNT}:policy/{name}");
    put("iam.no_full_admin_policies", policy("FullAdmin"), "FAIL");
    put("iam.no_full_admin_policies", policy("ReadOnlyS3"), "PASS");
    put(
        "iam.no_full_admin_policies",
        policy("NotAdminWithStarResource"),
        "PASS",
    );
    put("organizations.scp_in_force", ACCOUNT.into(), "PASS");
    e
}

fn assert_matches_expected(report: &Value) {
    let got = statuses(report);
    let want = expected();
    let mut problems = Vec::new();
    for (key, status) in &want {
        match got.get(key) {
            Some(s) if s == status => {}
            other => problems.push(format!("{key:?}: want {status}, got {other:?}")),
        }
    }
    for key in got.keys().filter(|k| !want.contains_key(*k)) {
        problems.push(format!("unexpected result {key:?}: {}", got[key]));
    }
    assert!(
        problems.is_empty(),
        "report differs from the seeded account:\n{}",
        problems.join("\n")
    );
}

/// Seeds moto, creates the auditor with the production policy (plus moto's
/// aliases), and turns signature and policy enforcement on.
fn seeded_with_auth(name: &str) -> (Moto, Value, Vec<(String, String)>, PathBuf) {
    let moto = Moto::start();
    let seed = moto.seed();
    let dir = scratch("moto-audit", name);
    let creds = moto.auditor(&moto_policy(&dir, "full", &policy_actions()));
    moto.set_auth(true);
    let env = aws_env(&moto.endpoint(), &creds);
    (moto, seed, env, dir)
}

#[test]
fn cli_audit_of_the_seeded_account_is_exact() {
    let (moto, seed, env, _dir) = seeded_with_auth("cli");
    let (code, report) = scan(&[], &env);
    assert_eq!(code, 1, "findings exist, so scan exits 1");

    assert_eq!(report["account"]["id"], ACCOUNT);
    assert_eq!(report["account"]["partition"], "aws");
    assert_eq!(report["source"], "aws");
    let errors: Vec<&Value> = report["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter(|r| r["status"] == "ERROR")
        .collect();
    assert!(
        errors.is_empty(),
        "moto with auth on: no ERROR expected, got {errors:#?}\n{}",
        moto.log_tail(20)
    );
    assert_matches_expected(&report);

    // Each bucket was read in its own region.
    let regions: BTreeMap<&str, &str> = report["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter(|r| r["check"] == "s3.bucket_versioning")
        .map(|r| {
            (
                r["resource"].as_str().expect("arn"),
                r["region"].as_str().expect("region"),
            )
        })
        .collect();
    for (name, b) in seed["s3"]["buckets"].as_object().expect("seeded buckets") {
        // What boto3 read back as the location constraint, in AWS's terms.
        let want = match b["get_bucket_location"].as_str() {
            None => "us-east-1",
            Some("EU") => "eu-west-1",
            Some(region) => region,
        };
        assert_eq!(regions[bucket(name).as_str()], want, "{name}");
    }
    assert_eq!(
        regions[bucket("acme-legacy-eu").as_str()],
        "eu-west-1",
        "EU means eu-west-1"
    );

    // Framework summaries agree with the results.
    for f in report["frameworks"].as_array().expect("frameworks") {
        let id = f["id"].as_str().expect("id");
        let mut counts = BTreeMap::new();
        for r in report["results"]
            .as_array()
            .expect("results")
            .iter()
            .filter(|r| r["framework"] == id)
        {
            *counts
                .entry(r["status"].as_str().expect("status").to_string())
                .or_insert(0u64) += 1;
        }
        for status in ["PASS", "FAIL", "ERROR", "MANUAL"] {
            assert_eq!(
                f["counts"][status].as_u64().expect("count"),
                counts.get(status).copied().unwrap_or(0),
                "{id} {status}"
            );
        }
    }
    let cis = report["frameworks"]
        .as_array()
        .expect("frameworks")
        .iter()
        .find(|f| f["id"] == "cis-aws-3.0")
        .expect("CIS");
    let control = |id: &str| {
        cis["controls"]
            .as_array()
            .expect("controls")
            .iter()
            .find(|c| c["id"] == id)
            .expect("control")["status"]
            .clone()
    };
    assert_eq!(control("1.4"), "PASS");
    assert_eq!(control("1.10"), "FAIL");
    assert_eq!(control("1.1"), "MANUAL");
}

#[test]
fn http_api_and_saved_inventory_agree_with_the_cli() {
    let (_moto, _seed, env, dir) = seeded_with_auth("api");
    let (_, cli_report) = scan(&["--framework", "isms-p-2023"], &env);
    let server = Server::start(&[], &env);

    let (status, health) = server.get_json("/health");
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));

    let (status, report) = server.get_json("/v1/audit?framework=isms-p-2023");
    assert_eq!(status, 200, "{report}");
    assert_eq!(statuses(&report), statuses(&cli_report));
    assert_eq!(report["frameworks"].as_array().map(Vec::len), Some(1));

    let body = br#"{"frameworks":["cis-aws-3.0","isms-p-2023"]}"#;
    let (status, headers, raw) = server.request(
        "POST",
        "/v1/audit",
        &[("Content-Type", "application/json")],
        body,
    );
    assert_eq!(status, 200);
    assert!(
        headers.contains(&("cache-control".into(), "no-store".into())),
        "{headers:?}"
    );
    let posted: Value = serde_json::from_slice(&raw).expect("JSON");
    assert_matches_expected(&posted);

    // collect, then audit the saved inventory offline: same verdicts.
    let out = product::run(&["collect"], &env);
    assert!(
        out.status.success(),
        "collect failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let saved = dir.join("inventory.json");
    std::fs::write(&saved, &out.stdout).expect("save inventory");
    let (code, offline) = scan(&["--inventory", saved.to_str().expect("utf-8 path")], &[]);
    assert_eq!(code, 1);
    assert_eq!(offline["source"], "inventory");
    assert_matches_expected(&offline);
}

/// Which checks each action of the policy feeds. A run without the action
/// must turn exactly these into ERROR naming the action (for S3 bucket
/// checks, on the buckets the call matters for), and leave the rest as in
/// a full run.
fn checks_needing(action: &str) -> &'static [&'static str] {
    const BUCKET_CHECKS: &[&str] = &[
        "s3.bucket_block_public_access",
        "s3.bucket_not_public",
        "s3.bucket_tls_only",
        "s3.bucket_default_encryption_kms",
        "s3.bucket_versioning",
        "s3.bucket_mfa_delete",
        "s3.bucket_access_logging",
    ];
    const CREDENTIAL_REPORT: &[&str] = &[
        "iam.console_user_mfa",
        "iam.unused_credentials",
        "iam.single_active_access_key",
        "iam.access_key_rotation",
    ];
    match action {
        "s3:ListAllMyBuckets" | "s3:GetBucketLocation" => BUCKET_CHECKS,
        "s3:GetAccountPublicAccessBlock" => &[
            "s3.account_block_public_access",
            "s3.bucket_block_public_access",
            "s3.bucket_not_public",
        ],
        "s3:GetBucketPublicAccessBlock" => {
            &["s3.bucket_block_public_access", "s3.bucket_not_public"]
        }
        "s3:GetBucketPolicy" => &["s3.bucket_tls_only"],
        "s3:GetBucketPolicyStatus" | "s3:GetBucketAcl" => &["s3.bucket_not_public"],
        "s3:GetEncryptionConfiguration" => &["s3.bucket_default_encryption_kms"],
        "s3:GetBucketVersioning" => &["s3.bucket_versioning", "s3.bucket_mfa_delete"],
        "s3:GetBucketLogging" => &["s3.bucket_access_logging"],
        "iam:GetAccountSummary" => &["iam.root_no_access_keys", "iam.root_mfa"],
        "iam:GetAccountPasswordPolicy" => {
            &["iam.password_min_length", "iam.password_reuse_prevention"]
        }
        "iam:GenerateCredentialReport" | "iam:GetCredentialReport" => CREDENTIAL_REPORT,
        "iam:ListUsers" | "iam:ListAttachedUserPolicies" | "iam:ListUserPolicies" => {
            &["iam.no_user_attached_policies"]
        }
        "iam:ListPolicies" | "iam:GetPolicyVersion" => &["iam.no_full_admin_policies"],
        "organizations:DescribeOrganization"
        | "organizations:ListParents"
        | "organizations:ListPoliciesForTarget" => &["organizations.scp_in_force"],
        other => panic!("no expectation recorded for {other}: add it to checks_needing"),
    }
}

/// Buckets for which `check` needs `action`, where that is not every bucket:
/// the public-access block matters only where a public grant exists, and
/// the policy status only where a policy exists.
fn needed_only_for(check: &str, action: &str) -> Option<&'static [&'static str]> {
    match (check, action) {
        (
            "s3.bucket_not_public",
            "s3:GetAccountPublicAccessBlock" | "s3:GetBucketPublicAccessBlock",
        ) => Some(&["acme-public-policy", "acme-public-acl"]),
        ("s3.bucket_not_public", "s3:GetBucketPolicyStatus") => Some(&[
            "acme-public-policy",
            "acme-tls-only",
            "acme-logs",
            "acme-vpce-only",
        ]),
        ("s3.bucket_block_public_access", "s3:GetAccountPublicAccessBlock") => Some(&[]),
        _ => None,
    }
}

/// Every action in the shipped policy is needed: without it, the checks it
/// feeds report ERROR naming it, and no other verdict changes.
#[test]
fn every_policy_action_is_needed_and_named_when_missing() {
    let moto = Moto::start();
    moto.seed();
    let dir = scratch("moto-audit", "least-privilege");
    let actions = policy_actions();
    let full = {
        let creds = moto.auditor_with_role(&moto_policy(&dir, "full", &actions), "auditor-full");
        moto.set_auth(true);
        let (_, report) = scan(&[], &aws_env(&moto.endpoint(), &creds));
        moto.set_auth(false);
        statuses(&report)
    };

    for (i, removed) in actions.iter().enumerate() {
        // sts:GetCallerIdentity cannot be denied (AWS and moto always allow it).
        if removed == "sts:GetCallerIdentity" {
            continue;
        }
        let group = alias_group(removed, &actions);
        let kept: Vec<String> = actions
            .iter()
            .filter(|a| !group.contains(a))
            .cloned()
            .collect();
        let creds = moto.auditor_with_role(
            &moto_policy(&dir, &format!("without-{i}"), &kept),
            &format!("auditor-{i}"),
        );
        moto.set_auth(true);
        let (code, report) = scan(&[], &aws_env(&moto.endpoint(), &creds));
        moto.set_auth(false);
        assert_eq!(code, 1, "without {removed}");

        let affected: Vec<&str> = group
            .iter()
            .flat_map(|a| checks_needing(a).iter().copied())
            .collect();
        let mut errors_naming_action = 0;
        for r in report["results"].as_array().expect("results") {
            let Some(check) = r["check"].as_str() else {
                continue;
            };
            let key = (
                check.to_string(),
                r["resource"].as_str().expect("resource").to_string(),
            );
            let status = r["status"].as_str().expect("status");
            if status == "ERROR" {
                assert!(
                    affected.contains(&check),
                    "without {removed}: {check} on {} became ERROR: {}",
                    key.1,
                    r["reason"]
                );
                let reason = r["reason"].as_str().expect("reason");
                assert!(
                    reason.contains("AccessDenied"),
                    "without {removed}: {reason}"
                );
                if group.iter().any(|a| reason.contains(a.as_str())) {
                    errors_naming_action += 1;
                }
            } else if !affected.contains(&check) && full.contains_key(&key) {
                assert_eq!(
                    Some(status),
                    full.get(&key).map(String::as_str),
                    "without {removed}: {key:?} changed"
                );
            }
        }
        assert!(
            errors_naming_action > 0,
            "without {removed}: no ERROR names it"
        );
        // Checks that need the action report no verdict on data they lack.
        for check in &affected {
            let only = group.iter().find_map(|a| needed_only_for(check, a));
            let verdicts: Vec<_> = report["results"]
                .as_array()
                .expect("results")
                .iter()
                .filter(|r| r["check"] == *check && r["status"] != "ERROR")
                .map(|r| r["resource"].as_str().expect("resource").to_string())
                .filter(|resource| {
                    only.is_none_or(|names| names.iter().any(|n| *resource == bucket(n)))
                })
                .collect();
            assert!(
                verdicts.is_empty(),
                "without {removed}: {check} still judged {verdicts:?}"
            );
        }
    }
}
