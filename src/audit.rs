//! One audit, end to end: collect (or load) an inventory, evaluate it, and
//! report on the chosen frameworks. Both the server and the CLI run audits
//! through here.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use log::info;

use crate::aws::AwsClient;
use crate::config::AwsSettings;
use crate::inventory::{Inventory, SCHEMA_VERSION};
use crate::report::{self, frameworks, Collection, Framework, Report, Source};
use crate::{collect, demo};

/// What an audit reads.
#[derive(Clone)]
pub enum Target {
    /// A live account, collected afresh for every audit.
    Aws(Arc<AwsSettings>),
    /// A fixed inventory: a saved file or the embedded demo.
    Fixed {
        inventory: Arc<Inventory>,
        source: Source,
    },
}

impl Target {
    pub fn demo() -> Target {
        Target::Fixed {
            inventory: Arc::new(demo::inventory()),
            source: Source::Demo,
        }
    }

    pub fn from_file(path: &str) -> Result<Target, AuditError> {
        Ok(Target::Fixed {
            inventory: Arc::new(load_inventory(path)?),
            source: Source::Inventory,
        })
    }

    pub fn describe(&self) -> String {
        match self {
            Target::Aws(aws) => format!(
                "AWS, home region {}, credentials from {}",
                aws.region,
                aws.credentials.describe()
            ),
            Target::Fixed {
                source: Source::Demo,
                ..
            } => "the embedded demo inventory (fictional account)".into(),
            Target::Fixed { inventory, .. } => {
                format!("a saved inventory of account {}", inventory.account.id)
            }
        }
    }
}

/// Why an audit could not run at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditError {
    /// A request named something that does not exist.
    BadRequest(String),
    /// No usable credentials.
    Credentials(String),
    /// AWS could not be asked who we are.
    Aws(String),
    /// A saved inventory could not be read.
    Inventory(String),
}

impl fmt::Display for AuditError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuditError::BadRequest(m) => write!(f, "{m}"),
            AuditError::Credentials(m) => write!(f, "no usable AWS credentials: {m}"),
            AuditError::Aws(m) => write!(f, "could not start the audit: {m}"),
            AuditError::Inventory(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for AuditError {}

/// Resolves framework ids; none means all.
pub fn select_frameworks<S: AsRef<str>>(ids: &[S]) -> Result<Vec<&'static Framework>, AuditError> {
    if ids.is_empty() {
        return Ok(frameworks::all().iter().collect());
    }
    let mut selected: Vec<&'static Framework> = Vec::new();
    for id in ids {
        let id = id.as_ref();
        let framework = frameworks::find(id).ok_or_else(|| {
            AuditError::BadRequest(format!(
                "unknown framework {:?}; known: {}",
                crate::server::routes::clip(id),
                frameworks::ids().join(", ")
            ))
        })?;
        if !selected.iter().any(|f| f.id == framework.id) {
            selected.push(framework);
        }
    }
    Ok(selected)
}

/// Collects a live inventory with a fresh client (fresh retry quota and
/// call counts) sharing the settings' credentials.
pub fn collect_inventory(aws: &AwsSettings) -> Result<Inventory, AuditError> {
    collect_with_stats(aws).map(|(inventory, _)| inventory)
}

/// Like [`collect_inventory`], with what collection cost in AWS calls.
pub fn collect_with_stats(aws: &AwsSettings) -> Result<(Inventory, Collection), AuditError> {
    let client = AwsClient::new(
        aws.credentials.clone(),
        aws.endpoints.clone(),
        aws.client.clone(),
    );
    let inventory = collect::collect(&client).map_err(|e| {
        if e.code == "CredentialsUnavailable" {
            AuditError::Credentials(e.message)
        } else {
            AuditError::Aws(format!("sts:GetCallerIdentity failed: {e}"))
        }
    })?;
    let stats = &client.stats;
    let collection = Collection {
        aws_requests: stats.requests.load(Ordering::Relaxed),
        retries: stats.retries.load(Ordering::Relaxed),
        redirects: stats.redirects.load(Ordering::Relaxed),
        requests_by_action: stats.by_action(),
    };
    Ok((inventory, collection))
}

pub fn run(target: &Target, selected: &[&'static Framework]) -> Result<Report, AuditError> {
    let started = Instant::now();
    let (inventory, source, collection) = match target {
        Target::Aws(aws) => {
            let (inventory, collection) = collect_with_stats(aws)?;
            (Arc::new(inventory), Source::Aws, Some(collection))
        }
        Target::Fixed { inventory, source } => (inventory.clone(), *source, None),
    };
    let elapsed = || started.elapsed().as_millis() as u64;
    let report = report::build(&inventory, source, selected, elapsed());
    let report = Report {
        duration_ms: elapsed(),
        collection,
        ..report
    };
    for f in &report.frameworks {
        info!(
            "audit of {} for {}: {} PASS, {} FAIL, {} ERROR, {} MANUAL in {} ms",
            report.account.id,
            f.id,
            f.counts.pass,
            f.counts.fail,
            f.counts.error,
            f.counts.manual,
            report.duration_ms
        );
    }
    Ok(report)
}

/// Reads a saved inventory, refusing other schema versions.
pub fn load_inventory(path: &str) -> Result<Inventory, AuditError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| AuditError::Inventory(format!("cannot read inventory {path}: {e}")))?;
    parse_inventory(&text).map_err(|e| AuditError::Inventory(format!("inventory {path}: {e}")))
}

pub fn parse_inventory(text: &str) -> Result<Inventory, String> {
    let version = serde_json::from_str::<serde_json::Value>(text)
        .map_err(|e| format!("not JSON: {e}"))?
        .get("schema_version")
        .and_then(serde_json::Value::as_u64);
    if version != Some(u64::from(SCHEMA_VERSION)) {
        return Err(format!(
            "schema_version is {}, this build reads {SCHEMA_VERSION}",
            version.map_or("missing".to_string(), |v| v.to_string())
        ));
    }
    serde_json::from_str(text).map_err(|e| format!("not a dspm-audit inventory: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selects_frameworks() {
        assert_eq!(select_frameworks::<&str>(&[]).expect("all").len(), 2);
        let one = select_frameworks(&["isms-p-2023", "isms-p-2023"]).expect("known");
        assert_eq!(one.len(), 1);
        let err = select_frameworks(&["cis-aws-9"]).expect_err("unknown");
        assert!(
            err.to_string().contains("known: cis-aws-3.0, isms-p-2023"),
            "{err}"
        );
    }

    #[test]
    fn refuses_foreign_inventories() {
        let cases = [
            ("", "not JSON"),
            ("{}", "schema_version is missing"),
            (r#"{"schema_version": 2}"#, "schema_version is 2"),
            (r#"{"schema_version": 1}"#, "not a dspm-audit inventory"),
        ];
        for (text, fragment) in cases {
            let err = parse_inventory(text).expect_err(text);
            assert!(err.contains(fragment), "{text}: {err}");
        }
    }
}
