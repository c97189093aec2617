//! Container credentials: the ECS/Fargate task role and EKS Pod Identity.
//!
//! As the AWS SDKs' container credential provider:
//!
//! - `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` is a path (and query) on the
//!   ECS agent at `http://169.254.170.2`; when it is set,
//!   `AWS_CONTAINER_CREDENTIALS_FULL_URI` is ignored.
//! - `AWS_CONTAINER_CREDENTIALS_FULL_URI` is a whole URL. https may go to
//!   any host; plain http only to loopback (127.0.0.0/8, `::1`,
//!   `localhost`), the ECS agent `169.254.170.2`, or the EKS Pod Identity
//!   agent `169.254.170.23` / `fd00:ec2::23`. Any other URL is refused when
//!   the configuration is read, before anything is sent. Host names other
//!   than `localhost` are refused for plain http without being resolved
//!   (stricter than the SDKs, which resolve them and check every address).
//! - The `Authorization` header is the content of
//!   `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` (read again for every fetch,
//!   since the platform rotates it; surrounding whitespace trimmed), else
//!   `AWS_CONTAINER_AUTHORIZATION_TOKEN`, sent as is. A token with CR or LF
//!   (or another control character) is refused: it would split the request.
//! - The answer is JSON with `AccessKeyId`, `SecretAccessKey`, `Token` and
//!   `Expiration` (ISO 8601, `Z` or a numeric offset).
//!
//! The endpoint is local, so timeouts are short (2 s to connect, 5 s per
//! attempt) and a fetch makes up to 3 attempts on transport errors, 5xx and
//! 429. No proxy and no redirect is ever followed.
//!
//! **Test hook**: `DSPM_TEST_CONTAINER_CREDENTIALS_BASE` replaces the
//! `http://169.254.170.2` base of the relative URI, so that tests can point
//! it at a stand-in server. It is for tests only and accepted only when it
//! is an http(s) URL on loopback; using it logs a warning.

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

use log::{debug, warn};
use serde_json::Value;

use super::cache::Fetch;
use super::sts::scrub;
use super::{Credentials, CredentialsError};
use crate::aws::endpoint::is_loopback_host;
use crate::aws::error::parse_error_body;
use crate::timestamp::Timestamp;

pub const RELATIVE_URI_VAR: &str = "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI";
pub const FULL_URI_VAR: &str = "AWS_CONTAINER_CREDENTIALS_FULL_URI";
pub const TOKEN_VAR: &str = "AWS_CONTAINER_AUTHORIZATION_TOKEN";
pub const TOKEN_FILE_VAR: &str = "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE";
/// Test-only override of [`ECS_BASE`]; loopback URLs only.
pub const TEST_BASE_VAR: &str = "DSPM_TEST_CONTAINER_CREDENTIALS_BASE";

/// The ECS agent, base of `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`.
pub const ECS_BASE: &str = "http://169.254.170.2";
const ECS_HOST: Ipv4Addr = Ipv4Addr::new(169, 254, 170, 2);
const EKS_HOST_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 170, 23);
const EKS_HOST_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x23);

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_ATTEMPTS: u32 = 3;
const RETRY_BASE: Duration = Duration::from_millis(100);
const MAX_RESPONSE_BYTES: u64 = 64 * 1024;
const MAX_TOKEN_BYTES: u64 = 16 * 1024;

/// A parsed credentials URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerUri {
    pub https: bool,
    /// IPv6 without brackets.
    pub host: String,
    pub port: Option<u16>,
    /// Path and query, starting with `/`.
    pub path_and_query: String,
}

impl ContainerUri {
    /// Parses `http(s)://host[:port][/path][?query]`; refuses user info,
    /// fragments, whitespace and control characters.
    pub fn parse(text: &str) -> Result<ContainerUri, String> {
        let (https, rest) = if let Some(rest) = text.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = text.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err("must start with http:// or https://".into());
        };
        if rest.chars().any(|c| c.is_whitespace() || c.is_control()) || rest.contains('#') {
            return Err("must not contain whitespace, control characters or a fragment".into());
        }
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if authority.contains('@') {
            return Err("must not contain user info".into());
        }
        let (host, port) =
            crate::aws::endpoint::split_host_port(authority).ok_or("has no valid host")?;
        let host = if https {
            host
        } else {
            crate::aws::endpoint::pin_localhost(host)
        };
        let path_and_query = if tail.starts_with('/') {
            tail.to_string()
        } else {
            format!("/{tail}")
        };
        Ok(ContainerUri {
            https,
            host,
            port,
            path_and_query,
        })
    }

    /// Whether the URL may be used: https, or http to an allowed host.
    pub fn is_allowed(&self) -> bool {
        self.https || is_allowed_http_host(&self.host)
    }

    /// `scheme://host[:port]`, for messages.
    pub fn origin(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let scheme = if self.https { "https" } else { "http" };
        match self.port {
            Some(p) => format!("{scheme}://{host}:{p}"),
            None => format!("{scheme}://{host}"),
        }
    }

    pub fn url(&self) -> String {
        format!("{}{}", self.origin(), self.path_and_query)
    }
}

