//! AWS credentials and where they come from.
//!
//! The product runs on temporary credentials injected by the platform. The
//! chain, first configured source wins (a blank variable counts as unset):
//!
//! 1. the environment: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//!    `AWS_SESSION_TOKEN`. Long-term keys (no session token) are refused
//!    unless `DSPM_ALLOW_LONG_TERM_KEYS=true`;
//! 2. web identity, EKS IRSA ([`web_identity`]): `AWS_WEB_IDENTITY_TOKEN_FILE`
//!    and `AWS_ROLE_ARN`;
//! 3. container credentials, ECS/Fargate task role or EKS Pod Identity
//!    ([`container`]): `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` or
//!    `AWS_CONTAINER_CREDENTIALS_FULL_URI`;
//!
//! then, optionally, `DSPM_ASSUME_ROLE_ARN` assumes an audit role with the
//! credentials found ([`assume_role`]). Fetched credentials are cached and
//! refreshed ahead of expiry ([`cache`]). Nothing here reads shared config
//! files or EC2 instance metadata.
//!
//! Secrets never reach a log or an error message: keys, session tokens, web
//! identity tokens and authorization tokens are never formatted, the
//! `Debug` impls print redactions, and errors name variables and files, not
//! their contents.

pub mod assume_role;
pub mod cache;
pub mod container;
pub mod sts;
pub mod web_identity;

use std::fmt;
use std::sync::Arc;

use crate::aws::{ClientSettings, Endpoints};
use crate::timestamp::Timestamp;

pub use assume_role::{AssumeRole, AssumeRoleSettings};
pub use cache::{CachedCredentials, Fetch};
pub use container::ContainerCredentials;
pub use web_identity::WebIdentity;

/// A set of AWS credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    /// When temporary credentials stop working, if known.
    pub expiration: Option<Timestamp>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &redact_key_id(&self.access_key_id))
            .field("secret_access_key", &"** redacted **")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "** redacted **"),
            )
            .field("expiration", &self.expiration)
            .finish()
    }
}

/// The key id's first four characters tell its kind (`ASIA` temporary,
/// `AKIA` long-term) without identifying it.
fn redact_key_id(id: &str) -> String {
    let kind: String = id.chars().take(4).collect();
    format!("{kind}** redacted **")
}

/// Why credentials could not be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialsError(pub String);

impl fmt::Display for CredentialsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CredentialsError {}

/// A source of credentials, asked before every signed request. Sources that
/// fetch credentials cache them and refresh ahead of expiry.
pub trait CredentialsProvider: Send + Sync {
    /// Credentials usable now, fetched or refreshed first if needed.
    fn credentials(&self) -> Result<Credentials, CredentialsError>;

    /// A name for the startup log ("environment", "web identity (role ARN)"):
    /// the source and role ARN, never a secret.
    fn describe(&self) -> String;

    /// Whether credentials can be had now (for readiness probes): fetches
    /// or refreshes them if needed, exactly like [`Self::credentials`].
    fn ready(&self) -> Result<(), CredentialsError> {
        self.credentials().map(|_| ())
    }
}

/// Keys from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
/// `AWS_SESSION_TOKEN`.
pub struct EnvironmentCredentials {
    credentials: Credentials,
}

impl EnvironmentCredentials {
    /// Reads the keys through `lookup`. `Ok(None)` when no key is set;
    /// an error for half a pair, or for long-term keys not explicitly allowed.
    pub fn from_lookup(
        lookup: &dyn Fn(&str) -> Option<String>,
        allow_long_term: bool,
    ) -> Result<Option<EnvironmentCredentials>, CredentialsError> {
        let id = lookup("AWS_ACCESS_KEY_ID");
        let secret = lookup("AWS_SECRET_ACCESS_KEY");
        let token = lookup("AWS_SESSION_TOKEN");
        let (id, secret) = match (id, secret) {
            (None, None) => return Ok(None),
            (Some(id), Some(secret)) => (id, secret),
            (Some(_), None) => {
                return Err(CredentialsError(
                    "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not".into(),
                ))
            }
            (None, Some(_)) => {
                return Err(CredentialsError(
                    "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not".into(),
                ))
            }
        };
        if token.is_none() && !allow_long_term {
            return Err(CredentialsError(LONG_TERM_REFUSED.into()));
        }
        Ok(Some(EnvironmentCredentials {
            credentials: Credentials {
                access_key_id: id,
                secret_access_key: secret,
                session_token: token,
                expiration: None,
            },
        }))
    }
}

