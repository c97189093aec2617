//! Compliance frameworks: controls, their titles, and the checks that
//! evidence them. The mapping is data embedded in the binary
//! (`frameworks/*.json`), read once and validated by tests.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Framework {
    pub id: String,
    pub name: String,
    pub version: String,
    pub publisher: String,
    pub controls: Vec<Control>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Control {
    pub id: String,
    pub title: String,
    /// The official Korean title, for frameworks published in Korean.
    pub title_ko: Option<String>,
    pub checks: Vec<String>,
    /// No API can decide this control; it is reported as MANUAL.
    pub manual: bool,
    /// What an auditor verifies by hand, for manual controls.
    pub guidance: Option<String>,
}

const SOURCES: &[&str] = &[
    include_str!("frameworks/cis-aws-3.0.json"),
    include_str!("frameworks/isms-p-2023.json"),
];

/// Every framework, in a stable order.
pub fn all() -> &'static [Framework] {
    static FRAMEWORKS: OnceLock<Vec<Framework>> = OnceLock::new();
    FRAMEWORKS.get_or_init(|| {
        SOURCES
            .iter()
            .map(|text| {
                serde_json::from_str(text).expect("embedded framework data is valid (tested)")
            })
            .collect()
    })
}

pub fn find(id: &str) -> Option<&'static Framework> {
    all().iter().find(|f| f.id == id)
}

/// The ids of all frameworks, for error messages.
pub fn ids() -> Vec<&'static str> {
    all().iter().map(|f| f.id.as_str()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluate;
    use std::collections::HashSet;

    #[test]
    fn frameworks_are_well_formed() {
        let ids: Vec<_> = all().iter().map(|f| f.id.as_str()).collect();
        assert_eq!(ids, ["cis-aws-3.0", "isms-p-2023"]);
        for framework in all() {
            let mut seen = HashSet::new();
            for control in &framework.controls {
                assert!(
                    seen.insert(&control.id),
                    "{} repeats {}",
                    framework.id,
                    control.id
                );
                let parts: Vec<_> = control.id.split('.').collect();
                assert!(
                    (2..=3).contains(&parts.len())
                        && parts
                            .iter()
                            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())),
                    "{}: malformed control id {}",
                    framework.id,
                    control.id
                );
                assert!(!control.title.trim().is_empty());
                assert_eq!(
                    control.manual,
                    control.checks.is_empty(),
                    "{} {}",
                    framework.id,
                    control.id
                );
                assert_eq!(
                    control.manual,
                    control.guidance.is_some(),
                    "{} {}",
                    framework.id,
                    control.id
                );
                for check in &control.checks {
                    assert!(
                        evaluate::check(check).is_some(),
                        "{} {} maps unknown check {check}",
                        framework.id,
                        control.id
                    );
                }
            }
        }
        for control in &find("isms-p-2023").expect("present").controls {
            assert!(
                control.title_ko.as_deref().is_some_and(|t| !t.is_empty()),
                "ISMS-P {} lacks its Korean title",
                control.id
            );
        }
    }

    #[test]
    fn every_check_is_mapped_somewhere() {
        let mapped: HashSet<&str> = all()
            .iter()
            .flat_map(|f| {
                f.controls
                    .iter()
                    .flat_map(|c| c.checks.iter().map(String::as_str))
            })
            .collect();
        for check in evaluate::CHECKS {
            assert!(mapped.contains(check.id), "{} is in no framework", check.id);
        }
    }

    #[test]
    fn cis_mapping_matches_the_benchmark() {
        let cis = find("cis-aws-3.0").expect("present");
        let expected = [
            ("1.4", "iam.root_no_access_keys"),
            ("1.5", "iam.root_mfa"),
            ("1.8", "iam.password_min_length"),
            ("1.9", "iam.password_reuse_prevention"),
            ("1.10", "iam.console_user_mfa"),
            ("1.12", "iam.unused_credentials"),
            ("1.13", "iam.single_active_access_key"),
            ("1.14", "iam.access_key_rotation"),
            ("1.16", "iam.no_full_admin_policies"),
            ("2.1.1", "s3.bucket_tls_only"),
            ("2.1.2", "s3.bucket_mfa_delete"),
            ("2.1.4", "s3.bucket_block_public_access"),
        ];
        for (control, check) in expected {
            let c = cis
                .controls
                .iter()
                .find(|c| c.id == control)
                .unwrap_or_else(|| panic!("CIS {control} missing"));
            assert!(
                c.checks.iter().any(|k| k == check),
                "CIS {control} should map {check}"
            );
        }
    }
}
