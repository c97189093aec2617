//! EKS IAM roles for service accounts (IRSA): `AssumeRoleWithWebIdentity`
//! with the projected service-account token.
//!
//! `AWS_WEB_IDENTITY_TOKEN_FILE` names the token file, `AWS_ROLE_ARN` the
//! role, `AWS_ROLE_SESSION_NAME` optionally the session (default
//! `dspm-audit-<unix seconds>`). The call is an unsigned form POST to the STS
//! endpoint of the home region: regional by default,
//! `AWS_STS_REGIONAL_ENDPOINTS=legacy` and `AWS_ENDPOINT_URL_STS` as the
//! endpoint table resolves them. The kubelet rotates the token, so the file
//! is read again for every call, and its content is never logged.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use log::debug;

use super::cache::Fetch;
use super::sts::{self, describe_error, parse_credentials};
use super::{
    default_session_name, validate_role_arn, validate_session_name, Credentials, CredentialsError,
    CredentialsProvider,
};
use crate::aws::{AwsClient, ClientSettings, Endpoints, Service};

pub const TOKEN_FILE_VAR: &str = "AWS_WEB_IDENTITY_TOKEN_FILE";
pub const ROLE_ARN_VAR: &str = "AWS_ROLE_ARN";
pub const SESSION_NAME_VAR: &str = "AWS_ROLE_SESSION_NAME";

/// Tokens are a few kilobytes; anything larger is not a token.
const MAX_TOKEN_BYTES: u64 = 64 * 1024;

/// The web identity source. Wrap it in a
/// [`CachedCredentials`](super::CachedCredentials) to use it.
pub struct WebIdentity {
    token_file: PathBuf,
    role_arn: String,
    session_name: String,
    client: AwsClient,
}

impl std::fmt::Debug for WebIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebIdentity")
            .field("token_file", &self.token_file)
            .field("role_arn", &self.role_arn)
            .field("session_name", &self.session_name)
            .finish()
    }
}

impl WebIdentity {
    /// `Ok(None)` when `AWS_WEB_IDENTITY_TOKEN_FILE` is unset; an error when
    /// it is set without `AWS_ROLE_ARN`, or a value is malformed. Reads no
    /// file and sends nothing.
    pub fn from_lookup(
        lookup: &dyn Fn(&str) -> Option<String>,
        endpoints: &Endpoints,
        settings: &ClientSettings,
    ) -> Result<Option<WebIdentity>, CredentialsError> {
        let Some(token_file) = lookup(TOKEN_FILE_VAR) else {
            return Ok(None);
        };
        let role_arn = lookup(ROLE_ARN_VAR).ok_or_else(|| {
            CredentialsError(format!(
                "{TOKEN_FILE_VAR} is set but {ROLE_ARN_VAR} is not: set the ARN of the role \
                 to assume with the token (on EKS, annotate the service account with \
                 eks.amazonaws.com/role-arn)"
            ))
        })?;
        validate_role_arn(ROLE_ARN_VAR, &role_arn)?;
        let session_name = match lookup(SESSION_NAME_VAR) {
            Some(name) => {
                validate_session_name(SESSION_NAME_VAR, &name)?;
                name
            }
            None => default_session_name(),
        };
        Ok(Some(WebIdentity::new(
            PathBuf::from(token_file),
            role_arn,
            session_name,
            endpoints,
            settings,
        )))
    }

    pub fn new(
        token_file: PathBuf,
        role_arn: String,
        session_name: String,
        endpoints: &Endpoints,
        settings: &ClientSettings,
    ) -> WebIdentity {
        WebIdentity {
            token_file,
            role_arn,
            session_name,
            client: AwsClient::new(Arc::new(Unsigned), endpoints.clone(), settings.clone()),
        }
    }

    pub fn role_arn(&self) -> &str {
        &self.role_arn
    }

    pub fn session_name(&self) -> &str {
        &self.session_name
    }

    /// Where `AssumeRoleWithWebIdentity` is sent.
    pub fn sts_url(&self) -> String {
        self.client.endpoints().service(Service::Sts).url("")
    }
}

impl Fetch for WebIdentity {
    fn fetch(&self) -> Result<Credentials, CredentialsError> {
        let token = read_token(&self.token_file)?;
        let action = "sts:AssumeRoleWithWebIdentity";
        let response = self
            .client
            .query_unsigned(
                Service::Sts,
                "AssumeRoleWithWebIdentity",
                sts::VERSION,
                &[
                    ("RoleArn", &self.role_arn),
                    ("RoleSessionName", &self.session_name),
                    ("WebIdentityToken", &token),
                ],
            )
            .map_err(|e| describe_error(action, &self.role_arn, &e, &[&token]))?;
        let unreadable = |why: &str| {
            CredentialsError(format!(
                "{action} for role {}: unreadable answer: {why}",
                self.role_arn
            ))
        };
        let text = response.text().map_err(|_| unreadable("not UTF-8"))?;
        let assumed = parse_credentials(text, "AssumeRoleWithWebIdentityResult")
            .map_err(|why| unreadable(&why))?;
        debug!(
            "{action}: now {}",
            assumed
                .assumed_role_arn
                .as_deref()
                .unwrap_or(&self.role_arn)
        );
        Ok(assumed.credentials)
    }

