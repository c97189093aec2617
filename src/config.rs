//! Operator settings, read from the environment once at startup.
//!
//! `AWS_REGION` is the one required setting for auditing AWS; everything
//! else has a default. A blank variable counts as unset. Numbers out of
//! range are configuration errors, reported with the variable's name.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::aws::credentials;
use crate::aws::{ClientSettings, CredentialsProvider, Endpoints};

/// A setting the operator must fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Reads a variable from the process environment; blank means unset.
pub fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// A lookup function over the process environment.
pub fn process_env() -> impl Fn(&str) -> Option<String> {
    env_var
}

/// Settings of the HTTP server.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// `DSPM_LISTEN`, default `0.0.0.0:8103`.
    pub listen: String,
    /// `DSPM_HTTP_WORKERS`: request-handling threads, default 8.
    pub workers: usize,
    /// `DSPM_MAX_CONCURRENT_AUDITS`: audits running at once, default 2;
    /// more are refused with 429.
    pub max_concurrent_audits: usize,
    /// `DSPM_SHUTDOWN_GRACE` (seconds, default 25): how long in-flight
    /// requests may finish after SIGTERM, under the 30 s that ECS and
    /// Kubernetes allow before SIGKILL.
    pub shutdown_grace: Duration,
    /// `DSPM_HTTP_READ_TIMEOUT_MS` (default 10 000): a client must send each
    /// piece of its request within this time, so slow clients cannot hold
    /// connections.
    pub read_timeout: Duration,
    /// The bearer token clients must present, from `DSPM_API_TOKEN_FILE`
    /// or `DSPM_API_TOKEN`; `None` leaves the API open.
    pub api_token: Option<ApiToken>,
}

/// A shared secret for API clients. Compared in constant time; never
/// printed.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken(Vec<u8>);

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiToken(** redacted **)")
    }
}

/// Shortest token accepted: a guessable token is worse than none.
const MIN_TOKEN_LENGTH: usize = 16;

impl ApiToken {
    pub fn new(text: &str) -> Result<ApiToken, ConfigError> {
        let token = text.trim();
        if token.len() < MIN_TOKEN_LENGTH {
            return Err(ConfigError(format!(
                "the API token must be at least {MIN_TOKEN_LENGTH} characters"
            )));
        }
        if token.bytes().any(|b| !b.is_ascii_graphic()) {
            return Err(ConfigError(
                "the API token must be printable ASCII without spaces".into(),
            ));
        }
        Ok(ApiToken(token.as_bytes().to_vec()))
    }

    /// Whether an `Authorization` header value carries this token, compared
    /// without an early exit so timing does not reveal how much matched.
    pub fn accepts(&self, authorization: Option<&str>) -> bool {
        // The scheme name is case-insensitive (RFC 9110, section 11.1).
        let presented = authorization.and_then(|h| {
            let (scheme, rest) = h.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(rest)
        });
        let Some(presented) = presented else {
            return false;
        };
        let presented = presented.trim().as_bytes();
        let mut difference = presented.len() ^ self.0.len();
        for (i, expected) in self.0.iter().enumerate() {
            let got = presented.get(i).copied().unwrap_or(0);
            difference |= usize::from(got ^ expected);
        }
        difference == 0
    }
}

pub const DEFAULT_LISTEN: &str = "0.0.0.0:8103";

