//! `collect::base64_decode` and `collect::percent_decode`, checked against
//! reference encoders/decoders written here:
//! - percent: the decoder agrees with a strict RFC 3986 decoder, and
//!   encoding any string then decoding gives it back;
//! - base64: encoding any bytes then decoding gives them back, and
//!   whatever input decodes has the length its canonical encoding has.
#![no_main]

use dspm_audit::collect::{base64_decode, percent_decode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    assert_eq!(base64_decode(&base64_encode(data)).as_deref(), Some(data));
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    assert_eq!(
        percent_decode(text),
        reference_percent_decode(text),
        "{text:?}"
    );
    assert_eq!(percent_decode(&percent_encode(text)).as_deref(), Some(text));
    if let Some(bytes) = base64_decode(text) {
        // Whatever decodes re-encodes to the same length (padding is
        // required, whitespace is skipped).
        let significant = text.bytes().filter(|b| !b.is_ascii_whitespace()).count();
        assert_eq!(base64_encode(&bytes).len(), significant, "{text:?}");
    }
});

fn reference_percent_decode(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = |c: u8| (c as char).to_digit(16);
            let hi = hex(*b.get(i + 1)?)?;
            let lo = hex(*b.get(i + 2)?)?;
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
