//! AWS credentials and where they come from.
//!
//! The product runs on temporary credentials injected by the platform.
//! Long-term access keys (an access key without a session token) are refused
//! unless the operator sets `DSPM_ALLOW_LONG_TERM_KEYS=true`. Nothing here
//! reads shared config files or EC2 instance metadata.
//!
//! Secrets never reach a log: the `Debug` impls print redactions.

use std::fmt;

use crate::timestamp::Timestamp;

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
    fn credentials(&self) -> Result<Credentials, CredentialsError>;

    /// A name for the startup log ("environment", "web identity (role ARN)").
    fn describe(&self) -> String;
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
