//! A small, strict HTTP/1.1 server core: bounded in every dimension a client
//! controls.
//!
//! Why not a general-purpose server crate: the service runs inside customer
//! clusters and answers clients nobody vetted, so every connection must be
//! bounded in time (a per-request deadline, not just a per-read timeout),
//! every request head in size and header count, the body in length, and the
//! number of waiting connections in a queue that answers 503 when full.
//! The part of HTTP this API needs is small: origin-form targets,
//! `Content-Length` bodies (no chunked uploads), keep-alive.
//!
//! Everything here is pure: [`parse_request`] says whether the bytes a
//! connection has delivered hold a whole request, and is fuzzed. The
//! server module moves bytes and enforces the deadlines.

use std::io::{self, Write};
use std::time::Duration;

/// Limits on what one client may send.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub head_bytes: usize,
    pub headers: usize,
    pub body_bytes: usize,
    /// Time for a whole request (head and body) once its first byte arrived.
    pub request_deadline: Duration,
    /// Time a kept-alive connection may sit idle before the next request.
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            head_bytes: 16 * 1024,
            headers: 64,
            body_bytes: 64 * 1024,
            request_deadline: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(5),
        }
    }
}

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub method: String,
    /// The origin-form target: path and query.
    pub target: String,
    /// Minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// Header names lower-cased, values trimmed, in arrival order.
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the client wants the connection kept after this exchange.
    pub fn keep_alive(&self) -> bool {
        let connection = self.header("connection").unwrap_or("").to_ascii_lowercase();
        let tokens: Vec<&str> = connection.split(',').map(str::trim).collect();
        if self.minor_version == 0 {
            tokens.contains(&"keep-alive")
        } else {
            !tokens.contains(&"close")
        }
    }

    /// The declared body length. Chunked or otherwise encoded bodies are
    /// refused: this API's bodies are small JSON documents.
    pub fn body_length(&self) -> Result<usize, HttpError> {
        if self.header("transfer-encoding").is_some() {
            return Err(HttpError::new(
                411,
                "send the body with Content-Length, not Transfer-Encoding",
            ));
        }
        let mut lengths = self.headers.iter().filter(|(n, _)| n == "content-length");
        let Some((_, first)) = lengths.next() else {
            return Ok(0);
        };
        if lengths.any(|(_, other)| other != first) {
            return Err(HttpError::new(400, "conflicting Content-Length headers"));
        }
        if first.is_empty() || !first.bytes().all(|b| b.is_ascii_digit()) || first.len() > 12 {
            return Err(HttpError::new(400, "Content-Length is not a number"));
        }
        first
            .parse()
            .map_err(|_| HttpError::new(400, "Content-Length is not a number"))
    }
}

/// A request that cannot be served, with the status that says why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    pub status: u16,
    pub message: String,
}

impl HttpError {
    pub fn new(status: u16, message: impl Into<String>) -> HttpError {
        HttpError {
            status,
            message: message.into(),
        }
    }
}

/// Parses a request head (request line and header lines, without the final
/// empty line). Strict: a bare LF, a control character, obsolete line
/// folding or a header without a name is a 400.
pub fn parse_head(bytes: &[u8], limits: &Limits) -> Result<Head, HttpError> {
    let text =
        std::str::from_utf8(bytes).map_err(|_| HttpError::new(400, "request head is not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    let (method, target, minor_version) = parse_request_line(request_line)?;

    let mut headers = Vec::new();
    for line in lines {
        if headers.len() == limits.headers {
            return Err(HttpError::new(
                431,
                format!("more than {} header fields", limits.headers),
            ));
        }
        headers.push(parse_header_line(line)?);
    }
    Ok(Head {
        method,
        target,
        minor_version,
        headers,
    })
}

fn parse_request_line(line: &str) -> Result<(String, String, u8), HttpError> {
    let bad = || HttpError::new(400, "malformed request line");
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    if method.is_empty() || !method.bytes().all(is_token_byte) {
        return Err(bad());
    }
    if !target.starts_with('/') || !target.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(HttpError::new(
            400,
            "the request target must be a path starting with /",
        ));
    }
    let minor_version = match version {
        "HTTP/1.1" => 1,
        "HTTP/1.0" => 0,
        v if v.starts_with("HTTP/") => {
            return Err(HttpError::new(505, "only HTTP/1.0 and HTTP/1.1 are served"))
        }
        _ => return Err(bad()),
    };
    Ok((method.to_string(), target.to_string(), minor_version))
}

fn parse_header_line(line: &str) -> Result<(String, String), HttpError> {
    let bad = |why: &str| HttpError::new(400, format!("malformed header field: {why}"));
    if line.starts_with([' ', '\t']) {
        return Err(bad("obsolete line folding"));
    }
    let (name, value) = line.split_once(':').ok_or_else(|| bad("no colon"))?;
    if name.is_empty() || !name.bytes().all(is_token_byte) {
        return Err(bad("invalid name"));
    }
    let value = value.trim_matches([' ', '\t']);
    if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err(bad("control character in value"));
    }
    Ok((name.to_ascii_lowercase(), value.to_string()))
}

