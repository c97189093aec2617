//! Role chaining: `sts:AssumeRole` into a dedicated audit role, signed with
//! the credentials of the platform (or the environment).
//!
//! `DSPM_ASSUME_ROLE_ARN` names the role; `DSPM_ASSUME_ROLE_EXTERNAL_ID`
//! and `DSPM_ASSUME_ROLE_SESSION_NAME` (default `dspm-audit`) are optional.
//! The session lasts STS's default hour, the most role chaining allows.

use std::sync::Arc;

use log::debug;

use super::cache::Fetch;
use super::sts::{self, describe_error, parse_credentials};
use super::{Credentials, CredentialsError, CredentialsProvider};
use crate::aws::{AwsClient, ClientSettings, Endpoints, Service};

pub const ROLE_ARN_VAR: &str = "DSPM_ASSUME_ROLE_ARN";
pub const EXTERNAL_ID_VAR: &str = "DSPM_ASSUME_ROLE_EXTERNAL_ID";
pub const SESSION_NAME_VAR: &str = "DSPM_ASSUME_ROLE_SESSION_NAME";
pub const DEFAULT_SESSION_NAME: &str = "dspm-audit";

/// What to assume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssumeRoleSettings {
    pub role_arn: String,
    pub session_name: String,
    /// Not a secret (AWS says so), but not logged either.
    pub external_id: Option<String>,
}

impl AssumeRoleSettings {
    /// `Ok(None)` when `DSPM_ASSUME_ROLE_ARN` is unset; an error when a
    /// value is malformed or the other two are set without it.
    pub fn from_lookup(
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<AssumeRoleSettings>, CredentialsError> {
        let external_id = lookup(EXTERNAL_ID_VAR);
        let session_name = lookup(SESSION_NAME_VAR);
        let Some(role_arn) = lookup(ROLE_ARN_VAR) else {
            if let Some(var) = [
                (EXTERNAL_ID_VAR, &external_id),
                (SESSION_NAME_VAR, &session_name),
            ]
            .iter()
            .find_map(|(var, v)| v.as_ref().map(|_| *var))
            {
                return Err(CredentialsError(format!(
                    "{var} is set but {ROLE_ARN_VAR} is not: set the ARN of the audit role to assume"
                )));
            }
            return Ok(None);
        };
        super::validate_role_arn(ROLE_ARN_VAR, &role_arn)?;
        let session_name = match session_name {
            Some(name) => {
                super::validate_session_name(SESSION_NAME_VAR, &name)?;
                name
            }
            None => DEFAULT_SESSION_NAME.to_string(),
        };
        if let Some(id) = &external_id {
            let valid = (2..=1224).contains(&id.len())
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+=,.@:/-_".contains(c));
            if !valid {
                return Err(CredentialsError(format!(
                    "{EXTERNAL_ID_VAR} must be 2 to 1224 characters from letters, digits and +=,.@:/-_"
                )));
            }
        }
        Ok(Some(AssumeRoleSettings {
            role_arn,
            session_name,
            external_id,
        }))
    }
}

/// The chained role source. Wrap it in a
/// [`CachedCredentials`](super::CachedCredentials) to use it.
pub struct AssumeRole {
    settings: AssumeRoleSettings,
    base: Arc<dyn CredentialsProvider>,
    client: AwsClient,
}

impl AssumeRole {
    pub fn new(
        settings: AssumeRoleSettings,
        base: Arc<dyn CredentialsProvider>,
        endpoints: &Endpoints,
        client: &ClientSettings,
    ) -> AssumeRole {
        AssumeRole {
            client: AwsClient::new(base.clone(), endpoints.clone(), client.clone()),
            settings,
            base,
        }
    }

    pub fn settings(&self) -> &AssumeRoleSettings {
        &self.settings
    }
}

impl Fetch for AssumeRole {
    fn fetch(&self) -> Result<Credentials, CredentialsError> {
        let s = &self.settings;
        let mut params = vec![
            ("RoleArn", s.role_arn.as_str()),
            ("RoleSessionName", s.session_name.as_str()),
        ];
        if let Some(id) = &s.external_id {
            params.push(("ExternalId", id.as_str()));
        }
        let action = "sts:AssumeRole";
        let response = self
            .client
            .query(Service::Sts, "AssumeRole", sts::VERSION, &params)
            .map_err(|e| describe_error(action, &s.role_arn, &e, &[]))?;
        let unreadable = |why: &str| {
            CredentialsError(format!(
                "{action} for role {}: unreadable answer: {why}",
                s.role_arn
            ))
        };
        let text = response.text().map_err(|_| unreadable("not UTF-8"))?;
        let assumed =
            parse_credentials(text, "AssumeRoleResult").map_err(|why| unreadable(&why))?;
        debug!(
            "{action}: now {}",
            assumed.assumed_role_arn.as_deref().unwrap_or(&s.role_arn)
        );
        Ok(assumed.credentials)
    }

    fn describe(&self) -> String {
        format!(
            "role {} assumed with {}",
            self.settings.role_arn,
            self.base.describe()
        )
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

    #[test]
    fn settings() {
        const ROLE: &str = "arn:aws:iam::123456789012:role/audit";
        type Case = (
            &'static [(&'static str, &'static str)],
            Result<Option<(&'static str, Option<&'static str>)>, &'static str>,
        );
        let cases: &[Case] = &[
            (&[], Ok(None)),
            (&[(ROLE_ARN_VAR, ROLE)], Ok(Some(("dspm-audit", None)))),
            (
                &[
                    (ROLE_ARN_VAR, ROLE),
                    (SESSION_NAME_VAR, "nightly@acme"),
                    (EXTERNAL_ID_VAR, "acme-4711"),
                ],
                Ok(Some(("nightly@acme", Some("acme-4711")))),
            ),
            (
                &[(EXTERNAL_ID_VAR, "acme-4711")],
                Err("DSPM_ASSUME_ROLE_ARN is not"),
            ),
            (&[(ROLE_ARN_VAR, "audit")], Err("is not an IAM role ARN")),
            (
                &[(ROLE_ARN_VAR, ROLE), (EXTERNAL_ID_VAR, "a b")],
                Err(EXTERNAL_ID_VAR),
            ),
            (
                &[(ROLE_ARN_VAR, ROLE), (SESSION_NAME_VAR, "x")],
                Err(SESSION_NAME_VAR),
            ),
        ];
        for (pairs, want) in cases {
            let got = AssumeRoleSettings::from_lookup(&env(pairs));
            match (got, want) {
                (Ok(got), Ok(want)) => assert_eq!(
                    got.map(|s| (s.session_name, s.external_id)),
                    want.map(|(n, e)| (n.to_string(), e.map(str::to_string))),
                    "{pairs:?}"
                ),
                (Err(e), Err(fragment)) => assert!(e.0.contains(fragment), "{pairs:?}: {e}"),
                (got, want) => panic!("{pairs:?}: got {got:?}, want {want:?}"),
            }
        }
    }
}
