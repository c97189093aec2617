//! Errors from AWS calls, and reading AWS's error documents.

use std::fmt;

use super::xml;
use crate::timestamp::Timestamp;

/// A failed AWS call, after retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsError {
    /// AWS's error code, or one of ours for failures below HTTP:
    /// `ConnectionFailed`, `Timeout`, `MalformedResponse`, `InvalidRequest`.
    pub code: String,
    pub message: String,
    pub http_status: Option<u16>,
    /// `x-amz-bucket-region` of an S3 redirect, so the caller can retry there.
    pub bucket_region: Option<String>,
    /// The response's `Date`, used to correct clock skew.
    pub server_time: Option<Timestamp>,
}

impl AwsError {
    pub fn new(code: &str, message: impl Into<String>) -> AwsError {
        AwsError {
            code: code.to_string(),
            message: message.into(),
            http_status: None,
            bucket_region: None,
            server_time: None,
        }
    }

    pub fn malformed(what: impl fmt::Display) -> AwsError {
        AwsError::new("MalformedResponse", format!("unreadable response: {what}"))
    }

    /// Whether a later attempt may succeed: server faults, throttling and
    /// transport failures. Client errors such as `AccessDenied` are final.
    pub fn is_retryable(&self) -> bool {
        if self.is_throttling() || is_transient_code(&self.code) {
            return true;
        }
        matches!(self.http_status, Some(500 | 502 | 503 | 504))
    }

    pub fn is_throttling(&self) -> bool {
        is_throttling_code(&self.code) || self.http_status == Some(429)
    }
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.http_status {
            Some(status) => write!(f, "{} (HTTP {status}): {}", self.code, self.message),
            None => write!(f, "{}: {}", self.code, self.message),
        }
    }
}

impl std::error::Error for AwsError {}

/// Throttling codes across AWS protocols (the SDKs' standard retry set).
fn is_throttling_code(code: &str) -> bool {
    matches!(
        code,
        "Throttling"
            | "ThrottlingException"
            | "ThrottledException"
            | "RequestThrottledException"
            | "TooManyRequestsException"
            | "ProvisionedThroughputExceededException"
            | "TransactionInProgressException"
            | "RequestLimitExceeded"
            | "BandwidthLimitExceeded"
            | "RequestThrottled"
            | "SlowDown"
            | "PriorRequestNotComplete"
            | "EC2ThrottledException"
    )
}

fn is_transient_code(code: &str) -> bool {
    matches!(
        code,
        "RequestTimeout"
            | "RequestTimeoutException"
            | "InternalError"
            | "InternalFailure"
            | "ServiceUnavailable"
            | "ConnectionFailed"
            | "Timeout"
            | "IDPCommunicationError"
            | "MalformedResponse"
    )
}

/// Reads the code and message of an AWS error response in any of the
/// protocols we speak. Falls back to the HTTP status when the body says
/// nothing usable (S3 answers HEAD and some 403s with an empty body).
pub fn parse_error_body(status: u16, error_type_header: Option<&str>, body: &[u8]) -> AwsError {
    let text = String::from_utf8_lossy(body);
    let trimmed = text.trim_start();
    let parsed = if trimmed.starts_with('<') {
        xml_error(trimmed)
    } else if trimmed.starts_with('{') {
        json_error(trimmed)
    } else {
        None
    };
    // A header that names no code (empty, `#`, `:...`) is no header: it
    // gave errors an empty code (found by fuzzing).
    let header_code = error_type_header
        .map(header_error_code)
        .filter(|code| !code.is_empty());
    let (code, message) = match (parsed, header_code) {
        (Some((code, message)), _) if !code.is_empty() => (code, message),
        (parsed, Some(code)) => (code, parsed.map(|(_, m)| m).unwrap_or_default()),
        _ => (status_code_name(status).to_string(), String::new()),
    };
    let message = if message.is_empty() {
        format!("HTTP {status} with no error message")
    } else {
        scrub(&message, &[])
    };
    AwsError {
        code,
        message,
        http_status: Some(status),
        bucket_region: None,
        server_time: None,
    }
}

