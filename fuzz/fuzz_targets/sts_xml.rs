//! `sts:GetCallerIdentity`'s answer: the identity every audit starts from.
#![no_main]

use dspm_audit::collect::sts;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(account) = sts::parse_caller_identity(text) {
        assert!(!account.id.is_empty());
        assert!(!account.partition.is_empty());
        assert!(account.caller_arn.starts_with("arn:"));
        assert_eq!(
            account.caller_arn.split(':').nth(1),
            Some(account.partition.as_str())
        );
    }
});
