//! IAM checks: the root user, the password policy, users' credentials and
//! permissions, and administrator policies. Thresholds are CIS 3.0's.

use serde_json::json;

use super::policy::{statements, Statement};
use super::{CheckInfo, Finding, Severity, Status};
use crate::inventory::{AccessKeyUsage, CredentialReportRow, Inventory, Observed};
use crate::timestamp::Timestamp;

/// IAM and Organizations are global services; their results carry this region.
pub const GLOBAL: &str = "global";

const MIN_PASSWORD_LENGTH: u32 = 14;
const MIN_PASSWORD_REUSE_PREVENTION: u32 = 24;
const UNUSED_DAYS: i64 = 45;
const ROTATION_DAYS: i64 = 90;

pub const ROOT_NO_ACCESS_KEYS: CheckInfo = CheckInfo {
    id: "iam.root_no_access_keys",
    service: "iam",
    severity: Severity::Critical,
    title: "The root user has no access keys",
    description: "The account summary reports no access keys for the root user.",
};

pub const ROOT_MFA: CheckInfo = CheckInfo {
    id: "iam.root_mfa",
    service: "iam",
    severity: Severity::Critical,
    title: "The root user has MFA enabled",
    description: "The account summary reports an MFA device for the root user.",
};

pub const PASSWORD_MIN_LENGTH: CheckInfo = CheckInfo {
    id: "iam.password_min_length",
    service: "iam",
    severity: Severity::Medium,
    title: "The password policy requires at least 14 characters",
    description: "The account password policy sets a minimum length of 14 or more.",
};

pub const PASSWORD_REUSE_PREVENTION: CheckInfo = CheckInfo {
    id: "iam.password_reuse_prevention",
    service: "iam",
    severity: Severity::Medium,
    title: "The password policy prevents password reuse",
    description: "The account password policy remembers the last 24 passwords.",
};

pub const CONSOLE_USER_MFA: CheckInfo = CheckInfo {
    id: "iam.console_user_mfa",
    service: "iam",
    severity: Severity::High,
    title: "Every user with a console password has MFA",
    description: "Each IAM user whose password is enabled has an active MFA device.",
};

pub const UNUSED_CREDENTIALS: CheckInfo = CheckInfo {
    id: "iam.unused_credentials",
    service: "iam",
    severity: Severity::Medium,
    title: "No enabled credential has gone unused for 45 days",
    description: "Passwords and active access keys not used for 45 days or more are disabled.",
};

pub const SINGLE_ACTIVE_ACCESS_KEY: CheckInfo = CheckInfo {
    id: "iam.single_active_access_key",
    service: "iam",
    severity: Severity::Low,
    title: "Each user has at most one active access key",
    description: "No IAM user has two active access keys at once.",
};

pub const ACCESS_KEY_ROTATION: CheckInfo = CheckInfo {
    id: "iam.access_key_rotation",
    service: "iam",
    severity: Severity::Medium,
    title: "Active access keys are rotated within 90 days",
    description: "Every active access key was created or rotated in the last 90 days.",
};

pub const NO_USER_ATTACHED_POLICIES: CheckInfo = CheckInfo {
    id: "iam.no_user_attached_policies",
    service: "iam",
    severity: Severity::Low,
    title: "Users receive permissions only through groups",
    description: "No IAM user has a managed policy attached directly or an inline policy.",
};

pub const NO_FULL_ADMIN_POLICIES: CheckInfo = CheckInfo {
    id: "iam.no_full_admin_policies",
    service: "iam",
    severity: Severity::High,
    title: "No attached customer-managed policy allows \"*\" on \"*\"",
    description: "Customer-managed policies that are attached to a user, group or role do not \
                  allow every action on every resource.",
};

pub fn evaluate(inventory: &Inventory) -> Vec<Finding> {
    let mut findings = root_checks(inventory);
    findings.extend(password_policy_checks(inventory));
    findings.extend(credential_report_checks(inventory));
    findings.extend(user_policy_checks(inventory));
    findings.extend(admin_policy_checks(inventory));
    findings
}

fn root_arn(inventory: &Inventory) -> String {
    format!(
        "arn:{}:iam::{}:root",
        inventory.account.partition, inventory.account.id
    )
}

