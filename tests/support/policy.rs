//! The shipped audit policy as the tests give it to moto, and scratch
//! folders for the files tests write.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

/// The production audit policy shipped to customers.
pub const POLICY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/deploy/iam/dspm-audit-policy.json"
);

/// moto 5.2.5 authorises some S3 reads under another name than AWS's IAM
/// action (measured; see moto's `s3/responses.py` ACTION_MAP): the account
/// public-access block as `s3:GetPublicAccessBlock`, and the bucket's
/// public-access block and default encryption, which its map lacks, as
/// `s3:ListBucket`. The policy given to moto adds these aliases; a removal
/// test removes an action together with every action sharing its alias.
pub const MOTO_ALIASES: &[(&str, &str)] = &[
    ("s3:GetAccountPublicAccessBlock", "s3:GetPublicAccessBlock"),
    ("s3:GetBucketPublicAccessBlock", "s3:ListBucket"),
    ("s3:GetEncryptionConfiguration", "s3:ListBucket"),
];

pub fn moto_alias(action: &str) -> Option<&'static str> {
    MOTO_ALIASES
        .iter()
        .find(|(aws, _)| *aws == action)
        .map(|(_, alias)| *alias)
}

/// The action and the others that moto authorises under the same name.
pub fn alias_group(action: &str, all: &[String]) -> Vec<String> {
    all.iter()
        .filter(|a| {
            *a == action || (moto_alias(a).is_some() && moto_alias(a) == moto_alias(action))
        })
        .cloned()
        .collect()
}

/// Every action the shipped policy allows.
pub fn policy_actions() -> Vec<String> {
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(POLICY).expect("policy file"))
        .expect("policy JSON");
    doc["Statement"]
        .as_array()
        .expect("statements")
        .iter()
        .flat_map(|s| s["Action"].as_array().expect("action list").iter())
        .map(|a| a.as_str().expect("action").to_string())
        .collect()
}

/// A one-statement policy file `{name}.json` in `dir` allowing `actions`
/// plus their moto aliases.
pub fn moto_policy(dir: &Path, name: &str, actions: &[String]) -> PathBuf {
    let mut all: Vec<String> = actions.to_vec();
    for (aws, alias) in MOTO_ALIASES {
        if actions.iter().any(|a| a == aws) && !all.iter().any(|a| a == alias) {
            all.push(alias.to_string());
        }
    }
    let path = dir.join(format!("{name}.json"));
    let doc = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": all, "Resource": "*"}]});
    std::fs::write(&path, doc.to_string()).expect("write policy");
    path
}

/// The whole shipped policy, for moto.
pub fn full_moto_policy(dir: &Path) -> PathBuf {
    moto_policy(dir, "full", &policy_actions())
}

/// A fresh folder under the target's test scratch space.
pub fn scratch(test: &str, name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("{test}-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}
