//! IAM: account summary, password policy, credential report, users and
//! customer-managed policies. Every `Marker` is followed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use log::debug;
use roxmltree::Node;

use super::{base64_decode, failure, parallel_map, percent_decode};
use crate::aws::{xml, AwsClient, AwsError, Service};
use crate::inventory::{
    AccessKeyUsage, AttachedPolicy, CollectError, CredentialReportRow, IamInventory, ManagedPolicy,
    Observed, PasswordPolicy, User,
};
use crate::timestamp::Timestamp;

const VERSION: &str = "2010-05-08";

/// How long to wait for AWS to finish generating the credential report.
const REPORT_WAIT: Duration = Duration::from_secs(60);

/// Reads the five parts side by side: the credential report can take
/// seconds to generate, and users and policies fan out per item.
pub fn collect(client: &AwsClient) -> IamInventory {
    let workers = client.settings().concurrency;
    std::thread::scope(|scope| {
        let users = scope.spawn(|| {
            list_users(client)
                .map(|users| parallel_map(&users, workers, |(name, arn)| user(client, name, arn)))
        });
        let policies = scope.spawn(|| {
            list_policies(client).map(|policies| {
                parallel_map(&policies, workers, |p| policy_document(client, p.clone()))
            })
        });
        let report = scope.spawn(|| credential_report(client));
        let summary = scope.spawn(|| account_summary(client));
        let password_policy = password_policy(client);
        IamInventory {
            account_summary: super::join(summary).into(),
            password_policy: password_policy.into(),
            credential_report: super::join(report).into(),
            users: super::join(users).into(),
            policies: super::join(policies).into(),
        }
    })
}

fn call(client: &AwsClient, action: &str, params: &[(&str, &str)]) -> Result<String, CollectError> {
    let full = format!("iam:{action}");
    let response = client
        .query(Service::Iam, action, VERSION, params)
        .map_err(|e| failure(&full, e))?;
    response
        .text()
        .map(str::to_string)
        .map_err(|e| failure(&full, e))
}

/// Calls a paginated IAM list action and hands each page's `{action}Result`
/// element to `each`, following `Marker` while `IsTruncated` is true.
fn paginate(
    client: &AwsClient,
    action: &str,
    params: &[(&str, &str)],
    mut each: impl FnMut(Node) -> Result<(), AwsError>,
) -> Result<(), CollectError> {
    let full = format!("iam:{action}");
    let result_name = format!("{action}Result");
    let mut marker: Option<String> = None;
    loop {
        let mut page_params = params.to_vec();
        if let Some(m) = &marker {
            page_params.push(("Marker", m.as_str()));
        }
        let text = call(client, action, &page_params)?;
        let next = parse_page(&text, &result_name, &mut each).map_err(|e| failure(&full, e))?;
        match next {
            Some(next) if Some(&next) != marker.as_ref() => marker = Some(next),
            _ => return Ok(()),
        }
    }
}

/// One page of an IAM list: the result element goes to `each`; returns the
/// next marker when the page is truncated.
pub fn parse_page(
    text: &str,
    result_name: &str,
    each: &mut dyn FnMut(Node) -> Result<(), AwsError>,
) -> Result<Option<String>, AwsError> {
    let doc = roxmltree::Document::parse(text).map_err(AwsError::malformed)?;
    let result = xml::find(doc.root(), result_name)
        .ok_or_else(|| AwsError::malformed(format!("no {result_name}")))?;
    each(result)?;
    let truncated = xml::child_text(result, "IsTruncated").and_then(xml::parse_bool) == Some(true);
    if !truncated {
        return Ok(None);
    }
    xml::child_text(result, "Marker")
        .filter(|m| !m.is_empty())
        .map(|m| Some(m.to_string()))
        .ok_or_else(|| AwsError::malformed("truncated page without a Marker"))
}

fn members<'a, 'i: 'a>(
    node: Node<'a, 'i>,
    list: &'a str,
) -> impl Iterator<Item = Node<'a, 'i>> + 'a {
    xml::child(node, list)
        .into_iter()
        .flat_map(|l| xml::children(l, "member"))
}

fn required<'a>(node: Node<'a, '_>, name: &str) -> Result<&'a str, AwsError> {
    xml::child_text(node, name)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| AwsError::malformed(format!("missing {name}")))
}

