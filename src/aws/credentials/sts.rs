//! Reading STS's answers to `AssumeRole` and `AssumeRoleWithWebIdentity`,
//! and naming its failures without repeating anything secret.

use super::{Credentials, CredentialsError};
use crate::aws::{xml, AwsError};
use crate::timestamp::Timestamp;

/// The STS API version of every call here.
pub const VERSION: &str = "2011-06-15";

/// What an assume-role call returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assumed {
    pub credentials: Credentials,
    /// `AssumedRoleUser/Arn`, the session's ARN, when STS sent it.
    pub assumed_role_arn: Option<String>,
}

/// Reads `<{result}><Credentials>...` from an STS answer. Errors name the
/// missing or empty field, never a value.
pub fn parse_credentials(text: &str, result: &str) -> Result<Assumed, String> {
    let doc = roxmltree::Document::parse(text).map_err(|_| "the answer is not XML".to_string())?;
    let result_node = xml::find(doc.root(), result).ok_or_else(|| format!("no {result}"))?;
    let creds = xml::child(result_node, "Credentials")
        .ok_or_else(|| format!("{result} without Credentials"))?;
    let field = |name: &str| match xml::child_text(creds, name) {
        None => Err(format!("Credentials without {name}")),
        Some("") => Err(format!("Credentials with an empty {name}")),
        Some(v) => Ok(v.to_string()),
    };
    let access_key_id = field("AccessKeyId")?;
    let secret_access_key = field("SecretAccessKey")?;
    let session_token = field("SessionToken")?;
    let expiration_text = field("Expiration")?;
    let expiration = Timestamp::parse(&expiration_text)
        .map_err(|_| format!("Expiration {expiration_text:?} is not an ISO 8601 time"))?;
    let assumed_role_arn = xml::path(result_node, &["AssumedRoleUser", "Arn"])
        .and_then(|n| n.text())
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty());
    Ok(Assumed {
        credentials: Credentials {
            access_key_id,
            secret_access_key,
            session_token: Some(session_token),
            expiration: Some(expiration),
        },
        assumed_role_arn,
    })
}

/// What to do about an STS error code, in a few words.
fn hint(code: &str) -> Option<&'static str> {
    Some(match code {
        "InvalidIdentityToken" => {
            "STS did not accept the web identity token: check that the cluster's OIDC \
             provider is registered in IAM and the token's audience is sts.amazonaws.com"
        }
        "ExpiredTokenException" | "ExpiredToken" => {
            "the token has expired: check that the platform still rotates the token file"
        }
        "IDPCommunicationError" => {
            "STS could not reach the identity provider (retried): try again later"
        }
        "IDPRejectedClaim" => "the identity provider rejected the token's claims",
        "AccessDenied" => {
            "the role's trust policy does not allow this caller: check its Principal and \
             Condition (for IRSA, the service account in `sub` and the audience in `aud`)"
        }
        "RegionDisabledException" => {
            "STS is not activated in this region for the account: activate it in the IAM \
             account settings, or point AWS_ENDPOINT_URL_STS at an active region"
        }
        "MalformedPolicyDocument" | "PackedPolicyTooLarge" => {
            "STS refused the session policy or tags"
        }
        _ => return None,
    })
}

/// A failed STS call as an error naming the action, the role and AWS's
/// error code. `secrets` are cut out of AWS's message should it repeat one.
pub fn describe_error(
    action: &str,
    role_arn: &str,
    error: &AwsError,
    secrets: &[&str],
) -> CredentialsError {
    if error.code == "CredentialsUnavailable" {
        // The base credentials of a chained role: their own error says it.
        return CredentialsError(format!(
            "cannot call {action} for role {role_arn}: {}",
            scrub(&error.message, secrets)
        ));
    }
    let mut text = format!(
        "{action} for role {role_arn} failed: {}",
        scrub(&error.to_string(), secrets)
    );
    if let Some(hint) = hint(&error.code) {
        text.push_str(" (");
        text.push_str(hint);
        text.push(')');
    }
    CredentialsError(text)
}