fn root_checks(inventory: &Inventory) -> Vec<Finding> {
    let root = root_arn(inventory);
    let summary = match &inventory.iam.account_summary {
        Observed::Error(e) => {
            return vec![
                Finding::error(
                    ROOT_NO_ACCESS_KEYS.id,
                    &root,
                    GLOBAL,
                    "the IAM account summary",
                    e,
                ),
                Finding::error(ROOT_MFA.id, &root, GLOBAL, "the IAM account summary", e),
            ]
        }
        Observed::Value(s) => s,
    };
    let entry = |check: &'static str, key: &str, good: i64, pass: &str, fail: &str| match summary
        .get(key)
    {
        None => Finding::new(
            check,
            &root,
            GLOBAL,
            Status::Error,
            format!("the IAM account summary has no {key} entry"),
            json!({ key: null }),
        ),
        Some(v) if *v == good => Finding::new(
            check,
            &root,
            GLOBAL,
            Status::Pass,
            pass.into(),
            json!({ key: v }),
        ),
        Some(v) => Finding::new(
            check,
            &root,
            GLOBAL,
            Status::Fail,
            fail.into(),
            json!({ key: v }),
        ),
    };
    vec![
        entry(
            ROOT_NO_ACCESS_KEYS.id,
            "AccountAccessKeysPresent",
            0,
            "the root user has no access keys",
            "the root user has access keys",
        ),
        entry(
            ROOT_MFA.id,
            "AccountMFAEnabled",
            1,
            "the root user has MFA enabled",
            "the root user has no MFA device",
        ),
    ]
}

fn password_policy_checks(inventory: &Inventory) -> Vec<Finding> {
    let account = &inventory.account.id;
    let policy = match &inventory.iam.password_policy {
        Observed::Error(e) => {
            return [&PASSWORD_MIN_LENGTH, &PASSWORD_REUSE_PREVENTION]
                .iter()
                .map(|c| Finding::error(c.id, account, GLOBAL, "the account password policy", e))
                .collect()
        }
        Observed::Value(p) => p,
    };
    let Some(policy) = policy else {
        return [&PASSWORD_MIN_LENGTH, &PASSWORD_REUSE_PREVENTION]
            .iter()
            .map(|c| {
                Finding::new(
                    c.id,
                    account,
                    GLOBAL,
                    Status::Fail,
                    "the account has no password policy, so AWS's defaults apply \
                     (8 characters, reuse allowed)"
                        .into(),
                    json!({ "password_policy": null }),
                )
            })
            .collect();
    };
    let length = policy.minimum_password_length.unwrap_or(0);
    let reuse = policy.password_reuse_prevention.unwrap_or(0);
    vec![
        threshold(
            PASSWORD_MIN_LENGTH.id,
            account,
            "minimum password length",
            length,
            MIN_PASSWORD_LENGTH,
            json!({ "minimum_password_length": policy.minimum_password_length }),
        ),
        threshold(
            PASSWORD_REUSE_PREVENTION.id,
            account,
            "passwords remembered against reuse",
            reuse,
            MIN_PASSWORD_REUSE_PREVENTION,
            json!({ "password_reuse_prevention": policy.password_reuse_prevention }),
        ),
    ]
}

fn threshold(
    check: &'static str,
    account: &str,
    what: &str,
    value: u32,
    min: u32,
    evidence: serde_json::Value,
) -> Finding {
    let (status, reason) = if value >= min {
        (
            Status::Pass,
            format!("{what} is {value} (at least {min} required)"),
        )
    } else {
        (
            Status::Fail,
            format!("{what} is {value}, below the required {min}"),
        )
    };
    Finding::new(check, account, GLOBAL, status, reason, evidence)
}

fn credential_report_checks(inventory: &Inventory) -> Vec<Finding> {
    let checks = [
        &CONSOLE_USER_MFA,
        &UNUSED_CREDENTIALS,
        &SINGLE_ACTIVE_ACCESS_KEY,
        &ACCESS_KEY_ROTATION,
    ];
    let rows = match &inventory.iam.credential_report {
        Observed::Error(e) => {
            return checks
                .iter()
                .map(|c| {
                    Finding::error(
                        c.id,
                        &inventory.account.id,
                        GLOBAL,
                        "the IAM credential report",
                        e,
                    )
                })
                .collect()
        }
        Observed::Value(rows) => rows,
    };
    let now = inventory.collected_at;
    let mut findings = Vec::new();
    for row in rows.iter().filter(|r| !r.is_root()) {
        if row.password_enabled {
            findings.push(console_mfa(row));
        }
        findings.push(unused_credentials(row, now));
        findings.push(single_active_key(row));
        if row.access_keys.iter().any(|k| k.active) {
            findings.push(key_rotation(row, now));
        }
    }
    findings
}