/// Plain http is allowed to loopback, the ECS agent and the EKS Pod
/// Identity agent, by address (or the name `localhost`).
pub fn is_allowed_http_host(host: &str) -> bool {
    if is_loopback_host(host) {
        return true;
    }
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => ip == ECS_HOST || ip == EKS_HOST_V4,
        Ok(IpAddr::V6(ip)) => ip == EKS_HOST_V6,
        Err(_) => false,
    }
}

/// Where the `Authorization` header comes from.
#[derive(Clone)]
enum Token {
    None,
    Value(String),
    File(PathBuf),
}

/// Which platform the URL points at, for the startup log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerKind {
    /// `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` on the ECS agent.
    EcsTaskRole,
    /// `AWS_CONTAINER_CREDENTIALS_FULL_URI` at the Pod Identity agent.
    EksPodIdentity,
    /// Any other `AWS_CONTAINER_CREDENTIALS_FULL_URI`.
    FullUri,
}

/// The container credentials source. Wrap it in a
/// [`CachedCredentials`](super::CachedCredentials) to use it.
pub struct ContainerCredentials {
    uri: ContainerUri,
    kind: ContainerKind,
    token: Token,
    agent: ureq::Agent,
}

impl std::fmt::Debug for ContainerCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let token = match &self.token {
            Token::None => "none".to_string(),
            Token::Value(_) => format!("{TOKEN_VAR} (** redacted **)"),
            Token::File(path) => format!("{TOKEN_FILE_VAR} {}", path.display()),
        };
        f.debug_struct("ContainerCredentials")
            .field("origin", &self.uri.origin())
            .field("kind", &self.kind)
            .field("token", &token)
            .finish()
    }
}

