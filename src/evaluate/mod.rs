//! Evaluation: pure checks over an inventory, each producing findings.
//!
//! A check reads only the [`Inventory`]; it never calls AWS. Where a fact it
//! needs was not collected, it reports ERROR naming the AWS error and the
//! IAM action that failed, and never PASS or FAIL. Ages are measured from the
//! inventory's collection time, so a saved inventory evaluates the same way
//! tomorrow as today.

mod iam;
mod organizations;
pub mod policy;
mod s3;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::inventory::{CollectError, Inventory};

/// The outcome of one check on one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Pass,
    Fail,
    /// Could not be evaluated: a fact was not collected.
    Error,
    /// No API can decide it; an auditor looks by hand.
    Manual,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Error => "ERROR",
            Status::Manual => "MANUAL",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

/// What a check is, for `/v1/checks` and for every result it produces.
#[derive(Debug, Clone, Serialize)]
pub struct CheckInfo {
    pub id: &'static str,
    pub service: &'static str,
    pub severity: Severity,
    pub title: &'static str,
    pub description: &'static str,
}

/// One check's verdict on one resource.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub check: &'static str,
    /// An ARN, or the account id for account-level checks.
    pub resource: String,
    pub region: String,
    pub status: Status,
    pub reason: String,
    pub evidence: Value,
}

impl Finding {
    pub fn new(
        check: &'static str,
        resource: &str,
        region: &str,
        status: Status,
        reason: String,
        evidence: Value,
    ) -> Finding {
        Finding {
            check,
            resource: resource.to_string(),
            region: region.to_string(),
            status,
            reason,
            evidence,
        }
    }

    /// ERROR for a check that could not read `what` because of `error`.
    pub fn error(
        check: &'static str,
        resource: &str,
        region: &str,
        what: &str,
        error: &CollectError,
    ) -> Finding {
        let reason = if error.is_access_denied() {
            format!(
                "could not read {what}: AWS answered {} to {}; \
                 the audit role needs the {} permission",
                error.code, error.action, error.action
            )
        } else {
            format!(
                "could not read {what}: {} answered {}: {}",
                error.action, error.code, error.message
            )
        };
        let evidence = json!({
            "action": error.action,
            "error_code": error.code,
            "error_message": error.message,
            "http_status": error.http_status,
        });
        Finding::new(check, resource, region, Status::Error, reason, evidence)
    }
}

/// Every check, in report order.
pub static CHECKS: &[CheckInfo] = &[
    s3::ACCOUNT_BLOCK_PUBLIC_ACCESS,
    s3::BUCKET_BLOCK_PUBLIC_ACCESS,
    s3::BUCKET_NOT_PUBLIC,
    s3::BUCKET_TLS_ONLY,
    s3::BUCKET_DEFAULT_ENCRYPTION_KMS,
    s3::BUCKET_VERSIONING,
    s3::BUCKET_MFA_DELETE,
    s3::BUCKET_ACCESS_LOGGING,
    iam::ROOT_NO_ACCESS_KEYS,
    iam::ROOT_MFA,
    iam::PASSWORD_MIN_LENGTH,
    iam::PASSWORD_REUSE_PREVENTION,
    iam::CONSOLE_USER_MFA,
    iam::UNUSED_CREDENTIALS,
    iam::SINGLE_ACTIVE_ACCESS_KEY,
    iam::ACCESS_KEY_ROTATION,
    iam::NO_USER_ATTACHED_POLICIES,
    iam::NO_FULL_ADMIN_POLICIES,
    organizations::SCP_IN_FORCE,
];

pub fn check(id: &str) -> Option<&'static CheckInfo> {
    CHECKS.iter().find(|c| c.id == id)
}

/// Runs every check over the inventory.
pub fn evaluate(inventory: &Inventory) -> Vec<Finding> {
    let mut findings = Vec::new();
    findings.extend(s3::evaluate(inventory));
    findings.extend(iam::evaluate(inventory));
    findings.extend(organizations::evaluate(inventory));
    findings
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn check_ids_are_unique_and_well_formed() {
        let mut seen = HashSet::new();
        for c in CHECKS {
            assert!(seen.insert(c.id), "duplicate {}", c.id);
            let (service, name) = c.id.split_once('.').expect("service.name");
            assert_eq!(service, c.service);
            assert!(
                name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{}",
                c.id
            );
            assert!(!c.title.is_empty() && !c.description.is_empty());
        }
    }

    #[test]
    fn access_denied_names_the_missing_permission() {
        let e = CollectError {
            action: "s3:GetBucketPolicy".into(),
            code: "AccessDenied".into(),
            message: "denied".into(),
            http_status: Some(403),
        };
        let f = Finding::error(
            "s3.bucket_tls_only",
            "arn:aws:s3:::b",
            "us-east-1",
            "the bucket policy",
            &e,
        );
        assert_eq!(f.status, Status::Error);
        assert!(
            f.reason.contains("needs the s3:GetBucketPolicy permission"),
            "{}",
            f.reason
        );
        assert_eq!(f.evidence["action"], "s3:GetBucketPolicy");
    }
}

#[cfg(test)]
mod check_tables;
