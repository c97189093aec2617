//! AWS Organizations: is the account governed by service control policies?

use serde_json::json;

use super::iam::GLOBAL;
use super::{CheckInfo, Finding, Severity, Status};
use crate::inventory::{Inventory, Observed};

pub const SCP_IN_FORCE: CheckInfo = CheckInfo {
    id: "organizations.scp_in_force",
    service: "organizations",
    severity: Severity::Medium,
    title: "The account is governed by service control policies",
    description: "The account belongs to an AWS Organization with all features enabled, and at \
                  least one service control policy other than AWS's FullAWSAccess applies to it.",
};

pub fn evaluate(inventory: &Inventory) -> Vec<Finding> {
    let check = SCP_IN_FORCE.id;
    let account = &inventory.account.id;
    let org = &inventory.organizations;
    let finding = |status, reason: String, evidence| {
        Finding::new(check, account, GLOBAL, status, reason, evidence)
    };

    let organization = match &org.organization {
        Observed::Error(e) => {
            return vec![Finding::error(
                check,
                account,
                GLOBAL,
                "the account's organization",
                e,
            )]
        }
        Observed::Value(None) => {
            return vec![finding(
                Status::Fail,
                "the account is not in an AWS Organization".into(),
                json!({ "organization": null }),
            )]
        }
        Observed::Value(Some(o)) => o,
    };
    if organization.feature_set != "ALL" {
        return vec![finding(
            Status::Fail,
            format!(
                "the organization's feature set is {}, so service control policies cannot apply",
                organization.feature_set
            ),
            json!({ "organization_id": organization.id, "feature_set": organization.feature_set }),
        )];
    }
    let policies = match &org.service_control_policies {
        Observed::Error(e) => {
            return vec![Finding::error(
                check,
                account,
                GLOBAL,
                "the service control policies that apply to the account",
                e,
            )]
        }
        Observed::Value(p) => p,
    };
    let custom: Vec<_> = policies.iter().filter(|p| !p.aws_managed).collect();
    let evidence = json!({
        "organization_id": organization.id,
        "management_account_id": organization.management_account_id,
        "policies": policies
            .iter()
            .map(|p| json!({
                "id": p.id,
                "name": p.name,
                "target": p.target,
                "aws_managed": p.aws_managed,
            }))
            .collect::<Vec<_>>(),
    });
    if custom.is_empty() {
        finding(
            Status::Fail,
            "only AWS-managed service control policies (FullAWSAccess) apply to the account".into(),
            evidence,
        )
    } else {
        let names: Vec<&str> = custom.iter().map(|p| p.name.as_str()).collect();
        finding(
            Status::Pass,
            format!(
                "service control policies apply to the account: {}",
                names.join(", ")
            ),
            evidence,
        )
    }
    .into_iter_vec()
}

trait IntoVec {
    fn into_iter_vec(self) -> Vec<Finding>;
}

impl IntoVec for Finding {
    fn into_iter_vec(self) -> Vec<Finding> {
        vec![self]
    }
}
