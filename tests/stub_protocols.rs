//! The real binary (`scan --format json`) against a scripted AWS stand-in on
//! 127.0.0.1 (tests/support/stub.rs), for the protocol behaviours moto cannot
//! produce: multi-page listings, S3 region redirects, throttling and 5xx,
//! "not configured" answers, slow credential reports, malformed bodies.
//!
//! Each test starts from [`Account::healthy`], a small account on which
//! every check passes, changes what it needs, and may put a hook in front of
//! the model to script one call. Results are read from the JSON report and
//! the stub's request log.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::stub::{
    base64_encode, iso8601, percent_encode, unix_now, xml_escape, Counters, Stub, StubRequest,
    StubResponse, S3_NS,
};

const ACCOUNT: &str = "123456789012";
const CALLER_ARN: &str = "arn:aws:sts::123456789012:assumed-role/dspm-auditor/stub-session";
const HOME: &str = "us-east-1";
const KEY_ID: &str = "ASIATESTSTUB";
/// Every scan must end well within this (a hung scan fails the test).
const SCAN_DEADLINE: Duration = Duration::from_secs(20);
const DAY: i64 = 86_400;
/// The only framework that maps every check (CIS leaves some S3 checks out).
const FRAMEWORK: &str = "isms-p-2023";

// ---- the account model -------------------------------------------------------

#[derive(Clone, Debug)]
struct BucketSpec {
    name: String,
    /// `<BucketRegion>` in `ListBuckets`; `None` leaves it out.
    listed_region: Option<String>,
    /// `GetBucketLocation`'s `LocationConstraint` text (may lie).
    location: String,
    /// The region the bucket answers in; elsewhere it redirects.
    region: String,
    /// Per asked region, the `x-amz-bucket-region` of the redirect
    /// (default: the real region).
    redirect_hints: Vec<(String, String)>,
    pab: Option<[bool; 4]>,
    policy: Option<Value>,
    policy_public: bool,
    acl_public: bool,
    encryption: Option<String>,
    versioning: Option<String>,
    mfa_delete: bool,
    logging: Option<String>,
}

impl BucketSpec {
    /// A bucket on which every S3 check passes, listed with its region.
    fn healthy(name: &str, region: &str) -> BucketSpec {
        BucketSpec {
            name: name.to_string(),
            listed_region: Some(region.to_string()),
            location: if region == "us-east-1" {
                String::new()
            } else {
                region.to_string()
            },
            region: region.to_string(),
            redirect_hints: Vec::new(),
            pab: Some([true; 4]),
            policy: Some(tls_policy(name)),
            policy_public: false,
            acl_public: false,
            encryption: Some("aws:kms".into()),
            versioning: Some("Enabled".into()),
            mfa_delete: true,
            logging: Some("central-logs".into()),
        }
    }

    /// As `healthy`, but `ListBuckets` leaves out the region.
    fn unlisted(name: &str, location: &str, region: &str) -> BucketSpec {
        BucketSpec {
            listed_region: None,
            location: location.to_string(),
            ..BucketSpec::healthy(name, region)
        }
    }
}

fn tls_policy(bucket: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [format!("arn:aws:s3:::{bucket}"), format!("arn:aws:s3:::{bucket}/*")],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}
        }]
    })
}

#[derive(Clone, Debug)]
struct UserSpec {
    name: String,
    attached: Vec<String>,
    inline: Vec<String>,
}

impl UserSpec {
    fn new(name: &str) -> UserSpec {
        UserSpec {
            name: name.to_string(),
            attached: Vec::new(),
            inline: Vec::new(),
        }
    }

    fn arn(&self) -> String {
        user_arn(&self.name)
    }
}

fn user_arn(name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:user/{name}")
}

fn policy_arn(name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:policy/{name}")
}

#[derive(Clone, Debug)]
struct PolicySpec {
    name: String,
    document: Value,
    attachment_count: u32,
}

impl PolicySpec {
    fn read_only(name: &str) -> PolicySpec {
        PolicySpec {
            name: name.to_string(),
            document: json!({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"], "Resource": "*"}
            ]}),
            attachment_count: 1,
        }
    }

    fn admin(name: &str) -> PolicySpec {
        PolicySpec {
            name: name.to_string(),
            document: json!({"Version": "2012-10-17", "Statement": [
                {"Sid": "Everything", "Effect": "Allow", "Action": "*", "Resource": "*"}
            ]}),
            attachment_count: 2,
        }
    }
}

/// One SCP as `ListPoliciesForTarget` lists it.
#[derive(Clone, Debug)]
struct Scp {
    id: String,
    name: String,
    aws_managed: bool,
}

impl Scp {
    fn custom(id: &str, name: &str) -> Scp {
        Scp {
            id: id.into(),
            name: name.into(),
            aws_managed: false,
        }
    }

    fn full_aws_access() -> Scp {
        Scp {
            id: "p-FullAWSAccess".into(),
            name: "FullAWSAccess".into(),
            aws_managed: true,
        }
    }

    fn to_json(&self) -> Value {
        let arn = if self.aws_managed {
            format!(
                "arn:aws:organizations::aws:policy/service_control_policy/{}",
                self.id
            )
        } else {
            format!(
                "arn:aws:organizations::{ACCOUNT}:policy/o-stub1234/service_control_policy/{}",
                self.id
            )
        };
        json!({"Id": self.id, "Arn": arn, "Name": self.name, "Description": "",
               "Type": "SERVICE_CONTROL_POLICY", "AwsManaged": self.aws_managed})
    }
}

#[derive(Clone, Debug)]
struct OrgSpec {
    feature_set: String,
    /// child id -> pages of parents `(id, type)`.
    parents: BTreeMap<String, Vec<Vec<(String, String)>>>,
    /// target id -> pages of policies.
    policies: BTreeMap<String, Vec<Vec<Scp>>>,
}

/// The model the stub answers from.
#[derive(Clone, Debug)]
struct Account {
    account_pab: Option<[bool; 4]>,
    buckets: Vec<BucketSpec>,
    bucket_page_size: usize,
    summary: Vec<(String, i64)>,
    /// `(minimum length, reuse prevention)`; `None`: no password policy.
    password_policy: Option<(u32, u32)>,
    credential_report: String,
    users: Vec<UserSpec>,
    user_page_size: usize,
    attached_page_size: usize,
    policies: Vec<PolicySpec>,
    policy_page_size: usize,
    /// `None`: the account is in no organization.
    org: Option<OrgSpec>,
}

const REPORT_HEADER: &str = "user,arn,user_creation_time,password_enabled,password_last_used,\
password_last_changed,password_next_rotation,mfa_active,access_key_1_active,\
access_key_1_last_rotated,access_key_1_last_used_date,access_key_1_last_used_region,\
access_key_1_last_used_service,access_key_2_active,access_key_2_last_rotated,\
access_key_2_last_used_date,access_key_2_last_used_region,access_key_2_last_used_service,\
cert_1_active,cert_1_last_rotated,cert_2_active,cert_2_last_rotated";

/// A date `days` before now in the credential report's `+00:00` form.
fn days_ago(days: i64) -> String {
    iso8601(unix_now() - days * DAY, "+00:00")
}

impl Account {
    /// A small account on which every check passes: one bucket, one user
    /// with MFA and a fresh key, one harmless policy, an organization with
    /// a custom SCP on the root.
    fn healthy() -> Account {
        let root_row = format!(
            "<root_account>,arn:aws:iam::{ACCOUNT}:root,{},not_supported,{},not_supported,\
             not_supported,true,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A",
            days_ago(900),
            days_ago(30)
        );
        let alice_row = format!(
            "alice,{},{},true,{},{},N/A,true,true,{},{},us-east-1,s3,false,N/A,N/A,N/A,N/A,\
             false,N/A,false,N/A",
            user_arn("alice"),
            days_ago(400),
            days_ago(1),
            days_ago(60),
            days_ago(10),
            days_ago(1)
        );
        let mut parents = BTreeMap::new();
        parents.insert(
            ACCOUNT.to_string(),
            vec![vec![("r-stub".to_string(), "ROOT".to_string())]],
        );
        let mut policies = BTreeMap::new();
        policies.insert(ACCOUNT.to_string(), vec![vec![Scp::full_aws_access()]]);
        policies.insert(
            "r-stub".to_string(),
            vec![vec![
                Scp::full_aws_access(),
                Scp::custom("p-denyleave", "DenyLeaveOrganization"),
            ]],
        );
        Account {
            account_pab: Some([true; 4]),
            buckets: vec![BucketSpec::healthy("healthy-data", HOME)],
            bucket_page_size: 1000,
            summary: vec![
                ("AccountMFAEnabled".into(), 1),
                ("AccountAccessKeysPresent".into(), 0),
                ("Users".into(), 1),
            ],
            password_policy: Some((14, 24)),
            credential_report: format!("{REPORT_HEADER}\n{root_row}\n{alice_row}\n"),
            users: vec![UserSpec::new("alice")],
            user_page_size: 1000,
            attached_page_size: 1000,
            policies: vec![PolicySpec::read_only("DataReadOnly")],
            policy_page_size: 1000,
            org: Some(OrgSpec {
                feature_set: "ALL".into(),
                parents,
                policies,
            }),
        }
    }

    fn bucket(&self, name: &str) -> Option<&BucketSpec> {
        self.buckets.iter().find(|b| b.name == name)
    }

    /// Answers one request as AWS would for this account.
    fn respond(&self, req: &StubRequest) -> StubResponse {
        if req.json_target().is_some() {
            return self.organizations(req);
        }
        if let Some(action) = req.form_action() {
            return match req.signing_service() {
                Some("sts") => self.sts(req, &action),
                Some("iam") => self.iam(req, &action),
                other => unscripted(req, &format!("query call signed for {other:?}")),
            };
        }
        if req.method != "GET" || req.signing_service() != Some("s3") {
            return unscripted(req, "not a GET signed for s3");
        }
        if req.is_s3_control() {
            return self.s3_control(req);
        }
        if req.path == "/" {
            return self.list_buckets(req);
        }
        self.s3_bucket(req)
    }