const LONG_TERM_REFUSED: &str = "AWS_ACCESS_KEY_ID is set without AWS_SESSION_TOKEN: \
long-term access keys are refused. Run on a platform role (EKS IRSA or Pod Identity, \
ECS task role), or pass temporary keys, e.g. from `aws sts assume-role` or \
`aws configure export-credentials`. To accept long-term keys anyway, set \
DSPM_ALLOW_LONG_TERM_KEYS=true";

impl CredentialsProvider for EnvironmentCredentials {
    fn credentials(&self) -> Result<Credentials, CredentialsError> {
        Ok(self.credentials.clone())
    }

    fn describe(&self) -> String {
        if self.credentials.session_token.is_some() {
            "environment (temporary keys)".into()
        } else {
            "environment (long-term keys, explicitly allowed)".into()
        }
    }
}

/// Fixed credentials, for tests and for callers that already hold some.
pub struct StaticCredentials(pub Credentials);

impl CredentialsProvider for StaticCredentials {
    fn credentials(&self) -> Result<Credentials, CredentialsError> {
        Ok(self.0.clone())
    }

    fn describe(&self) -> String {
        "static".into()
    }
}

/// The variables the chain reads, for the "nothing configured" error.
const NO_SOURCE: &str = "no AWS credentials found: looked for AWS_ACCESS_KEY_ID, \
AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN (temporary keys), AWS_WEB_IDENTITY_TOKEN_FILE and \
AWS_ROLE_ARN (EKS IRSA), AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (ECS task role) and \
AWS_CONTAINER_CREDENTIALS_FULL_URI (EKS Pod Identity, with AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE \
or AWS_CONTAINER_AUTHORIZATION_TOKEN); shared config files and EC2 instance metadata are not read";

/// Builds the credential chain from the environment (through `lookup`):
/// the first configured source, wrapped in a cache when it fetches, then
/// `DSPM_ASSUME_ROLE_ARN` chaining if set. Sends nothing and reads no file:
/// a misconfiguration is reported here, a failing source on first use.
pub fn chain_from_lookup(
    lookup: &dyn Fn(&str) -> Option<String>,
    endpoints: &Endpoints,
    client: &ClientSettings,
    allow_long_term: bool,
) -> Result<Arc<dyn CredentialsProvider>, CredentialsError> {
    let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
    let Some(base) = first_source(&get, endpoints, client, allow_long_term)? else {
        let mut message = NO_SOURCE.to_string();
        if get(web_identity::ROLE_ARN_VAR).is_some() {
            message.push_str(
                " (AWS_ROLE_ARN is set, but without AWS_WEB_IDENTITY_TOKEN_FILE it is not used)",
            );
        }
        return Err(CredentialsError(message));
    };
    match AssumeRoleSettings::from_lookup(&get)? {
        Some(settings) => Ok(Arc::new(CachedCredentials::new(AssumeRole::new(
            settings, base, endpoints, client,
        )))),
        None => Ok(base),
    }
}

/// Environment, then web identity, then container: the first configured.
fn first_source(
    get: &dyn Fn(&str) -> Option<String>,
    endpoints: &Endpoints,
    client: &ClientSettings,
    allow_long_term: bool,
) -> Result<Option<Arc<dyn CredentialsProvider>>, CredentialsError> {
    if let Some(env) = EnvironmentCredentials::from_lookup(get, allow_long_term)? {
        return Ok(Some(Arc::new(env)));
    }
    if let Some(web) = WebIdentity::from_lookup(get, endpoints, client)? {
        return Ok(Some(Arc::new(CachedCredentials::new(web))));
    }
    if let Some(container) = ContainerCredentials::from_lookup(get)? {
        return Ok(Some(Arc::new(CachedCredentials::new(container))));
    }
    Ok(None)
}