/// `text` with every non-empty `secret` replaced by a redaction.
pub fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_string();
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(secret, "** redacted **");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::error::parse_error_body;

    const OK: &str = r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
      <AssumeRoleWithWebIdentityResult>
        <SubjectFromWebIdentityToken>system:serviceaccount:audit:dspm</SubjectFromWebIdentityToken>
        <AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/audit/s1</Arn>
          <AssumedRoleId>AROA:s1</AssumedRoleId></AssumedRoleUser>
        <Credentials>
          <SessionToken>TOKEN</SessionToken><SecretAccessKey>SECRET</SecretAccessKey>
          <Expiration>2026-12-04T17:58:12.020339Z</Expiration><AccessKeyId>ASIAKEY</AccessKeyId>
        </Credentials>
        <Audience>sts.amazonaws.com</Audience>
      </AssumeRoleWithWebIdentityResult>
      <ResponseMetadata><RequestId>r</RequestId></ResponseMetadata>
    </AssumeRoleWithWebIdentityResponse>"#;

    #[test]
    fn reads_sts_credentials() {
        let got = parse_credentials(OK, "AssumeRoleWithWebIdentityResult").expect("valid");
        assert_eq!(got.credentials.access_key_id, "ASIAKEY");
        assert_eq!(got.credentials.secret_access_key, "SECRET");
        assert_eq!(got.credentials.session_token.as_deref(), Some("TOKEN"));
        assert_eq!(
            got.credentials.expiration,
            Some(Timestamp::parse("2026-12-04T17:58:12Z").expect("time"))
        );
        assert_eq!(
            got.assumed_role_arn.as_deref(),
            Some("arn:aws:sts::123456789012:assumed-role/audit/s1")
        );

        let assume_role = OK.replace("AssumeRoleWithWebIdentity", "AssumeRole");
        assert!(parse_credentials(&assume_role, "AssumeRoleResult").is_ok());
    }

    #[test]
    fn refuses_incomplete_answers_without_echoing_values() {
        let cases: &[(&str, &str)] = &[
            ("", "not XML"),
            ("<x>", "not XML"),
            ("<Other/>", "no AssumeRoleWithWebIdentityResult"),
            ("<AssumeRoleWithWebIdentityResult/>", "without Credentials"),
            (
                "<AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>ASIAKEY</AccessKeyId>\
                 <SecretAccessKey>SECRET</SecretAccessKey><SessionToken>TOKEN</SessionToken>\
                 </Credentials></AssumeRoleWithWebIdentityResult>",
                "Credentials without Expiration",
            ),
            (
                "<AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>ASIAKEY</AccessKeyId>\
                 <SecretAccessKey></SecretAccessKey><SessionToken>TOKEN</SessionToken>\
                 <Expiration>2026-12-04T17:58:12Z</Expiration>\
                 </Credentials></AssumeRoleWithWebIdentityResult>",
                "empty SecretAccessKey",
            ),
            (
                "<AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>ASIAKEY</AccessKeyId>\
                 <SecretAccessKey>SECRET</SecretAccessKey><SessionToken>TOKEN</SessionToken>\
                 <Expiration>tomorrow</Expiration>\
                 </Credentials></AssumeRoleWithWebIdentityResult>",
                "not an ISO 8601 time",
            ),
        ];
        for (text, fragment) in cases {
            let err = parse_credentials(text, "AssumeRoleWithWebIdentityResult").expect_err(text);
            assert!(err.contains(fragment), "{text}: {err}");
            for secret in ["ASIAKEY", "SECRET", "TOKEN"] {
                assert!(!err.contains(secret), "{err}");
            }
        }
    }

    #[test]
    fn names_sts_errors() {
        let cases: &[(u16, &str, &str)] = &[
            (400, "InvalidIdentityToken", "OIDC provider"),
            (400, "ExpiredTokenException", "rotates the token file"),
            (
                400,
                "IDPCommunicationError",
                "could not reach the identity provider",
            ),
            (400, "IDPRejectedClaim", "rejected the token"),
            (403, "AccessDenied", "trust policy"),
            (
                403,
                "RegionDisabledException",
                "not activated in this region",
            ),
            (400, "ValidationError", "ValidationError"),
        ];
        for (status, code, fragment) in cases {
            let body = format!(
                "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>\
                 <Message>no for eyJSECRETTOKEN</Message></Error><RequestId>r</RequestId></ErrorResponse>"
            );
            let error = parse_error_body(*status, None, body.as_bytes());
            let err = describe_error(
                "sts:AssumeRoleWithWebIdentity",
                "arn:aws:iam::123456789012:role/audit",
                &error,
                &["eyJSECRETTOKEN"],
            );
            assert!(err.0.contains(code), "{err}");
            assert!(err.0.contains(fragment), "{err}");
            assert!(
                err.0.contains("arn:aws:iam::123456789012:role/audit"),
                "{err}"
            );
            assert!(!err.0.contains("eyJSECRETTOKEN"), "{err}");
        }
    }
}