/// Longest AWS error message kept; the rest is cut.
const MAX_MESSAGE_CHARS: usize = 400;

/// Makes an AWS error message safe to log and report. Some messages quote
/// the request back: `SignatureDoesNotMatch` carries the canonical request,
/// with the session token and the credential scope in it. Everything from
/// such a quotation on is cut, values after `x-amz-security-token`,
/// `Signature=` and `Credential=` are masked, `secrets` (the credentials in
/// use) are masked wherever they appear, and the message is shortened.
pub fn scrub(message: &str, secrets: &[&str]) -> String {
    const QUOTES: [&str; 4] = [
        "The Canonical String",
        "The String-to-Sign",
        "\n\n",
        "\r\n\r\n",
    ];
    let cut = QUOTES
        .iter()
        .filter_map(|q| message.find(q))
        .min()
        .unwrap_or(message.len());
    let mut text = message[..cut].trim_end().to_string();
    for secret in secrets.iter().filter(|s| s.len() >= 8) {
        text = text.replace(secret, "** redacted **");
    }
    for marker in [
        "x-amz-security-token:",
        "X-Amz-Security-Token=",
        "Signature=",
        "Credential=",
    ] {
        text = mask_after(&text, marker);
    }
    if text.chars().count() > MAX_MESSAGE_CHARS {
        text = text.chars().take(MAX_MESSAGE_CHARS).collect::<String>() + "…";
    }
    text
}

/// Masks the value after each (case-insensitive) `marker`, up to the next
/// space, comma, `&`, quote or line end.
fn mask_after(text: &str, marker: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let needle = marker.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut rest = 0;
    while let Some(found) = lower[rest..].find(&needle) {
        let value_start = rest + found + needle.len();
        let value_end = text[value_start..]
            .find(|c: char| c.is_whitespace() || matches!(c, ',' | '&' | '\'' | '"'))
            .map_or(text.len(), |i| value_start + i);
        out.push_str(&text[rest..value_start]);
        if value_end > value_start {
            out.push_str("** redacted **");
        }
        rest = value_end;
    }
    out.push_str(&text[rest..]);
    out
}

fn xml_error(text: &str) -> Option<(String, String)> {
    let doc = roxmltree::Document::parse(text).ok()?;
    let error = doc.descendants().find(|n| n.has_tag_name("Error"))?;
    let code = xml::child_text(error, "Code").unwrap_or_default();
    let message = xml::child_text(error, "Message").unwrap_or_default();
    Some((code.to_string(), message.to_string()))
}

fn json_error(text: &str) -> Option<(String, String)> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    let code = value
        .get("__type")
        .or_else(|| value.get("code"))
        .or_else(|| value.get("Code"))
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    let message = value
        .get("message")
        .or_else(|| value.get("Message"))
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    Some((json_error_code(code), message.to_string()))
}

/// JSON error types may carry a namespace (`aws.foo#CodeName`) and a
/// trailing `:http://...` suffix; the code is the bare name.
fn json_error_code(raw: &str) -> String {
    let name = raw.rsplit('#').next().unwrap_or(raw);
    name.split(':').next().unwrap_or(name).to_string()
}

fn header_error_code(raw: &str) -> String {
    json_error_code(raw)
}

