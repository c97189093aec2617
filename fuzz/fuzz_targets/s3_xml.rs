//! Every S3 REST-XML answer parser, on the same input: each checks its root
//! element, so a seed for one parser reaches that parser's body, and every
//! other parser sees a document of the wrong shape (which must be an error,
//! not a panic).
#![no_main]

use dspm_audit::collect::s3;
use dspm_audit::timestamp::Timestamp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The client hands parsers only UTF-8 (`Response::text`).
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok((buckets, next)) = s3::parse_list_buckets(text) {
        for b in &buckets {
            assert!(!b.name.is_empty(), "a listed bucket always has a name");
            if let Some(region) = &b.region {
                assert!(!region.is_empty());
            }
            if let Some(created) = b.created {
                assert_eq!(Timestamp::parse(&created.to_rfc3339()), Ok(created));
            }
        }
        assert!(next.is_none_or(|t| !t.is_empty()));
    }
    if let Ok(region) = s3::parse_location(text) {
        assert!(!region.is_empty(), "an empty location means us-east-1");
    }
    let _ = s3::parse_public_access_block(text);
    let _ = s3::parse_policy_status(text);
    let _ = s3::parse_acl(text);
    if let Ok(rules) = s3::parse_encryption(text) {
        assert!(rules.iter().all(|r| !r.algorithm.is_empty()));
    }
    let _ = s3::parse_versioning(text);
    if let Ok(Some(target)) = s3::parse_logging(text) {
        assert!(!target.target_bucket.is_empty());
    }
});
