//! `server::routes::parse_query`: the API's query strings. Properties: at
//! most `MAX_QUERY_PARAMS` pairs, and re-encoding the decoded pairs parses
//! back to the same pairs.
#![no_main]

use dspm_audit::server::routes::{parse_query, MAX_QUERY_PARAMS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(pairs) = parse_query(query) else {
        return;
    };
    assert!(pairs.len() <= MAX_QUERY_PARAMS);
    let encoded: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    let again = parse_query(&encoded.join("&")).expect("re-encoded pairs parse");
    assert_eq!(again, pairs, "{query:?}");
});

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            b' ' => "+".to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
