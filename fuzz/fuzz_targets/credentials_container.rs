//! The container credentials endpoint's JSON answer (ECS task role, EKS Pod
//! Identity): `aws::credentials::container::parse_response`.
#![no_main]

use dspm_audit::aws::credentials::container::parse_response;
use dspm_audit::timestamp::Timestamp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(creds) = parse_response(data) {
        assert!(!creds.access_key_id.is_empty());
        assert!(!creds.secret_access_key.is_empty());
        if let Some(t) = creds.expiration {
            assert_eq!(Timestamp::parse(&t.to_rfc3339()), Ok(t));
        }
        // Debug output redacts; it must not panic on any key id.
        let _ = format!("{creds:?}");
    }
});
