//! Table tests for every check: one row per situation, the inventory fact
//! and the verdict side by side.

use std::collections::BTreeMap;

use serde_json::json;

use super::{evaluate, Finding, Status};
use crate::inventory::*;
use crate::timestamp::Timestamp;

const NOW: i64 = 1_780_000_000;

fn ago(days: i64) -> Option<Timestamp> {
    Some(Timestamp(NOW - days * 86_400))
}

fn denied(action: &str) -> CollectError {
    CollectError {
        action: action.into(),
        code: "AccessDenied".into(),
        message: "Access Denied".into(),
        http_status: Some(403),
    }
}

fn none<T>() -> Observed<Option<T>> {
    Observed::Value(None)
}

fn pab(on: bool) -> PublicAccessBlock {
    PublicAccessBlock {
        block_public_acls: on,
        ignore_public_acls: on,
        block_public_policy: on,
        restrict_public_buckets: on,
    }
}

fn private_acl() -> Acl {
    Acl {
        owner_id: "owner".into(),
        grants: vec![Grant {
            grantee_type: "CanonicalUser".into(),
            grantee: "owner".into(),
            permission: "FULL_CONTROL".into(),
        }],
    }
}

fn group_acl(uri: &str) -> Acl {
    let mut acl = private_acl();
    acl.grants.push(Grant {
        grantee_type: "Group".into(),
        grantee: uri.into(),
        permission: "READ".into(),
    });
    acl
}

fn bucket(name: &str) -> Bucket {
    Bucket {
        name: name.into(),
        arn: format!("arn:aws:s3:::{name}"),
        created: None,
        region: Observed::Value("eu-west-1".into()),
        public_access_block: Observed::Value(None),
        policy: Observed::Value(None),
        policy_is_public: Observed::Value(None),
        acl: Observed::Value(private_acl()),
        encryption: Observed::Value(None),
        versioning: Observed::Value(Versioning::default()),
        logging: Observed::Value(None),
    }
}

fn report_row(user: &str) -> CredentialReportRow {
    CredentialReportRow {
        user: user.into(),
        arn: format!("arn:aws:iam::111122223333:user/{user}"),
        user_creation_time: ago(400),
        password_enabled: false,
        password_last_used: None,
        password_last_changed: None,
        mfa_active: false,
        access_keys: [AccessKeyUsage::default(), AccessKeyUsage::default()],
    }
}

fn key(active: bool, rotated: i64, used: Option<i64>) -> AccessKeyUsage {
    AccessKeyUsage {
        active,
        last_rotated: ago(rotated),
        last_used: used.and_then(ago),
    }
}

fn inventory() -> Inventory {
    Inventory {
        schema_version: SCHEMA_VERSION,
        collected_at: Timestamp(NOW),
        account: Account {
            id: "111122223333".into(),
            partition: "aws".into(),
            caller_arn: "arn:aws:sts::111122223333:assumed-role/audit/s".into(),
        },
        region: "eu-west-1".into(),
        s3: S3Inventory {
            account_public_access_block: Observed::Value(None),
            buckets: Observed::Value(vec![]),
        },
        iam: IamInventory {
            account_summary: Observed::Value(BTreeMap::new()),
            password_policy: Observed::Value(None),
            credential_report: Observed::Value(vec![]),
            users: Observed::Value(vec![]),
            policies: Observed::Value(vec![]),
        },
        organizations: OrganizationsInventory {
            organization: Observed::Value(None),
            service_control_policies: Observed::Value(vec![]),
        },
    }
}

/// The findings of one check, as (resource, status).
fn verdicts(inventory: &Inventory, check: &str) -> Vec<(String, Status)> {
    evaluate(inventory)
        .into_iter()
        .filter(|f| f.check == check)
        .map(|f| (f.resource, f.status))
        .collect()
}