fn account_summary(client: &AwsClient) -> Result<BTreeMap<String, i64>, CollectError> {
    let text = call(client, "GetAccountSummary", &[])?;
    parse_account_summary(&text).map_err(|e| failure("iam:GetAccountSummary", e))
}

pub fn parse_account_summary(text: &str) -> Result<BTreeMap<String, i64>, AwsError> {
    let doc = roxmltree::Document::parse(text).map_err(AwsError::malformed)?;
    let map =
        xml::find(doc.root(), "SummaryMap").ok_or_else(|| AwsError::malformed("no SummaryMap"))?;
    let mut summary = BTreeMap::new();
    for entry in xml::children(map, "entry") {
        let key = required(entry, "key")?;
        let value = required(entry, "value")?
            .parse::<i64>()
            .map_err(|_| AwsError::malformed(format!("{key} is not a number")))?;
        summary.insert(key.to_string(), value);
    }
    Ok(summary)
}

fn password_policy(client: &AwsClient) -> Result<Option<PasswordPolicy>, CollectError> {
    match call(client, "GetAccountPasswordPolicy", &[]) {
        Ok(text) => parse_password_policy(&text)
            .map(Some)
            .map_err(|e| failure("iam:GetAccountPasswordPolicy", e)),
        Err(e) if e.code == "NoSuchEntity" => Ok(None),
        Err(e) => Err(e),
    }
}

pub fn parse_password_policy(text: &str) -> Result<PasswordPolicy, AwsError> {
    let doc = roxmltree::Document::parse(text).map_err(AwsError::malformed)?;
    let p = xml::find(doc.root(), "PasswordPolicy")
        .ok_or_else(|| AwsError::malformed("no PasswordPolicy"))?;
    let number = |name| -> Result<Option<u32>, AwsError> {
        match xml::child_text(p, name) {
            None | Some("") => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| AwsError::malformed(format!("{name} is not a number"))),
        }
    };
    let flag = |name| {
        xml::child_text(p, name)
            .and_then(xml::parse_bool)
            .unwrap_or(false)
    };
    Ok(PasswordPolicy {
        minimum_password_length: number("MinimumPasswordLength")?,
        password_reuse_prevention: number("PasswordReusePrevention")?,
        max_password_age: number("MaxPasswordAge")?,
        require_symbols: flag("RequireSymbols"),
        require_numbers: flag("RequireNumbers"),
        require_uppercase_characters: flag("RequireUppercaseCharacters"),
        require_lowercase_characters: flag("RequireLowercaseCharacters"),
        allow_users_to_change_password: flag("AllowUsersToChangePassword"),
        expire_passwords: flag("ExpirePasswords"),
        hard_expiry: flag("HardExpiry"),
    })
}

/// Generates the credential report, waits while AWS builds it, and reads it.
fn credential_report(client: &AwsClient) -> Result<Vec<CredentialReportRow>, CollectError> {
    const GENERATE: &str = "iam:GenerateCredentialReport";
    const GET: &str = "iam:GetCredentialReport";
    let deadline = Instant::now() + REPORT_WAIT;
    let mut pause = Duration::from_millis(250);
    loop {
        let text = call(client, "GenerateCredentialReport", &[])?;
        let state = report_state(&text).map_err(|e| failure(GENERATE, e))?;
        debug!("credential report: {state}");
        if state == "COMPLETE" {
            break;
        }
        if Instant::now() >= deadline {
            return Err(CollectError {
                action: GENERATE.into(),
                code: "ReportInProgress".into(),
                message: format!(
                    "credential report not ready after {} s",
                    REPORT_WAIT.as_secs()
                ),
                http_status: None,
            });
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_secs(4));
    }
    let text = call(client, "GetCredentialReport", &[])?;
    let csv = report_content(&text).map_err(|e| failure(GET, e))?;
    parse_credential_report(&csv).map_err(|e| failure(GET, e))
}

/// The `State` of a `GenerateCredentialReport` answer.
pub fn report_state(text: &str) -> Result<String, AwsError> {
    let doc = roxmltree::Document::parse(text).map_err(AwsError::malformed)?;
    let result = xml::find(doc.root(), "GenerateCredentialReportResult")
        .ok_or_else(|| AwsError::malformed("no GenerateCredentialReportResult"))?;
    Ok(required(result, "State")?.to_string())
}

