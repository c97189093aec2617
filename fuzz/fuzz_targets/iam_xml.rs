//! Every IAM query-XML answer parser on the same input: list pages with
//! their markers, the account summary, the password policy, policy
//! versions (URL-encoded JSON inside XML) and the two credential-report
//! calls (state, then base64 CSV, which is parsed on).
#![no_main]

use dspm_audit::aws::{xml, AwsError};
use dspm_audit::collect::iam;
use libfuzzer_sys::fuzz_target;

const LISTS: &[(&str, &str)] = &[
    ("ListUsersResult", "Users"),
    ("ListAttachedUserPoliciesResult", "AttachedPolicies"),
    ("ListUserPoliciesResult", "PolicyNames"),
    ("ListPoliciesResult", "Policies"),
];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for (result, list) in LISTS {
        // What the collectors do with each page: walk `list/member` and
        // read the fields they need.
        let mut visit = |node: roxmltree::Node| -> Result<(), AwsError> {
            if let Some(l) = xml::child(node, list) {
                for member in xml::children(l, "member") {
                    for field in [
                        "UserName",
                        "Arn",
                        "PolicyName",
                        "PolicyArn",
                        "DefaultVersionId",
                    ] {
                        let _ = xml::child_text(member, field);
                    }
                    let _ = xml::child_text(member, "AttachmentCount").map(str::parse::<u64>);
                    let _ = member.text();
                }
            }
            Ok(())
        };
        if let Ok(Some(marker)) = iam::parse_page(text, result, &mut visit) {
            assert!(!marker.is_empty(), "a truncated page needs a marker");
        }
    }
    let _ = iam::parse_account_summary(text);
    let _ = iam::parse_password_policy(text);
    let _ = iam::parse_policy_version(text);
    if let Ok(state) = iam::report_state(text) {
        assert!(!state.is_empty());
    }
    if let Ok(csv) = iam::report_content(text) {
        let _ = iam::parse_credential_report(&csv);
    }
});