fn status_code_name(status: u16) -> &'static str {
    match status {
        301 | 307 => "PermanentRedirect",
        400 => "BadRequest",
        403 => "AccessDenied",
        404 => "NotFound",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        _ => "HttpError",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_error_documents_of_every_protocol() {
        let cases: &[(u16, Option<&str>, &str, &str, &str)] = &[
            (
                403,
                None,
                "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>\
                 <Message>User is not authorized</Message></Error></ErrorResponse>",
                "AccessDenied",
                "User is not authorized",
            ),
            (
                404,
                None,
                "<?xml version=\"1.0\"?><Error><Code>NoSuchBucketPolicy</Code>\
                 <Message>The bucket policy does not exist</Message></Error>",
                "NoSuchBucketPolicy",
                "The bucket policy does not exist",
            ),
            (
                400,
                None,
                r#"{"__type":"AWSOrganizationsNotInUseException","Message":"not in org"}"#,
                "AWSOrganizationsNotInUseException",
                "not in org",
            ),
            (
                400,
                None,
                r#"{"__type":"com.amazon#ThrottlingException","message":"slow"}"#,
                "ThrottlingException",
                "slow",
            ),
            (
                400,
                Some("AccessDeniedException:http://internal"),
                r#"{"message":"no"}"#,
                "AccessDeniedException",
                "no",
            ),
            (
                503,
                None,
                "",
                "ServiceUnavailable",
                "HTTP 503 with no error message",
            ),
            (
                403,
                None,
                "<Error><Code>",
                "AccessDenied",
                "HTTP 403 with no error message",
            ),
            (
                500,
                None,
                "not xml",
                "InternalError",
                "HTTP 500 with no error message",
            ),
            // Found by fuzzing: an error-type header without a code.
            (4, Some(""), "", "HttpError", "HTTP 4 with no error message"),
            (
                403,
                Some("#:http://internal"),
                "<Error><Message>m</Message></Error>",
                "AccessDenied",
                "HTTP 403 with no error message",
            ),
        ];
        for (status, header, body, code, message) in cases {
            let error = parse_error_body(*status, *header, body.as_bytes());
            assert_eq!(error.code, *code, "{body}");
            assert_eq!(error.message, *message, "{body}");
            assert_eq!(error.http_status, Some(*status));
        }
    }

    #[test]
    fn messages_never_carry_credentials() {
        let canonical = "The request signature we calculated does not match the signature you \
            provided. Check your AWS Secret Access Key and signing method.\n\nThe Canonical String \
            for this request should have been\n'POST\n/\n\nx-amz-security-token:FwoGZXIvTOKEN\n'";
        let cases: &[(&str, &[&str], &str)] = &[
            (canonical, &[], "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method."),
            ("Bad x-amz-security-token:FwoGZXIvTOKEN here", &[], "Bad x-amz-security-token:** redacted ** here"),
            ("Credential=ASIAKEY/20260101/us-east-1/s3, Signature=abc123", &[], "Credential=** redacted **, Signature=** redacted **"),
            ("echo ASIAQWERTYUIOP and wJalrSECRETKEY", &["ASIAQWERTYUIOP", "wJalrSECRETKEY"], "echo ** redacted ** and ** redacted **"),
            ("short key abc stays", &["abc"], "short key abc stays"),
            ("Access Denied", &[], "Access Denied"),
        ];
        for (message, secrets, want) in cases {
            assert_eq!(scrub(message, secrets), *want, "{message}");
        }
        assert_eq!(
            scrub(&"x".repeat(1000), &[]).chars().count(),
            MAX_MESSAGE_CHARS + 1
        );
        let xml = format!("<ErrorResponse><Error><Code>SignatureDoesNotMatch</Code><Message>{}</Message></Error></ErrorResponse>",
            canonical.replace('\'', "&apos;"));
        let error = parse_error_body(403, None, xml.as_bytes());
        assert!(!error.message.contains("TOKEN"), "{}", error.message);
    }

    #[test]
    fn retries_only_what_may_pass_later() {
        let cases = [
            ("Throttling", Some(400), true),
            ("SlowDown", Some(503), true),
            ("InternalError", Some(500), true),
            ("ConnectionFailed", None, true),
            ("Whatever", Some(502), true),
            ("TooManyRequests", Some(429), true),
            ("AccessDenied", Some(403), false),
            ("NoSuchBucket", Some(404), false),
            ("MalformedResponse", Some(200), true),
            ("ResponseTooLarge", Some(200), false),
        ];
        for (code, status, want) in cases {
            let mut e = AwsError::new(code, "m");
            e.http_status = status;
            assert_eq!(e.is_retryable(), want, "{code}");
        }
    }
}