    fn sts(&self, req: &StubRequest, action: &str) -> StubResponse {
        match action {
            "GetCallerIdentity" => StubResponse::query_xml(
                action,
                &format!(
                    "<Arn>{CALLER_ARN}</Arn><UserId>AROASTUB:stub-session</UserId>\
                     <Account>{ACCOUNT}</Account>"
                ),
            ),
            _ => unscripted(req, "STS action"),
        }
    }

    fn s3_control(&self, req: &StubRequest) -> StubResponse {
        if req.header("x-amz-account-id") != Some(ACCOUNT) {
            return StubResponse::s3_error(400, "InvalidRequest", "x-amz-account-id missing");
        }
        if req.path != "/v20180820/configuration/publicAccessBlock" {
            return unscripted(req, "S3 Control path");
        }
        match self.account_pab {
            Some(flags) => StubResponse::s3_xml(&pab_xml(flags)),
            None => StubResponse::s3_error(
                404,
                "NoSuchPublicAccessBlockConfiguration",
                "The public access block configuration was not found",
            ),
        }
    }

    fn list_buckets(&self, req: &StubRequest) -> StubResponse {
        let Some((page, next)) = paginate(
            &self.buckets,
            self.bucket_page_size,
            req.query_param("continuation-token"),
        ) else {
            return StubResponse::s3_error(400, "InvalidArgument", "bad continuation token");
        };
        let mut xml = format!(
            "<ListAllMyBucketsResult xmlns=\"{S3_NS}\"><Owner><ID>stubowner</ID>\
             <DisplayName>stub</DisplayName></Owner><Buckets>"
        );
        for b in page {
            xml.push_str(&format!(
                "<Bucket><Name>{}</Name><CreationDate>2024-03-01T12:00:00.000Z</CreationDate>",
                xml_escape(&b.name)
            ));
            if let Some(region) = &b.listed_region {
                xml.push_str(&format!("<BucketRegion>{region}</BucketRegion>"));
            }
            xml.push_str("</Bucket>");
        }
        xml.push_str("</Buckets>");
        if let Some(token) = next {
            xml.push_str(&format!(
                "<ContinuationToken>{}</ContinuationToken>",
                xml_escape(&token)
            ));
        }
        xml.push_str("</ListAllMyBucketsResult>");
        StubResponse::s3_xml(&xml)
    }

    fn s3_bucket(&self, req: &StubRequest) -> StubResponse {
        let name = req.s3_bucket().unwrap_or_default();
        let Some(b) = self.bucket(&name) else {
            return StubResponse::s3_error(
                404,
                "NoSuchBucket",
                "The specified bucket does not exist",
            );
        };
        let sub = req.s3_subresource().unwrap_or("");
        if sub == "location" {
            // GetBucketLocation answers in any region, as on AWS.
            return if b.location.is_empty() {
                StubResponse::s3_xml(&format!("<LocationConstraint xmlns=\"{S3_NS}\"/>"))
            } else {
                StubResponse::s3_xml(&format!(
                    "<LocationConstraint xmlns=\"{S3_NS}\">{}</LocationConstraint>",
                    b.location
                ))
            };
        }
        let asked = req.signing_region().unwrap_or("");
        if asked != b.region {
            let hint = b
                .redirect_hints
                .iter()
                .find(|(from, _)| from == asked)
                .map_or(b.region.as_str(), |(_, to)| to.as_str());
            return StubResponse::s3_redirect(&b.name, hint);
        }
        match sub {
            "publicAccessBlock" => match b.pab {
                Some(flags) => StubResponse::s3_xml(&pab_xml(flags)),
                None => StubResponse::s3_error(
                    404,
                    "NoSuchPublicAccessBlockConfiguration",
                    "The public access block configuration was not found",
                ),
            },
            "policy" => match &b.policy {
                Some(policy) => StubResponse::raw(200, "application/json", policy.to_string()),
                None => StubResponse::s3_error(
                    404,
                    "NoSuchBucketPolicy",
                    "The bucket policy does not exist",
                ),
            },
            "policyStatus" => match &b.policy {
                Some(_) => StubResponse::s3_xml(&format!(
                    "<PolicyStatus xmlns=\"{S3_NS}\"><IsPublic>{}</IsPublic></PolicyStatus>",
                    b.policy_public
                )),
                None => StubResponse::s3_error(
                    404,
                    "NoSuchBucketPolicy",
                    "The bucket policy does not exist",
                ),
            },
            "acl" => StubResponse::s3_xml(&acl_xml(b.acl_public)),
            "encryption" => match &b.encryption {
                Some(algorithm) => {
                    let key = if algorithm.starts_with("aws:kms") {
                        format!(
                            "<KMSMasterKeyID>arn:aws:kms:{}:{ACCOUNT}:key/stub</KMSMasterKeyID>",
                            b.region
                        )
                    } else {
                        String::new()
                    };
                    StubResponse::s3_xml(&format!(
                        "<ServerSideEncryptionConfiguration xmlns=\"{S3_NS}\"><Rule>\
                         <ApplyServerSideEncryptionByDefault><SSEAlgorithm>{algorithm}</SSEAlgorithm>\
                         {key}</ApplyServerSideEncryptionByDefault><BucketKeyEnabled>true</BucketKeyEnabled>\
                         </Rule></ServerSideEncryptionConfiguration>"
                    ))
                }
                None => StubResponse::s3_error(
                    404,
                    "ServerSideEncryptionConfigurationNotFoundError",
                    "The server side encryption configuration was not found",
                ),
            },
            "versioning" => {
                let mut xml = format!("<VersioningConfiguration xmlns=\"{S3_NS}\">");
                if let Some(status) = &b.versioning {
                    xml.push_str(&format!("<Status>{status}</Status>"));
                    let mfa = if b.mfa_delete { "Enabled" } else { "Disabled" };
                    xml.push_str(&format!("<MfaDelete>{mfa}</MfaDelete>"));
                }
                xml.push_str("</VersioningConfiguration>");
                StubResponse::s3_xml(&xml)
            }
            "logging" => StubResponse::s3_xml(&match &b.logging {
                Some(target) => format!(
                    "<BucketLoggingStatus xmlns=\"{S3_NS}\"><LoggingEnabled>\
                     <TargetBucket>{target}</TargetBucket><TargetPrefix>{}/</TargetPrefix>\
                     </LoggingEnabled></BucketLoggingStatus>",
                    b.name
                ),
                None => format!("<BucketLoggingStatus xmlns=\"{S3_NS}\"/>"),
            }),
            _ => unscripted(req, "bucket sub-resource"),
        }
    }

    fn iam(&self, req: &StubRequest, action: &str) -> StubResponse {
        let marker = req.form_param("Marker");
        let marker = marker.as_deref();
        match action {
            "GetAccountSummary" => {
                let entries: String = self
                    .summary
                    .iter()
                    .map(|(k, v)| format!("<entry><key>{k}</key><value>{v}</value></entry>"))
                    .collect();
                StubResponse::query_xml(action, &format!("<SummaryMap>{entries}</SummaryMap>"))
            }
            "GetAccountPasswordPolicy" => match self.password_policy {
                Some((length, reuse)) => StubResponse::query_xml(
                    action,
                    &format!(
                        "<PasswordPolicy><MinimumPasswordLength>{length}</MinimumPasswordLength>\
                         <RequireSymbols>true</RequireSymbols><RequireNumbers>true</RequireNumbers>\
                         <RequireUppercaseCharacters>true</RequireUppercaseCharacters>\
                         <RequireLowercaseCharacters>true</RequireLowercaseCharacters>\
                         <AllowUsersToChangePassword>true</AllowUsersToChangePassword>\
                         <ExpirePasswords>false</ExpirePasswords>\
                         <PasswordReusePrevention>{reuse}</PasswordReusePrevention>\
                         </PasswordPolicy>"
                    ),
                ),
                None => StubResponse::query_error(
                    404,
                    "NoSuchEntity",
                    &format!("The Password Policy with domain name {ACCOUNT} cannot be found."),
                ),
            },
            "GenerateCredentialReport" => StubResponse::query_xml(
                action,
                "<State>COMPLETE</State><Description>The report is ready.</Description>",
            ),
            "GetCredentialReport" => StubResponse::query_xml(
                action,
                &format!(
                    "<Content>{}</Content><ReportFormat>text/csv</ReportFormat>\
                     <GeneratedTime>{}</GeneratedTime>",
                    base64_encode(self.credential_report.as_bytes()),
                    iso8601(unix_now(), "Z")
                ),
            ),
            "ListUsers" => {
                let Some((page, next)) = paginate(&self.users, self.user_page_size, marker) else {
                    return bad_marker();
                };
                let members: String = page
                    .iter()
                    .map(|u| {
                        format!(
                            "<member><Path>/</Path><UserName>{}</UserName><UserId>AIDA{}</UserId>\
                             <Arn>{}</Arn><CreateDate>2024-01-01T00:00:00Z</CreateDate></member>",
                            u.name,
                            u.name.to_uppercase(),
                            u.arn()
                        )
                    })
                    .collect();
                StubResponse::query_xml(
                    action,
                    &format!("<Users>{members}</Users>{}", truncation(next)),
                )
            }
            "ListAttachedUserPolicies" => {
                let Some(user) = self.user(req) else {
                    return no_such_user(req);
                };
                let Some((page, next)) = paginate(&user.attached, self.attached_page_size, marker)
                else {
                    return bad_marker();
                };
                let members: String = page
                    .iter()
                    .map(|p| {
                        format!(
                            "<member><PolicyName>{p}</PolicyName><PolicyArn>{}</PolicyArn></member>",
                            policy_arn(p)
                        )
                    })
                    .collect();
                StubResponse::query_xml(
                    action,
                    &format!(
                        "<AttachedPolicies>{members}</AttachedPolicies>{}",
                        truncation(next)
                    ),
                )
            }
            "ListUserPolicies" => {
                let Some(user) = self.user(req) else {
                    return no_such_user(req);
                };
                let Some((page, next)) = paginate(&user.inline, 1000, marker) else {
                    return bad_marker();
                };
                let members: String = page
                    .iter()
                    .map(|p| format!("<member>{p}</member>"))
                    .collect();
                StubResponse::query_xml(
                    action,
                    &format!("<PolicyNames>{members}</PolicyNames>{}", truncation(next)),
                )
            }
            "ListPolicies" => {
                if req.form_param("Scope").as_deref() != Some("Local") {
                    return unscripted(req, "ListPolicies without Scope=Local");
                }
                let Some((page, next)) = paginate(&self.policies, self.policy_page_size, marker)
                else {
                    return bad_marker();
                };
                let members: String = page
                    .iter()
                    .map(|p| {
                        format!(
                            "<member><PolicyName>{}</PolicyName><PolicyId>ANPA{}</PolicyId>\
                             <Arn>{}</Arn><Path>/</Path><DefaultVersionId>v3</DefaultVersionId>\
                             <AttachmentCount>{}</AttachmentCount><IsAttachable>true</IsAttachable>\
                             </member>",
                            p.name,
                            p.name.to_uppercase(),
                            policy_arn(&p.name),
                            p.attachment_count
                        )
                    })
                    .collect();
                StubResponse::query_xml(
                    action,
                    &format!("<Policies>{members}</Policies>{}", truncation(next)),
                )
            }
            "GetPolicyVersion" => {
                let arn = req.form_param("PolicyArn").unwrap_or_default();
                let Some(policy) = self.policies.iter().find(|p| policy_arn(&p.name) == arn) else {
                    return StubResponse::query_error(404, "NoSuchEntity", "no such policy");
                };
                if req.form_param("VersionId").as_deref() != Some("v3") {
                    return StubResponse::query_error(404, "NoSuchEntity", "no such version");
                }
                StubResponse::query_xml(
                    action,
                    &format!(
                        "<PolicyVersion><Document>{}</Document><VersionId>v3</VersionId>\
                         <IsDefaultVersion>true</IsDefaultVersion></PolicyVersion>",
                        percent_encode(&policy.document.to_string())
                    ),
                )
            }
            _ => unscripted(req, "IAM action"),
        }
    }

