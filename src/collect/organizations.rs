//! AWS Organizations: whether the account is in an organization, and the
//! service control policies that apply to it (attached to the account or
//! inherited from its OUs and root). Every `NextToken` is followed, also
//! after an empty page.
//!
//! Listing policies for targets is allowed only from the management account
//! or a delegated administrator; elsewhere it fails with `AccessDenied`, and
//! the SCP check reports ERROR rather than guessing.

use serde_json::{json, Value};

use super::failure;
use crate::aws::{AwsClient, AwsError, Service};
use crate::inventory::{CollectError, Organization, OrganizationsInventory, ServiceControlPolicy};

const TARGET_PREFIX: &str = "AWSOrganizationsV20161128";

/// An OU tree deeper than this is malformed (AWS allows five levels).
const MAX_DEPTH: usize = 10;

pub fn collect(client: &AwsClient, account_id: &str) -> OrganizationsInventory {
    let organization = describe_organization(client);
    let service_control_policies = match &organization {
        Ok(None) => Ok(Vec::new()),
        Ok(Some(_)) => scps_for_account(client, account_id),
        Err(e) => Err(e.clone()),
    };
    OrganizationsInventory {
        organization: organization.into(),
        service_control_policies: service_control_policies.into(),
    }
}

fn call(client: &AwsClient, action: &str, body: Value) -> Result<Value, CollectError> {
    client
        .json(Service::Organizations, TARGET_PREFIX, action, &body)
        .map_err(|e| failure(&format!("organizations:{action}"), e))
}

fn describe_organization(client: &AwsClient) -> Result<Option<Organization>, CollectError> {
    match call(client, "DescribeOrganization", json!({})) {
        Ok(body) => parse_organization(&body)
            .map(Some)
            .map_err(|e| failure("organizations:DescribeOrganization", e)),
        Err(e) if e.code == "AWSOrganizationsNotInUseException" => Ok(None),
        Err(e) => Err(e),
    }
}

pub fn parse_organization(body: &Value) -> Result<Organization, AwsError> {
    let org = body
        .get("Organization")
        .ok_or_else(|| AwsError::malformed("DescribeOrganization without Organization"))?;
    let field = |name: &str| {
        org.get(name)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .ok_or_else(|| AwsError::malformed(format!("Organization without {name}")))
    };
    Ok(Organization {
        id: field("Id")?,
        arn: field("Arn")?,
        management_account_id: field("MasterAccountId")?,
        feature_set: field("FeatureSet")?,
    })
}

/// Calls a paginated action and collects the array `key` of every page.
fn paginate(
    client: &AwsClient,
    action: &str,
    mut body: Value,
    key: &str,
) -> Result<Vec<Value>, CollectError> {
    let mut items = Vec::new();
    let mut seen_tokens = Vec::new();
    loop {
        let page = call(client, action, body.clone())?;
        let (page_items, next) =
            parse_page(&page, key).map_err(|e| failure(&format!("organizations:{action}"), e))?;
        items.extend(page_items);
        match next {
            Some(token) if !seen_tokens.contains(&token) => {
                seen_tokens.push(token.clone());
                body["NextToken"] = Value::String(token);
            }
            _ => return Ok(items),
        }
    }
}

/// One page: the items under `key` and the `NextToken`, if any.
pub fn parse_page(page: &Value, key: &str) -> Result<(Vec<Value>, Option<String>), AwsError> {
    let items = match page.get(key) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.clone(),
        Some(_) => return Err(AwsError::malformed(format!("{key} is not a list"))),
    };
    let next = page
        .get("NextToken")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    Ok((items, next))
}

fn scps_for_account(
    client: &AwsClient,
    account_id: &str,
) -> Result<Vec<ServiceControlPolicy>, CollectError> {
    let mut targets = vec![account_id.to_string()];
    let mut child = account_id.to_string();
    for _ in 0..MAX_DEPTH {
        let parents = paginate(
            client,
            "ListParents",
            json!({ "ChildId": child }),
            "Parents",
        )?;
        let Some(parent) = parents.first() else { break };
        let id = string_field(parent, "Id").map_err(|e| failure("organizations:ListParents", e))?;
        let is_root = parent.get("Type").and_then(Value::as_str) == Some("ROOT");
        targets.push(id.clone());
        if is_root {
            break;
        }
        child = id;
    }

    let mut policies = Vec::new();
    for target in targets {
        let body = json!({ "TargetId": target, "Filter": "SERVICE_CONTROL_POLICY" });
        for item in paginate(client, "ListPoliciesForTarget", body, "Policies")? {
            let policy = parse_policy_summary(&item, &target)
                .map_err(|e| failure("organizations:ListPoliciesForTarget", e))?;
            policies.push(policy);
        }
    }
    Ok(policies)
}

fn string_field(value: &Value, name: &str) -> Result<String, AwsError> {
    value
        .get(name)
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .ok_or_else(|| AwsError::malformed(format!("missing {name}")))
}

pub fn parse_policy_summary(item: &Value, target: &str) -> Result<ServiceControlPolicy, AwsError> {
    Ok(ServiceControlPolicy {
        id: string_field(item, "Id")?,
        name: string_field(item, "Name")?,
        arn: string_field(item, "Arn")?,
        aws_managed: item
            .get("AwsManaged")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        target: target.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn organization_and_pages() {
        let body = json!({"Organization": {"Id": "o-1", "Arn": "arn:aws:organizations::1:organization/o-1",
            "MasterAccountId": "111111111111", "FeatureSet": "ALL"}});
        assert_eq!(parse_organization(&body).expect("valid").feature_set, "ALL");
        assert!(parse_organization(&json!({"Organization": {"Id": "o-1"}})).is_err());

        let cases = [
            (
                json!({"Policies": [{"Id": "p"}], "NextToken": "t"}),
                1,
                Some("t"),
            ),
            (json!({"Policies": [], "NextToken": "t2"}), 0, Some("t2")),
            (json!({"Policies": [{"Id": "p"}]}), 1, None),
            (json!({"NextToken": ""}), 0, None),
        ];
        for (page, count, next) in cases {
            let (items, token) = parse_page(&page, "Policies").expect("valid");
            assert_eq!((items.len(), token.as_deref()), (count, next), "{page}");
        }
        assert!(parse_page(&json!({"Policies": {}}), "Policies").is_err());
    }

    #[test]
    fn policy_summaries() {
        let item = json!({"Id": "p-FullAWSAccess", "Name": "FullAWSAccess",
            "Arn": "arn:aws:organizations::aws:policy/service_control_policy/p-FullAWSAccess", "AwsManaged": true});
        let policy = parse_policy_summary(&item, "r-root").expect("valid");
        assert!(policy.aws_managed);
        assert_eq!(policy.target, "r-root");
        assert!(parse_policy_summary(&json!({"Id": "p"}), "t").is_err());
    }
}