/// The credential report CSV of a `GetCredentialReport` answer, decoded.
pub fn report_content(text: &str) -> Result<String, AwsError> {
    let doc = roxmltree::Document::parse(text).map_err(AwsError::malformed)?;
    let result = xml::find(doc.root(), "GetCredentialReportResult")
        .ok_or_else(|| AwsError::malformed("no GetCredentialReportResult"))?;
    let content = xml::child_text(result, "Content").unwrap_or("");
    let bytes = base64_decode(content)
        .ok_or_else(|| AwsError::malformed("credential report is not base64"))?;
    String::from_utf8(bytes).map_err(|_| AwsError::malformed("credential report is not UTF-8"))
}

/// Parses the credential report CSV by its header names, so that columns
/// AWS adds later do not shift the ones we read.
pub fn parse_credential_report(csv: &str) -> Result<Vec<CredentialReportRow>, AwsError> {
    let mut lines = csv.lines().filter(|l| !l.trim().is_empty());
    let header = split_csv_line(
        lines
            .next()
            .ok_or_else(|| AwsError::malformed("empty credential report"))?,
    )?;
    let column = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| AwsError::malformed(format!("credential report has no column {name}")))
    };
    let c = ReportColumns {
        user: column("user")?,
        arn: column("arn")?,
        created: column("user_creation_time")?,
        password_enabled: column("password_enabled")?,
        password_last_used: column("password_last_used")?,
        password_last_changed: column("password_last_changed")?,
        mfa_active: column("mfa_active")?,
        keys: [
            [
                column("access_key_1_active")?,
                column("access_key_1_last_rotated")?,
                column("access_key_1_last_used_date")?,
            ],
            [
                column("access_key_2_active")?,
                column("access_key_2_last_rotated")?,
                column("access_key_2_last_used_date")?,
            ],
        ],
    };
    lines
        .map(|line| {
            let fields = split_csv_line(line)?;
            if fields.len() != header.len() {
                return Err(AwsError::malformed(format!(
                    "credential report row has {} fields, header has {}",
                    fields.len(),
                    header.len()
                )));
            }
            Ok(c.row(&fields))
        })
        .collect()
}

struct ReportColumns {
    user: usize,
    arn: usize,
    created: usize,
    password_enabled: usize,
    password_last_used: usize,
    password_last_changed: usize,
    mfa_active: usize,
    keys: [[usize; 3]; 2],
}

impl ReportColumns {
    fn row(&self, f: &[String]) -> CredentialReportRow {
        let key = |[active, rotated, used]: [usize; 3]| AccessKeyUsage {
            active: report_bool(&f[active]),
            last_rotated: report_date(&f[rotated]),
            last_used: report_date(&f[used]),
        };
        CredentialReportRow {
            user: f[self.user].clone(),
            arn: f[self.arn].clone(),
            user_creation_time: report_date(&f[self.created]),
            password_enabled: report_bool(&f[self.password_enabled]),
            password_last_used: report_date(&f[self.password_last_used]),
            password_last_changed: report_date(&f[self.password_last_changed]),
            mfa_active: report_bool(&f[self.mfa_active]),
            access_keys: [key(self.keys[0]), key(self.keys[1])],
        }
    }
}

/// `true` is true; `false`, `not_supported` and anything else are not.
fn report_bool(text: &str) -> bool {
    text.trim().eq_ignore_ascii_case("true")
}

/// `N/A`, `no_information`, `not_supported` and empty fields mean no date.
fn report_date(text: &str) -> Option<Timestamp> {
    Timestamp::parse(text).ok()
}

/// One CSV record (RFC 4180): fields may be quoted, with `""` for a quote.
fn split_csv_line(line: &str) -> Result<Vec<String>, AwsError> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.trim_end_matches('\r').chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => fields.push(std::mem::take(&mut field)),
            (_, c) => field.push(c),
        }
    }
    if quoted {
        return Err(AwsError::malformed(
            "unterminated quote in credential report",
        ));
    }
    fields.push(field);
    Ok(fields)
}