    fn user(&self, req: &StubRequest) -> Option<&UserSpec> {
        let name = req.form_param("UserName")?;
        self.users.iter().find(|u| u.name == name)
    }

    fn organizations(&self, req: &StubRequest) -> StubResponse {
        if req.signing_service() != Some("organizations")
            || req
                .json_target()
                .is_some_and(|t| !t.starts_with("AWSOrganizationsV20161128."))
        {
            return unscripted(req, "JSON call");
        }
        let Some(org) = &self.org else {
            return StubResponse::json_error(
                400,
                "AWSOrganizationsNotInUseException",
                "Your account is not a member of an organization.",
            );
        };
        let body = req.json_body();
        let token = body["NextToken"].as_str();
        match req.json_operation().unwrap_or("") {
            "DescribeOrganization" => StubResponse::json(&json!({"Organization": {
                "Id": "o-stub1234",
                "Arn": format!("arn:aws:organizations::{ACCOUNT}:organization/o-stub1234"),
                "FeatureSet": org.feature_set,
                "MasterAccountArn": format!("arn:aws:organizations::{ACCOUNT}:account/o-stub1234/{ACCOUNT}"),
                "MasterAccountId": ACCOUNT,
                "MasterAccountEmail": "root@example.com",
                "AvailablePolicyTypes": [{"Type": "SERVICE_CONTROL_POLICY", "Status": "ENABLED"}]
            }})),
            "ListParents" => {
                let child = body["ChildId"].as_str().unwrap_or("");
                let Some(pages) = org.parents.get(child) else {
                    return StubResponse::json_error(400, "ChildNotFoundException", child);
                };
                org_page(
                    pages,
                    token,
                    "Parents",
                    |(id, kind)| json!({"Id": id, "Type": kind}),
                )
            }
            "ListPoliciesForTarget" => {
                if body["Filter"] != "SERVICE_CONTROL_POLICY" {
                    return unscripted(req, "ListPoliciesForTarget filter");
                }
                let target = body["TargetId"].as_str().unwrap_or("");
                let Some(pages) = org.policies.get(target) else {
                    return StubResponse::json(&json!({"Policies": []}));
                };
                org_page(pages, token, "Policies", Scp::to_json)
            }
            _ => unscripted(req, "Organizations operation"),
        }
    }
}

/// Tokens with characters that must be percent-encoded on the way back.
fn page_token(offset: usize) -> String {
    format!("tok/{offset}+=x")
}

/// One page of `items` from the offset in `token`; `None` for a token we
/// never handed out (for instance one mangled by bad encoding).
fn paginate<'a, T>(
    items: &'a [T],
    size: usize,
    token: Option<&str>,
) -> Option<(&'a [T], Option<String>)> {
    let start = match token {
        None => 0,
        Some(t) => t.strip_prefix("tok/")?.strip_suffix("+=x")?.parse().ok()?,
    };
    if start > items.len() {
        return None;
    }
    let end = (start + size).min(items.len());
    let next = (end < items.len()).then(|| page_token(end));
    Some((&items[start..end], next))
}

fn truncation(next: Option<String>) -> String {
    match next {
        Some(marker) => format!(
            "<IsTruncated>true</IsTruncated><Marker>{}</Marker>",
            xml_escape(&marker)
        ),
        None => "<IsTruncated>false</IsTruncated>".into(),
    }
}

fn org_page<T>(
    pages: &[Vec<T>],
    token: Option<&str>,
    key: &str,
    to_json: impl Fn(&T) -> Value,
) -> StubResponse {
    let index = match token {
        None => 0,
        Some(t) => match t.strip_prefix("org/").and_then(|n| n.parse::<usize>().ok()) {
            Some(n) if n < pages.len() => n,
            _ => return StubResponse::json_error(400, "InvalidInputException", "bad NextToken"),
        },
    };
    let mut page = json!({ key: pages[index].iter().map(&to_json).collect::<Vec<_>>() });
    if index + 1 < pages.len() {
        page["NextToken"] = json!(format!("org/{}", index + 1));
    }
    StubResponse::json(&page)
}

fn bad_marker() -> StubResponse {
    StubResponse::query_error(400, "InvalidInput", "bad Marker")
}

fn no_such_user(req: &StubRequest) -> StubResponse {
    StubResponse::query_error(
        404,
        "NoSuchEntity",
        &format!("The user {:?} cannot be found.", req.form_param("UserName")),
    )
}

/// Anything the model does not know: a loud 400 the scan reports as ERROR.
fn unscripted(req: &StubRequest, what: &str) -> StubResponse {
    StubResponse::s3_error(
        400,
        "StubUnscripted",
        &format!(
            "{what}: {} {}?{} {:?}",
            req.method,
            req.path,
            req.raw_query,
            req.body_text()
        ),
    )
}

fn pab_xml([a, b, c, d]: [bool; 4]) -> String {
    format!(
        "<PublicAccessBlockConfiguration xmlns=\"{S3_NS}\"><BlockPublicAcls>{a}</BlockPublicAcls>\
         <IgnorePublicAcls>{b}</IgnorePublicAcls><BlockPublicPolicy>{c}</BlockPublicPolicy>\
         <RestrictPublicBuckets>{d}</RestrictPublicBuckets></PublicAccessBlockConfiguration>"
    )
}

fn acl_xml(public: bool) -> String {
    let xsi = "xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"";
    let mut grants = format!(
        "<Grant><Grantee {xsi} xsi:type=\"CanonicalUser\"><ID>stubowner</ID></Grantee>\
         <Permission>FULL_CONTROL</Permission></Grant>"
    );
    if public {
        grants.push_str(&format!(
            "<Grant><Grantee {xsi} xsi:type=\"Group\">\
             <URI>http://acs.amazonaws.com/groups/global/AllUsers</URI></Grantee>\
             <Permission>READ</Permission></Grant>"
        ));
    }
    format!(
        "<AccessControlPolicy xmlns=\"{S3_NS}\"><Owner><ID>stubowner</ID></Owner>\
         <AccessControlList>{grants}</AccessControlList></AccessControlPolicy>"
    )
}

/// Starts a stub answering from `account`, with `hook` asked first.
fn serve<H>(account: Account, hook: H) -> Stub
where
    H: Fn(&StubRequest) -> Option<StubResponse> + Send + Sync + 'static,
{
    let account = Arc::new(account);
    Stub::start(move |req| hook(req).unwrap_or_else(|| account.respond(req)))
}

fn no_hook(_: &StubRequest) -> Option<StubResponse> {
    None
}

// ---- running the binary ------------------------------------------------------

struct Scan {
    code: i32,
    stdout: String,
    stderr: String,
    report: Value,
}

fn scan(stub: &Stub) -> Scan {
    scan_with(stub, &[])
}

/// Runs `dspm-audit scan --format json` against the stub, with a clean
/// environment: only the variables below reach the child.
fn scan_with(stub: &Stub, extra_env: &[(&str, &str)]) -> Scan {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dspm-audit"));
    command
        .args(["scan", "--format", "json", "--framework", FRAMEWORK])
        .env_clear()
        .env("AWS_REGION", HOME)
        .env("AWS_ENDPOINT_URL", stub.endpoint())
        .env("AWS_ACCESS_KEY_ID", KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", "stub-secret-key-not-real")
        .env("AWS_SESSION_TOKEN", "stub-session-token-not-real")
        .env("DSPM_AWS_RETRY_BASE_MS", "5")
        .env("DSPM_AWS_CALL_TIMEOUT_MS", "3000");
    for (k, v) in extra_env {
        command.env(k, v);
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dspm-audit");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + SCAN_DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for dspm-audit") {
            break status;
        }
        if Instant::now() >= deadline {
            // Our own child, by its handle.
            let _ = child.kill();
            let _ = child.wait();
            let stderr = err_reader.join().unwrap_or_default();
            panic!("scan did not finish within {SCAN_DEADLINE:?}; stderr:\n{stderr}");
        }
        thread::sleep(Duration::from_millis(10));
    };
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    let code = status.code().expect("dspm-audit exited by a signal");
    let report = if code == 2 {
        Value::Null
    } else {
        serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!("scan printed no JSON ({e}), exit {code}:\n{stdout}\n{stderr}")
        })
    };
    Scan {
        code,
        stdout,
        stderr,
        report,
    }
}