/// RFC 9110 token characters.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The state of a request being received, from the bytes so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Parse {
    /// More bytes are needed.
    Incomplete,
    /// A whole request: its head, its body, and how many bytes it used (the
    /// rest belongs to the next request on the connection).
    Complete {
        head: Head,
        body: Vec<u8>,
        consumed: usize,
    },
    /// A request that must be refused; the connection is closed after.
    Refused(HttpError),
}

/// Looks at the bytes received on a connection and says whether they hold
/// a whole request, within the head, header and body limits.
pub fn parse_request(buffer: &[u8], limits: &Limits) -> Parse {
    let Some(head_end) = find_head_end(buffer) else {
        // The head may be `head_bytes` long plus its 4-byte terminator, of
        // which up to 3 bytes may already be here: refusing at
        // `head_bytes` refused a request that would have fit, depending
        // on how TCP split it (found by fuzzing).
        if buffer.len() > limits.head_bytes + 3 {
            return Parse::Refused(head_too_large(limits));
        }
        return Parse::Incomplete;
    };
    if head_end > limits.head_bytes {
        return Parse::Refused(head_too_large(limits));
    }
    let head = match parse_head(&buffer[..head_end], limits) {
        Ok(head) => head,
        Err(e) => return Parse::Refused(e),
    };
    let length = match head.body_length() {
        Ok(n) if n > limits.body_bytes => {
            return Parse::Refused(HttpError::new(
                413,
                format!("request body larger than {} bytes", limits.body_bytes),
            ))
        }
        Ok(n) => n,
        Err(e) => return Parse::Refused(e),
    };
    if let Err(e) = single_fields(&head) {
        return Parse::Refused(e);
    }
    let body_start = head_end + 4;
    if buffer.len() < body_start + length {
        return Parse::Incomplete;
    }
    Parse::Complete {
        body: buffer[body_start..body_start + length].to_vec(),
        consumed: body_start + length,
        head,
    }
}

/// Fields that must not be repeated: an HTTP/1.1 request names exactly one
/// `Host` (RFC 9112, section 3.2), and two `Authorization` fields would
/// leave which one counts to chance.
fn single_fields(head: &Head) -> Result<(), HttpError> {
    let count = |name: &str| head.headers.iter().filter(|(n, _)| n == name).count();
    if head.minor_version == 1 && count("host") != 1 {
        return Err(HttpError::new(
            400,
            "an HTTP/1.1 request needs exactly one Host header",
        ));
    }
    if count("authorization") > 1 {
        return Err(HttpError::new(400, "more than one Authorization header"));
    }
    Ok(())
}