impl ContainerCredentials {
    /// `Ok(None)` when neither URI variable is set. Refuses disallowed URLs
    /// and unusable tokens here, before anything is sent. Sends nothing.
    pub fn from_lookup(
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<ContainerCredentials>, CredentialsError> {
        let (uri, kind) = if let Some(relative) = lookup(RELATIVE_URI_VAR) {
            if !relative.starts_with('/') {
                return Err(CredentialsError(format!(
                    "{RELATIVE_URI_VAR} must be a path starting with /"
                )));
            }
            let base = match lookup(TEST_BASE_VAR) {
                Some(base) => {
                    let parsed = ContainerUri::parse(&base)
                        .ok()
                        .filter(|u| is_loopback_host(&u.host) && u.path_and_query == "/");
                    if parsed.is_none() {
                        return Err(CredentialsError(format!(
                            "{TEST_BASE_VAR} is a test hook and is accepted only as an \
                             http(s) URL on loopback without a path (http://127.0.0.1:PORT); \
                             refused"
                        )));
                    }
                    warn!("test hook {TEST_BASE_VAR} in use: {RELATIVE_URI_VAR} is read from {base}, not {ECS_BASE}");
                    base.trim_end_matches('/').to_string()
                }
                None => ECS_BASE.to_string(),
            };
            let uri = ContainerUri::parse(&format!("{base}{relative}")).map_err(|why| {
                CredentialsError(format!("{RELATIVE_URI_VAR} is not a valid path: {why}"))
            })?;
            (uri, ContainerKind::EcsTaskRole)
        } else if let Some(full) = lookup(FULL_URI_VAR) {
            let uri = ContainerUri::parse(&full)
                .map_err(|why| CredentialsError(format!("{FULL_URI_VAR} {why}")))?;
            if !uri.is_allowed() {
                return Err(CredentialsError(format!(
                    "{FULL_URI_VAR} {} refused: plain http is allowed only to loopback, \
                     169.254.170.2 (ECS), 169.254.170.23 or fd00:ec2::23 (EKS Pod Identity); \
                     use https for any other host",
                    uri.origin()
                )));
            }
            let kind = match uri.host.parse::<IpAddr>() {
                Ok(IpAddr::V4(ip)) if ip == EKS_HOST_V4 => ContainerKind::EksPodIdentity,
                Ok(IpAddr::V6(ip)) if ip == EKS_HOST_V6 => ContainerKind::EksPodIdentity,
                _ => ContainerKind::FullUri,
            };
            (uri, kind)
        } else {
            return Ok(None);
        };

        let token = if let Some(path) = lookup(TOKEN_FILE_VAR) {
            Token::File(PathBuf::from(path))
        } else if let Some(value) = lookup(TOKEN_VAR) {
            check_token(TOKEN_VAR, &value)?;
            Token::Value(value)
        } else {
            Token::None
        };
        Ok(Some(ContainerCredentials::new(uri, kind, token)))
    }

    fn new(uri: ContainerUri, kind: ContainerKind, token: Token) -> ContainerCredentials {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(None)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_global(Some(ATTEMPT_TIMEOUT))
            .user_agent(concat!("dspm-audit/", env!("CARGO_PKG_VERSION")))
            .max_response_header_size(16 * 1024)
            .build()
            .new_agent();
        ContainerCredentials {
            uri,
            kind,
            token,
            agent,
        }
    }

    pub fn kind(&self) -> ContainerKind {
        self.kind
    }

    pub fn uri(&self) -> &ContainerUri {
        &self.uri
    }

    /// The `Authorization` value for this fetch.
    fn authorization(&self) -> Result<Option<String>, CredentialsError> {
        match &self.token {
            Token::None => Ok(None),
            Token::Value(v) => Ok(Some(v.clone())),
            Token::File(path) => {
                let fail = |why: String| {
                    CredentialsError(format!(
                        "cannot read the container authorization token \
                         {TOKEN_FILE_VAR}={}: {why}",
                        path.display()
                    ))
                };
                let file = std::fs::File::open(path).map_err(|e| fail(e.to_string()))?;
                let mut raw = Vec::new();
                file.take(MAX_TOKEN_BYTES + 1)
                    .read_to_end(&mut raw)
                    .map_err(|e| fail(e.to_string()))?;
                if raw.len() as u64 > MAX_TOKEN_BYTES {
                    return Err(fail(format!("larger than {MAX_TOKEN_BYTES} bytes")));
                }
                let text = String::from_utf8(raw).map_err(|_| fail("not UTF-8 text".into()))?;
                let token =
                    text.trim_matches(|c: char| c == ' ' || c == '\t' || c == '\r' || c == '\n');
                if token.is_empty() {
                    return Err(fail("the file is empty".into()));
                }
                check_token(TOKEN_FILE_VAR, token)?;
                Ok(Some(token.to_string()))
            }
        }
    }

    fn attempt(&self, url: &str, token: Option<&str>) -> Result<Credentials, Failure> {
        let mut request = self.agent.get(url).header("Accept", "application/json");
        if let Some(token) = token {
            request = request.header("Authorization", token);
        }
        let mut response = request.call().map_err(|e| Failure {
            retry: true,
            message: format!("request failed: {}", transport_message(&e)),
        })?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .read_to_vec()
            .map_err(|e| Failure {
                retry: true,
                message: format!("reading the answer failed: {}", transport_message(&e)),
            })?;
        if status != 200 {
            let error = parse_error_body(status, None, &body);
            return Err(Failure {
                retry: status >= 500 || status == 429,
                message: format!(
                    "answered HTTP {status}: {}: {}",
                    error.code,
                    clip(&error.message)
                ),
            });
        }
        parse_response(&body).map_err(|why| Failure {
            retry: false,
            message: why,
        })
    }
}

struct Failure {
    retry: bool,
    message: String,
}

impl Fetch for ContainerCredentials {
    fn fetch(&self) -> Result<Credentials, CredentialsError> {
        let url = self.uri.url();
        let mut attempt = 1;
        loop {
            // Read per attempt: the file may be rotated in between.
            let token = self.authorization()?;
            if !self.uri.is_allowed() {
                // Refused at configuration already; kept as a last guard.
                return Err(CredentialsError(format!(
                    "container credentials URL {} refused",
                    self.uri.origin()
                )));
            }
            match self.attempt(&url, token.as_deref()) {
                Ok(credentials) => return Ok(credentials),
                Err(failure) => {
                    let secrets: Vec<&str> = token.as_deref().into_iter().collect();
                    let message = scrub(&failure.message, &secrets);
                    debug!(
                        "container credentials from {} attempt {attempt} failed: {message}",
                        self.uri.origin()
                    );
                    if !failure.retry || attempt >= MAX_ATTEMPTS {
                        return Err(CredentialsError(format!(
                            "container credentials endpoint {} {message}{}",
                            self.uri.origin(),
                            if failure.retry {
                                format!(" (after {attempt} attempts)")
                            } else {
                                String::new()
                            }
                        )));
                    }
                    std::thread::sleep(RETRY_BASE * (1 << (attempt - 1)));
                    attempt += 1;
                }
            }
        }
    }