impl Scan {
    /// Results by (check, resource), one per pair: a check that evidences
    /// several controls appears several times, identically.
    fn by_check(&self) -> BTreeMap<(String, String), Value> {
        let mut map: BTreeMap<(String, String), Value> = BTreeMap::new();
        for r in self.report["results"].as_array().expect("results") {
            let Some(check) = r["check"].as_str() else {
                continue; // manual controls
            };
            let key = (
                check.to_string(),
                r["resource"].as_str().unwrap_or("").to_string(),
            );
            if let Some(seen) = map.get(&key) {
                assert_eq!(
                    (&seen["status"], &seen["reason"], &seen["region"]),
                    (&r["status"], &r["reason"], &r["region"]),
                    "{key:?} differs between controls"
                );
            }
            map.insert(key, r.clone());
        }
        map
    }

    fn result(&self, check: &str, resource: &str) -> Value {
        let all = self.by_check();
        all.get(&(check.to_string(), resource.to_string()))
            .cloned()
            .unwrap_or_else(|| {
                panic!(
                    "no result for {check} on {resource}; have:\n{}\nstderr:\n{}",
                    all.keys()
                        .map(|(c, r)| format!("  {c} {r}"))
                        .collect::<Vec<_>>()
                        .join("\n"),
                    self.stderr
                )
            })
    }

