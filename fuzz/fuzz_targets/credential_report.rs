//! The IAM credential report CSV (after base64 decoding), parsed by header
//! names with RFC 4180 quoting.
#![no_main]

use dspm_audit::collect::parse_credential_report;
use dspm_audit::timestamp::Timestamp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(csv) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(rows) = parse_credential_report(csv) else {
        return;
    };
    // Every row comes from one non-blank line after the header.
    let lines = csv.lines().filter(|l| !l.trim().is_empty()).count();
    assert_eq!(rows.len(), lines - 1);
    for row in &rows {
        let _ = row.is_root();
        let dates = [
            row.user_creation_time,
            row.password_last_used,
            row.password_last_changed,
        ]
        .into_iter()
        .chain(
            row.access_keys
                .iter()
                .flat_map(|k| [k.last_rotated, k.last_used]),
        );
        for t in dates.flatten() {
            assert_eq!(Timestamp::parse(&t.to_rfc3339()), Ok(t));
        }
    }
});