impl ServerSettings {
    pub fn from_lookup(
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ServerSettings, ConfigError> {
        Ok(ServerSettings {
            listen: lookup("DSPM_LISTEN").unwrap_or_else(|| DEFAULT_LISTEN.to_string()),
            workers: number(lookup, "DSPM_HTTP_WORKERS", 8, 1..=256)?,
            max_concurrent_audits: number(lookup, "DSPM_MAX_CONCURRENT_AUDITS", 2, 1..=64)?,
            shutdown_grace: Duration::from_secs(number(
                lookup,
                "DSPM_SHUTDOWN_GRACE",
                25,
                0..=3600,
            )?),
            read_timeout: Duration::from_millis(number(
                lookup,
                "DSPM_HTTP_READ_TIMEOUT_MS",
                10_000,
                100..=300_000,
            )?),
            api_token: api_token(lookup)?,
        })
    }
}

/// A token variable that is set but blank is a mistake (a secret that
/// rendered empty), not a request for an open API: refuse to start.
pub fn refuse_blank_token_settings(
    raw: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    for name in ["DSPM_API_TOKEN_FILE", "DSPM_API_TOKEN"] {
        if raw(name).is_some_and(|v| v.trim().is_empty()) {
            return Err(ConfigError(format!(
                "{name} is set but empty: give it a value, or unset it to run without an API token"
            )));
        }
    }
    Ok(())
}

fn api_token(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Option<ApiToken>, ConfigError> {
    if let Some(path) = lookup("DSPM_API_TOKEN_FILE") {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| ConfigError(format!("DSPM_API_TOKEN_FILE {path}: cannot read it: {e}")))?;
        return ApiToken::new(&text)
            .map(Some)
            .map_err(|e| ConfigError(format!("DSPM_API_TOKEN_FILE {path}: {e}")));
    }
    match lookup("DSPM_API_TOKEN") {
        Some(text) => ApiToken::new(&text)
            .map(Some)
            .map_err(|e| ConfigError(format!("DSPM_API_TOKEN: {e}"))),
        None => Ok(None),
    }
}

/// Everything needed to audit a live AWS account.
pub struct AwsSettings {
    pub region: String,
    pub endpoints: Endpoints,
    pub credentials: Arc<dyn CredentialsProvider>,
    pub client: ClientSettings,
}

impl AwsSettings {
    pub fn from_lookup(
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<AwsSettings, ConfigError> {
        let region = lookup("AWS_REGION")
            .or_else(|| lookup("AWS_DEFAULT_REGION"))
            .ok_or_else(|| {
                ConfigError(
                    "AWS_REGION is not set: set it to the account's home region \
                 (e.g. AWS_REGION=ap-northeast-2), \
                 or audit offline with --demo or --inventory FILE"
                        .into(),
                )
            })?;
        if region.is_empty()
            || !region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(ConfigError(format!(
                "AWS_REGION {region:?} is not a region name"
            )));
        }
        let endpoints = Endpoints::from_lookup(&region, lookup).map_err(|e| ConfigError(e.0))?;
        let allow_long_term = flag(lookup, "DSPM_ALLOW_LONG_TERM_KEYS")?;
        let client = client_settings(lookup)?;
        // The chain: environment, web identity (EKS IRSA), container (ECS
        // task role, EKS Pod Identity), then DSPM_ASSUME_ROLE_ARN chaining.
        let credentials: Arc<dyn CredentialsProvider> =
            credentials::chain_from_lookup(lookup, &endpoints, &client, allow_long_term)
                .map_err(|e| ConfigError(e.0))?;
        Ok(AwsSettings {
            region,
            endpoints,
            credentials,
            client,
        })
    }
}

/// `DSPM_AWS_*` tuning: timeouts, attempts, concurrency.
pub fn client_settings(
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<ClientSettings, ConfigError> {
    let defaults = ClientSettings::default();
    Ok(ClientSettings {
        connect_timeout: Duration::from_millis(number(
            lookup,
            "DSPM_AWS_CONNECT_TIMEOUT_MS",
            defaults.connect_timeout.as_millis() as u64,
            10..=60_000,
        )?),
        call_timeout: Duration::from_millis(number(
            lookup,
            "DSPM_AWS_CALL_TIMEOUT_MS",
            defaults.call_timeout.as_millis() as u64,
            10..=300_000,
        )?),
        max_attempts: number(
            lookup,
            "DSPM_AWS_MAX_ATTEMPTS",
            defaults.max_attempts,
            1..=10,
        )?,
        retry_base: Duration::from_millis(number(
            lookup,
            "DSPM_AWS_RETRY_BASE_MS",
            defaults.retry_base.as_millis() as u64,
            0..=20_000,
        )?),
        concurrency: number(lookup, "DSPM_AWS_CONCURRENCY", defaults.concurrency, 1..=64)?,
    })
}

fn number<T>(
    lookup: &dyn Fn(&str) -> Option<String>,
    name: &str,
    default: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
{
    let Some(text) = lookup(name) else {
        return Ok(default);
    };
    match text.trim().parse::<T>() {
        Ok(v) if range.contains(&v) => Ok(v),
        _ => Err(ConfigError(format!(
            "{name}={text:?} is not a number from {} to {}",
            range.start(),
            range.end()
        ))),
    }
}

fn flag(lookup: &dyn Fn(&str) -> Option<String>, name: &str) -> Result<bool, ConfigError> {
    match lookup(name).as_deref().map(str::trim) {
        None => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("true") || v == "1" => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") || v == "0" => Ok(false),
        Some(v) => Err(ConfigError(format!("{name}={v:?} must be true or false"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn region_is_required_and_named() {
        let err = AwsSettings::from_lookup(&lookup(&[]))
            .err()
            .expect("must fail");
        assert!(err.0.contains("AWS_REGION is not set"), "{err}");
        let err = AwsSettings::from_lookup(&lookup(&[("AWS_REGION", "Seoul!")]))
            .err()
            .expect("must fail");
        assert!(err.0.contains("not a region name"), "{err}");
        let err = AwsSettings::from_lookup(&lookup(&[("AWS_REGION", "us-east-1")]))
            .err()
            .expect("no creds");
        assert!(err.0.contains("AWS_SESSION_TOKEN"), "{err}");
    }

    #[test]
    fn numbers_are_range_checked() {
        type Case = (
            &'static [(&'static str, &'static str)],
            Result<usize, &'static str>,
        );
        let cases: &[Case] = &[
            (&[], Ok(8)),
            (&[("DSPM_AWS_CONCURRENCY", "16")], Ok(16)),
            (
                &[("DSPM_AWS_CONCURRENCY", "0")],
                Err("DSPM_AWS_CONCURRENCY"),
            ),
            (&[("DSPM_AWS_CONCURRENCY", "many")], Err("is not a number")),
        ];
        for (env, want) in cases {
            let got = client_settings(&lookup(env))
                .map(|s| s.concurrency)
                .map_err(|e| e.0);
            match (got, want) {
                (Ok(v), Ok(w)) => assert_eq!(v, *w),
                (Err(e), Err(fragment)) => assert!(e.contains(fragment), "{e}"),
                (got, want) => panic!("{env:?}: {got:?} vs {want:?}"),
            }
        }
    }

    #[test]
    fn api_tokens() {
        let token = ApiToken::new("s3cr3t-t0ken-0123456789\n").expect("valid");
        let cases = [
            (Some("Bearer s3cr3t-t0ken-0123456789"), true),
            (Some("Bearer s3cr3t-t0ken-012345678"), false),
            (Some("Bearer s3cr3t-t0ken-01234567890"), false),
            (Some("bearer s3cr3t-t0ken-0123456789"), true),
            (Some("BEARER  s3cr3t-t0ken-0123456789"), true),
            (Some("Basic s3cr3t-t0ken-0123456789"), false),
            (Some("s3cr3t-t0ken-0123456789"), false),
            (Some("Bearer "), false),
            (None, false),
        ];
        for (header, want) in cases {
            assert_eq!(token.accepts(header), want, "{header:?}");
        }
        assert!(ApiToken::new("short").is_err());
        assert!(ApiToken::new("has a space in the middle!").is_err());
        assert_eq!(format!("{token:?}"), "ApiToken(** redacted **)");

        let err =
            ServerSettings::from_lookup(&lookup(&[("DSPM_API_TOKEN_FILE", "/nonexistent/token")]))
                .expect_err("unreadable");
        assert!(err.0.contains("DSPM_API_TOKEN_FILE"), "{err}");
    }

    #[test]
    fn blank_token_settings_are_refused() {
        let raw = lookup(&[("DSPM_API_TOKEN", "   ")]);
        let err = refuse_blank_token_settings(&raw).expect_err("blank");
        assert!(err.0.contains("DSPM_API_TOKEN is set but empty"), "{err}");
        assert!(refuse_blank_token_settings(&lookup(&[("DSPM_API_TOKEN_FILE", "")])).is_err());
        assert!(refuse_blank_token_settings(&lookup(&[])).is_ok());
    }

    #[test]
    fn flags() {
        assert_eq!(flag(&lookup(&[("F", "TRUE")]), "F"), Ok(true));
        assert_eq!(flag(&lookup(&[("F", "0")]), "F"), Ok(false));
        assert!(flag(&lookup(&[("F", "yes")]), "F").is_err());
    }
}
