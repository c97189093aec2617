//! Who the audit runs as: `sts:GetCallerIdentity`.

use crate::aws::{xml, AwsClient, AwsError, Service};
use crate::inventory::Account;

pub fn caller_identity(client: &AwsClient) -> Result<Account, AwsError> {
    let response = client.query(Service::Sts, "GetCallerIdentity", "2011-06-15", &[])?;
    parse_caller_identity(response.text()?)
}

pub fn parse_caller_identity(text: &str) -> Result<Account, AwsError> {
    let doc = roxmltree::Document::parse(text).map_err(AwsError::malformed)?;
    let result = xml::find(doc.root(), "GetCallerIdentityResult")
        .ok_or_else(|| AwsError::malformed("no GetCallerIdentityResult"))?;
    let field = |name| {
        xml::child_text(result, name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| AwsError::malformed(format!("GetCallerIdentity without {name}")))
    };
    let arn = field("Arn")?;
    let id = field("Account")?;
    let partition = arn
        .split(':')
        .nth(1)
        .filter(|p| arn.starts_with("arn:") && !p.is_empty())
        .ok_or_else(|| AwsError::malformed("caller ARN without a partition"))?;
    Ok(Account {
        id: id.to_string(),
        partition: partition.to_string(),
        caller_arn: arn.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_identity() {
        let ok = r#"<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
          <GetCallerIdentityResult>
            <Arn>arn:aws-cn:sts::123456789012:assumed-role/audit/s</Arn>
            <UserId>AROA:s</UserId><Account>123456789012</Account>
          </GetCallerIdentityResult></GetCallerIdentityResponse>"#;
        let account = parse_caller_identity(ok).expect("valid");
        assert_eq!(account.id, "123456789012");
        assert_eq!(account.partition, "aws-cn");

        for bad in [
            "",
            "<x/>",
            "<GetCallerIdentityResult><Arn>arn:aws:iam::1:user/a</Arn></GetCallerIdentityResult>",
            "<GetCallerIdentityResult><Arn>nonsense</Arn><Account>1</Account></GetCallerIdentityResult>",
        ] {
            assert_eq!(parse_caller_identity(bad).map_err(|e| e.code), Err("MalformedResponse".into()));
        }
    }
}
