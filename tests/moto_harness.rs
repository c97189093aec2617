//! Exercises the moto test support (tests/support/moto.rs) and seed.py:
//! start a private moto, seed it, create an auditor, toggle auth, reset.

mod support;

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use support::moto::Moto;

const BUCKETS: [&str; 10] = [
    "acme-public-policy",
    "acme-public-acl",
    "acme-tls-only",
    "acme-sse-s3",
    "acme-logs",
    "acme-eu-data",
    "acme-legacy-eu",
    "acme.dotted.name",
    "acme-mfa-delete",
    "acme-vpce-only",
];
const USERS: [&str; 5] = ["alice", "bob", "carol", "dave", "erin"];

fn scratch_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("moto-harness-{}-{name}", std::process::id()));
    fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

fn bucket<'a>(seed: &'a Value, name: &str) -> &'a Value {
    let b = &seed["s3"]["buckets"][name];
    assert!(b.is_object(), "bucket {name} missing from seed output");
    b
}

fn check_seed(seed: &Value) {
    assert_eq!(seed["account_id"], "123456789012");
    assert_eq!(seed["home_region"], "us-east-1");

    // S3: every bucket, and the facts the S3 checks will rely on.
    for name in BUCKETS {
        assert_eq!(bucket(seed, name)["arn"], format!("arn:aws:s3:::{name}"));
    }
    let public: Vec<&str> = BUCKETS
        .iter()
        .copied()
        .filter(|n| bucket(seed, n)["public"] == true)
        .collect();
    assert_eq!(public, ["acme-public-policy", "acme-public-acl"]);
    assert_eq!(bucket(seed, "acme-public-policy")["policy_is_public"], true);
    assert_eq!(bucket(seed, "acme-public-acl")["acl_public"], true);
    assert_eq!(bucket(seed, "acme-vpce-only")["policy_is_public"], false);
    let good = bucket(seed, "acme-tls-only");
    assert_eq!(good["tls_enforced"], true);
    assert_eq!(good["encryption"]["algorithm"], "aws:kms");
    assert_eq!(
        good["encryption"]["kms_key_id"],
        seed["kms_keys"]["us-east-1"]["arn"]
    );
    assert_eq!(good["versioning"], "Enabled");
    assert_eq!(good["logging"]["target_bucket"], "acme-logs");
    for setting in [
        "BlockPublicAcls",
        "IgnorePublicAcls",
        "BlockPublicPolicy",
        "RestrictPublicBuckets",
    ] {
        assert_eq!(good["bpa"][setting], true, "{setting}");
    }
    assert_eq!(
        bucket(seed, "acme-sse-s3")["encryption"]["algorithm"],
        "AES256"
    );
    assert_eq!(bucket(seed, "acme-sse-s3")["versioning"], "Suspended");
    assert_eq!(
        bucket(seed, "acme-eu-data")["get_bucket_location"],
        "eu-west-1"
    );
    assert_eq!(bucket(seed, "acme-legacy-eu")["get_bucket_location"], "EU");
    assert_eq!(
        bucket(seed, "acme-tls-only")["get_bucket_location"],
        Value::Null
    );
    let dotted = &bucket(seed, "acme.dotted.name")["bpa"];
    assert_eq!(dotted["BlockPublicAcls"], true);
    assert_eq!(dotted["RestrictPublicBuckets"], false);
    assert_eq!(bucket(seed, "acme-mfa-delete")["versioning"], "Enabled");
    let account_bpa = &seed["s3"]["account_public_access_block"];
    assert!(
        account_bpa
            .as_object()
            .unwrap()
            .values()
            .any(|v| v == false),
        "account-level BPA should be only partly on: {account_bpa}"
    );

    // IAM: the five users and what each has.
    let users = &seed["iam"]["users"];
    for name in USERS {
        assert_eq!(
            users[name]["arn"],
            format!("arn:aws:iam::123456789012:user/{name}")
        );
    }
    let keys = |name: &str| users[name]["access_keys"].as_array().unwrap().len();
    assert_eq!(users["alice"]["has_password"], true);
    assert_eq!(users["alice"]["mfa_enabled"], true);
    assert_eq!(users["bob"]["has_password"], true);
    assert_eq!(users["bob"]["mfa_enabled"], false);
    assert_eq!(keys("bob"), 1);
    assert_eq!(keys("carol"), 2);
    assert_eq!(users["dave"]["has_password"], false);
    assert_eq!(keys("dave"), 1);
    assert_eq!(users["dave"]["attached_policies"][0], "FullAdmin");
    assert_eq!(
        users["erin"]["attached_policies"].as_array().unwrap().len(),
        0
    );
    assert_eq!(users["erin"]["groups"][0], "data-readers");
    let policies = &seed["iam"]["policies"];
    for name in ["FullAdmin", "ReadOnlyS3", "NotAdminWithStarResource"] {
        assert!(policies[name]["arn"].is_string(), "policy {name}");
    }
    assert_eq!(policies["FullAdmin"]["attached_to"]["users"][0], "dave");
    let password_policy = &seed["iam"]["password_policy"];
    assert_eq!(password_policy["MinimumPasswordLength"], 8);
    assert_eq!(password_policy["PasswordReusePrevention"], 3);

    // The credential report, parsed: one row per user, moto's own values.
    let rows = seed["iam"]["credential_report"]["rows"].as_array().unwrap();
    let row = |name: &str| {
        rows.iter()
            .find(|r| r["user"] == name)
            .unwrap_or_else(|| panic!("no credential report row for {name}"))
    };
    for name in USERS {
        row(name);
    }
    assert_eq!(row("alice")["mfa_active"], "true");
    assert_eq!(row("bob")["password_enabled"], "true");
    assert_eq!(row("carol")["access_key_2_active"], "true");
    assert_eq!(row("erin")["access_key_1_active"], "false");

    // Organizations: SCPs enabled, DenyLeaveOrg on the management account.
    let org = &seed["organizations"];
    assert_eq!(org["feature_set"], "ALL");
    assert_eq!(org["management_account_id"], "123456789012");
    assert_eq!(org["enabled_policy_types"][0], "SERVICE_CONTROL_POLICY");
    let targets = &org["scps"]["DenyLeaveOrg"]["targets"];
    assert_eq!(targets[0]["target_id"], "123456789012");
    assert_eq!(targets[0]["type"], "ACCOUNT");
}

