//! S3 checks: public exposure, transport and at-rest encryption, recovery
//! and logging.

use serde_json::json;

use super::policy::statements;
use super::{CheckInfo, Finding, Severity, Status};
use crate::inventory::{Bucket, Inventory, Observed, PublicAccessBlock};

pub const ACCOUNT_BLOCK_PUBLIC_ACCESS: CheckInfo = CheckInfo {
    id: "s3.account_block_public_access",
    service: "s3",
    severity: Severity::High,
    title: "S3 Block Public Access is on for the account",
    description: "All four account-level Block Public Access settings are enabled, so no bucket \
                  in the account can be made public by a policy or an ACL.",
};

pub const BUCKET_BLOCK_PUBLIC_ACCESS: CheckInfo = CheckInfo {
    id: "s3.bucket_block_public_access",
    service: "s3",
    severity: Severity::High,
    title: "S3 Block Public Access is on for the bucket",
    description: "All four Block Public Access settings are enabled on the bucket, or on the \
                  account, which overrides every bucket.",
};

pub const BUCKET_NOT_PUBLIC: CheckInfo = CheckInfo {
    id: "s3.bucket_not_public",
    service: "s3",
    severity: Severity::Critical,
    title: "S3 bucket is not public",
    description: "Neither the bucket policy (as AWS's policy status judges it) nor the ACL \
                  grants access to everyone, unless Block Public Access neutralises it.",
};

pub const BUCKET_TLS_ONLY: CheckInfo = CheckInfo {
    id: "s3.bucket_tls_only",
    service: "s3",
    severity: Severity::Medium,
    title: "S3 bucket policy denies requests without TLS",
    description: "The bucket policy denies every S3 action to every principal when \
                  aws:SecureTransport is false.",
};

pub const BUCKET_DEFAULT_ENCRYPTION_KMS: CheckInfo = CheckInfo {
    id: "s3.bucket_default_encryption_kms",
    service: "s3",
    severity: Severity::Medium,
    title: "S3 bucket encrypts new objects with KMS keys by default",
    description: "Default encryption uses SSE-KMS or DSSE-KMS, so access to data also needs \
                  access to a KMS key and every use of the key is logged.",
};

pub const BUCKET_VERSIONING: CheckInfo = CheckInfo {
    id: "s3.bucket_versioning",
    service: "s3",
    severity: Severity::Medium,
    title: "S3 bucket versioning is enabled",
    description: "Versioning keeps earlier versions of objects so that overwritten or deleted \
                  data can be recovered.",
};

pub const BUCKET_MFA_DELETE: CheckInfo = CheckInfo {
    id: "s3.bucket_mfa_delete",
    service: "s3",
    severity: Severity::Low,
    title: "S3 bucket has MFA delete enabled",
    description: "Deleting object versions or changing the versioning state requires the root \
                  user's MFA device.",
};

pub const BUCKET_ACCESS_LOGGING: CheckInfo = CheckInfo {
    id: "s3.bucket_access_logging",
    service: "s3",
    severity: Severity::Low,
    title: "S3 bucket server access logging is enabled",
    description: "Requests made to the bucket are logged to a target bucket.",
};

const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
const AUTHENTICATED_USERS: &str = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";