/// `arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME`.
pub fn validate_role_arn(var: &str, arn: &str) -> Result<(), CredentialsError> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let valid = parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "iam"
        && parts[3].is_empty()
        && parts[4].len() == 12
        && parts[4].bytes().all(|b| b.is_ascii_digit())
        && parts[5].strip_prefix("role/").is_some_and(|name| {
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-/".contains(c))
        });
    if valid {
        Ok(())
    } else {
        Err(CredentialsError(format!(
            "{var}={arn:?} is not an IAM role ARN (arn:aws:iam::123456789012:role/NAME)"
        )))
    }
}

/// STS's rule for role session names: 2 to 64 of `[A-Za-z0-9+=,.@_-]`.
pub fn validate_session_name(var: &str, name: &str) -> Result<(), CredentialsError> {
    let valid = (2..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
    if valid {
        Ok(())
    } else {
        Err(CredentialsError(format!(
            "{var}={name:?} is not a role session name: 2 to 64 letters, digits or +=,.@_-"
        )))
    }
}

/// `dspm-audit-<unix seconds>`, when the operator names no session.
pub fn default_session_name() -> String {
    format!("dspm-audit-{}", Timestamp::now().0)
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
    fn environment_keys() {
        type Case = (
            &'static [(&'static str, &'static str)],
            bool,
            Result<bool, &'static str>,
        );
        let cases: &[Case] = &[
            (&[], false, Ok(false)),
            (
                &[
                    ("AWS_ACCESS_KEY_ID", "ASIAX"),
                    ("AWS_SECRET_ACCESS_KEY", "s"),
                    ("AWS_SESSION_TOKEN", "t"),
                ],
                false,
                Ok(true),
            ),
            (
                &[
                    ("AWS_ACCESS_KEY_ID", "AKIAX"),
                    ("AWS_SECRET_ACCESS_KEY", "s"),
                ],
                false,
                Err("long-term access keys are refused"),
            ),
            (
                &[
                    ("AWS_ACCESS_KEY_ID", "AKIAX"),
                    ("AWS_SECRET_ACCESS_KEY", "s"),
                ],
                true,
                Ok(true),
            ),
            (
                &[("AWS_ACCESS_KEY_ID", "AKIAX")],
                false,
                Err("AWS_SECRET_ACCESS_KEY is not"),
            ),
            (
                &[("AWS_SECRET_ACCESS_KEY", "s")],
                false,
                Err("AWS_ACCESS_KEY_ID is not"),
            ),
        ];
        for (env, allow, want) in cases {
            let got = EnvironmentCredentials::from_lookup(&lookup(env), *allow);
            match (got, want) {
                (Ok(found), Ok(expected)) => assert_eq!(found.is_some(), *expected, "{env:?}"),
                (Err(e), Err(fragment)) => assert!(e.0.contains(fragment), "{e}"),
                (got, want) => panic!("{env:?}: got {:?}, want {want:?}", got.map(|c| c.is_some())),
            }
        }
    }

    #[test]
    fn chain_picks_the_first_configured_source() {
        const ROLE: &str = "arn:aws:iam::123456789012:role/irsa";
        const AUDIT: &str = "arn:aws:iam::123456789012:role/audit";
        const TEMP: &[(&str, &str)] = &[
            ("AWS_ACCESS_KEY_ID", "ASIAX"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
            ("AWS_SESSION_TOKEN", "t"),
        ];
        const WEB: &[(&str, &str)] = &[
            ("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/secrets/token"),
            ("AWS_ROLE_ARN", ROLE),
        ];
        const ECS: &[(&str, &str)] = &[(
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "/v2/credentials/x",
        )];
        const POD: &[(&str, &str)] = &[
            (
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "http://169.254.170.23/v1/credentials",
            ),
            (
                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                "/var/run/secrets/pod-identity/token",
            ),
        ];
        const BLANK_KEYS: &[(&str, &str)] = &[
            ("AWS_ACCESS_KEY_ID", " "),
            ("AWS_SECRET_ACCESS_KEY", ""),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", ""),
        ];
        const CHAIN: &[(&str, &str)] = &[
            ("DSPM_ASSUME_ROLE_ARN", AUDIT),
            ("DSPM_ASSUME_ROLE_EXTERNAL_ID", "acme-4711"),
        ];
        let cases: &[(&[&[(&str, &str)]], Result<&str, &str>)] = &[
            (&[], Err("AWS_CONTAINER_CREDENTIALS_FULL_URI")),
            (&[TEMP], Ok("environment (temporary keys)")),
            (&[TEMP, WEB, ECS], Ok("environment (temporary keys)")),
            (&[WEB, ECS], Ok("web identity (EKS IRSA), role arn:aws:iam::123456789012:role/irsa")),
            (&[ECS, POD], Ok("container credentials (ECS task role)")),
            (&[POD], Ok("container credentials (EKS Pod Identity)")),
            (&[BLANK_KEYS, POD], Ok("container credentials (EKS Pod Identity)")),
            (
                &[ECS, CHAIN],
                Ok("role arn:aws:iam::123456789012:role/audit assumed with container credentials (ECS task role)"),
            ),
            (
                &[WEB, CHAIN],
                Ok("role arn:aws:iam::123456789012:role/audit assumed with web identity (EKS IRSA), role arn:aws:iam::123456789012:role/irsa"),
            ),
            (&[CHAIN], Err("no AWS credentials found")),
            (&[&[("AWS_ROLE_ARN", ROLE)]], Err("AWS_ROLE_ARN is set, but without")),
            (&[&[("AWS_WEB_IDENTITY_TOKEN_FILE", "/t")], ECS], Err("AWS_ROLE_ARN is not")),
            (
                &[&[("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://example.com/creds")]],
                Err("refused"),
            ),
        ];
        let endpoints = Endpoints::new("us-east-1");
        for (groups, want) in cases {
            let pairs: Vec<(&str, &str)> = groups.iter().flat_map(|g| g.iter().copied()).collect();
            let lookup = |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            };
            let got = chain_from_lookup(&lookup, &endpoints, &ClientSettings::default(), false)
                .map(|p| p.describe());
            match (got, want) {
                (Ok(d), Ok(w)) => assert_eq!(d, *w, "{pairs:?}"),
                (Err(e), Err(fragment)) => {
                    assert!(e.0.contains(fragment), "{pairs:?}: {e}");
                    if e.0.starts_with("no AWS credentials found") {
                        for var in [
                            "AWS_ACCESS_KEY_ID",
                            "AWS_SECRET_ACCESS_KEY",
                            "AWS_SESSION_TOKEN",
                            "AWS_WEB_IDENTITY_TOKEN_FILE",
                            "AWS_ROLE_ARN",
                            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                        ] {
                            assert!(e.0.contains(var), "{var} missing from: {e}");
                        }
                    }
                }
                (got, want) => panic!("{pairs:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn role_arns_and_session_names() {
        for arn in [
            "arn:aws:iam::123456789012:role/audit",
            "arn:aws-cn:iam::123456789012:role/path/to/audit",
            "arn:aws-us-gov:iam::123456789012:role/a+b=c,d.e@f_g-h",
        ] {
            assert!(validate_role_arn("V", arn).is_ok(), "{arn}");
        }
        for arn in [
            "",
            "audit",
            "arn:aws:iam::123456789012:user/alice",
            "arn:aws:iam::12345678901:role/audit",
            "arn:aws:sts::123456789012:role/audit",
            "arn:aws:iam:us-east-1:123456789012:role/audit",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:iam::123456789012:role/a b",
        ] {
            assert!(validate_role_arn("V", arn).is_err(), "{arn}");
        }
        assert!(validate_session_name("V", "ab").is_ok());
        assert!(validate_session_name("V", &default_session_name()).is_ok());
        for name in ["a", "a b", "name/with/slash", &"x".repeat(65)] {
            assert!(validate_session_name("V", name).is_err(), "{name}");
        }
    }

    #[test]
    fn debug_output_hides_secrets() {
        let c = Credentials {
            access_key_id: "ASIAQWERTYUIOPASDFGH".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG".into(),
            session_token: Some("FwoGZXIvYXdzEJr".into()),
            expiration: None,
        };
        let text = format!("{c:?}");
        for secret in ["QWERTYUIOPASDFGH", "wJalrXUtnFEMI", "FwoGZXIvYXdzEJr"] {
            assert!(!text.contains(secret), "{text}");
        }
        assert!(text.contains("ASIA"), "{text}");
    }
}