/// Whether the client waits for `100 Continue` before sending its body.
pub fn expects_continue(buffer: &[u8]) -> bool {
    let Some(head_end) = find_head_end(buffer) else {
        return false;
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_ascii_lowercase();
    head.split("\r\n")
        .any(|line| line.replace(' ', "") == "expect:100-continue")
}

fn head_too_large(limits: &Limits) -> HttpError {
    HttpError::new(
        431,
        format!("request head larger than {} bytes", limits.head_bytes),
    )
}

fn find_head_end(buffer: &[u8]) -> Option<usize> {
    buffer.windows(4).position(|w| w == b"\r\n\r\n")
}

/// Writes one response. `body` is omitted for HEAD but its length is sent.
pub fn write_response(
    stream: &mut impl Write,
    status: u16,
    headers: &[(&str, String)],
    body: &[u8],
    head_only: bool,
    keep_alive: bool,
) -> io::Result<()> {
    let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    out.push_str(if keep_alive {
        "Connection: keep-alive\r\n\r\n"
    } else {
        "Connection: close\r\n\r\n"
    });
    let mut bytes = out.into_bytes();
    if !head_only {
        bytes.extend_from_slice(body);
    }
    stream.write_all(&bytes)?;
    stream.flush()
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Head, u16> {
        parse_head(text.as_bytes(), &Limits::default()).map_err(|e| e.status)
    }

    #[test]
    fn request_heads() {
        let ok = parse(
            "GET /v1/audit?framework=x HTTP/1.1\r\nHost: a\r\nX-Thing:  v \r\nContent-Length: 3",
        )
        .expect("valid");
        assert_eq!(
            (ok.method.as_str(), ok.target.as_str(), ok.minor_version),
            ("GET", "/v1/audit?framework=x", 1)
        );
        assert_eq!(ok.header("x-thing"), Some("v"));
        assert_eq!(ok.body_length(), Ok(3));

        let refused: &[(&str, u16)] = &[
            ("", 400),
            ("GET / HTTP/1.1 extra", 400),
            ("GET  / HTTP/1.1", 400),
            ("GET http://evil/ HTTP/1.1", 400),
            ("GET * HTTP/1.1", 400),
            ("G(T / HTTP/1.1", 400),
            ("GET / HTTP/2.0", 505),
            ("GET / FTP/1.0", 400),
            ("GET / HTTP/1.1\r\nNo colon", 400),
            ("GET / HTTP/1.1\r\n: empty name", 400),
            ("GET / HTTP/1.1\r\nBad Name: v", 400),
            ("GET / HTTP/1.1\r\nA: b\r\n folded", 400),
            ("GET / HTTP/1.1\r\nA: b\x01c", 400),
            ("GET /\x7f HTTP/1.1", 400),
        ];
        for (text, status) in refused {
            assert_eq!(parse(text).map(|_| ()), Err(*status), "{text:?}");
        }
        let many = format!("GET / HTTP/1.1{}", "\r\nA: b".repeat(65));
        assert_eq!(parse(&many).map(|_| ()), Err(431));
        assert_eq!(
            parse_head(&[0xff, 0xfe], &Limits::default())
                .map(|_| ())
                .map_err(|e| e.status),
            Err(400)
        );
    }

    #[test]
    fn bodies_and_connections() {
        let head = |extra: &str| parse(&format!("POST / HTTP/1.1{extra}")).expect("valid");
        let cases: &[(&str, Result<usize, u16>)] = &[
            ("", Ok(0)),
            ("\r\nContent-Length: 10", Ok(10)),
            ("\r\nContent-Length: 10\r\nContent-Length: 10", Ok(10)),
            ("\r\nContent-Length: 10\r\nContent-Length: 11", Err(400)),
            ("\r\nContent-Length: -1", Err(400)),
            ("\r\nContent-Length: 1e3", Err(400)),
            ("\r\nContent-Length: 99999999999999999999", Err(400)),
            ("\r\nTransfer-Encoding: chunked", Err(411)),
        ];
        for (extra, want) in cases {
            assert_eq!(
                head(extra).body_length().map_err(|e| e.status),
                *want,
                "{extra:?}"
            );
        }
        assert!(head("").keep_alive());
        assert!(!head("\r\nConnection: close").keep_alive());
        assert!(!parse("GET / HTTP/1.0").expect("valid").keep_alive());
        assert!(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive")
            .expect("valid")
            .keep_alive());
    }

    #[test]
    fn whole_requests_from_partial_bytes() {
        let limits = Limits {
            head_bytes: 64,
            body_bytes: 8,
            ..Limits::default()
        };
        let complete = |text: &str| match parse_request(text.as_bytes(), &limits) {
            Parse::Complete { body, consumed, .. } => {
                Ok((String::from_utf8(body).expect("utf-8"), consumed))
            }
            Parse::Incomplete => Err(0),
            Parse::Refused(e) => Err(e.status),
        };
        let cases: &[(&str, Result<(&str, usize), u16>)] = &[
            ("GET / HTTP/1.0\r\n", Err(0)),
            ("GET / HTTP/1.0\r\n\r\n", Ok(("", 18))),
            ("GET / HTTP/1.0\r\n\r\nGET /next", Ok(("", 18))),
            ("POST / HTTP/1.0\r\nContent-Length: 4\r\n\r\nab", Err(0)),
            (
                "POST / HTTP/1.0\r\nContent-Length: 4\r\n\r\nabcdXX",
                Ok(("abcd", 42)),
            ),
            ("POST / HTTP/1.0\r\nContent-Length: 9\r\n\r\n", Err(413)),
            (
                "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
                Err(411),
            ),
            ("BAD\r\n\r\n", Err(400)),
            ("GET / HTTP/1.1\r\n\r\n", Err(400)),
            ("GET / HTTP/1.1\r\nHost: a\r\n\r\n", Ok(("", 27))),
            ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", Err(400)),
            (
                "GET / HTTP/1.0\r\nAuthorization: a\r\nAuthorization: b\r\n\r\n",
                Err(400),
            ),
        ];
        for (text, want) in cases {
            let got = complete(text);
            let want = want.map(|(b, n)| (b.to_string(), n));
            assert_eq!(got, want, "{text:?}");
        }
        let long = format!("GET /{} HTTP/1.0", "a".repeat(80));
        assert_eq!(
            complete(&long),
            Err(431),
            "no end in sight and over the limit"
        );
        // Found by fuzzing: a head of exactly `head_bytes` (64) whose
        // terminator is still arriving is incomplete, not refused.
        let line = format!("GET /{} HTTP/1.0", "a".repeat(50));
        let fits: &[(&str, Result<(&str, usize), u16>)] = &[
            ("\r", Err(0)),
            ("\r\n", Err(0)),
            ("\r\n\r", Err(0)),
            ("\r\n\r\n", Ok(("", 68))),
            ("\r\nAB", Err(431)),
        ];
        for (tail, want) in fits {
            let want = want.map(|(b, n)| (b.to_string(), n));
            assert_eq!(complete(&format!("{line}{tail}")), want, "{tail:?}");
        }
        assert!(expects_continue(
            b"POST / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n"
        ));
        assert!(!expects_continue(b"POST / HTTP/1.1\r\n\r\n"));
    }
}