fn only(inventory: &Inventory, check: &str) -> Finding {
    let mut found: Vec<Finding> = evaluate(inventory)
        .into_iter()
        .filter(|f| f.check == check)
        .collect();
    assert_eq!(found.len(), 1, "{check}: {found:?}");
    found.remove(0)
}

fn with_bucket(
    edit: impl FnOnce(&mut Bucket),
    account_pab: Observed<Option<PublicAccessBlock>>,
) -> Inventory {
    let mut b = bucket("data");
    edit(&mut b);
    let mut inv = inventory();
    inv.s3.buckets = Observed::Value(vec![b]);
    inv.s3.account_public_access_block = account_pab;
    inv
}

#[test]
fn account_block_public_access() {
    let mut partial = pab(true);
    partial.restrict_public_buckets = false;
    let cases = [
        (Observed::Value(None), Status::Fail),
        (Observed::Value(Some(pab(true))), Status::Pass),
        (Observed::Value(Some(partial)), Status::Fail),
        (
            Observed::Error(denied("s3:GetAccountPublicAccessBlock")),
            Status::Error,
        ),
    ];
    for (fact, want) in cases {
        let mut inv = inventory();
        inv.s3.account_public_access_block = fact.clone();
        let f = only(&inv, "s3.account_block_public_access");
        assert_eq!(f.status, want, "{fact:?}");
        assert_eq!(f.resource, "111122223333");
    }
    let mut inv = inventory();
    inv.s3.account_public_access_block = Observed::Value(Some(partial));
    assert!(only(&inv, "s3.account_block_public_access")
        .reason
        .contains("RestrictPublicBuckets"));
}

#[test]
fn bucket_block_public_access() {
    let mut partial = pab(true);
    partial.block_public_acls = false;
    let err = || Observed::Error(denied("s3:GetBucketPublicAccessBlock"));
    type Pab = Observed<Option<PublicAccessBlock>>;
    let cases: Vec<(Pab, Pab, Status)> = vec![
        (
            Observed::Value(Some(pab(true))),
            Observed::Value(None),
            Status::Pass,
        ),
        (
            Observed::Value(Some(partial)),
            Observed::Value(Some(pab(true))),
            Status::Pass,
        ),
        (
            Observed::Value(None),
            Observed::Value(Some(pab(true))),
            Status::Pass,
        ),
        (
            Observed::Value(None),
            Observed::Value(Some(partial)),
            Status::Fail,
        ),
        (
            Observed::Value(Some(partial)),
            Observed::Value(None),
            Status::Fail,
        ),
        (err(), Observed::Value(Some(pab(true))), Status::Error),
        (
            Observed::Value(Some(partial)),
            Observed::Error(denied("s3:GetAccountPublicAccessBlock")),
            Status::Error,
        ),
        (
            Observed::Value(Some(pab(true))),
            Observed::Error(denied("s3:GetAccountPublicAccessBlock")),
            Status::Pass,
        ),
    ];
    for (bucket_pab, account_pab, want) in cases {
        let inv = with_bucket(
            |b| b.public_access_block = bucket_pab.clone(),
            account_pab.clone(),
        );
        assert_eq!(
            only(&inv, "s3.bucket_block_public_access").status,
            want,
            "{bucket_pab:?} / {account_pab:?}"
        );
    }
}

