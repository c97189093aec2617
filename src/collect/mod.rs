//! Collection: reading an account's configuration into an [`Inventory`].
//!
//! Each service has its collector; they run side by side, and per-resource
//! calls (per bucket, per user, per policy) run on a bounded pool. A failed
//! call does not stop collection: it is recorded as an error in the
//! inventory for the facts it would have provided. Only when the caller's
//! identity cannot be read does the audit fail as a whole, since nothing
//! could be attributed to an account.

mod codec;
pub mod iam;
pub mod organizations;
mod pool;
pub mod s3;
pub mod sts;

use std::time::Instant;

use log::info;

use crate::aws::{AwsClient, AwsError};
use crate::inventory::{CollectError, Inventory, SCHEMA_VERSION};
use crate::timestamp::Timestamp;

pub use codec::{base64_decode, percent_decode};
pub use iam::parse_credential_report;
pub use pool::parallel_map;

/// Every IAM action collection can call, in the audit policy's spelling.
/// The least-privilege policy in `deploy/iam/` is tested against this list.
pub const ACTIONS: &[&str] = &[
    "sts:GetCallerIdentity",
    "s3:GetAccountPublicAccessBlock",
    "s3:ListAllMyBuckets",
    "s3:GetBucketLocation",
    "s3:GetBucketPublicAccessBlock",
    "s3:GetBucketPolicy",
    "s3:GetBucketPolicyStatus",
    "s3:GetBucketAcl",
    "s3:GetEncryptionConfiguration",
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
];

/// Collects the whole inventory of the account the client's credentials
/// belong to.
pub fn collect(client: &AwsClient) -> Result<Inventory, AwsError> {
    let started = Instant::now();
    let collected_at = Timestamp::now();
    let account = sts::caller_identity(client)?;
    info!(
        "auditing account {} ({}) as {}",
        account.id, account.partition, account.caller_arn
    );

    let (s3, iam, organizations) = std::thread::scope(|scope| {
        let s3 = scope.spawn(|| s3::collect(client, &account));
        let iam = scope.spawn(|| iam::collect(client));
        let organizations = organizations::collect(client, &account.id);
        (join(s3), join(iam), organizations)
    });

    info!(
        "collection finished in {} ms: {} AWS requests, {} retries, {} redirects",
        started.elapsed().as_millis(),
        client
            .stats
            .requests
            .load(std::sync::atomic::Ordering::Relaxed),
        client
            .stats
            .retries
            .load(std::sync::atomic::Ordering::Relaxed),
        client
            .stats
            .redirects
            .load(std::sync::atomic::Ordering::Relaxed),
    );
    Ok(Inventory {
        schema_version: SCHEMA_VERSION,
        collected_at,
        account,
        region: client.endpoints().home_region().to_string(),
        s3,
        iam,
        organizations,
    })
}

fn join<T>(handle: std::thread::ScopedJoinHandle<'_, T>) -> T {
    match handle.join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Records a failed call for the inventory: the action and what AWS said.
fn failure(action: &str, error: AwsError) -> CollectError {
    CollectError {
        action: action.to_string(),
        code: error.code,
        message: error.message,
        http_status: error.http_status,
    }
}

#[cfg(test)]
mod tests {
    use super::ACTIONS;

    /// The shipped least-privilege policy grants exactly what collection
    /// calls: no action missing, none extra.
    #[test]
    fn the_audit_policy_grants_exactly_the_collected_actions() {
        let text = include_str!("../../deploy/iam/dspm-audit-policy.json");
        let policy: serde_json::Value = serde_json::from_str(text).expect("policy JSON");
        let mut granted: Vec<&str> = policy["Statement"]
            .as_array()
            .expect("statements")
            .iter()
            .inspect(|s| assert_eq!(s["Effect"], "Allow"))
            .flat_map(|s| s["Action"].as_array().expect("action list").iter())
            .map(|a| a.as_str().expect("action"))
            .collect();
        granted.sort_unstable();
        let mut called: Vec<&str> = ACTIONS.to_vec();
        called.sort_unstable();
        assert_eq!(granted, called);
        assert!(granted.iter().all(|a| !a.contains('*')), "no wildcards");
    }
}