    fn describe(&self) -> String {
        format!("web identity (EKS IRSA), role {}", self.role_arn)
    }
}

/// Reads the token, trimmed. Errors name the file, never its content.
pub fn read_token(path: &Path) -> Result<String, CredentialsError> {
    let fail = |why: String| {
        CredentialsError(format!(
            "cannot read the web identity token {TOKEN_FILE_VAR}={}: {why}",
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
    let token = text.trim();
    if token.is_empty() {
        return Err(fail("the file is empty".into()));
    }
    if token.chars().any(char::is_control) {
        return Err(fail("the token contains control characters".into()));
    }
    Ok(token.to_string())
}

/// The credentials of the unsigned STS client: never asked for.
struct Unsigned;

impl CredentialsProvider for Unsigned {
    fn credentials(&self) -> Result<Credentials, CredentialsError> {
        Err(CredentialsError(
            "this client sends unsigned requests only".into(),
        ))
    }

    fn describe(&self) -> String {
        "none (unsigned requests)".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    const ROLE: &str = "arn:aws:iam::123456789012:role/audit";

    #[test]
    fn configuration() {
        type Case = (
            &'static [(&'static str, &'static str)],
            Result<bool, &'static str>,
        );
        let cases: &[Case] = &[
            (&[], Ok(false)),
            (&[(ROLE_ARN_VAR, ROLE)], Ok(false)),
            (&[(TOKEN_FILE_VAR, "/t")], Err("AWS_ROLE_ARN is not")),
            (&[(TOKEN_FILE_VAR, "/t"), (ROLE_ARN_VAR, ROLE)], Ok(true)),
            (
                &[(TOKEN_FILE_VAR, "/t"), (ROLE_ARN_VAR, "audit")],
                Err("is not an IAM role ARN"),
            ),
            (
                &[
                    (TOKEN_FILE_VAR, "/t"),
                    (ROLE_ARN_VAR, ROLE),
                    (SESSION_NAME_VAR, "bad name!"),
                ],
                Err("AWS_ROLE_SESSION_NAME"),
            ),
        ];
        let endpoints = Endpoints::new("eu-west-1");
        for (pairs, want) in cases {
            let got = WebIdentity::from_lookup(&env(pairs), &endpoints, &ClientSettings::default());
            match (got, want) {
                (Ok(found), Ok(expected)) => assert_eq!(found.is_some(), *expected, "{pairs:?}"),
                (Err(e), Err(fragment)) => assert!(e.0.contains(fragment), "{e}"),
                (got, want) => panic!(
                    "{pairs:?}: got {:?}, want {want:?}",
                    got.map(|w| w.is_some())
                ),
            }
        }
    }

    #[test]
    fn goes_to_the_regional_sts_endpoint() {
        let cases: &[(&str, &'static [(&'static str, &'static str)], &str)] = &[
            ("eu-west-1", &[], "https://sts.eu-west-1.amazonaws.com/"),
            (
                "ap-northeast-2",
                &[("AWS_STS_REGIONAL_ENDPOINTS", "regional")],
                "https://sts.ap-northeast-2.amazonaws.com/",
            ),
            (
                "us-east-1",
                &[("AWS_STS_REGIONAL_ENDPOINTS", "legacy")],
                "https://sts.amazonaws.com/",
            ),
            (
                "cn-north-1",
                &[],
                "https://sts.cn-north-1.amazonaws.com.cn/",
            ),
            (
                "eu-west-1",
                &[("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:4566")],
                "http://127.0.0.1:4566/",
            ),
        ];
        for (region, pairs, url) in cases {
            let endpoints = Endpoints::from_lookup(region, env(pairs)).expect("valid");
            let w = WebIdentity::new(
                "/t".into(),
                ROLE.into(),
                "s".into(),
                &endpoints,
                &ClientSettings::default(),
            );
            assert_eq!(w.sts_url(), *url, "{region} {pairs:?}");
        }
    }

    #[test]
    fn token_file_errors_name_the_file_not_the_token() {
        let dir = std::env::temp_dir().join(format!("dspm-wi-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let empty = dir.join("empty");
        std::fs::write(&empty, "\n").expect("write");
        let ok = dir.join("ok");
        std::fs::write(&ok, "eyJhbGciOi.secret.sig\n").expect("write");
        let ctl = dir.join("ctl");
        std::fs::write(&ctl, "eyJhbGciOi\u{1}secret").expect("write");

        assert_eq!(read_token(&ok).expect("readable"), "eyJhbGciOi.secret.sig");
        let missing = read_token(&dir.join("missing")).expect_err("missing");
        assert!(
            missing.0.contains(TOKEN_FILE_VAR) && missing.0.contains("missing"),
            "{missing}"
        );
        assert!(read_token(&empty).expect_err("empty").0.contains("empty"));
        let err = read_token(&ctl).expect_err("control");
        assert!(!err.0.contains("secret"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
