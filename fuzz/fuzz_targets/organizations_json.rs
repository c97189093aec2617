//! AWS Organizations' JSON 1.1 answers: bytes as the client reads them
//! (`serde_json::from_slice`), then every parser on the value:
//! DescribeOrganization, a page of ListParents / ListPoliciesForTarget, and
//! each listed policy summary.
#![no_main]

use dspm_audit::collect::organizations;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    if let Ok(org) = organizations::parse_organization(&body) {
        for field in [
            &org.id,
            &org.arn,
            &org.management_account_id,
            &org.feature_set,
        ] {
            assert!(!field.is_empty());
        }
    }
    for key in ["Parents", "Policies"] {
        let Ok((items, next)) = organizations::parse_page(&body, key) else {
            continue;
        };
        assert!(next.is_none_or(|t| !t.is_empty()));
        for item in &items {
            if let Ok(policy) = organizations::parse_policy_summary(item, "r-root") {
                assert!(!policy.id.is_empty() && !policy.name.is_empty());
                assert_eq!(policy.target, "r-root");
            }
        }
    }
});