    fn describe(&self) -> String {
        match self.kind {
            ContainerKind::EcsTaskRole => "container credentials (ECS task role)".into(),
            ContainerKind::EksPodIdentity => "container credentials (EKS Pod Identity)".into(),
            ContainerKind::FullUri => format!("container credentials ({FULL_URI_VAR})"),
        }
    }
}

/// Refuses a token that cannot travel as one header value. The error
/// names the variable, never the token.
fn check_token(var: &str, token: &str) -> Result<(), CredentialsError> {
    if token.contains(['\r', '\n']) {
        return Err(CredentialsError(format!(
            "{var} contains a line break (CR or LF), which would split the HTTP request: \
             refused (the token is not shown)"
        )));
    }
    if token.chars().any(|c| c.is_control() && c != '\t') {
        return Err(CredentialsError(format!(
            "{var} contains control characters: refused (the token is not shown)"
        )));
    }
    Ok(())
}

/// Reads the endpoint's JSON answer. Errors name the field, never a value.
pub fn parse_response(body: &[u8]) -> Result<Credentials, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        format!(
            "answered with something that is not JSON ({})",
            e.classify_name()
        )
    })?;
    let object = value
        .as_object()
        .ok_or("answered with JSON that is not an object")?;
    let field = |name: &str| match object.get(name) {
        None | Some(Value::Null) => Err(format!("answered without {name}")),
        Some(Value::String(s)) if s.trim().is_empty() => {
            Err(format!("answered with an empty {name}"))
        }
        Some(Value::String(s)) => Ok(s.trim().to_string()),
        Some(_) => Err(format!("answered with a {name} that is not a string")),
    };
    let access_key_id = field("AccessKeyId")?;
    let secret_access_key = field("SecretAccessKey")?;
    let token = field("Token")?;
    let expiration = field("Expiration")?;
    let expiration = Timestamp::parse(&expiration)
        .map_err(|_| format!("answered with Expiration {expiration:?}, not an ISO 8601 time"))?;
    Ok(Credentials {
        access_key_id,
        secret_access_key,
        session_token: Some(token),
        expiration: Some(expiration),
    })
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "I/O error",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "data error",
            serde_json::error::Category::Eof => "truncated",
        }
    }
}

fn transport_message(error: &ureq::Error) -> String {
    match error {
        ureq::Error::Timeout(what) => format!("timed out ({what})"),
        ureq::Error::Io(e) => e.to_string(),
        ureq::Error::BodyExceedsLimit(limit) => format!("answer larger than {limit} bytes"),
        other => other.to_string(),
    }
}