#[test]
fn moto_harness_seeds_creates_auditor_and_toggles_auth() {
    let moto = Moto::start();
    assert!(moto.endpoint().starts_with("http://127.0.0.1:"));

    let seed = moto.seed();
    check_seed(&seed);

    let dir = scratch_dir("auditor");
    let policy = dir.join("auditor-policy.json");
    fs::write(
        &policy,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
            "Action":["s3:ListAllMyBuckets","s3:GetBucketPolicy","iam:ListUsers"],
            "Resource":"*"}]}"#,
    )
    .unwrap();
    let auditor = moto.auditor(&policy);
    for key in [
        "access_key_id",
        "secret_access_key",
        "session_token",
        "role_arn",
        "user_access_key_id",
        "user_secret_access_key",
    ] {
        let value = auditor[key].as_str().unwrap_or("");
        assert!(!value.is_empty(), "auditor output lacks {key}: {auditor}");
    }
    assert_eq!(
        auditor["role_arn"],
        "arn:aws:iam::123456789012:role/dspm-auditor"
    );
    assert!(auditor["access_key_id"]
        .as_str()
        .unwrap()
        .starts_with("ASIA"));
    let second = moto.auditor_with_role(&policy, "dspm-auditor-2");
    assert_ne!(second["access_key_id"], auditor["access_key_id"]);

    // An unsigned ListBuckets: answered while auth is off, refused once on.
    assert_eq!(moto.get("/").0, 200);
    moto.set_auth(true);
    let (status, _) = moto.get("/");
    assert_ne!(status, 200, "unsigned request accepted with auth on");
    moto.set_auth(false);
    assert_eq!(moto.get("/").0, 200);

    // Reset clears everything: the same seed goes in again.
    moto.reset();
    let (_, listing) = moto.get("/");
    assert!(!listing.contains("acme-"), "buckets left after reset");
    check_seed(&moto.seed());

    let _ = fs::remove_dir_all(dir);
}

#[test]
fn moto_is_stopped_on_drop() {
    let moto = Moto::start();
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, moto.port()));
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok());
    drop(moto);
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err(),
        "moto still listening on {addr} after drop"
    );
}
