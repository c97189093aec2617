//! The inventory: what collection observed in one account, as plain data.
//!
//! Collection writes it, checks read it, and `dspm-audit collect` saves it for
//! offline review. Every fact that needed an AWS call is an [`Observed`]: the
//! value, or the error that kept us from seeing it. Checks turn an error into
//! an ERROR result naming the missing action, so nothing is ever judged on
//! data that was not seen. "Not configured" answers from AWS (no bucket
//! policy, no password policy) are values (`None`), not errors.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::timestamp::Timestamp;

/// The version of this schema; a saved inventory of another version is refused.
pub const SCHEMA_VERSION: u32 = 1;

/// A fact read from AWS, or why it could not be read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Observed<T> {
    Value(T),
    Error(CollectError),
}

impl<T> Observed<T> {
    pub fn as_ref(&self) -> Observed<&T> {
        match self {
            Observed::Value(v) => Observed::Value(v),
            Observed::Error(e) => Observed::Error(e.clone()),
        }
    }

    pub fn value(&self) -> Option<&T> {
        match self {
            Observed::Value(v) => Some(v),
            Observed::Error(_) => None,
        }
    }

    pub fn error(&self) -> Option<&CollectError> {
        match self {
            Observed::Value(_) => None,
            Observed::Error(e) => Some(e),
        }
    }
}

impl<T> From<Result<T, CollectError>> for Observed<T> {
    fn from(result: Result<T, CollectError>) -> Self {
        match result {
            Ok(v) => Observed::Value(v),
            Err(e) => Observed::Error(e),
        }
    }
}

/// Why a fact is missing: the IAM action that was called and what AWS said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectError {
    /// The IAM action of the failed call, such as `s3:GetBucketPolicy`.
    pub action: String,
    /// The AWS error code (`AccessDenied`), or a transport-level code of ours
    /// (`ConnectionFailed`, `Timeout`, `MalformedResponse`).
    pub code: String,
    pub message: String,
    /// HTTP status of the last attempt, when a response arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
}

