//! Reporting: findings mapped onto framework controls, with summaries.
//!
//! A finding becomes one result per control that the check evidences, so
//! an auditor reading one framework sees every resource under every
//! control. Manual controls appear once, for the account, as MANUAL.

pub mod frameworks;
mod table;

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{json, Value};

use crate::evaluate::{self, Finding, Severity, Status};
use crate::inventory::Inventory;
use crate::timestamp::Timestamp;

pub use frameworks::{Control, Framework};
pub use table::render_table;

/// Where the audited inventory came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Collected from AWS for this audit.
    Aws,
    /// A saved inventory file.
    Inventory,
    /// The fictional account embedded in the binary.
    Demo,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub report_version: u32,
    pub tool: Value,
    pub source: Source,
    pub account: crate::inventory::Account,
    pub region: String,
    pub collected_at: Timestamp,
    pub generated_at: Timestamp,
    pub duration_ms: u64,
    /// What collecting cost in AWS calls; absent for saved inventories.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collection: Option<Collection>,
    pub frameworks: Vec<FrameworkSummary>,
    pub results: Vec<AuditResult>,
}

/// AWS calls made by one collection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Collection {
    /// Every attempt, retries included.
    pub aws_requests: u64,
    pub retries: u64,
    /// S3 region redirects followed.
    pub redirects: u64,
    pub requests_by_action: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FrameworkSummary {
    pub id: String,
    pub name: String,
    pub version: String,
    pub counts: Counts,
    pub controls: Vec<ControlSummary>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ControlSummary {
    pub id: String,
    pub title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title_ko: Option<String>,
    pub status: ControlStatus,
    pub counts: Counts,
}

/// A control's overall state: FAIL if any resource fails, else ERROR if any
/// could not be evaluated, else PASS; NOT_APPLICABLE when no resource was
/// in scope (no buckets, say); MANUAL for controls no API decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ControlStatus {
    Pass,
    Fail,
    Error,
    Manual,
    NotApplicable,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    #[serde(rename = "PASS")]
    pub pass: usize,
    #[serde(rename = "FAIL")]
    pub fail: usize,
    #[serde(rename = "ERROR")]
    pub error: usize,
    #[serde(rename = "MANUAL")]
    pub manual: usize,
}

impl Counts {
    fn add(&mut self, status: Status) {
        match status {
            Status::Pass => self.pass += 1,
            Status::Fail => self.fail += 1,
            Status::Error => self.error += 1,
            Status::Manual => self.manual += 1,
        }
    }

    fn merge(&mut self, other: Counts) {
        self.pass += other.pass;
        self.fail += other.fail;
        self.error += other.error;
        self.manual += other.manual;
    }
}

/// One (framework, control, check, resource) verdict.
#[derive(Debug, Clone, Serialize)]
pub struct AuditResult {
    pub framework: String,
    pub control: String,
    pub control_title: String,
    pub check: Option<String>,
    pub resource: String,
    pub region: String,
    pub status: Status,
    pub severity: Option<Severity>,
    pub reason: String,
    pub evidence: Value,
}

/// Evaluates `inventory` and maps the findings onto `selected` frameworks.
pub fn build(
    inventory: &Inventory,
    source: Source,
    selected: &[&'static Framework],
    duration_ms: u64,
) -> Report {
    let findings = evaluate::evaluate(inventory);
    let mut by_check: BTreeMap<&str, Vec<&Finding>> = BTreeMap::new();
    for finding in &findings {
        by_check.entry(finding.check).or_default().push(finding);
    }

    let mut results = Vec::new();
    let mut summaries = Vec::new();
    for framework in selected {
        let mut counts = Counts::default();
        let mut controls = Vec::new();
        for control in &framework.controls {
            let rows = control_results(framework, control, inventory, &by_check);
            let mut control_counts = Counts::default();
            rows.iter().for_each(|r| control_counts.add(r.status));
            counts.merge(control_counts);
            controls.push(ControlSummary {
                id: control.id.clone(),
                title: control.title.clone(),
                title_ko: control.title_ko.clone(),
                status: control_status(control, control_counts),
                counts: control_counts,
            });
            results.extend(rows);
        }
        summaries.push(FrameworkSummary {
            id: framework.id.clone(),
            name: framework.name.clone(),
            version: framework.version.clone(),
            counts,
            controls,
        });
    }

    Report {
        report_version: 1,
        tool: json!({ "name": "dspm-audit", "version": env!("CARGO_PKG_VERSION") }),
        source,
        account: inventory.account.clone(),
        region: inventory.region.clone(),
        collected_at: inventory.collected_at,
        generated_at: Timestamp::now(),
        duration_ms,
        collection: None,
        frameworks: summaries,
        results,
    }
}

fn control_results(
    framework: &Framework,
    control: &Control,
    inventory: &Inventory,
    by_check: &BTreeMap<&str, Vec<&Finding>>,
) -> Vec<AuditResult> {
    if control.manual {
        return vec![AuditResult {
            framework: framework.id.clone(),
            control: control.id.clone(),
            control_title: control.title.clone(),
            check: None,
            resource: inventory.account.id.clone(),
            region: "global".into(),
            status: Status::Manual,
            severity: None,
            reason: control
                .guidance
                .clone()
                .unwrap_or_else(|| "an auditor verifies this control by hand".into()),
            evidence: Value::Null,
        }];
    }
    control
        .checks
        .iter()
        .flat_map(|check| by_check.get(check.as_str()).into_iter().flatten())
        .map(|finding| AuditResult {
            framework: framework.id.clone(),
            control: control.id.clone(),
            control_title: control.title.clone(),
            check: Some(finding.check.to_string()),
            resource: finding.resource.clone(),
            region: finding.region.clone(),
            status: finding.status,
            severity: evaluate::check(finding.check).map(|c| c.severity),
            reason: finding.reason.clone(),
            evidence: finding.evidence.clone(),
        })
        .collect()
}

fn control_status(control: &Control, counts: Counts) -> ControlStatus {
    if control.manual {
        ControlStatus::Manual
    } else if counts.fail > 0 {
        ControlStatus::Fail
    } else if counts.error > 0 {
        ControlStatus::Error
    } else if counts.pass > 0 {
        ControlStatus::Pass
    } else {
        ControlStatus::NotApplicable
    }
}

impl Report {
    /// Whether any result failed or could not be evaluated.
    pub fn has_failures_or_errors(&self) -> bool {
        self.results
            .iter()
            .any(|r| matches!(r.status, Status::Fail | Status::Error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn control(checks: &[&str]) -> Control {
        Control {
            id: "1.1".into(),
            title: "t".into(),
            title_ko: None,
            checks: checks.iter().map(|c| c.to_string()).collect(),
            manual: checks.is_empty(),
            guidance: None,
        }
    }

    #[test]
    fn control_status_table() {
        let counts = |pass, fail, error| Counts {
            pass,
            fail,
            error,
            manual: 0,
        };
        let cases = [
            (counts(3, 1, 1), ControlStatus::Fail),
            (counts(3, 0, 1), ControlStatus::Error),
            (counts(3, 0, 0), ControlStatus::Pass),
            (counts(0, 0, 0), ControlStatus::NotApplicable),
        ];
        for (c, want) in cases {
            assert_eq!(control_status(&control(&["x"]), c), want);
        }
        assert_eq!(
            control_status(&control(&[]), counts(0, 0, 0)),
            ControlStatus::Manual
        );
    }
}