fn list_users(client: &AwsClient) -> Result<Vec<(String, String)>, CollectError> {
    let mut users = Vec::new();
    paginate(client, "ListUsers", &[("MaxItems", "1000")], |result| {
        for member in members(result, "Users") {
            users.push((
                required(member, "UserName")?.to_string(),
                required(member, "Arn")?.to_string(),
            ));
        }
        Ok(())
    })?;
    Ok(users)
}

fn user(client: &AwsClient, name: &str, arn: &str) -> User {
    let params = [("UserName", name), ("MaxItems", "1000")];
    let mut attached = Vec::new();
    let attached_result = paginate(client, "ListAttachedUserPolicies", &params, |result| {
        for member in members(result, "AttachedPolicies") {
            attached.push(AttachedPolicy {
                name: required(member, "PolicyName")?.to_string(),
                arn: required(member, "PolicyArn")?.to_string(),
            });
        }
        Ok(())
    });
    let mut inline = Vec::new();
    let inline_result = paginate(client, "ListUserPolicies", &params, |result| {
        for member in members(result, "PolicyNames") {
            inline.push(member.text().unwrap_or("").trim().to_string());
        }
        Ok(())
    });
    User {
        name: name.to_string(),
        arn: arn.to_string(),
        attached_policies: attached_result.map(|()| attached).into(),
        inline_policies: inline_result.map(|()| inline).into(),
    }
}

fn list_policies(client: &AwsClient) -> Result<Vec<ManagedPolicy>, CollectError> {
    let mut policies = Vec::new();
    let params = [("Scope", "Local"), ("MaxItems", "1000")];
    paginate(client, "ListPolicies", &params, |result| {
        for member in members(result, "Policies") {
            policies.push(ManagedPolicy {
                name: required(member, "PolicyName")?.to_string(),
                arn: required(member, "Arn")?.to_string(),
                default_version_id: required(member, "DefaultVersionId")?.to_string(),
                attachment_count: xml::child_text(member, "AttachmentCount")
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0),
                document: Observed::Value(serde_json::Value::Null),
            });
        }
        Ok(())
    })?;
    Ok(policies)
}

fn policy_document(client: &AwsClient, mut policy: ManagedPolicy) -> ManagedPolicy {
    const ACTION: &str = "iam:GetPolicyVersion";
    let params = [
        ("PolicyArn", policy.arn.as_str()),
        ("VersionId", policy.default_version_id.as_str()),
    ];
    let document = call(client, "GetPolicyVersion", &params)
        .and_then(|text| parse_policy_version(&text).map_err(|e| failure(ACTION, e)));
    policy.document = document.into();
    policy
}