#[test]
fn bucket_not_public() {
    const ALL: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
    const AUTH: &str = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";
    let restrict = PublicAccessBlock {
        restrict_public_buckets: true,
        ..pab(false)
    };
    let ignore = PublicAccessBlock {
        ignore_public_acls: true,
        ..pab(false)
    };
    type Case = (
        Observed<Option<bool>>,
        Observed<Acl>,
        Observed<Option<PublicAccessBlock>>,
        Observed<Option<PublicAccessBlock>>,
        Status,
    );
    let cases: Vec<Case> = vec![
        (
            none(),
            Observed::Value(private_acl()),
            none(),
            none(),
            Status::Pass,
        ),
        (
            Observed::Value(Some(false)),
            Observed::Value(private_acl()),
            none(),
            none(),
            Status::Pass,
        ),
        (
            Observed::Value(Some(true)),
            Observed::Value(private_acl()),
            none(),
            none(),
            Status::Fail,
        ),
        (
            none(),
            Observed::Value(group_acl(ALL)),
            none(),
            none(),
            Status::Fail,
        ),
        (
            none(),
            Observed::Value(group_acl(AUTH)),
            none(),
            none(),
            Status::Fail,
        ),
        (
            none(),
            Observed::Value(group_acl(ALL)),
            none(),
            Observed::Value(Some(ignore)),
            Status::Pass,
        ),
        (
            none(),
            Observed::Value(group_acl(ALL)),
            Observed::Value(Some(restrict)),
            none(),
            Status::Fail,
        ),
        (
            Observed::Value(Some(true)),
            Observed::Value(private_acl()),
            Observed::Value(Some(restrict)),
            none(),
            Status::Pass,
        ),
        (
            Observed::Value(Some(true)),
            Observed::Value(group_acl(ALL)),
            Observed::Value(Some(restrict)),
            none(),
            Status::Fail,
        ),
        (
            Observed::Error(denied("s3:GetBucketPolicyStatus")),
            Observed::Value(private_acl()),
            none(),
            none(),
            Status::Error,
        ),
        (
            none(),
            Observed::Error(denied("s3:GetBucketAcl")),
            none(),
            none(),
            Status::Error,
        ),
        (
            none(),
            Observed::Value(group_acl(ALL)),
            Observed::Error(denied("s3:GetBucketPublicAccessBlock")),
            none(),
            Status::Error,
        ),
        (
            none(),
            Observed::Value(private_acl()),
            Observed::Error(denied("s3:GetBucketPublicAccessBlock")),
            none(),
            Status::Pass,
        ),
    ];
    for (status, acl, bucket_pab, account_pab, want) in cases {
        let inv = with_bucket(
            |b| {
                b.policy_is_public = status.clone();
                b.acl = acl.clone();
                b.public_access_block = bucket_pab.clone();
            },
            account_pab.clone(),
        );
        let f = only(&inv, "s3.bucket_not_public");
        assert_eq!(
            f.status, want,
            "{status:?} {acl:?} {bucket_pab:?} {account_pab:?}: {}",
            f.reason
        );
    }
}