impl CollectError {
    /// True when the error says the caller lacks permission for `action`.
    pub fn is_access_denied(&self) -> bool {
        matches!(
            self.code.as_str(),
            "AccessDenied"
                | "AccessDeniedException"
                | "UnauthorizedOperation"
                | "AuthorizationError"
                | "AllAccessDisabled"
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inventory {
    pub schema_version: u32,
    pub collected_at: Timestamp,
    pub account: Account,
    /// The region of the audit's home endpoint (`AWS_REGION`).
    pub region: String,
    pub s3: S3Inventory,
    pub iam: IamInventory,
    pub organizations: OrganizationsInventory,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    pub id: String,
    /// `aws`, `aws-cn` or `aws-us-gov`.
    pub partition: String,
    /// The identity the audit ran as (from `sts:GetCallerIdentity`).
    pub caller_arn: String,
}

// ---------------------------------------------------------------- S3

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Inventory {
    /// Account-level Block Public Access; `None` when never configured.
    pub account_public_access_block: Observed<Option<PublicAccessBlock>>,
    pub buckets: Observed<Vec<Bucket>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicAccessBlock {
    pub block_public_acls: bool,
    pub ignore_public_acls: bool,
    pub block_public_policy: bool,
    pub restrict_public_buckets: bool,
}

impl PublicAccessBlock {
    pub fn all_on(&self) -> bool {
        self.block_public_acls
            && self.ignore_public_acls
            && self.block_public_policy
            && self.restrict_public_buckets
    }

    /// The names of the settings that are off, in AWS's spelling.
    pub fn settings_off(&self) -> Vec<&'static str> {
        [
            (self.block_public_acls, "BlockPublicAcls"),
            (self.ignore_public_acls, "IgnorePublicAcls"),
            (self.block_public_policy, "BlockPublicPolicy"),
            (self.restrict_public_buckets, "RestrictPublicBuckets"),
        ]
        .into_iter()
        .filter(|(on, _)| !on)
        .map(|(_, name)| name)
        .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bucket {
    pub name: String,
    pub arn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<Timestamp>,
    pub region: Observed<String>,
    pub public_access_block: Observed<Option<PublicAccessBlock>>,
    /// The bucket policy document; `None` when the bucket has none.
    pub policy: Observed<Option<serde_json::Value>>,
    /// `GetBucketPolicyStatus`'s `IsPublic`; `None` when there is no policy.
    pub policy_is_public: Observed<Option<bool>>,
    pub acl: Observed<Acl>,
    /// Default encryption rules; `None` when none is configured.
    pub encryption: Observed<Option<Vec<EncryptionRule>>>,
    pub versioning: Observed<Versioning>,
    /// Where access logs go; `None` when logging is off.
    pub logging: Observed<Option<LoggingTarget>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Acl {
    pub owner_id: String,
    pub grants: Vec<Grant>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// `CanonicalUser`, `Group` or `AmazonCustomerByEmail`.
    pub grantee_type: String,
    /// Canonical id, group URI or e-mail address, as AWS gave it.
    pub grantee: String,
    pub permission: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncryptionRule {
    /// `AES256`, `aws:kms` or `aws:kms:dsse`.
    pub algorithm: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    #[serde(default)]
    pub bucket_key_enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Versioning {
    /// `Enabled`, `Suspended`, or `None` for a bucket never versioned.
    pub status: Option<String>,
    /// `Enabled`, `Disabled`, or `None` when never set.
    pub mfa_delete: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingTarget {
    pub target_bucket: String,
    pub target_prefix: String,
}

// ---------------------------------------------------------------- IAM

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IamInventory {
    /// `GetAccountSummary`'s `SummaryMap`.
    pub account_summary: Observed<BTreeMap<String, i64>>,
    /// `None` when the account has no password policy.
    pub password_policy: Observed<Option<PasswordPolicy>>,
    pub credential_report: Observed<Vec<CredentialReportRow>>,
    pub users: Observed<Vec<User>>,
    /// Customer-managed policies with their default version's document.
    pub policies: Observed<Vec<ManagedPolicy>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordPolicy {
    pub minimum_password_length: Option<u32>,
    pub password_reuse_prevention: Option<u32>,
    pub max_password_age: Option<u32>,
    pub require_symbols: bool,
    pub require_numbers: bool,
    pub require_uppercase_characters: bool,
    pub require_lowercase_characters: bool,
    pub allow_users_to_change_password: bool,
    pub expire_passwords: bool,
    pub hard_expiry: bool,
}

/// One row of the IAM credential report. Dates AWS gives as `N/A`,
/// `no_information`, `not_supported` or empty are `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialReportRow {
    pub user: String,
    pub arn: String,
    pub user_creation_time: Option<Timestamp>,
    pub password_enabled: bool,
    pub password_last_used: Option<Timestamp>,
    pub password_last_changed: Option<Timestamp>,
    pub mfa_active: bool,
    pub access_keys: [AccessKeyUsage; 2],
}

impl CredentialReportRow {
    /// The row the report gives the account's root user.
    pub fn is_root(&self) -> bool {
        self.user == "<root_account>"
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessKeyUsage {
    pub active: bool,
    pub last_rotated: Option<Timestamp>,
    pub last_used: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    pub arn: String,
    pub attached_policies: Observed<Vec<AttachedPolicy>>,
    pub inline_policies: Observed<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachedPolicy {
    pub name: String,
    pub arn: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManagedPolicy {
    pub name: String,
    pub arn: String,
    pub default_version_id: String,
    pub attachment_count: u32,
    pub document: Observed<serde_json::Value>,
}

// ---------------------------------------------------------------- Organizations

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrganizationsInventory {
    /// `None` when the account is not in an organization.
    pub organization: Observed<Option<Organization>>,
    /// Service control policies that apply to the account: attached to it
    /// directly or to an OU or root above it. Empty when not in an organization.
    pub service_control_policies: Observed<Vec<ServiceControlPolicy>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Organization {
    pub id: String,
    pub arn: String,
    pub management_account_id: String,
    /// `ALL` or `CONSOLIDATED_BILLING`; SCPs need `ALL`.
    pub feature_set: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceControlPolicy {
    pub id: String,
    pub name: String,
    pub arn: String,
    pub aws_managed: bool,
    /// Where it is attached: the account id, an OU id or the root id.
    pub target: String,
}