/// The `Document` of a `GetPolicyVersion` answer: URL-encoded JSON.
pub fn parse_policy_version(text: &str) -> Result<serde_json::Value, AwsError> {
    let doc = roxmltree::Document::parse(text).map_err(AwsError::malformed)?;
    let version = xml::find(doc.root(), "PolicyVersion")
        .ok_or_else(|| AwsError::malformed("no PolicyVersion"))?;
    let encoded = required(version, "Document")?;
    let json = percent_decode(encoded)
        .ok_or_else(|| AwsError::malformed("policy document is not URL-encoded UTF-8"))?;
    serde_json::from_str(&json).map_err(AwsError::malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "user,arn,user_creation_time,password_enabled,password_last_used,\
password_last_changed,password_next_rotation,mfa_active,access_key_1_active,\
access_key_1_last_rotated,access_key_1_last_used_date,access_key_1_last_used_region,\
access_key_1_last_used_service,access_key_2_active,access_key_2_last_rotated,\
access_key_2_last_used_date,access_key_2_last_used_region,access_key_2_last_used_service,\
cert_1_active,cert_1_last_rotated,cert_2_active,cert_2_last_rotated";

    #[test]
    fn credential_report_rows() {
        let csv = format!(
            "{HEADER}\n\
<root_account>,arn:aws:iam::1:root,2020-01-01T00:00:00+00:00,not_supported,2024-04-01T00:00:00+00:00,not_supported,not_supported,true,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A\n\
bob,arn:aws:iam::1:user/bob,2024-01-01T00:00:00Z,true,no_information,2024-01-01T00:00:00Z,N/A,false,true,2024-01-02T00:00:00+00:00,,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A\n\
\"a,b\",\"arn:aws:iam::1:user/a,b\",2024-01-01T00:00:00Z,false,N/A,N/A,N/A,false,true,2024-01-03T00:00:00Z,2024-02-01T00:00:00Z,us-east-1,s3,true,2024-01-04T00:00:00Z,N/A,N/A,N/A,false,N/A,false,N/A\n"
        );
        let rows = parse_credential_report(&csv).expect("valid");
        assert_eq!(rows.len(), 3);
        assert!(rows[0].is_root());
        assert!(!rows[0].password_enabled, "not_supported is not enabled");
        assert!(rows[0].mfa_active);
        assert_eq!(
            rows[0].password_last_used,
            Timestamp::parse("2024-04-01T00:00:00Z").ok()
        );
        assert_eq!(rows[1].password_last_used, None);
        assert!(rows[1].access_keys[0].active);
        assert_eq!(
            rows[1].access_keys[0].last_used, None,
            "empty means no date"
        );
        assert_eq!(rows[2].user, "a,b");
        assert_eq!(
            rows[2].access_keys[0].last_used,
            Timestamp::parse("2024-02-01T00:00:00Z").ok()
        );
        assert!(rows[2].access_keys[1].active);

        let bad = [
            "".to_string(),
            "user,arn\nx,y".to_string(),
            format!("{HEADER}\nshort,row"),
            format!("{HEADER}\n\"unterminated,{}", ",".repeat(21)),
        ];
        for text in bad {
            assert!(parse_credential_report(&text).is_err(), "{text}");
        }
    }

    #[test]
    fn pages_and_markers() {
        let page = |truncated: &str, marker: &str| {
            format!(
                "<ListUsersResponse><ListUsersResult><Users><member><UserName>u</UserName>\
                 <Arn>arn:aws:iam::1:user/u</Arn></member></Users><IsTruncated>{truncated}</IsTruncated>\
                 {marker}</ListUsersResult></ListUsersResponse>"
            )
        };
        let mut seen = 0;
        let mut count = |n: Node| -> Result<(), AwsError> {
            seen += members(n, "Users").count();
            Ok(())
        };
        assert_eq!(
            parse_page(
                &page("true", "<Marker>m2</Marker>"),
                "ListUsersResult",
                &mut count
            ),
            Ok(Some("m2".into()))
        );
        assert_eq!(
            parse_page(&page("false", ""), "ListUsersResult", &mut count),
            Ok(None)
        );
        assert!(parse_page(&page("true", ""), "ListUsersResult", &mut count).is_err());
        assert_eq!(seen, 3);
    }

    #[test]
    fn summaries_policies_and_documents() {
        let summary = "<GetAccountSummaryResponse><GetAccountSummaryResult><SummaryMap>\
            <entry><key>AccountMFAEnabled</key><value>0</value></entry>\
            <entry><key>AccountAccessKeysPresent</key><value>1</value></entry>\
            </SummaryMap></GetAccountSummaryResult></GetAccountSummaryResponse>";
        let map = parse_account_summary(summary).expect("valid");
        assert_eq!(map["AccountMFAEnabled"], 0);
        assert_eq!(map["AccountAccessKeysPresent"], 1);
        assert!(parse_account_summary(
            "<SummaryMap><entry><key>k</key><value>x</value></entry></SummaryMap>"
        )
        .is_err());

        let policy = "<GetAccountPasswordPolicyResult><PasswordPolicy><MinimumPasswordLength>8</MinimumPasswordLength>\
            <RequireSymbols>true</RequireSymbols></PasswordPolicy></GetAccountPasswordPolicyResult>";
        let p = parse_password_policy(policy).expect("valid");
        assert_eq!(
            (
                p.minimum_password_length,
                p.password_reuse_prevention,
                p.require_symbols
            ),
            (Some(8), None, true)
        );

        let version = "<GetPolicyVersionResult><PolicyVersion><Document>%7B%22Statement%22%3A%5B%5D%7D</Document>\
            </PolicyVersion></GetPolicyVersionResult>";
        assert_eq!(
            parse_policy_version(version).expect("valid"),
            serde_json::json!({"Statement": []})
        );
        assert!(
            parse_policy_version("<PolicyVersion><Document>%7B</Document></PolicyVersion>")
                .is_err()
        );
    }
}
