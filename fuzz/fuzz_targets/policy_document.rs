//! The policy-document analyser: IAM and bucket policies as JSON, split into
//! statements and asked the questions the checks ask (full admin, TLS-only
//! bucket), plus the IAM wildcard matcher on the document's own strings.
#![no_main]

use dspm_audit::evaluate::policy::{self, Statement};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const BUCKETS: &[&str] = &["arn:aws:s3:::acme", "arn:aws-cn:s3:::a.b-c", ""];

fuzz_target!(|data: &[u8]| {
    let Ok(document) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let Ok(statements) = policy::statements(&document) else {
        return;
    };
    // A statement list or a single statement object; never more statements
    // than the document holds.
    let held = match document.get("Statement") {
        Some(Value::Array(list)) => list.len(),
        _ => 1,
    };
    assert_eq!(statements.len(), held);
    for s in &statements {
        if s.is_full_admin() {
            assert!(s.allow && s.not_actions.is_empty());
        }
        for bucket in BUCKETS {
            if s.denies_insecure_transport(bucket) {
                assert!(!s.allow && s.any_principal && s.condition.is_some());
            }
        }
        for action in s.actions.iter().chain(&s.not_actions) {
            // A pattern matches itself when it holds no `?`; `*` matches all.
            if !action.contains('?') {
                assert!(policy::wildcard_match(action, action), "{action:?}");
            }
            assert!(policy::action_matches("*", action));
            let _ = policy::action_matches(action, "s3:GetObject");
        }
        for resource in &s.resources {
            let _ = policy::wildcard_match(resource, "arn:aws:s3:::acme/*");
        }
    }
    let _ = statements.iter().any(Statement::is_full_admin);
});