/// At most 200 characters of an error message from the endpoint.
fn clip(text: &str) -> String {
    let mut out: String = text.chars().take(200).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_uri_policy() {
        let allowed = [
            "http://127.0.0.1:8080/creds",
            "http://127.1.2.3/creds",
            "http://localhost/get-credentials",
            "http://LOCALHOST:9/x",
            "http://[::1]:51679/creds?a=1",
            "http://169.254.170.2/v2/credentials/uuid",
            "http://169.254.170.23/v1/credentials",
            "http://[fd00:ec2::23]/v1/credentials",
            "http://[fd00:0ec2:0:0:0:0:0:23]:80/v1/credentials",
            "https://creds.example.com/v1",
            "https://10.1.2.3/v1",
        ];
        for text in allowed {
            let uri = ContainerUri::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert!(uri.is_allowed(), "{text} should be allowed");
        }
        let refused = [
            "http://169.254.171.23/v1/credentials",
            "http://169.254.169.254/latest/meta-data",
            "http://169.254.170.24/",
            "http://example.com/creds",
            "http://10.0.0.1:8080/creds",
            "http://[fd00:ec2::24]/v1/credentials",
            "http://[::ffff:127.0.0.1]/",
            "http://localhost.example.com/",
            "http://127.0.0.1.nip.io/",
        ];
        for text in refused {
            let uri = ContainerUri::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert!(!uri.is_allowed(), "{text} should be refused");
        }
        let malformed = [
            "ftp://127.0.0.1/",
            "127.0.0.1/creds",
            "http://user:pw@127.0.0.1/",
            "http://127.0.0.1@169.254.169.254/",
            "http://127.0.0.1/#frag",
            "http://127.0.0.1/a b",
            "http://127.0.0.1/a\r\nHost: x",
            "http://",
            "http://127.0.0.1:0/",
            "http://127.0.0.1:70000/",
            "http://[fd00:ec2::23/",
            "http://[::1]x/",
            "http://exa_mple/",
        ];
        for text in malformed {
            assert!(
                ContainerUri::parse(text).is_err(),
                "{text} should not parse"
            );
        }
    }

    fn lookup(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn configuration() {
        type Case = (
            &'static [(&'static str, &'static str)],
            Result<Option<(&'static str, ContainerKind)>, &'static str>,
        );
        let cases: &[Case] = &[
            (&[], Ok(None)),
            (
                &[(RELATIVE_URI_VAR, "/v2/credentials/abc")],
                Ok(Some((
                    "http://169.254.170.2/v2/credentials/abc",
                    ContainerKind::EcsTaskRole,
                ))),
            ),
            (
                &[
                    (RELATIVE_URI_VAR, "/v2/credentials/abc"),
                    (FULL_URI_VAR, "http://127.0.0.1:1/ignored"),
                ],
                Ok(Some((
                    "http://169.254.170.2/v2/credentials/abc",
                    ContainerKind::EcsTaskRole,
                ))),
            ),
            (
                &[
                    (RELATIVE_URI_VAR, "/get-credentials?a=1"),
                    (TEST_BASE_VAR, "http://127.0.0.1:4321"),
                ],
                Ok(Some((
                    "http://127.0.0.1:4321/get-credentials?a=1",
                    ContainerKind::EcsTaskRole,
                ))),
            ),
            (
                &[
                    (RELATIVE_URI_VAR, "/x"),
                    (TEST_BASE_VAR, "http://169.254.170.2"),
                ],
                Err("test hook"),
            ),
            (
                &[
                    (RELATIVE_URI_VAR, "/x"),
                    (TEST_BASE_VAR, "http://10.0.0.1:80"),
                ],
                Err("test hook"),
            ),
            (&[(RELATIVE_URI_VAR, "@evil/x")], Err("starting with /")),
            (
                &[(FULL_URI_VAR, "http://169.254.170.23/v1/credentials")],
                Ok(Some((
                    "http://169.254.170.23/v1/credentials",
                    ContainerKind::EksPodIdentity,
                ))),
            ),
            (
                &[(FULL_URI_VAR, "http://[fd00:ec2::23]/v1/credentials")],
                Ok(Some((
                    "http://[fd00:ec2::23]/v1/credentials",
                    ContainerKind::EksPodIdentity,
                ))),
            ),
            (
                &[(FULL_URI_VAR, "http://127.0.0.1:9911/creds")],
                Ok(Some((
                    "http://127.0.0.1:9911/creds",
                    ContainerKind::FullUri,
                ))),
            ),
            (
                &[(FULL_URI_VAR, "http://169.254.171.23/v1/credentials")],
                Err("refused"),
            ),
            (
                &[(FULL_URI_VAR, "http://example.com/creds")],
                Err("refused"),
            ),
            (
                &[
                    (FULL_URI_VAR, "http://127.0.0.1:9911/creds"),
                    (TOKEN_VAR, "abc\r\nX-Injected: 1"),
                ],
                Err("line break"),
            ),
            (
                &[
                    (FULL_URI_VAR, "http://127.0.0.1:9911/creds"),
                    (TOKEN_VAR, "abc\ndef"),
                ],
                Err("line break"),
            ),
        ];
        for (pairs, want) in cases {
            let got = ContainerCredentials::from_lookup(&lookup(pairs))
                .map(|c| c.map(|c| (c.uri().url(), c.kind())));
            match (got, want) {
                (Ok(got), Ok(want)) => {
                    assert_eq!(got, want.map(|(u, k)| (u.to_string(), k)), "{pairs:?}")
                }
                (Err(e), Err(fragment)) => {
                    assert!(e.0.contains(fragment), "{pairs:?}: {e}");
                    assert!(!e.0.contains("X-Injected") && !e.0.contains("def"), "{e}");
                }
                (got, want) => panic!("{pairs:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn parses_answers() {
        let at = |s: &str| Timestamp::parse(s).expect("time");
        type Case = (&'static str, Result<Option<&'static str>, &'static str>);
        let cases: &[Case] = &[
            (
                r#"{"AccessKeyId":"ASIAKEY","SecretAccessKey":"SECRET","Token":"TOKEN","Expiration":"2026-12-04T18:00:00Z"}"#,
                Ok(Some("2026-12-04T18:00:00Z")),
            ),
            (
                r#"{"AccessKeyId":"ASIAKEY","SecretAccessKey":"SECRET","Token":"TOKEN","Expiration":"2026-12-05T03:00:00+09:00","RoleArn":"arn:aws:iam::1:role/r","AccountId":"1"}"#,
                Ok(Some("2026-12-04T18:00:00Z")),
            ),
            (
                r#"{"AccessKeyId":"ASIAKEY","SecretAccessKey":"SECRET","Token":"TOKEN","Expiration":"2026-12-04T18:00:00.123Z"}"#,
                Ok(Some("2026-12-04T18:00:00Z")),
            ),
            (
                r#"{"AccessKeyId":"ASIAKEY","SecretAccessKey":"SECRET","Token":"TOKEN","Expiration":""}"#,
                Err("empty Expiration"),
            ),
            (
                r#"{"AccessKeyId":"ASIAKEY","SecretAccessKey":"SECRET","Token":"TOKEN"}"#,
                Err("without Expiration"),
            ),
            (
                r#"{"AccessKeyId":"ASIAKEY","SecretAccessKey":"SECRET","Expiration":"2026-12-04T18:00:00Z"}"#,
                Err("without Token"),
            ),
            (
                r#"{"AccessKeyId":"","SecretAccessKey":"SECRET","Token":"TOKEN","Expiration":"2026-12-04T18:00:00Z"}"#,
                Err("empty AccessKeyId"),
            ),
            (
                r#"{"AccessKeyId":"ASIAKEY","SecretAccessKey":null,"Token":"TOKEN","Expiration":"2026-12-04T18:00:00Z"}"#,
                Err("without SecretAccessKey"),
            ),
            (
                r#"{"AccessKeyId":"ASIAKEY","SecretAccessKey":7,"Token":"TOKEN","Expiration":"2026-12-04T18:00:00Z"}"#,
                Err("SecretAccessKey that is not a string"),
            ),
            (
                r#"{"AccessKeyId":"ASIAKEY","SecretAccessKey":"SECRET","Token":"TOKEN","Expiration":"soon"}"#,
                Err("not an ISO 8601 time"),
            ),
            (r#"["ASIAKEY","SECRET"]"#, Err("not an object")),
            (r#"{"AccessKeyId":"ASIAKEY","Secret"#, Err("not JSON")),
            ("", Err("not JSON")),
        ];
        for (body, want) in cases {
            match (parse_response(body.as_bytes()), want) {
                (Ok(c), Ok(expiration)) => {
                    assert_eq!(c.access_key_id, "ASIAKEY");
                    assert_eq!(c.secret_access_key, "SECRET");
                    assert_eq!(c.session_token.as_deref(), Some("TOKEN"));
                    assert_eq!(c.expiration, expiration.map(at), "{body}");
                }
                (Err(e), Err(fragment)) => {
                    assert!(e.contains(fragment), "{body}: {e}");
                    for secret in ["ASIAKEY", "SECRET", "TOKEN"] {
                        assert!(!e.contains(secret), "{e}");
                    }
                }
                (got, want) => panic!("{body}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn debug_hides_the_token() {
        let c = ContainerCredentials::from_lookup(&lookup(&[
            (FULL_URI_VAR, "http://127.0.0.1:9/creds"),
            (TOKEN_VAR, "Basic c2VjcmV0LXRva2Vu"),
        ]))
        .expect("valid")
        .expect("configured");
        let text = format!("{c:?}");
        assert!(!text.contains("c2VjcmV0LXRva2Vu"), "{text}");
    }
}