fn console_mfa(row: &CredentialReportRow) -> Finding {
    let evidence = json!({ "password_enabled": true, "mfa_active": row.mfa_active });
    if row.mfa_active {
        Finding::new(
            CONSOLE_USER_MFA.id,
            &row.arn,
            GLOBAL,
            Status::Pass,
            "the user's console sign-in is protected by MFA".into(),
            evidence,
        )
    } else {
        Finding::new(
            CONSOLE_USER_MFA.id,
            &row.arn,
            GLOBAL,
            Status::Fail,
            "the user can sign in to the console without MFA".into(),
            evidence,
        )
    }
}

/// Days since a credential was last used; never-used credentials count
/// from when they were issued.
fn idle_days(
    last_used: Option<Timestamp>,
    issued: Option<Timestamp>,
    now: Timestamp,
) -> Option<i64> {
    last_used.or(issued).map(|t| t.days_until(now))
}

fn unused_credentials(row: &CredentialReportRow, now: Timestamp) -> Finding {
    let mut stale = Vec::new();
    let mut unknown = Vec::new();
    let mut credentials = Vec::new();
    if row.password_enabled {
        let issued = row.password_last_changed.or(row.user_creation_time);
        let idle = idle_days(row.password_last_used, issued, now);
        credentials.push(json!({
            "credential": "password",
            "last_used": row.password_last_used,
            "idle_days": idle,
        }));
        match idle {
            Some(d) if d >= UNUSED_DAYS => stale.push(format!("password unused for {d} days")),
            Some(_) => {}
            None => unknown.push("password"),
        }
    }
    for (i, key) in row.access_keys.iter().enumerate().filter(|(_, k)| k.active) {
        let idle = idle_days(key.last_used, key.last_rotated, now);
        let name = format!("access_key_{}", i + 1);
        credentials
            .push(json!({ "credential": name, "last_used": key.last_used, "idle_days": idle }));
        match idle {
            Some(d) if d >= UNUSED_DAYS => stale.push(format!("{name} unused for {d} days")),
            Some(_) => {}
            None => unknown.push("an access key"),
        }
    }
    let evidence = json!({ "credentials": credentials, "threshold_days": UNUSED_DAYS });
    let (status, reason) = if !stale.is_empty() {
        (
            Status::Fail,
            format!(
                "enabled credentials unused for {UNUSED_DAYS} days or more: {}",
                stale.join("; ")
            ),
        )
    } else if !unknown.is_empty() {
        (
            Status::Error,
            format!(
                "the credential report gives no usage or issue date for {}",
                unknown.join(", ")
            ),
        )
    } else if credentials.is_empty() {
        (
            Status::Pass,
            "the user has no enabled password or active access key".into(),
        )
    } else {
        (
            Status::Pass,
            format!("every enabled credential was used in the last {UNUSED_DAYS} days"),
        )
    };
    Finding::new(
        UNUSED_CREDENTIALS.id,
        &row.arn,
        GLOBAL,
        status,
        reason,
        evidence,
    )
}

fn single_active_key(row: &CredentialReportRow) -> Finding {
    let active = row.access_keys.iter().filter(|k| k.active).count();
    let evidence = json!({ "active_access_keys": active });
    if active <= 1 {
        Finding::new(
            SINGLE_ACTIVE_ACCESS_KEY.id,
            &row.arn,
            GLOBAL,
            Status::Pass,
            format!("the user has {active} active access key(s)"),
            evidence,
        )
    } else {
        Finding::new(
            SINGLE_ACTIVE_ACCESS_KEY.id,
            &row.arn,
            GLOBAL,
            Status::Fail,
            format!("the user has {active} active access keys"),
            evidence,
        )
    }
}

fn key_rotation(row: &CredentialReportRow, now: Timestamp) -> Finding {
    let active: Vec<(usize, &AccessKeyUsage)> = row
        .access_keys
        .iter()
        .enumerate()
        .filter(|(_, k)| k.active)
        .collect();
    let ages: Vec<_> = active
        .iter()
        .map(|(i, k)| {
            json!({
                "credential": format!("access_key_{}", i + 1),
                "last_rotated": k.last_rotated,
                "age_days": k.last_rotated.map(|t| t.days_until(now)),
            })
        })
        .collect();
    let evidence = json!({ "access_keys": ages, "threshold_days": ROTATION_DAYS });
    if active.iter().any(|(_, k)| k.last_rotated.is_none()) {
        return Finding::new(
            ACCESS_KEY_ROTATION.id,
            &row.arn,
            GLOBAL,
            Status::Error,
            "the credential report gives no rotation date for an active access key".into(),
            evidence,
        );
    }
    let oldest = active
        .iter()
        .filter_map(|(_, k)| k.last_rotated.map(|t| t.days_until(now)))
        .max()
        .unwrap_or(0);
    if oldest > ROTATION_DAYS {
        Finding::new(
            ACCESS_KEY_ROTATION.id,
            &row.arn,
            GLOBAL,
            Status::Fail,
            format!("an active access key is {oldest} days old (limit {ROTATION_DAYS})"),
            evidence,
        )
    } else {
        Finding::new(
            ACCESS_KEY_ROTATION.id,
            &row.arn,
            GLOBAL,
            Status::Pass,
            format!("active access keys are at most {oldest} days old"),
            evidence,
        )
    }
}