pub fn evaluate(inventory: &Inventory) -> Vec<Finding> {
    let mut findings = vec![account_block_public_access(inventory)];
    let account = &inventory.account.id;
    let buckets = match &inventory.s3.buckets {
        Observed::Value(buckets) => buckets,
        Observed::Error(e) => {
            let bucket_checks = [
                &BUCKET_BLOCK_PUBLIC_ACCESS,
                &BUCKET_NOT_PUBLIC,
                &BUCKET_TLS_ONLY,
                &BUCKET_DEFAULT_ENCRYPTION_KMS,
                &BUCKET_VERSIONING,
                &BUCKET_MFA_DELETE,
                &BUCKET_ACCESS_LOGGING,
            ];
            for check in bucket_checks {
                findings.push(Finding::error(
                    check.id,
                    account,
                    &inventory.region,
                    "the list of buckets",
                    e,
                ));
            }
            return findings;
        }
    };
    let account_pab = &inventory.s3.account_public_access_block;
    for bucket in buckets {
        let region = bucket
            .region
            .value()
            .map(String::as_str)
            .unwrap_or("unknown");
        let ctx = BucketContext { bucket, region };
        findings.push(ctx.block_public_access(account_pab));
        findings.push(ctx.not_public(account_pab));
        findings.push(ctx.tls_only());
        findings.push(ctx.default_encryption_kms());
        findings.push(ctx.versioning());
        findings.push(ctx.mfa_delete());
        findings.push(ctx.access_logging());
    }
    findings
}

fn account_block_public_access(inventory: &Inventory) -> Finding {
    let check = ACCOUNT_BLOCK_PUBLIC_ACCESS.id;
    let account = &inventory.account.id;
    let region = &inventory.region;
    match &inventory.s3.account_public_access_block {
        Observed::Error(e) => Finding::error(
            check,
            account,
            region,
            "the account's Block Public Access settings",
            e,
        ),
        Observed::Value(None) => Finding::new(
            check,
            account,
            region,
            Status::Fail,
            "the account has no S3 Block Public Access configuration".into(),
            json!({ "configured": false }),
        ),
        Observed::Value(Some(pab)) => {
            let off = pab.settings_off();
            let (status, reason) = if off.is_empty() {
                (
                    Status::Pass,
                    "all four account-level Block Public Access settings are on".to_string(),
                )
            } else {
                (
                    Status::Fail,
                    format!(
                        "account-level Block Public Access settings off: {}",
                        off.join(", ")
                    ),
                )
            };
            Finding::new(
                check,
                account,
                region,
                status,
                reason,
                json!({ "configured": true, "settings": pab }),
            )
        }
    }
}

struct BucketContext<'a> {
    bucket: &'a Bucket,
    region: &'a str,
}