#[test]
fn bucket_tls_only() {
    let tls = json!({"Statement": [{"Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": ["arn:aws:s3:::data", "arn:aws:s3:::data/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]});
    let allow = json!({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::data/*"}]});
    let cases = [
        (Observed::Value(None), Status::Fail),
        (Observed::Value(Some(tls)), Status::Pass),
        (Observed::Value(Some(allow)), Status::Fail),
        (
            Observed::Value(Some(json!({"Statement": 3}))),
            Status::Error,
        ),
        (Observed::Error(denied("s3:GetBucketPolicy")), Status::Error),
    ];
    for (policy, want) in cases {
        let inv = with_bucket(|b| b.policy = policy.clone(), Observed::Value(None));
        let f = only(&inv, "s3.bucket_tls_only");
        assert_eq!(f.status, want, "{policy:?}");
        assert_eq!(f.region, "eu-west-1");
    }
}

#[test]
fn bucket_encryption_versioning_logging() {
    let rule = |algorithm: &str| EncryptionRule {
        algorithm: algorithm.into(),
        kms_key_id: None,
        bucket_key_enabled: false,
    };
    let encryption = [
        (Observed::Value(Some(vec![rule("aws:kms")])), Status::Pass),
        (
            Observed::Value(Some(vec![rule("aws:kms:dsse")])),
            Status::Pass,
        ),
        (Observed::Value(Some(vec![rule("AES256")])), Status::Fail),
        (Observed::Value(None), Status::Fail),
        (
            Observed::Error(denied("s3:GetEncryptionConfiguration")),
            Status::Error,
        ),
    ];
    for (fact, want) in encryption {
        let inv = with_bucket(|b| b.encryption = fact.clone(), Observed::Value(None));
        assert_eq!(
            only(&inv, "s3.bucket_default_encryption_kms").status,
            want,
            "{fact:?}"
        );
    }

    let v = |status: Option<&str>, mfa: Option<&str>| {
        Observed::Value(Versioning {
            status: status.map(Into::into),
            mfa_delete: mfa.map(Into::into),
        })
    };
    let versioning = [
        (
            v(Some("Enabled"), Some("Enabled")),
            Status::Pass,
            Status::Pass,
        ),
        (
            v(Some("Enabled"), Some("Disabled")),
            Status::Pass,
            Status::Fail,
        ),
        (v(Some("Suspended"), None), Status::Fail, Status::Fail),
        (v(None, None), Status::Fail, Status::Fail),
        (
            Observed::Error(denied("s3:GetBucketVersioning")),
            Status::Error,
            Status::Error,
        ),
    ];
    for (fact, versioned, mfa) in versioning {
        let inv = with_bucket(|b| b.versioning = fact.clone(), Observed::Value(None));
        assert_eq!(
            only(&inv, "s3.bucket_versioning").status,
            versioned,
            "{fact:?}"
        );
        assert_eq!(only(&inv, "s3.bucket_mfa_delete").status, mfa, "{fact:?}");
    }

    let target = LoggingTarget {
        target_bucket: "logs".into(),
        target_prefix: "data/".into(),
    };
    let logging = [
        (Observed::Value(Some(target)), Status::Pass),
        (Observed::Value(None), Status::Fail),
        (
            Observed::Error(denied("s3:GetBucketLogging")),
            Status::Error,
        ),
    ];
    for (fact, want) in logging {
        let inv = with_bucket(|b| b.logging = fact.clone(), Observed::Value(None));
        assert_eq!(
            only(&inv, "s3.bucket_access_logging").status,
            want,
            "{fact:?}"
        );
    }
}

#[test]
fn an_unreadable_bucket_list_errors_every_bucket_check() {
    let mut inv = inventory();
    inv.s3.buckets = Observed::Error(denied("s3:ListAllMyBuckets"));
    let findings: Vec<Finding> = evaluate(&inv)
        .into_iter()
        .filter(|f| f.check.starts_with("s3.bucket_"))
        .collect();
    assert_eq!(findings.len(), 7);
    for f in findings {
        assert_eq!(
            (f.status, f.resource.as_str()),
            (Status::Error, "111122223333")
        );
        assert!(f.reason.contains("s3:ListAllMyBuckets"), "{}", f.reason);
    }
}

#[test]
fn root_user() {
    let summary = |pairs: &[(&str, i64)]| {
        Observed::Value(pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect())
    };
    let cases = [
        (
            summary(&[("AccountAccessKeysPresent", 0), ("AccountMFAEnabled", 1)]),
            Status::Pass,
            Status::Pass,
        ),
        (
            summary(&[("AccountAccessKeysPresent", 1), ("AccountMFAEnabled", 0)]),
            Status::Fail,
            Status::Fail,
        ),
        (summary(&[]), Status::Error, Status::Error),
        (
            Observed::Error(denied("iam:GetAccountSummary")),
            Status::Error,
            Status::Error,
        ),
    ];
    for (fact, keys, mfa) in cases {
        let mut inv = inventory();
        inv.iam.account_summary = fact.clone();
        let f = only(&inv, "iam.root_no_access_keys");
        assert_eq!(
            (f.status, f.resource.as_str()),
            (keys, "arn:aws:iam::111122223333:root"),
            "{fact:?}"
        );
        assert_eq!(only(&inv, "iam.root_mfa").status, mfa, "{fact:?}");
    }
}

#[test]
fn password_policy() {
    let policy = |length, reuse| {
        Observed::Value(Some(PasswordPolicy {
            minimum_password_length: length,
            password_reuse_prevention: reuse,
            ..PasswordPolicy::default()
        }))
    };
    let cases = [
        (Observed::Value(None), Status::Fail, Status::Fail),
        (policy(Some(14), Some(24)), Status::Pass, Status::Pass),
        (policy(Some(13), Some(23)), Status::Fail, Status::Fail),
        (policy(Some(32), None), Status::Pass, Status::Fail),
        (
            Observed::Error(denied("iam:GetAccountPasswordPolicy")),
            Status::Error,
            Status::Error,
        ),
    ];
    for (fact, length, reuse) in cases {
        let mut inv = inventory();
        inv.iam.password_policy = fact.clone();
        assert_eq!(
            only(&inv, "iam.password_min_length").status,
            length,
            "{fact:?}"
        );
        assert_eq!(
            only(&inv, "iam.password_reuse_prevention").status,
            reuse,
            "{fact:?}"
        );
    }
}

fn with_rows(rows: Vec<CredentialReportRow>) -> Inventory {
    let mut inv = inventory();
    inv.iam.credential_report = Observed::Value(rows);
    inv
}

#[test]
fn console_users_need_mfa() {
    let mut with_mfa = report_row("a");
    with_mfa.password_enabled = true;
    with_mfa.mfa_active = true;
    let mut without = report_row("b");
    without.password_enabled = true;
    let no_password = report_row("c");
    let mut root = report_row("<root_account>");
    root.password_enabled = true;
    let inv = with_rows(vec![with_mfa, without, no_password, root]);
    let got = verdicts(&inv, "iam.console_user_mfa");
    assert_eq!(
        got,
        [
            ("arn:aws:iam::111122223333:user/a".to_string(), Status::Pass),
            ("arn:aws:iam::111122223333:user/b".to_string(), Status::Fail),
        ]
    );
}

#[test]
fn unused_credentials() {
    let password = |used: Option<i64>, changed: Option<i64>| {
        let mut r = report_row("u");
        r.password_enabled = true;
        r.password_last_used = used.and_then(ago);
        r.password_last_changed = changed.and_then(ago);
        r
    };
    let keys = |k: AccessKeyUsage| {
        let mut r = report_row("u");
        r.access_keys[0] = k;
        r
    };
    let mut undated = password(None, None);
    undated.user_creation_time = None;
    let cases = [
        (password(Some(44), Some(100)), Status::Pass),
        (password(Some(45), Some(100)), Status::Fail),
        (password(None, Some(50)), Status::Fail),
        (password(None, Some(10)), Status::Pass),
        (undated, Status::Error),
        (keys(key(true, 100, Some(10))), Status::Pass),
        (keys(key(true, 100, None)), Status::Fail),
        (keys(key(true, 20, None)), Status::Pass),
        (keys(key(false, 300, Some(300))), Status::Pass),
        (report_row("u"), Status::Pass),
    ];
    for (row, want) in cases {
        let inv = with_rows(vec![row.clone()]);
        let f = only(&inv, "iam.unused_credentials");
        assert_eq!(f.status, want, "{row:?}: {}", f.reason);
    }
}

#[test]
fn access_keys_count_and_rotation() {
    let row = |a: AccessKeyUsage, b: AccessKeyUsage| {
        let mut r = report_row("u");
        r.access_keys = [a, b];
        r
    };
    let mut unrotated = key(true, 0, None);
    unrotated.last_rotated = None;
    let cases = [
        (
            row(key(true, 10, None), key(true, 20, None)),
            Status::Fail,
            Some(Status::Pass),
        ),
        (
            row(key(true, 90, None), key(false, 200, None)),
            Status::Pass,
            Some(Status::Pass),
        ),
        (
            row(key(true, 91, None), AccessKeyUsage::default()),
            Status::Pass,
            Some(Status::Fail),
        ),
        (
            row(AccessKeyUsage::default(), key(true, 200, Some(1))),
            Status::Pass,
            Some(Status::Fail),
        ),
        (
            row(unrotated, AccessKeyUsage::default()),
            Status::Pass,
            Some(Status::Error),
        ),
        (
            row(AccessKeyUsage::default(), AccessKeyUsage::default()),
            Status::Pass,
            None,
        ),
    ];
    for (r, single, rotation) in cases {
        let inv = with_rows(vec![r.clone()]);
        assert_eq!(
            only(&inv, "iam.single_active_access_key").status,
            single,
            "{r:?}"
        );
        let got = verdicts(&inv, "iam.access_key_rotation")
            .first()
            .map(|(_, s)| *s);
        assert_eq!(got, rotation, "{r:?}");
    }
}

#[test]
fn an_unreadable_credential_report_errors_its_checks() {
    let mut inv = inventory();
    inv.iam.credential_report = Observed::Error(denied("iam:GetCredentialReport"));
    for check in [
        "iam.console_user_mfa",
        "iam.unused_credentials",
        "iam.single_active_access_key",
        "iam.access_key_rotation",
    ] {
        let f = only(&inv, check);
        assert_eq!(f.status, Status::Error);
        assert!(f.reason.contains("iam:GetCredentialReport"), "{}", f.reason);
    }
}

#[test]
fn users_get_permissions_through_groups() {
    let user = |attached: Observed<Vec<AttachedPolicy>>, inline: Observed<Vec<String>>| User {
        name: "u".into(),
        arn: "arn:aws:iam::111122223333:user/u".into(),
        attached_policies: attached,
        inline_policies: inline,
    };
    let admin = || {
        vec![AttachedPolicy {
            name: "AdministratorAccess".into(),
            arn: "arn:aws:iam::aws:policy/AdministratorAccess".into(),
        }]
    };
    let cases = [
        (
            user(Observed::Value(vec![]), Observed::Value(vec![])),
            Status::Pass,
        ),
        (
            user(Observed::Value(admin()), Observed::Value(vec![])),
            Status::Fail,
        ),
        (
            user(
                Observed::Value(vec![]),
                Observed::Value(vec!["inline".into()]),
            ),
            Status::Fail,
        ),
        (
            user(
                Observed::Error(denied("iam:ListAttachedUserPolicies")),
                Observed::Value(vec![]),
            ),
            Status::Error,
        ),
        (
            user(
                Observed::Value(vec![]),
                Observed::Error(denied("iam:ListUserPolicies")),
            ),
            Status::Error,
        ),
    ];
    for (u, want) in cases {
        let mut inv = inventory();
        inv.iam.users = Observed::Value(vec![u.clone()]);
        assert_eq!(
            only(&inv, "iam.no_user_attached_policies").status,
            want,
            "{u:?}"
        );
    }
    let mut inv = inventory();
    inv.iam.users = Observed::Error(denied("iam:ListUsers"));
    assert_eq!(
        only(&inv, "iam.no_user_attached_policies").status,
        Status::Error
    );
}

#[test]
fn full_admin_policies() {
    let admin = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]});
    let narrow =
        json!({"Statement": {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}});
    let policy = |document: Observed<serde_json::Value>, attachments| ManagedPolicy {
        name: "p".into(),
        arn: "arn:aws:iam::111122223333:policy/p".into(),
        default_version_id: "v1".into(),
        attachment_count: attachments,
        document,
    };
    let cases = [
        (policy(Observed::Value(admin.clone()), 2), Status::Fail),
        (policy(Observed::Value(admin), 0), Status::Pass),
        (policy(Observed::Value(narrow), 5), Status::Pass),
        (
            policy(
                Observed::Value(json!({"Statement": [{"Effect": "Perhaps"}]})),
                1,
            ),
            Status::Error,
        ),
        (
            policy(Observed::Error(denied("iam:GetPolicyVersion")), 1),
            Status::Error,
        ),
    ];
    for (p, want) in cases {
        let mut inv = inventory();
        inv.iam.policies = Observed::Value(vec![p.clone()]);
        assert_eq!(
            only(&inv, "iam.no_full_admin_policies").status,
            want,
            "{p:?}"
        );
    }
}

#[test]
fn service_control_policies() {
    let org = |feature_set: &str| {
        Observed::Value(Some(Organization {
            id: "o-1".into(),
            arn: "arn:aws:organizations::444455556666:organization/o-1".into(),
            management_account_id: "444455556666".into(),
            feature_set: feature_set.into(),
        }))
    };
    let scp = |name: &str, aws_managed| ServiceControlPolicy {
        id: format!("p-{name}"),
        name: name.into(),
        arn: format!("arn:aws:organizations::aws:policy/service_control_policy/p-{name}"),
        aws_managed,
        target: "r-root".into(),
    };
    let cases = [
        (Observed::Value(None), Observed::Value(vec![]), Status::Fail),
        (
            org("CONSOLIDATED_BILLING"),
            Observed::Value(vec![]),
            Status::Fail,
        ),
        (
            org("ALL"),
            Observed::Value(vec![scp("FullAWSAccess", true)]),
            Status::Fail,
        ),
        (
            org("ALL"),
            Observed::Value(vec![scp("FullAWSAccess", true), scp("DenyLeave", false)]),
            Status::Pass,
        ),
        (
            org("ALL"),
            Observed::Error(denied("organizations:ListPoliciesForTarget")),
            Status::Error,
        ),
        (
            Observed::Error(denied("organizations:DescribeOrganization")),
            Observed::Value(vec![]),
            Status::Error,
        ),
    ];
    for (organization, policies, want) in cases {
        let mut inv = inventory();
        inv.organizations = OrganizationsInventory {
            organization: organization.clone(),
            service_control_policies: policies.clone(),
        };
        assert_eq!(
            only(&inv, "organizations.scp_in_force").status,
            want,
            "{organization:?} {policies:?}"
        );
    }
}

#[test]
fn the_demo_account_shows_every_kind_of_verdict() {
    let demo = crate::demo::inventory();
    let findings = evaluate(&demo);
    let find = |check: &str, resource: &str| {
        findings
            .iter()
            .find(|f| f.check == check && f.resource.ends_with(resource))
            .unwrap_or_else(|| panic!("{check} on {resource} missing"))
    };
    assert_eq!(
        find("s3.bucket_not_public", ":::hanbit-cdn-assets").status,
        Status::Fail
    );
    assert_eq!(
        find("s3.bucket_not_public", ":::hanbit-legacy-exports").status,
        Status::Pass
    );
    let dropbox = find("s3.bucket_tls_only", ":::hanbit-partner-dropbox");
    assert_eq!(dropbox.status, Status::Error);
    assert!(
        dropbox.reason.contains("s3:GetBucketPolicy"),
        "{}",
        dropbox.reason
    );
    assert_eq!(
        find("s3.bucket_mfa_delete", ":::hanbit-cloudtrail-logs").status,
        Status::Pass
    );
    assert_eq!(
        find("iam.single_active_access_key", "user/service/svc-ci-deploy").status,
        Status::Fail
    );
    assert_eq!(
        find("iam.unused_credentials", "user/external/qa-contractor").status,
        Status::Fail
    );
    assert_eq!(
        find("organizations.scp_in_force", "111122223333").status,
        Status::Pass
    );
    for check in super::CHECKS {
        assert!(
            findings.iter().any(|f| f.check == check.id),
            "the demo exercises {}",
            check.id
        );
    }
}