fn user_policy_checks(inventory: &Inventory) -> Vec<Finding> {
    let check = NO_USER_ATTACHED_POLICIES.id;
    let users = match &inventory.iam.users {
        Observed::Error(e) => {
            return vec![Finding::error(
                check,
                &inventory.account.id,
                GLOBAL,
                "the list of IAM users",
                e,
            )]
        }
        Observed::Value(users) => users,
    };
    users
        .iter()
        .map(|user| {
            let attached = match &user.attached_policies {
                Observed::Error(e) => {
                    return Finding::error(
                        check,
                        &user.arn,
                        GLOBAL,
                        "the user's attached policies",
                        e,
                    )
                }
                Observed::Value(a) => a,
            };
            let inline = match &user.inline_policies {
                Observed::Error(e) => {
                    return Finding::error(
                        check,
                        &user.arn,
                        GLOBAL,
                        "the user's inline policies",
                        e,
                    )
                }
                Observed::Value(i) => i,
            };
            let names: Vec<&str> = attached.iter().map(|p| p.name.as_str()).collect();
            let evidence = json!({ "attached_policies": names, "inline_policies": inline });
            if attached.is_empty() && inline.is_empty() {
                Finding::new(
                    check,
                    &user.arn,
                    GLOBAL,
                    Status::Pass,
                    "the user has no policies of its own".into(),
                    evidence,
                )
            } else {
                Finding::new(
                    check,
                    &user.arn,
                    GLOBAL,
                    Status::Fail,
                    format!(
                        "the user has {} attached and {} inline policies of its own",
                        attached.len(),
                        inline.len()
                    ),
                    evidence,
                )
            }
        })
        .collect()
}

fn admin_policy_checks(inventory: &Inventory) -> Vec<Finding> {
    let check = NO_FULL_ADMIN_POLICIES.id;
    let policies = match &inventory.iam.policies {
        Observed::Error(e) => {
            return vec![Finding::error(
                check,
                &inventory.account.id,
                GLOBAL,
                "the list of customer-managed policies",
                e,
            )]
        }
        Observed::Value(p) => p,
    };
    policies
        .iter()
        .map(|policy| {
            let document = match &policy.document {
                Observed::Error(e) => {
                    return Finding::error(
                        check,
                        &policy.arn,
                        GLOBAL,
                        "the policy's default version",
                        e,
                    )
                }
                Observed::Value(d) => d,
            };
            let statements = match statements(document) {
                Ok(s) => s,
                Err(e) => {
                    return Finding::new(
                        check,
                        &policy.arn,
                        GLOBAL,
                        Status::Error,
                        format!("the policy document could not be read: {e}"),
                        json!({ "policy_error": e.0 }),
                    )
                }
            };
            // Each statement that grants full admin, by its Sid or, lacking
            // one, by its position in the document.
            let admin: Vec<String> = statements
                .iter()
                .enumerate()
                .filter(|(_, s)| s.is_full_admin())
                .map(|(i, s): (usize, &Statement)| {
                    s.sid
                        .clone()
                        .unwrap_or_else(|| format!("statement {}", i + 1))
                })
                .collect();
            let evidence = json!({
                "default_version": policy.default_version_id,
                "attachment_count": policy.attachment_count,
                "full_admin_statements": admin,
            });
            match (admin.is_empty(), policy.attachment_count) {
                (true, _) => Finding::new(
                    check,
                    &policy.arn,
                    GLOBAL,
                    Status::Pass,
                    "the policy does not allow \"*\" on \"*\"".into(),
                    evidence,
                ),
                (false, 0) => Finding::new(
                    check,
                    &policy.arn,
                    GLOBAL,
                    Status::Pass,
                    "the policy allows \"*\" on \"*\" but is attached to nothing".into(),
                    evidence,
                ),
                (false, n) => Finding::new(
                    check,
                    &policy.arn,
                    GLOBAL,
                    Status::Fail,
                    format!("the policy allows \"*\" on \"*\" and is attached to {n} identities"),
                    evidence,
                ),
            }
        })
        .collect()
}
