//! `aws::error::parse_error_body`: AWS error documents in every protocol
//! (query XML, S3 XML, JSON with `__type`), with the error-type header.
//!
//! Input: a first line `STATUS[ HEADER]`, then the body. Without a newline
//! (or with an unreadable first line) the whole input is the body of a 400.
#![no_main]

use dspm_audit::aws::error::parse_error_body;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (status, header, body) = split(data);
    let error = parse_error_body(status, header, body);
    assert!(!error.code.is_empty(), "an error always has a code");
    assert!(!error.message.is_empty(), "and a message");
    assert_eq!(error.http_status, Some(status));
    // The classifications must not panic either.
    let _ = (
        error.is_retryable(),
        error.is_throttling(),
        error.to_string(),
    );
});

fn split(data: &[u8]) -> (u16, Option<&str>, &[u8]) {
    let Some(newline) = data.iter().position(|b| *b == b'\n') else {
        return (400, None, data);
    };
    let Ok(first) = std::str::from_utf8(&data[..newline]) else {
        return (400, None, data);
    };
    let (status, header) = match first.split_once(' ') {
        Some((s, h)) => (s, Some(h)),
        None => (first, None),
    };
    match status.parse() {
        Ok(status) => (status, header, &data[newline + 1..]),
        Err(_) => (400, None, data),
    }
}