impl BucketContext<'_> {
    fn finding(
        &self,
        check: &'static str,
        status: Status,
        reason: String,
        evidence: serde_json::Value,
    ) -> Finding {
        Finding::new(
            check,
            &self.bucket.arn,
            self.region,
            status,
            reason,
            evidence,
        )
    }

    fn error(
        &self,
        check: &'static str,
        what: &str,
        e: &crate::inventory::CollectError,
    ) -> Finding {
        Finding::error(check, &self.bucket.arn, self.region, what, e)
    }

    fn block_public_access(&self, account: &Observed<Option<PublicAccessBlock>>) -> Finding {
        let check = BUCKET_BLOCK_PUBLIC_ACCESS.id;
        let bucket_pab = match &self.bucket.public_access_block {
            Observed::Error(e) => {
                return self.error(check, "the bucket's Block Public Access settings", e)
            }
            Observed::Value(pab) => pab,
        };
        if bucket_pab.is_some_and(|p| p.all_on()) {
            return self.finding(
                check,
                Status::Pass,
                "all four bucket-level Block Public Access settings are on".into(),
                json!({ "bucket": bucket_pab }),
            );
        }
        let account_pab = match account {
            Observed::Error(e) => {
                return self.error(check, "the account's Block Public Access settings", e)
            }
            Observed::Value(pab) => pab,
        };
        if account_pab.is_some_and(|p| p.all_on()) {
            return self.finding(
                check,
                Status::Pass,
                "the account-level Block Public Access settings are all on and apply to this bucket"
                    .into(),
                json!({ "bucket": bucket_pab, "account": account_pab }),
            );
        }
        let reason = match bucket_pab {
            None => "the bucket has no Block Public Access configuration \
                     and the account's is not fully on"
                .to_string(),
            Some(p) => format!(
                "bucket-level Block Public Access settings off: {}",
                p.settings_off().join(", ")
            ),
        };
        self.finding(
            check,
            Status::Fail,
            reason,
            json!({ "bucket": bucket_pab, "account": account_pab }),
        )
    }

    /// Public if the policy is public and RestrictPublicBuckets does not
    /// neutralise it, or an ACL grants everyone and IgnorePublicAcls does not.
    fn not_public(&self, account: &Observed<Option<PublicAccessBlock>>) -> Finding {
        let check = BUCKET_NOT_PUBLIC.id;
        let policy_public = match &self.bucket.policy_is_public {
            Observed::Error(e) => return self.error(check, "the bucket's policy status", e),
            Observed::Value(p) => p.unwrap_or(false),
        };
        let acl = match &self.bucket.acl {
            Observed::Error(e) => return self.error(check, "the bucket's ACL", e),
            Observed::Value(acl) => acl,
        };
        let public_grants: Vec<_> = acl
            .grants
            .iter()
            .filter(|g| g.grantee == ALL_USERS || g.grantee == AUTHENTICATED_USERS)
            .map(|g| json!({ "grantee": g.grantee, "permission": g.permission }))
            .collect();
        if !policy_public && public_grants.is_empty() {
            return self.finding(
                check,
                Status::Pass,
                "neither the bucket policy nor the ACL grants public access".into(),
                json!({ "policy_is_public": false, "public_acl_grants": [] }),
            );
        }

        let mut blocks = Vec::new();
        for (scope, pab) in [
            ("bucket", &self.bucket.public_access_block),
            ("account", account),
        ] {
            match pab {
                Observed::Error(e) => {
                    let what = format!(
                        "the {scope}'s Block Public Access settings, \
                         which decide whether the public grant is effective"
                    );
                    return self.error(check, &what, e);
                }
                Observed::Value(p) => blocks.push(p.unwrap_or(PublicAccessBlock {
                    block_public_acls: false,
                    ignore_public_acls: false,
                    block_public_policy: false,
                    restrict_public_buckets: false,
                })),
            }
        }
        let restricted = blocks.iter().any(|p| p.restrict_public_buckets);
        let acls_ignored = blocks.iter().any(|p| p.ignore_public_acls);
        let exposed_by_policy = policy_public && !restricted;
        let exposed_by_acl = !public_grants.is_empty() && !acls_ignored;
        let evidence = json!({
            "policy_is_public": policy_public,
            "public_acl_grants": public_grants,
            "restrict_public_buckets": restricted,
            "ignore_public_acls": acls_ignored,
        });
        let reason = match (exposed_by_policy, exposed_by_acl) {
            (true, true) => "the bucket is public through both its policy and its ACL",
            (true, false) => "the bucket policy grants public access",
            (false, true) => "the bucket ACL grants access to everyone",
            (false, false) => {
                return self.finding(
                    check,
                    Status::Pass,
                    "public grants exist but Block Public Access neutralises them".into(),
                    evidence,
                )
            }
        };
        self.finding(check, Status::Fail, reason.into(), evidence)
    }

    fn tls_only(&self) -> Finding {
        let check = BUCKET_TLS_ONLY.id;
        let policy = match &self.bucket.policy {
            Observed::Error(e) => return self.error(check, "the bucket policy", e),
            Observed::Value(None) => {
                return self.finding(
                    check,
                    Status::Fail,
                    "the bucket has no policy, so requests over plain HTTP are not denied".into(),
                    json!({ "has_policy": false }),
                )
            }
            Observed::Value(Some(p)) => p,
        };
        let statements = match statements(policy) {
            Ok(s) => s,
            Err(e) => {
                return self.finding(
                    check,
                    Status::Error,
                    format!("the bucket policy could not be read as a policy: {e}"),
                    json!({ "has_policy": true, "policy_error": e.0 }),
                )
            }
        };
        match statements
            .iter()
            .find(|s| s.denies_insecure_transport(&self.bucket.arn))
        {
            Some(s) => self.finding(
                check,
                Status::Pass,
                "the bucket policy denies all S3 actions when aws:SecureTransport is false".into(),
                json!({ "has_policy": true, "statement_sid": s.sid }),
            ),
            None => self.finding(
                check,
                Status::Fail,
                "the bucket policy has no statement denying requests without TLS".into(),
                json!({ "has_policy": true, "statements": statements.len() }),
            ),
        }
    }

    fn default_encryption_kms(&self) -> Finding {
        let check = BUCKET_DEFAULT_ENCRYPTION_KMS.id;
        let rules = match &self.bucket.encryption {
            Observed::Error(e) => return self.error(check, "the bucket's default encryption", e),
            Observed::Value(rules) => rules.as_deref().unwrap_or(&[]),
        };
        let algorithms: Vec<&str> = rules.iter().map(|r| r.algorithm.as_str()).collect();
        let kms = rules
            .iter()
            .find(|r| r.algorithm == "aws:kms" || r.algorithm == "aws:kms:dsse");
        match kms {
            Some(rule) => self.finding(
                check,
                Status::Pass,
                format!("default encryption is {}", rule.algorithm),
                json!({
                    "algorithms": algorithms,
                    "kms_key_id": rule.kms_key_id,
                    "bucket_key_enabled": rule.bucket_key_enabled,
                }),
            ),
            None if algorithms.is_empty() => self.finding(
                check,
                Status::Fail,
                "the bucket has no default encryption configuration".into(),
                json!({ "algorithms": algorithms }),
            ),
            None => self.finding(
                check,
                Status::Fail,
                format!(
                    "default encryption is {} (S3-managed keys), not KMS",
                    algorithms.join(", ")
                ),
                json!({ "algorithms": algorithms }),
            ),
        }
    }

    fn versioning(&self) -> Finding {
        let check = BUCKET_VERSIONING.id;
        match &self.bucket.versioning {
            Observed::Error(e) => self.error(check, "the bucket's versioning state", e),
            Observed::Value(v) if v.status.as_deref() == Some("Enabled") => self.finding(
                check,
                Status::Pass,
                "versioning is enabled".into(),
                json!({ "status": v.status }),
            ),
            Observed::Value(v) => self.finding(
                check,
                Status::Fail,
                match v.status.as_deref() {
                    Some(s) => format!("versioning is {s}"),
                    None => "versioning has never been enabled".into(),
                },
                json!({ "status": v.status }),
            ),
        }
    }

    fn mfa_delete(&self) -> Finding {
        let check = BUCKET_MFA_DELETE.id;
        match &self.bucket.versioning {
            Observed::Error(e) => self.error(check, "the bucket's versioning state", e),
            Observed::Value(v) => {
                let on = v.mfa_delete.as_deref() == Some("Enabled");
                let evidence = json!({ "versioning": v.status, "mfa_delete": v.mfa_delete });
                if on {
                    self.finding(
                        check,
                        Status::Pass,
                        "MFA delete is enabled".into(),
                        evidence,
                    )
                } else {
                    self.finding(
                        check,
                        Status::Fail,
                        "MFA delete is not enabled".into(),
                        evidence,
                    )
                }
            }
        }
    }

    fn access_logging(&self) -> Finding {
        let check = BUCKET_ACCESS_LOGGING.id;
        match &self.bucket.logging {
            Observed::Error(e) => self.error(check, "the bucket's logging configuration", e),
            Observed::Value(Some(target)) => self.finding(
                check,
                Status::Pass,
                format!("server access logs go to bucket {}", target.target_bucket),
                json!({
                    "target_bucket": target.target_bucket,
                    "target_prefix": target.target_prefix,
                }),
            ),
            Observed::Value(None) => self.finding(
                check,
                Status::Fail,
                "server access logging is off".into(),
                json!({ "enabled": false }),
            ),
        }
    }
}
