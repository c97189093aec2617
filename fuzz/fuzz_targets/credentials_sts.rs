//! STS `AssumeRole` / `AssumeRoleWithWebIdentity` XML answers:
//! `aws::credentials::sts::parse_credentials`.
#![no_main]

use dspm_audit::aws::credentials::sts::parse_credentials;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for result in ["AssumeRoleResult", "AssumeRoleWithWebIdentityResult"] {
        if let Ok(assumed) = parse_credentials(text, result) {
            assert!(!assumed.credentials.access_key_id.is_empty());
            assert!(!assumed.credentials.secret_access_key.is_empty());
            let _ = format!("{:?}", assumed.credentials);
        }
    }
});