    fn status(&self, check: &str, resource: &str) -> String {
        self.result(check, resource)["status"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// Every (check, resource) -> status.
    fn statuses(&self) -> BTreeMap<(String, String), String> {
        self.by_check()
            .into_iter()
            .map(|(k, v)| (k, v["status"].as_str().unwrap_or("").to_string()))
            .collect()
    }

    /// The results for `resource`, check -> result.
    fn for_resource(&self, resource: &str) -> BTreeMap<String, Value> {
        self.by_check()
            .into_iter()
            .filter(|((_, r), _)| r == resource)
            .map(|((c, _), v)| (c, v))
            .collect()
    }

    /// Resources that have a result for `check`.
    fn resources(&self, check: &str) -> BTreeSet<String> {
        self.by_check()
            .into_keys()
            .filter(|(c, _)| c == check)
            .map(|(_, r)| r)
            .collect()
    }
}

const BUCKET_CHECKS: [&str; 7] = [
    "s3.bucket_block_public_access",
    "s3.bucket_not_public",
    "s3.bucket_tls_only",
    "s3.bucket_default_encryption_kms",
    "s3.bucket_versioning",
    "s3.bucket_mfa_delete",
    "s3.bucket_access_logging",
];

fn bucket_arn(name: &str) -> String {
    format!("arn:aws:s3:::{name}")
}

/// Requests that read `bucket`, other than `GetBucketLocation`.
fn bucket_reads(stub: &Stub, bucket: &str) -> Vec<StubRequest> {
    stub.requests_where(|r| {
        r.s3_bucket().as_deref() == Some(bucket) && r.s3_subresource() != Some("location")
    })
}

fn count_where(requests: &[StubRequest], stub_status: impl Fn(&StubRequest) -> bool) -> usize {
    requests.iter().filter(|r| stub_status(r)).count()
}

// ---- the stub itself ---------------------------------------------------------

#[test]
fn stub_helpers_encode_like_aws() {
    assert_eq!(base64_encode(b""), "");
    assert_eq!(base64_encode(b"f"), "Zg==");
    assert_eq!(base64_encode(b"fo"), "Zm8=");
    assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
    assert_eq!(
        support::stub::percent_decode("a%2Fb+c%zz%4", true),
        "a/b c%zz%4"
    );
    assert_eq!(support::stub::percent_decode("a+b", false), "a+b");
    assert_eq!(percent_encode("a b/+é"), "a%20b%2F%2B%C3%A9");
    assert_eq!(iso8601(0, "Z"), "1970-01-01T00:00:00Z");
    assert_eq!(
        iso8601(1_700_000_000, "+00:00"),
        "2023-11-14T22:13:20+00:00"
    );
    assert_eq!(
        support::stub::http_date(std::time::UNIX_EPOCH + Duration::from_secs(784_111_777)),
        "Sun, 06 Nov 1994 08:49:37 GMT"
    );
}

/// The stub speaks keep-alive and `Connection: close`, Content-Length and
/// chunked bodies, records requests, and parses the SigV4 scope.
#[test]
fn stub_serves_keep_alive_and_close() {
    use std::io::Write;
    use std::net::TcpStream;

    let stub = Stub::start(|req| {
        let answer = format!("{} {} {}", req.method, req.path, req.body_text());
        let response = StubResponse::raw(200, "text/plain", answer);
        if req.has_query("bye") {
            response.with_header("Connection", "close")
        } else {
            response
        }
    });
    let mut stream = TcpStream::connect(("127.0.0.1", stub.port())).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let auth = "AWS4-HMAC-SHA256 Credential=ASIATESTSTUB/20250101/eu-west-3/s3/aws4_request, \
                SignedHeaders=host;x-amz-date, Signature=abc";
    let requests = format!(
        "POST /one?x=a%2Fb+c&acl HTTP/1.1\r\nHost: h\r\nAuthorization: {auth}\r\n\
         Content-Length: 5\r\n\r\nhello\
         POST /two HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n\
         3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n\
         GET /three?bye HTTP/1.1\r\nHost: h\r\n\r\n"
    );
    stream.write_all(requests.as_bytes()).expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read to close");
    assert_eq!(answer.matches("HTTP/1.1 200 OK").count(), 3, "{answer}");
    assert!(answer.contains("Content-Length: 15\r\n"), "{answer}");
    assert!(answer.ends_with("GET /three "), "{answer}");
    assert!(answer.contains("Connection: close"), "{answer}");

    let log = stub.requests();
    assert_eq!(log.len(), 3);
    assert!(log.iter().all(|r| r.connection == log[0].connection));
    assert_eq!(log[0].query_param("x"), Some("a/b c"));
    assert!(log[0].has_query("acl"));
    assert_eq!(log[0].signing_region(), Some("eu-west-3"));
    assert_eq!(log[0].signing_service(), Some("s3"));
    assert_eq!(log[0].signed_headers(), ["host", "x-amz-date"]);
    assert_eq!(log[0].body, b"hello");
    assert_eq!(log[1].body, b"abcde");
    assert_eq!(log[2].method, "GET");
}

/// A handler panic answers 500 and fails the test when the stub drops.
#[test]
#[should_panic(expected = "handler panicked on GET /boom")]
fn stub_reports_handler_panics() {
    use std::io::Write;
    use std::net::TcpStream;

    let stub = Stub::start(|_| panic!("scripted failure"));
    let mut stream = TcpStream::connect(("127.0.0.1", stub.port())).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    stream
        .write_all(b"GET /boom HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        .expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    assert!(answer.starts_with("HTTP/1.1 500 "), "{answer}");
    assert!(answer.contains("StubHandlerPanicked"), "{answer}");
    assert_eq!(stub.problems().len(), 1);
    // Dropping the stub now panics with the handler's failure.
}

// ---- the baseline --------------------------------------------------------------

/// The healthy account: exit 0, every check PASS, every action collection
/// knows is exercised and nothing else is asked.
#[test]
fn healthy_account_passes_every_check() {
    let mut account = Account::healthy();
    // A second bucket that ListBuckets lists without its region.
    account
        .buckets
        .push(BucketSpec::unlisted("older-data", "", HOME));
    let stub = serve(account, no_hook);
    let scan = scan(&stub);
    assert_eq!(scan.code, 0, "stderr:\n{}\n{}", scan.stderr, scan.stdout);
    let statuses = scan.statuses();
    let not_pass: Vec<_> = statuses.iter().filter(|(_, s)| *s != "PASS").collect();
    assert!(not_pass.is_empty(), "{not_pass:#?}");
    let checks: BTreeSet<&str> = statuses.keys().map(|(c, _)| c.as_str()).collect();
    let all: BTreeSet<&str> = dspm_audit::evaluate::CHECKS.iter().map(|c| c.id).collect();
    assert_eq!(checks, all, "every check has a result");
    assert_eq!(scan.report["account"]["id"], ACCOUNT);
    assert_eq!(
        scan.result("s3.bucket_versioning", &bucket_arn("healthy-data"))["region"],
        HOME
    );

    let asked: BTreeSet<String> = stub
        .requests()
        .iter()
        .map(|r| {
            r.aws_action()
                .unwrap_or_else(|| panic!("unrecognised request {} {}", r.method, r.path))
        })
        .collect();
    let known: BTreeSet<String> = dspm_audit::collect::ACTIONS
        .iter()
        .map(|a| a.to_string())
        .collect();
    assert_eq!(asked, known, "requests made vs collect::ACTIONS");
}

// ---- 1. ListBuckets pagination ------------------------------------------------

#[test]
fn list_buckets_follows_continuation_tokens_over_three_pages() {
    let mut account = Account::healthy();
    account.buckets = (1..=7)
        .map(|i| BucketSpec::healthy(&format!("paged-{i}"), HOME))
        .collect();
    account.bucket_page_size = 3;
    let stub = serve(account, no_hook);
    let scan = scan(&stub);
    assert_eq!(scan.code, 0, "{}", scan.stderr);

    let expected: BTreeSet<String> = (1..=7).map(|i| bucket_arn(&format!("paged-{i}"))).collect();
    for check in BUCKET_CHECKS {
        assert_eq!(scan.resources(check), expected, "{check}");
    }

    let pages = stub.calls("s3:ListAllMyBuckets");
    let tokens: Vec<Option<&str>> = pages
        .iter()
        .map(|r| r.query_param("continuation-token"))
        .collect();
    assert_eq!(
        tokens,
        [
            None,
            Some(page_token(3).as_str()),
            Some(page_token(6).as_str())
        ]
    );
    for page in &pages {
        assert_eq!(page.query_param("max-buckets"), Some("1000"));
        assert_eq!(page.signing_region(), Some(HOME));
    }
    // The token's `/`, `+` and `=` travel percent-encoded.
    assert!(
        pages[1]
            .raw_query
            .contains("continuation-token=tok%2F3%2B%3Dx"),
        "{}",
        pages[1].raw_query
    );
}

// ---- 2. IAM pagination ----------------------------------------------------------

const BOB: &str = "bob.ci+deploy=x,y@corp_1-a";

#[test]
fn iam_lists_follow_markers() {
    let mut account = Account::healthy();
    account.users = vec![
        UserSpec {
            attached: vec!["PolicyA".into(), "PolicyB".into(), "PolicyC".into()],
            ..UserSpec::new("alice")
        },
        // IAM allows `+=,.@_-` in names; they travel form-encoded.
        UserSpec {
            attached: vec!["PolicyB".into()],
            ..UserSpec::new(BOB)
        },
        UserSpec {
            inline: vec!["carol-inline".into()],
            ..UserSpec::new("carol")
        },
    ];
    account.user_page_size = 2;
    account.attached_page_size = 2;
    account.policies = vec![
        PolicySpec::read_only("PolicyA"),
        PolicySpec::read_only("PolicyB"),
        PolicySpec::admin("PolicyC"),
    ];
    account.policy_page_size = 2;
    let stub = serve(account, no_hook);
    let scan = scan(&stub);
    assert_eq!(scan.code, 1, "{}", scan.stderr);

    let users: BTreeSet<String> = ["alice", BOB, "carol"].map(user_arn).into();
    assert_eq!(scan.resources("iam.no_user_attached_policies"), users);
    let alice = scan.result("iam.no_user_attached_policies", &user_arn("alice"));
    assert_eq!(alice["status"], "FAIL");
    assert_eq!(
        alice["evidence"]["attached_policies"],
        json!(["PolicyA", "PolicyB", "PolicyC"])
    );
    assert_eq!(
        scan.result("iam.no_user_attached_policies", &user_arn(BOB))["evidence"]
            ["attached_policies"],
        json!(["PolicyB"])
    );
    let carol = scan.result("iam.no_user_attached_policies", &user_arn("carol"));
    assert_eq!(carol["status"], "FAIL");
    assert_eq!(
        carol["evidence"]["inline_policies"],
        json!(["carol-inline"])
    );

    let policies: BTreeSet<String> = ["PolicyA", "PolicyB", "PolicyC"].map(policy_arn).into();
    assert_eq!(scan.resources("iam.no_full_admin_policies"), policies);
    assert_eq!(
        scan.status("iam.no_full_admin_policies", &policy_arn("PolicyA")),
        "PASS"
    );
    let admin = scan.result("iam.no_full_admin_policies", &policy_arn("PolicyC"));
    assert_eq!(admin["status"], "FAIL", "{admin}");
    assert_eq!(
        admin["evidence"]["full_admin_statements"],
        json!(["Everything"])
    );

    let markers = |action: &str, user: Option<&str>| -> Vec<Option<String>> {
        stub.calls(action)
            .iter()
            .filter(|r| user.is_none() || r.form_param("UserName").as_deref() == user)
            .map(|r| r.form_param("Marker"))
            .collect()
    };
    let second = Some(page_token(2));
    assert_eq!(markers("iam:ListUsers", None), [None, second.clone()]);
    assert_eq!(markers("iam:ListPolicies", None), [None, second.clone()]);
    assert_eq!(
        markers("iam:ListAttachedUserPolicies", Some("alice")),
        [None, second]
    );
    assert_eq!(markers("iam:ListAttachedUserPolicies", Some(BOB)), [None]);
    let bob_call = &stub
        .calls("iam:ListAttachedUserPolicies")
        .into_iter()
        .find(|r| r.form_param("UserName").as_deref() == Some(BOB))
        .expect("bob's policies listed");
    assert!(
        bob_call
            .body_text()
            .contains("UserName=bob.ci%2Bdeploy%3Dx%2Cy%40corp_1-a"),
        "{}",
        bob_call.body_text()
    );
    for r in stub.calls("iam:ListUsers") {
        assert_eq!(r.form_param("MaxItems").as_deref(), Some("1000"));
    }
    let documents: BTreeSet<String> = stub
        .calls("iam:GetPolicyVersion")
        .iter()
        .filter_map(|r| r.form_param("PolicyArn"))
        .collect();
    assert_eq!(documents, policies);
}

// ---- 3. Organizations ----------------------------------------------------------

#[test]
fn scps_follow_empty_pages_and_the_parent_chain() {
    let mut account = Account::healthy();
    let org = account.org.as_mut().expect("org");
    let ou = "ou-stub-11111111";
    org.parents.insert(
        ACCOUNT.into(),
        vec![vec![(ou.into(), "ORGANIZATIONAL_UNIT".into())]],
    );
    // The OU's parent comes after an empty page.
    org.parents.insert(
        ou.into(),
        vec![vec![], vec![("r-stub".into(), "ROOT".into())]],
    );
    // The only custom SCP sits on the account, after an empty page.
    org.policies.insert(
        ACCOUNT.into(),
        vec![vec![], vec![Scp::custom("p-dataguard", "DataGuardrails")]],
    );
    org.policies.insert(ou.into(), vec![vec![]]);
    org.policies
        .insert("r-stub".into(), vec![vec![Scp::full_aws_access()]]);
    let stub = serve(account, no_hook);
    let scan = scan(&stub);
    assert_eq!(scan.code, 0, "{}", scan.stderr);

    let scp = scan.result("organizations.scp_in_force", ACCOUNT);
    assert_eq!(scp["status"], "PASS", "{scp}");
    assert!(
        scp["reason"]
            .as_str()
            .unwrap_or("")
            .contains("DataGuardrails"),
        "{scp}"
    );
    let targets: Vec<(&str, &str)> = scp["evidence"]["policies"]
        .as_array()
        .expect("policies")
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap_or(""),
                p["target"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        targets,
        [("DataGuardrails", ACCOUNT), ("FullAWSAccess", "r-stub")]
    );

    let parents: Vec<(String, Option<String>)> = stub
        .calls("organizations:ListParents")
        .iter()
        .map(|r| {
            let body = r.json_body();
            (
                body["ChildId"].as_str().unwrap_or("").to_string(),
                body["NextToken"].as_str().map(str::to_string),
            )
        })
        .collect();
    assert_eq!(
        parents,
        [
            (ACCOUNT.to_string(), None),
            (ou.to_string(), None),
            (ou.to_string(), Some("org/1".to_string())),
        ]
    );
    let listed: Vec<(String, Option<String>)> = stub
        .calls("organizations:ListPoliciesForTarget")
        .iter()
        .map(|r| {
            let body = r.json_body();
            assert_eq!(body["Filter"], "SERVICE_CONTROL_POLICY");
            (
                body["TargetId"].as_str().unwrap_or("").to_string(),
                body["NextToken"].as_str().map(str::to_string),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            (ACCOUNT.to_string(), None),
            (ACCOUNT.to_string(), Some("org/1".to_string())),
            (ou.to_string(), None),
            ("r-stub".to_string(), None),
        ]
    );
}

#[test]
fn account_outside_an_organization_fails_the_scp_check() {
    let mut account = Account::healthy();
    account.org = None;
    let stub = serve(account, no_hook);
    let scan = scan(&stub);
    assert_eq!(scan.code, 1, "{}", scan.stderr);
    let scp = scan.result("organizations.scp_in_force", ACCOUNT);
    assert_eq!(scp["status"], "FAIL", "{scp}");
    assert!(
        scp["reason"]
            .as_str()
            .unwrap_or("")
            .contains("not in an AWS Organization"),
        "{scp}"
    );
    assert_eq!(stub.calls("organizations:DescribeOrganization").len(), 1);
    assert!(stub.calls("organizations:ListParents").is_empty());
    assert!(stub.calls("organizations:ListPoliciesForTarget").is_empty());
}

// ---- 4. S3 region redirects ---------------------------------------------------

#[test]
fn s3_redirect_is_followed_once_to_the_bucket_region() {
    let mut account = Account::healthy();
    // GetBucketLocation lies (us-west-2); the bucket answers in eu-central-1
    // only, and there its versioning is suspended and logging off.
    let mut moved = BucketSpec::unlisted("moved-data", "us-west-2", "eu-central-1");
    moved.versioning = Some("Suspended".into());
    moved.mfa_delete = false;
    moved.logging = None;
    account.buckets.push(moved);
    let stub = serve(account, no_hook);
    let scan = scan(&stub);
    assert_eq!(scan.code, 1, "{}", scan.stderr);

    let results = scan.for_resource(&bucket_arn("moved-data"));
    assert_eq!(results.len(), BUCKET_CHECKS.len(), "{results:#?}");
    for (check, r) in &results {
        assert_eq!(r["region"], "eu-central-1", "{check}: {r}");
    }
    let status = |check: &str| results[check]["status"].as_str().unwrap_or("").to_string();
    assert_eq!(status("s3.bucket_block_public_access"), "PASS");
    assert_eq!(status("s3.bucket_not_public"), "PASS");
    assert_eq!(status("s3.bucket_tls_only"), "PASS");
    assert_eq!(status("s3.bucket_default_encryption_kms"), "PASS");
    assert_eq!(status("s3.bucket_versioning"), "FAIL");
    assert_eq!(
        results["s3.bucket_versioning"]["reason"],
        "versioning is Suspended"
    );
    assert_eq!(status("s3.bucket_mfa_delete"), "FAIL");
    assert_eq!(status("s3.bucket_access_logging"), "FAIL");
    // The healthy bucket is untouched.
    for check in BUCKET_CHECKS {
        assert_eq!(
            scan.status(check, &bucket_arn("healthy-data")),
            "PASS",
            "{check}"
        );
    }

    let location = stub.requests_where(|r| {
        r.s3_bucket().as_deref() == Some("moved-data") && r.s3_subresource() == Some("location")
    });
    assert_eq!(location.len(), 1);
    assert_eq!(location[0].signing_region(), Some(HOME));

    let reads = bucket_reads(&stub, "moved-data");
    let west = count_where(&reads, |r| r.signing_region() == Some("us-west-2"));
    let central = count_where(&reads, |r| r.signing_region() == Some("eu-central-1"));
    assert_eq!(west, 1, "one redirect for the bucket, then never us-west-2");
    assert_eq!(west + central, reads.len(), "no other region asked");
    // Seven sub-resources read in eu-central-1: six after learning, plus the
    // redirected one asked again there.
    assert_eq!(central, 7);
    let first_central = reads
        .iter()
        .position(|r| r.signing_region() == Some("eu-central-1"))
        .expect("eu-central-1 reads");
    assert!(
        reads[first_central..]
            .iter()
            .all(|r| r.signing_region() == Some("eu-central-1")),
        "us-west-2 asked again after the redirect"
    );
    // The retried request is the one that was redirected.
    assert_eq!(reads[0].s3_subresource(), reads[1].s3_subresource());
}

#[test]
fn s3_redirect_to_another_wrong_region_is_not_followed_twice() {
    let mut account = Account::healthy();
    // Location says us-west-2; us-west-2 points to eu-central-1, which points
    // back to us-west-2; the bucket really is in ap-south-1.
    let mut lost = BucketSpec::unlisted("lost-data", "us-west-2", "ap-south-1");
    lost.redirect_hints = vec![
        ("us-west-2".into(), "eu-central-1".into()),
        ("eu-central-1".into(), "us-west-2".into()),
    ];
    account.buckets.push(lost);
    let stub = serve(account, no_hook);
    let scan = scan(&stub);
    assert_eq!(scan.code, 1, "{}", scan.stderr);

    let results = scan.for_resource(&bucket_arn("lost-data"));
    assert_eq!(results.len(), BUCKET_CHECKS.len(), "{results:#?}");
    for (check, r) in &results {
        assert_eq!(r["status"], "ERROR", "{check}: {r}");
        assert_eq!(
            r["evidence"]["error_code"], "PermanentRedirect",
            "{check}: {r}"
        );
        assert_eq!(r["evidence"]["http_status"], 301, "{check}: {r}");
    }
    let reads = bucket_reads(&stub, "lost-data");
    let mut per_subresource: BTreeMap<String, usize> = BTreeMap::new();
    for r in &reads {
        *per_subresource
            .entry(r.s3_subresource().unwrap_or("").to_string())
            .or_default() += 1;
    }
    // Each read: the first ask and one followed redirect, never a third.
    // (policyStatus is read because the policy could not be.)
    let expected: BTreeMap<String, usize> = [
        "acl",
        "encryption",
        "logging",
        "policy",
        "policyStatus",
        "publicAccessBlock",
        "versioning",
    ]
    .into_iter()
    .map(|s| (s.to_string(), 2))
    .collect();
    assert_eq!(per_subresource, expected);
    assert!(reads
        .iter()
        .all(|r| r.signing_region() != Some("ap-south-1")));
    for check in BUCKET_CHECKS {
        assert_eq!(
            scan.status(check, &bucket_arn("healthy-data")),
            "PASS",
            "{check}"
        );
    }
}

// ---- 5. LocationConstraint and BucketRegion ----------------------------------

#[test]
fn bucket_regions_from_location_constraints_and_listing() {
    let mut account = Account::healthy();
    account.buckets = vec![
        BucketSpec::unlisted("legacy-eu", "EU", "eu-west-1"),
        BucketSpec::unlisted("classic-virginia", "", "us-east-1"),
        BucketSpec::healthy("listed-seoul", "ap-northeast-2"),
    ];
    let stub = serve(account, no_hook);
    let scan = scan(&stub);
    assert_eq!(scan.code, 0, "{}", scan.stderr);

    for (bucket, region) in [
        ("legacy-eu", "eu-west-1"),
        ("classic-virginia", "us-east-1"),
        ("listed-seoul", "ap-northeast-2"),
    ] {
        let results = scan.for_resource(&bucket_arn(bucket));
        assert_eq!(results.len(), BUCKET_CHECKS.len(), "{bucket}");
        for (check, r) in results {
            assert_eq!(r["region"], region, "{bucket} {check}");
            assert_eq!(r["status"], "PASS", "{bucket} {check}: {r}");
        }
        // Every read went straight to the right region: no redirect.
        let reads = bucket_reads(&stub, bucket);
        assert_eq!(reads.len(), 7, "{bucket}");
        assert!(
            reads.iter().all(|r| r.signing_region() == Some(region)),
            "{bucket}: {:?}",
            reads.iter().map(|r| r.signing_region()).collect::<Vec<_>>()
        );
    }
    let location_calls = |bucket: &str| {
        stub.count(|r| {
            r.s3_bucket().as_deref() == Some(bucket) && r.s3_subresource() == Some("location")
        })
    };
    assert_eq!(location_calls("legacy-eu"), 1);
    assert_eq!(location_calls("classic-virginia"), 1);
    assert_eq!(location_calls("listed-seoul"), 0, "BucketRegion was listed");
}

// ---- 6. retries ---------------------------------------------------------------

#[test]
fn slow_down_twice_then_success_is_retried() {
    let counters = Arc::new(Counters::new());
    let c = counters.clone();
    let mut account = Account::healthy();
    let mut flaky = BucketSpec::healthy("flaky-acl", HOME);
    flaky.acl_public = true;
    account.buckets.push(flaky);
    let stub = serve(account, move |req| {
        (req.s3_bucket().as_deref() == Some("flaky-acl")
            && req.s3_subresource() == Some("acl")
            && c.bump("acl") <= 2)
            .then(|| StubResponse::s3_error(503, "SlowDown", "Please reduce your request rate."))
    });
    let scan = scan(&stub);
    assert_eq!(counters.get("acl"), 3);
    let acl_reads = stub.requests_where(|r| {
        r.s3_bucket().as_deref() == Some("flaky-acl") && r.s3_subresource() == Some("acl")
    });
    assert_eq!(acl_reads.len(), 3, "two SlowDowns and the success");
    // The ACL read on the third attempt grants AllUsers READ, and the bucket's
    // own Block Public Access (all on) neutralises it.
    let r = scan.result("s3.bucket_not_public", &bucket_arn("flaky-acl"));
    assert_eq!(r["status"], "PASS", "{r}");
    assert_eq!(
        r["reason"],
        "public grants exist but Block Public Access neutralises them"
    );
    assert_eq!(r["evidence"]["public_acl_grants"][0]["permission"], "READ");
}

#[test]
fn query_and_json_throttling_is_retried() {
    let counters = Arc::new(Counters::new());
    let c = counters.clone();
    let stub = serve(Account::healthy(), move |req| {
        match req.aws_action().as_deref() {
            Some("iam:GetAccountSummary") if c.bump("summary") == 1 => Some(
                StubResponse::query_error(400, "Throttling", "Rate exceeded"),
            ),
            Some("organizations:DescribeOrganization") if c.bump("org") == 1 => Some(
                StubResponse::json_error(400, "ThrottlingException", "Rate exceeded"),
            ),
            _ => None,
        }
    });
    let scan = scan(&stub);
    assert_eq!(scan.code, 0, "{}", scan.stderr);
    let root = format!("arn:aws:iam::{ACCOUNT}:root");
    assert_eq!(scan.status("iam.root_mfa", &root), "PASS");
    assert_eq!(scan.status("iam.root_no_access_keys", &root), "PASS");
    assert_eq!(scan.status("organizations.scp_in_force", ACCOUNT), "PASS");
    assert_eq!(stub.calls("iam:GetAccountSummary").len(), 2);
    assert_eq!(stub.calls("organizations:DescribeOrganization").len(), 2);
}

#[test]
fn server_errors_exhaust_three_attempts_and_stay_local() {
    let mut account = Account::healthy();
    account
        .buckets
        .push(BucketSpec::healthy("broken-policy", HOME));
    let stub = serve(account, |req| {
        (req.s3_bucket().as_deref() == Some("broken-policy")
            && req.s3_subresource() == Some("policy"))
        .then(|| StubResponse::s3_error(500, "InternalError", "We encountered an internal error."))
    });
    let scan = scan(&stub);
    assert_eq!(scan.code, 1, "{}", scan.stderr);
    let arn = bucket_arn("broken-policy");
    let tls = scan.result("s3.bucket_tls_only", &arn);
    assert_eq!(tls["status"], "ERROR", "{tls}");
    let reason = tls["reason"].as_str().unwrap_or("");
    assert!(reason.contains("s3:GetBucketPolicy"), "{reason}");
    assert!(reason.contains("InternalError"), "{reason}");
    assert_eq!(tls["evidence"]["action"], "s3:GetBucketPolicy");
    assert_eq!(tls["evidence"]["error_code"], "InternalError");
    assert_eq!(tls["evidence"]["http_status"], 500);
    let attempts = stub.count(|r| {
        r.s3_bucket().as_deref() == Some("broken-policy") && r.s3_subresource() == Some("policy")
    });
    assert_eq!(attempts, 3, "DSPM_AWS_MAX_ATTEMPTS defaults to 3");
    for check in BUCKET_CHECKS.iter().filter(|c| **c != "s3.bucket_tls_only") {
        assert_eq!(scan.status(check, &arn), "PASS", "{check}");
    }
}

#[test]
fn access_denied_is_not_retried() {
    let mut account = Account::healthy();
    account
        .buckets
        .push(BucketSpec::healthy("denied-logging", HOME));
    let stub = serve(account, |req| {
        (req.s3_bucket().as_deref() == Some("denied-logging")
            && req.s3_subresource() == Some("logging"))
        .then(|| StubResponse::s3_error(403, "AccessDenied", "Access Denied"))
    });
    let scan = scan(&stub);
    assert_eq!(scan.code, 1, "{}", scan.stderr);
    let arn = bucket_arn("denied-logging");
    let r = scan.result("s3.bucket_access_logging", &arn);
    assert_eq!(r["status"], "ERROR", "{r}");
    assert_eq!(r["evidence"]["error_code"], "AccessDenied");
    assert!(
        r["reason"]
            .as_str()
            .unwrap_or("")
            .contains("needs the s3:GetBucketLogging permission"),
        "{r}"
    );
    let attempts = stub.count(|r| {
        r.s3_bucket().as_deref() == Some("denied-logging") && r.s3_subresource() == Some("logging")
    });
    assert_eq!(attempts, 1);
}

// ---- 7. "not configured" answers ------------------------------------------------

#[test]
fn not_configured_answers_are_facts_not_errors() {
    let mut account = Account::healthy();
    account.account_pab = None;
    account.password_policy = None;
    let mut bare = BucketSpec::healthy("bare-bucket", HOME);
    bare.pab = None;
    bare.policy = None;
    bare.encryption = None;
    account.buckets = vec![bare];
    let stub = serve(account, no_hook);
    let scan = scan(&stub);
    assert_eq!(scan.code, 1, "{}", scan.stderr);
    let arn = bucket_arn("bare-bucket");

    let account_pab = scan.result("s3.account_block_public_access", ACCOUNT);
    assert_eq!(account_pab["status"], "FAIL", "{account_pab}");
    assert_eq!(account_pab["evidence"]["configured"], false);
    let cases = [
        (
            "s3.bucket_block_public_access",
            "the bucket has no Block Public Access configuration and the account's is not fully on",
        ),
        (
            "s3.bucket_tls_only",
            "the bucket has no policy, so requests over plain HTTP are not denied",
        ),
        (
            "s3.bucket_default_encryption_kms",
            "the bucket has no default encryption configuration",
        ),
    ];
    for (check, reason) in cases {
        let r = scan.result(check, &arn);
        assert_eq!(r["status"], "FAIL", "{check}: {r}");
        assert_eq!(r["reason"], reason, "{check}");
    }
    // No policy: nothing public, and the policy status is not asked.
    assert_eq!(scan.status("s3.bucket_not_public", &arn), "PASS");
    assert_eq!(stub.calls("s3:GetBucketPolicyStatus").len(), 0);
    for check in ["iam.password_min_length", "iam.password_reuse_prevention"] {
        let r = scan.result(check, ACCOUNT);
        assert_eq!(r["status"], "FAIL", "{check}: {r}");
        assert_eq!(r["evidence"]["password_policy"], Value::Null);
    }
    // Each "not configured" answer was taken at once, not retried.
    for action in [
        "s3:GetAccountPublicAccessBlock",
        "s3:GetBucketPublicAccessBlock",
        "s3:GetBucketPolicy",
        "s3:GetEncryptionConfiguration",
        "iam:GetAccountPasswordPolicy",
    ] {
        assert_eq!(stub.calls(action).len(), 1, "{action}");
    }
}

// ---- 8. credential report -------------------------------------------------------

#[test]
fn credential_report_waits_and_reads_every_date_form() {
    let mut account = Account::healthy();
    let row = |user: &str, rest: &str| format!("{user},{},{}", user_arn(user), rest);
    let rows = [
        format!(
            "<root_account>,arn:aws:iam::{ACCOUNT}:root,{},not_supported,no_information,\
             not_supported,not_supported,false,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,\
             false,N/A,false,N/A",
            days_ago(900)
        ),
        // An active key rotated 200 days ago, used yesterday; no password.
        row(
            "stale-key",
            &format!(
                "{},false,N/A,N/A,N/A,false,true,{},{},us-east-1,s3,false,N/A,N/A,N/A,N/A,\
                 false,N/A,false,N/A",
                days_ago(300),
                days_ago(200),
                days_ago(1)
            ),
        ),
        // Password used two days ago with MFA; a key rotated 10 days ago,
        // never used (N/A), with a `Z` date.
        row(
            "fresh",
            &format!(
                "{},true,{},{},N/A,true,true,{},N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,\
                 false,N/A,false,N/A",
                days_ago(50),
                days_ago(2),
                days_ago(50),
                iso8601(unix_now() - 10 * DAY, "Z")
            ),
        ),
        // Password never used (no_information), changed 100 days ago, no MFA.
        row(
            "idle",
            &format!(
                "{},true,no_information,{},N/A,false,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,\
                 N/A,false,N/A,false,N/A",
                days_ago(120),
                days_ago(100)
            ),
        ),
        // Two active keys, both young, last-used dates empty.
        row(
            "two-keys",
            &format!(
                "{},false,N/A,N/A,N/A,false,true,{},,N/A,N/A,true,{},,N/A,N/A,false,N/A,false,N/A",
                days_ago(30),
                days_ago(5),
                days_ago(6)
            ),
        ),
        // An active key without any date.
        row(
            "no-dates",
            &format!(
                "{},false,N/A,N/A,N/A,false,true,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,\
                 false,N/A,false,N/A",
                days_ago(30)
            ),
        ),
    ];
    account.credential_report = format!("{REPORT_HEADER}\n{}\n", rows.join("\n"));
    let counters = Arc::new(Counters::new());
    let c = counters.clone();
    let stub = serve(account, move |req| {
        if req.aws_action().as_deref() != Some("iam:GenerateCredentialReport") {
            return None;
        }
        let state = match c.bump("generate") {
            1 => "STARTED",
            2 => "INPROGRESS",
            _ => return None, // COMPLETE
        };
        Some(StubResponse::query_xml(
            "GenerateCredentialReport",
            &format!("<State>{state}</State><Description>Working on it.</Description>"),
        ))
    });
    let scan = scan(&stub);
    assert_eq!(scan.code, 1, "{}", scan.stderr);
    assert_eq!(stub.calls("iam:GenerateCredentialReport").len(), 3);
    assert_eq!(stub.calls("iam:GetCredentialReport").len(), 1);
    let generate_then_get: Vec<String> = stub
        .requests()
        .iter()
        .filter_map(|r| r.aws_action())
        .filter(|a| a.contains("CredentialReport"))
        .collect();
    assert_eq!(
        generate_then_get.last().map(String::as_str),
        Some("iam:GetCredentialReport"),
        "the report is read only once COMPLETE"
    );

    let status = |check: &str, user: &str| scan.status(check, &user_arn(user));
    let reason = |check: &str, user: &str| {
        scan.result(check, &user_arn(user))["reason"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    // Rotation: 200 days is too old; 10, 5 and 6 are fine; no date is ERROR.
    assert_eq!(status("iam.access_key_rotation", "stale-key"), "FAIL");
    assert_eq!(
        reason("iam.access_key_rotation", "stale-key"),
        "an active access key is 200 days old (limit 90)"
    );
    assert_eq!(status("iam.access_key_rotation", "fresh"), "PASS");
    assert_eq!(status("iam.access_key_rotation", "two-keys"), "PASS");
    assert_eq!(status("iam.access_key_rotation", "no-dates"), "ERROR");
    assert!(!scan
        .resources("iam.access_key_rotation")
        .contains(&user_arn("idle")));
    // Unused credentials.
    assert_eq!(status("iam.unused_credentials", "stale-key"), "PASS");
    assert_eq!(status("iam.unused_credentials", "fresh"), "PASS");
    assert_eq!(status("iam.unused_credentials", "idle"), "FAIL");
    assert!(
        reason("iam.unused_credentials", "idle").contains("password unused for 100 days"),
        "{}",
        reason("iam.unused_credentials", "idle")
    );
    assert_eq!(status("iam.unused_credentials", "two-keys"), "PASS");
    assert_eq!(status("iam.unused_credentials", "no-dates"), "ERROR");
    // Console MFA only for users with a password; the root row is skipped.
    assert_eq!(status("iam.console_user_mfa", "fresh"), "PASS");
    assert_eq!(status("iam.console_user_mfa", "idle"), "FAIL");
    let console: BTreeSet<String> = ["fresh", "idle"].map(user_arn).into();
    assert_eq!(scan.resources("iam.console_user_mfa"), console);
    assert_eq!(status("iam.single_active_access_key", "two-keys"), "FAIL");
    assert_eq!(status("iam.single_active_access_key", "stale-key"), "PASS");
    let root = format!("arn:aws:iam::{ACCOUNT}:root");
    for check in [
        "iam.console_user_mfa",
        "iam.unused_credentials",
        "iam.single_active_access_key",
        "iam.access_key_rotation",
    ] {
        assert!(!scan.resources(check).contains(&root), "{check}");
    }
}

// ---- 9. signature shape -------------------------------------------------------

#[test]
fn every_request_is_signed_and_addressed_to_the_stub_only() {
    let stub = serve(Account::healthy(), no_hook);
    let scan = scan(&stub);
    assert_eq!(scan.code, 0, "{}", scan.stderr);
    let requests = stub.requests();
    assert!(requests.len() >= 23, "{}", requests.len());
    let empty_sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    for r in &requests {
        let what = format!(
            "{} {}?{} {:?}",
            r.method,
            r.path,
            r.raw_query,
            r.aws_action()
        );
        let auth = r.header("authorization").unwrap_or("");
        assert!(
            auth.starts_with(&format!("AWS4-HMAC-SHA256 Credential={KEY_ID}/")),
            "{what}: {auth}"
        );
        let date = r
            .header("x-amz-date")
            .unwrap_or_else(|| panic!("{what}: no x-amz-date"));
        let scope = r
            .credential_scope()
            .unwrap_or_else(|| panic!("{what}: {auth}"));
        assert_eq!(scope[1], &date[..8], "{what}: scope date vs x-amz-date");
        assert_eq!(scope[4], "aws4_request");
        assert_eq!(
            r.header("x-amz-security-token"),
            Some("stub-session-token-not-real"),
            "{what}"
        );
        let signed = r.signed_headers();
        for h in ["host", "x-amz-date", "x-amz-security-token"] {
            assert!(signed.contains(&h), "{what}: {h} not signed: {signed:?}");
        }
        assert_eq!(r.header_all("host"), [stub.host().as_str()], "{what}");
        assert!(
            r.header("user-agent")
                .unwrap_or("")
                .starts_with("dspm-audit/"),
            "{what}"
        );
        let action = r.aws_action().unwrap_or_else(|| panic!("{what}: unknown"));
        let service = action.split(':').next().unwrap_or("");
        match service {
            "s3" => {
                assert_eq!(r.signing_service(), Some("s3"), "{what}");
                assert_eq!(
                    r.header("x-amz-content-sha256"),
                    Some(empty_sha256),
                    "{what}"
                );
                assert!(signed.contains(&"x-amz-content-sha256"), "{what}");
                assert_eq!(r.method, "GET", "{what}");
                if r.is_s3_control() {
                    assert_eq!(r.header("x-amz-account-id"), Some(ACCOUNT), "{what}");
                    assert!(signed.contains(&"x-amz-account-id"), "{what}");
                } else {
                    assert_eq!(r.header("x-amz-account-id"), None, "{what}");
                }
            }
            "iam" | "sts" | "organizations" => {
                assert_eq!(r.signing_service(), Some(service), "{what}");
                assert_eq!(r.signing_region(), Some("us-east-1"), "{what}");
                assert_eq!(r.method, "POST", "{what}");
                assert_eq!(r.path, "/", "{what}");
                assert!(r.raw_query.is_empty(), "{what}");
            }
            other => panic!("{what}: service {other}"),
        }
        match service {
            "iam" | "sts" => {
                assert_eq!(
                    r.header("content-type"),
                    Some("application/x-www-form-urlencoded; charset=utf-8"),
                    "{what}"
                );
                let version = if service == "iam" {
                    "2010-05-08"
                } else {
                    "2011-06-15"
                };
                assert_eq!(r.form_param("Version").as_deref(), Some(version), "{what}");
            }
            "organizations" => {
                assert_eq!(
                    r.header("content-type"),
                    Some("application/x-amz-json-1.1"),
                    "{what}"
                );
                assert!(r.json_body().is_object(), "{what}");
            }
            _ => {}
        }
    }
    // Path-style S3: the bucket is in the path, never the host.
    assert!(stub
        .requests()
        .iter()
        .any(|r| r.path == "/healthy-data" && r.has_query("acl")));
}

// ---- 10. malformed answers ---------------------------------------------------

#[test]
fn truncated_acl_is_a_malformed_response_error() {
    let stub = serve(Account::healthy(), |req| {
        (req.s3_subresource() == Some("acl"))
            .then(|| StubResponse::raw(200, "application/xml", "<AccessControlPolicy><Owner>"))
    });
    let scan = scan(&stub);
    assert_eq!(scan.code, 1, "{}", scan.stderr);
    let r = scan.result("s3.bucket_not_public", &bucket_arn("healthy-data"));
    assert_eq!(r["status"], "ERROR", "{r}");
    assert_eq!(r["evidence"]["error_code"], "MalformedResponse");
    assert_eq!(r["evidence"]["action"], "s3:GetBucketAcl");
    assert_eq!(
        stub.calls("s3:GetBucketAcl").len(),
        3,
        "an unreadable answer is retried, up to the attempt limit"
    );
    for check in BUCKET_CHECKS
        .iter()
        .filter(|c| **c != "s3.bucket_not_public")
    {
        assert_eq!(
            scan.status(check, &bucket_arn("healthy-data")),
            "PASS",
            "{check}"
        );
    }
}

#[test]
fn garbage_caller_identity_stops_the_scan() {
    let stub = serve(Account::healthy(), |req| {
        (req.aws_action().as_deref() == Some("sts:GetCallerIdentity"))
            .then(|| StubResponse::raw(200, "text/xml", "\u{0}garbage<<<not xml"))
    });
    let scan = scan(&stub);
    assert_eq!(
        scan.code, 2,
        "stdout:\n{}\nstderr:\n{}",
        scan.stdout, scan.stderr
    );
    assert!(scan.stdout.is_empty(), "{}", scan.stdout);
    assert!(
        scan.stderr.contains("sts:GetCallerIdentity failed")
            && scan.stderr.contains("MalformedResponse"),
        "{}",
        scan.stderr
    );
    let actions: Vec<String> = stub
        .requests()
        .iter()
        .filter_map(|r| r.aws_action())
        .collect();
    assert_eq!(
        actions, ["sts:GetCallerIdentity"; 3],
        "retried to the attempt limit, and nothing else is asked"
    );
}

// ---- beyond the list: connections, timeouts, clock skew, 429 -----------------

/// AWS closes connections at will: openly (`Connection: close`) or by an
/// idle timeout firing right after an answer. Neither may cost a result.
#[test]
fn connections_closed_by_the_server_cost_nothing() {
    for silently in [false, true] {
        let account = Arc::new(Account::healthy());
        let stub = Stub::start(move |req| {
            let response = account.respond(req);
            if silently {
                response.closing_silently()
            } else {
                response.with_header("Connection", "close")
            }
        });
        let scan = scan(&stub);
        assert_eq!(scan.code, 0, "silently={silently}: {}", scan.stderr);
        let not_pass: Vec<_> = scan
            .statuses()
            .into_iter()
            .filter(|(_, s)| s != "PASS")
            .collect();
        assert!(not_pass.is_empty(), "silently={silently}: {not_pass:#?}");
        let requests = stub.requests();
        let connections: BTreeSet<usize> = requests.iter().map(|r| r.connection).collect();
        assert_eq!(
            connections.len(),
            requests.len(),
            "silently={silently}: one request per connection"
        );
    }
}

/// A call that hangs past DSPM_AWS_CALL_TIMEOUT_MS is abandoned and retried.
#[test]
fn a_hung_answer_times_out_and_is_retried() {
    let counters = Arc::new(Counters::new());
    let c = counters.clone();
    let stub = serve(Account::healthy(), move |req| {
        if req.s3_subresource() == Some("versioning") && c.bump("versioning") == 1 {
            thread::sleep(Duration::from_millis(2500));
        }
        None
    });
    let scan = scan_with(
        &stub,
        &[
            ("DSPM_AWS_CONNECT_TIMEOUT_MS", "400"),
            ("DSPM_AWS_CALL_TIMEOUT_MS", "600"),
        ],
    );
    assert_eq!(scan.code, 0, "{}", scan.stderr);
    assert_eq!(
        scan.status("s3.bucket_versioning", &bucket_arn("healthy-data")),
        "PASS"
    );
    assert_eq!(stub.calls("s3:GetBucketVersioning").len(), 2);
}

/// A clock-skew error carrying AWS's time: the client re-signs at once with
/// that time, and keeps signing with it.
#[test]
fn clock_skew_is_corrected_from_the_date_header() {
    const SKEW: i64 = 3 * 3600;
    let counters = Arc::new(Counters::new());
    let c = counters.clone();
    let stub = serve(Account::healthy(), move |req| {
        (req.aws_action().as_deref() == Some("sts:GetCallerIdentity") && c.bump("sts") == 1).then(
            || {
                let aws_time = std::time::SystemTime::now() + Duration::from_secs(SKEW as u64);
                StubResponse::query_error(403, "RequestExpired", "Request has expired.")
                    .with_header("Date", &support::stub::http_date(aws_time))
            },
        )
    });
    let started = unix_now();
    let scan = scan(&stub);
    assert_eq!(scan.code, 0, "{}", scan.stderr);
    let requests = stub.requests();
    let signed_at = |r: &StubRequest| {
        support::stub::parse_amz_date(r.header("x-amz-date").unwrap_or(""))
            .unwrap_or_else(|| panic!("bad x-amz-date {:?}", r.header("x-amz-date")))
    };
    assert_eq!(
        requests[0].aws_action().as_deref(),
        Some("sts:GetCallerIdentity")
    );
    assert_eq!(
        requests[1].aws_action().as_deref(),
        Some("sts:GetCallerIdentity")
    );
    assert!((signed_at(&requests[0]) - started).abs() < 120);
    for r in &requests[1..] {
        let offset = signed_at(r) - started;
        assert!(
            (SKEW - 120..SKEW + 120).contains(&offset),
            "{:?} signed {offset} s from now",
            r.aws_action()
        );
    }
}

/// HTTP 429 is throttling by definition, and `AwsError::is_throttling`
/// says so; a 429 whose body names no known code must still be retried.
#[test]

fn too_many_requests_without_a_code_is_retried() {
    let counters = Arc::new(Counters::new());
    let c = counters.clone();
    let stub = serve(Account::healthy(), move |req| {
        (req.s3_subresource() == Some("logging") && c.bump("logging") <= 2)
            .then(|| StubResponse::empty(429))
    });
    let scan = scan(&stub);
    assert_eq!(stub.calls("s3:GetBucketLogging").len(), 3);
    let r = scan.result("s3.bucket_access_logging", &bucket_arn("healthy-data"));
    assert_eq!(r["status"], "PASS", "{r}");
}

#[test]
fn aws_error_messages_never_carry_the_credentials() {
    // AWS quotes the canonical request, session token included, in
    // SignatureDoesNotMatch; some proxies echo whole requests.
    let stub = serve(Account::healthy(), |req| {
        (req.s3_subresource() == Some("acl")).then(|| {
            let token = req.header("x-amz-security-token").unwrap_or("").to_string();
            let auth = req.header("authorization").unwrap_or("").to_string();
            let message = format!(
                "The request signature we calculated does not match the signature you provided. \
                 Check your key and signing method.\n\nThe Canonical String for this request should have been\n\
                 'GET\n/\nacl=\nx-amz-security-token:{token}\n' and you sent {auth}"
            );
            StubResponse::raw(
                403,
                "application/xml",
                format!(
                    "<Error><Code>SignatureDoesNotMatch</Code><Message>{}</Message></Error>",
                    message.replace('&', "&amp;").replace('<', "&lt;")
                ),
            )
        })
    });
    let scan = scan(&stub);
    let r = scan.result("s3.bucket_not_public", &bucket_arn("healthy-data"));
    assert_eq!(r["status"], "ERROR", "{r}");
    assert_eq!(r["evidence"]["error_code"], "SignatureDoesNotMatch");
    let everything = format!("{}{}", scan.stdout, scan.stderr);
    for secret in [
        "stub-session-token-not-real",
        "stub-secret-key-not-real",
        "Signature=",
    ] {
        assert!(!everything.contains(secret), "{secret} leaked");
    }
}
