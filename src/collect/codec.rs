//! Decoders for the encodings AWS wraps documents in: base64 (the credential
//! report) and percent-encoding (IAM policy documents).

/// Standard base64 with padding; whitespace is skipped. `None` on any
/// other character or a bad length.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let mut buffer = 0u32;
    let mut bits = 0;
    let mut padding = 0;
    for c in text.bytes().filter(|c| !c.is_ascii_whitespace()) {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => {
                padding += 1;
                continue;
            }
            _ => return None,
        };
        if padding > 0 {
            return None;
        }
        buffer = (buffer << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    let complete =
        (bits == 0 && padding == 0) || (bits == 4 && padding == 2) || (bits == 2 && padding == 1);
    complete.then_some(out)
}

/// Decodes `%XX` escapes (and `+` as space is NOT applied: IAM encodes per
/// RFC 3986). `None` on a malformed escape or invalid UTF-8.
pub fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            // Both must be hex digits: `from_str_radix` alone also takes a
            // sign, so `%+7` decoded to 0x07 (found by fuzzing).
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64() {
        let cases: &[(&str, Option<&[u8]>)] = &[
            ("", Some(b"")),
            ("Zg==", Some(b"f")),
            ("Zm8=", Some(b"fo")),
            ("Zm9v", Some(b"foo")),
            ("Zm9v\nYmFy", Some(b"foobar")),
            ("dXNlcixhcm4K", Some(b"user,arn\n")),
            ("Zm9v!", None),
            ("Zg=", None),
            ("Zg==Zg==", None),
            ("Z", None),
        ];
        for (text, want) in cases {
            assert_eq!(base64_decode(text).as_deref(), *want, "{text:?}");
        }
    }

    #[test]
    fn percent() {
        let cases: &[(&str, Option<&str>)] = &[
            (
                "%7B%22Version%22%3A%222012-10-17%22%7D",
                Some(r#"{"Version":"2012-10-17"}"#),
            ),
            ("plain", Some("plain")),
            ("a+b", Some("a+b")),
            ("%E2%9C%93", Some("✓")),
            ("%", None),
            ("%4", None),
            ("%zz", None),
            ("%FF", None),
            // Found by fuzzing: a sign is not a hex digit.
            ("%+7", None),
            ("%-1", None),
        ];
        for (text, want) in cases {
            assert_eq!(percent_decode(text).as_deref(), *want, "{text:?}");
        }
    }
}
