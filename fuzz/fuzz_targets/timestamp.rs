//! `Timestamp::parse` (ISO 8601 as AWS writes it) and `parse_http_date`
//! (IMF-fixdate `Date` headers), with the round trip every report relies on:
//! a parsed time formats as RFC 3339 and parses back to the same instant.
#![no_main]

use dspm_audit::timestamp::Timestamp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for parsed in [Timestamp::parse(text), Timestamp::parse_http_date(text)] {
        let Ok(t) = parsed else { continue };
        let formatted = t.to_rfc3339();
        assert_eq!(
            Timestamp::parse(&formatted),
            Ok(t),
            "{text:?} parsed to {} which formats as {formatted:?}",
            t.0
        );
        // Through serde too, as inventories and reports store it.
        let json = serde_json::to_string(&t).expect("a timestamp serializes");
        assert_eq!(serde_json::from_str::<Timestamp>(&json).ok(), Some(t));
        let _ = t.days_until(Timestamp(0));
    }
});
