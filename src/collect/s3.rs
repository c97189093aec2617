//! S3: account-level Block Public Access and every bucket's data-protection
//! settings.
//!
//! Buckets are listed once (`ListBuckets`, paginated) and each bucket is then
//! read in its own region. `ListBuckets` with a parameter reports each
//! bucket's region; where it does not, `GetBucketLocation` is asked. A
//! redirect carrying `x-amz-bucket-region` is followed once, to that region.

use log::debug;

use super::{failure, parallel_map};
use crate::aws::{xml, AwsClient, AwsError, Service};
use crate::inventory::{
    Account, Acl, Bucket, CollectError, EncryptionRule, Grant, LoggingTarget, Observed,
    PublicAccessBlock, S3Inventory, Versioning,
};
use crate::timestamp::Timestamp;

const PAGE_SIZE: &str = "1000";

pub fn collect(client: &AwsClient, account: &Account) -> S3Inventory {
    let account_public_access_block = account_public_access_block(client, &account.id).into();
    let buckets = match list_buckets(client) {
        Ok(listed) => {
            let workers = client.settings().concurrency;
            Observed::Value(parallel_map(&listed, workers, |b| {
                bucket(client, &account.partition, b)
            }))
        }
        Err(e) => Observed::Error(e),
    };
    S3Inventory {
        account_public_access_block,
        buckets,
    }
}

fn account_public_access_block(
    client: &AwsClient,
    account: &str,
) -> Result<Option<PublicAccessBlock>, CollectError> {
    const ACTION: &str = "s3:GetAccountPublicAccessBlock";
    let target = client
        .endpoints()
        .s3_control(account, "/configuration/publicAccessBlock");
    match client.rest_get(Service::S3Control, target, &[], ACTION) {
        Ok(response) => parse_public_access_block(response.text().map_err(|e| failure(ACTION, e))?)
            .map(Some)
            .map_err(|e| failure(ACTION, e)),
        Err(e) if e.code == "NoSuchPublicAccessBlockConfiguration" => Ok(None),
        Err(e) => Err(failure(ACTION, e)),
    }
}

/// A bucket as `ListBuckets` gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedBucket {
    pub name: String,
    pub created: Option<Timestamp>,
    pub region: Option<String>,
}

fn list_buckets(client: &AwsClient) -> Result<Vec<ListedBucket>, CollectError> {
    const ACTION: &str = "s3:ListAllMyBuckets";
    let mut buckets = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut query = vec![("max-buckets", PAGE_SIZE)];
        if let Some(t) = &token {
            query.push(("continuation-token", t.as_str()));
        }
        let target = client.endpoints().s3_account();
        let response = client
            .rest_get(Service::S3, target, &query, ACTION)
            .map_err(|e| failure(ACTION, e))?;
        let text = response.text().map_err(|e| failure(ACTION, e))?;
        let (page, next) = parse_list_buckets(text).map_err(|e| failure(ACTION, e))?;
        buckets.extend(page);
        match next {
            Some(next) if Some(&next) != token.as_ref() => token = Some(next),
            _ => return Ok(buckets),
        }
    }
}

fn bucket(client: &AwsClient, partition: &str, listed: &ListedBucket) -> Bucket {
    let name = listed.name.as_str();
    let mut reader = BucketReader {
        client,
        name,
        region: listed.region.clone(),
    };
    let region = reader.region();
    let arn = format!("arn:{partition}:s3:::{name}");
    if let Err(e) = &region {
        debug!("bucket {name}: region unknown, every setting unread");
        return Bucket {
            name: name.to_string(),
            arn,
            created: listed.created,
            region: Observed::Error(e.clone()),
            public_access_block: Observed::Error(e.clone()),
            policy: Observed::Error(e.clone()),
            policy_is_public: Observed::Error(e.clone()),
            acl: Observed::Error(e.clone()),
            encryption: Observed::Error(e.clone()),
            versioning: Observed::Error(e.clone()),
            logging: Observed::Error(e.clone()),
        };
    }

    let public_access_block = reader.optional(
        "publicAccessBlock",
        "s3:GetBucketPublicAccessBlock",
        "NoSuchPublicAccessBlockConfiguration",
        parse_public_access_block,
    );
    let policy = reader.optional(
        "policy",
        "s3:GetBucketPolicy",
        "NoSuchBucketPolicy",
        |text| serde_json::from_str(text).map_err(AwsError::malformed),
    );
    let policy_is_public = match &policy {
        Ok(None) => Ok(None),
        _ => reader.optional(
            "policyStatus",
            "s3:GetBucketPolicyStatus",
            "NoSuchBucketPolicy",
            parse_policy_status,
        ),
    };
    let acl = reader.read("acl", "s3:GetBucketAcl", parse_acl);
    let encryption = reader.optional(
        "encryption",
        "s3:GetEncryptionConfiguration",
        "ServerSideEncryptionConfigurationNotFoundError",
        parse_encryption,
    );
    let versioning = reader.read("versioning", "s3:GetBucketVersioning", parse_versioning);
    let logging = reader.read("logging", "s3:GetBucketLogging", parse_logging);

    Bucket {
        name: name.to_string(),
        arn,
        created: listed.created,
        region: reader.region().into(),
        public_access_block: public_access_block.into(),
        policy: policy.into(),
        policy_is_public: policy_is_public.into(),
        acl: acl.into(),
        encryption: encryption.into(),
        versioning: versioning.into(),
        logging: logging.into(),
    }
}

/// Reads one bucket's sub-resources in the bucket's region, learning the
/// region from a redirect when AWS says it is elsewhere.
struct BucketReader<'a> {
    client: &'a AwsClient,
    name: &'a str,
    region: Option<String>,
}

impl BucketReader<'_> {
    fn region(&mut self) -> Result<String, CollectError> {
        if let Some(region) = &self.region {
            return Ok(region.clone());
        }
        let home = self.client.endpoints().home_region().to_string();
        let text = self.get_in(&home, "location", "s3:GetBucketLocation")?;
        let region = parse_location(&text).map_err(|e| failure("s3:GetBucketLocation", e))?;
        self.region = Some(region.clone());
        Ok(region)
    }

    /// GETs `?{subresource}`; a redirect to another region is followed once.
    fn get(&mut self, subresource: &str, action: &str) -> Result<String, CollectError> {
        let region = self.region()?;
        self.get_in(&region, subresource, action)
    }

    fn get_in(
        &mut self,
        region: &str,
        subresource: &str,
        action: &str,
    ) -> Result<String, CollectError> {
        let query = [(subresource, "")];
        let target = self.client.endpoints().s3_bucket(region, self.name);
        let first = self.client.rest_get(Service::S3, target, &query, action);
        let response = match first {
            Err(AwsError {
                bucket_region: Some(actual),
                ..
            }) if actual != region && !actual.is_empty() => {
                debug!("bucket {} lives in {actual}, not {region}", self.name);
                self.client
                    .stats
                    .redirects
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.region = Some(actual.clone());
                let target = self.client.endpoints().s3_bucket(&actual, self.name);
                self.client.rest_get(Service::S3, target, &query, action)
            }
            other => other,
        };
        let response = response.map_err(|e| failure(action, e))?;
        response
            .text()
            .map(str::to_string)
            .map_err(|e| failure(action, e))
    }

    fn read<T>(
        &mut self,
        subresource: &str,
        action: &str,
        parse: impl Fn(&str) -> Result<T, AwsError>,
    ) -> Result<T, CollectError> {
        let text = self.get(subresource, action)?;
        parse(&text).map_err(|e| failure(action, e))
    }

    /// Like `read`, with AWS's "not configured" error code meaning `None`.
    fn optional<T>(
        &mut self,
        subresource: &str,
        action: &str,
        absent_code: &str,
        parse: impl Fn(&str) -> Result<T, AwsError>,
    ) -> Result<Option<T>, CollectError> {
        match self.read(subresource, action, parse) {
            Ok(value) => Ok(Some(value)),
            Err(e) if e.code == absent_code => Ok(None),
            Err(e) => Err(e),
        }
    }
}

fn document(text: &str) -> Result<roxmltree::Document<'_>, AwsError> {
    roxmltree::Document::parse(text).map_err(AwsError::malformed)
}

fn flag(node: roxmltree::Node, name: &str) -> Result<bool, AwsError> {
    match xml::child_text(node, name) {
        None => Ok(false),
        Some(text) => xml::parse_bool(text)
            .ok_or_else(|| AwsError::malformed(format!("{name} is not a boolean"))),
    }
}

pub fn parse_list_buckets(text: &str) -> Result<(Vec<ListedBucket>, Option<String>), AwsError> {
    let doc = document(text)?;
    let root = doc.root_element();
    if root.tag_name().name() != "ListAllMyBucketsResult" {
        return Err(AwsError::malformed("expected ListAllMyBucketsResult"));
    }
    let mut buckets = Vec::new();
    if let Some(list) = xml::child(root, "Buckets") {
        for node in xml::children(list, "Bucket") {
            let name = xml::child_text(node, "Name")
                .filter(|n| !n.is_empty())
                .ok_or_else(|| AwsError::malformed("bucket without a name"))?;
            buckets.push(ListedBucket {
                name: name.to_string(),
                created: xml::child_text(node, "CreationDate")
                    .and_then(|t| Timestamp::parse(t).ok()),
                region: xml::child_text(node, "BucketRegion")
                    .filter(|r| !r.is_empty())
                    .map(str::to_string),
            });
        }
    }
    let next = xml::child_text(root, "ContinuationToken")
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    Ok((buckets, next))
}

/// `LocationConstraint`: empty means us-east-1 and `EU` means eu-west-1.
pub fn parse_location(text: &str) -> Result<String, AwsError> {
    let doc = document(text)?;
    let root = doc.root_element();
    if root.tag_name().name() != "LocationConstraint" {
        return Err(AwsError::malformed("expected LocationConstraint"));
    }
    let region = root.text().unwrap_or("").trim();
    Ok(match region {
        "" => "us-east-1".to_string(),
        "EU" => "eu-west-1".to_string(),
        other => other.to_string(),
    })
}

pub fn parse_public_access_block(text: &str) -> Result<PublicAccessBlock, AwsError> {
    let doc = document(text)?;
    let root = doc.root_element();
    if root.tag_name().name() != "PublicAccessBlockConfiguration" {
        return Err(AwsError::malformed(
            "expected PublicAccessBlockConfiguration",
        ));
    }
    Ok(PublicAccessBlock {
        block_public_acls: flag(root, "BlockPublicAcls")?,
        ignore_public_acls: flag(root, "IgnorePublicAcls")?,
        block_public_policy: flag(root, "BlockPublicPolicy")?,
        restrict_public_buckets: flag(root, "RestrictPublicBuckets")?,
    })
}

pub fn parse_policy_status(text: &str) -> Result<bool, AwsError> {
    let doc = document(text)?;
    let root = doc.root_element();
    if root.tag_name().name() != "PolicyStatus" {
        return Err(AwsError::malformed("expected PolicyStatus"));
    }
    let text = xml::child_text(root, "IsPublic")
        .ok_or_else(|| AwsError::malformed("PolicyStatus without IsPublic"))?;
    xml::parse_bool(text).ok_or_else(|| AwsError::malformed("IsPublic is not a boolean"))
}

pub fn parse_acl(text: &str) -> Result<Acl, AwsError> {
    let doc = document(text)?;
    let root = doc.root_element();
    if root.tag_name().name() != "AccessControlPolicy" {
        return Err(AwsError::malformed("expected AccessControlPolicy"));
    }
    let owner_id = xml::path(root, &["Owner", "ID"])
        .and_then(|n| n.text())
        .unwrap_or("")
        .trim()
        .to_string();
    let mut grants = Vec::new();
    if let Some(list) = xml::child(root, "AccessControlList") {
        for node in xml::children(list, "Grant") {
            let grantee = xml::child(node, "Grantee")
                .ok_or_else(|| AwsError::malformed("grant without a grantee"))?;
            let grantee_type = grantee
                .attributes()
                .find(|a| a.name() == "type")
                .map(|a| a.value().to_string())
                .unwrap_or_default();
            let id = ["URI", "ID", "EmailAddress"]
                .iter()
                .find_map(|name| xml::child_text(grantee, name))
                .unwrap_or("");
            grants.push(Grant {
                grantee_type,
                grantee: id.to_string(),
                permission: xml::child_text(node, "Permission")
                    .unwrap_or("")
                    .to_string(),
            });
        }
    }
    Ok(Acl { owner_id, grants })
}

pub fn parse_encryption(text: &str) -> Result<Vec<EncryptionRule>, AwsError> {
    let doc = document(text)?;
    let root = doc.root_element();
    if root.tag_name().name() != "ServerSideEncryptionConfiguration" {
        return Err(AwsError::malformed(
            "expected ServerSideEncryptionConfiguration",
        ));
    }
    let mut rules = Vec::new();
    for rule in xml::children(root, "Rule") {
        let Some(default) = xml::child(rule, "ApplyServerSideEncryptionByDefault") else {
            continue;
        };
        let algorithm = xml::child_text(default, "SSEAlgorithm")
            .filter(|a| !a.is_empty())
            .ok_or_else(|| AwsError::malformed("encryption rule without SSEAlgorithm"))?;
        rules.push(EncryptionRule {
            algorithm: algorithm.to_string(),
            kms_key_id: xml::child_text(default, "KMSMasterKeyID")
                .filter(|k| !k.is_empty())
                .map(str::to_string),
            bucket_key_enabled: flag(rule, "BucketKeyEnabled")?,
        });
    }
    Ok(rules)
}

pub fn parse_versioning(text: &str) -> Result<Versioning, AwsError> {
    let doc = document(text)?;
    let root = doc.root_element();
    // AWS answers `VersioningConfiguration`; some S3-compatible servers
    // name the root after the operation. Both carry the same children.
    if !matches!(
        root.tag_name().name(),
        "VersioningConfiguration" | "GetBucketVersioningResponse"
    ) {
        return Err(AwsError::malformed("expected VersioningConfiguration"));
    }
    let field = |name| {
        xml::child_text(root, name)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    Ok(Versioning {
        status: field("Status"),
        mfa_delete: field("MfaDelete").or_else(|| field("MFADelete")),
    })
}

pub fn parse_logging(text: &str) -> Result<Option<LoggingTarget>, AwsError> {
    let doc = document(text)?;
    let root = doc.root_element();
    if root.tag_name().name() != "BucketLoggingStatus" {
        return Err(AwsError::malformed("expected BucketLoggingStatus"));
    }
    let Some(enabled) = xml::child(root, "LoggingEnabled") else {
        return Ok(None);
    };
    let target_bucket = xml::child_text(enabled, "TargetBucket")
        .filter(|b| !b.is_empty())
        .ok_or_else(|| AwsError::malformed("LoggingEnabled without TargetBucket"))?;
    Ok(Some(LoggingTarget {
        target_bucket: target_bucket.to_string(),
        target_prefix: xml::child_text(enabled, "TargetPrefix")
            .unwrap_or("")
            .to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: &str = r#"xmlns="http://s3.amazonaws.com/doc/2006-03-01/""#;

    #[test]
    fn list_buckets_pages() {
        let page = format!(
            r#"<ListAllMyBucketsResult {NS}><Owner><ID>o</ID></Owner><Buckets>
            <Bucket><Name>a</Name><CreationDate>2024-01-02T03:04:05.000Z</CreationDate><BucketRegion>eu-west-1</BucketRegion></Bucket>
            <Bucket><Name>b.c</Name><CreationDate>bogus</CreationDate></Bucket>
            </Buckets><ContinuationToken>tok</ContinuationToken></ListAllMyBucketsResult>"#
        );
        let (buckets, next) = parse_list_buckets(&page).expect("valid");
        assert_eq!(next.as_deref(), Some("tok"));
        assert_eq!(buckets[0].name, "a");
        assert_eq!(buckets[0].region.as_deref(), Some("eu-west-1"));
        assert_eq!(
            buckets[0].created,
            Timestamp::parse("2024-01-02T03:04:05Z").ok()
        );
        assert_eq!(buckets[1].region, None);
        assert_eq!(buckets[1].created, None);

        let last = format!("<ListAllMyBucketsResult {NS}><Buckets/></ListAllMyBucketsResult>");
        assert_eq!(parse_list_buckets(&last).expect("valid"), (vec![], None));
        for bad in [
            "",
            "<Error/>",
            "<ListAllMyBucketsResult><Buckets><Bucket/></Buckets></ListAllMyBucketsResult>",
        ] {
            assert!(parse_list_buckets(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn locations() {
        let cases = [
            (format!("<LocationConstraint {NS}/>"), Some("us-east-1")),
            (
                format!("<LocationConstraint {NS}></LocationConstraint>"),
                Some("us-east-1"),
            ),
            (
                format!("<LocationConstraint {NS}>EU</LocationConstraint>"),
                Some("eu-west-1"),
            ),
            (
                format!("<LocationConstraint {NS}>ap-northeast-2</LocationConstraint>"),
                Some("ap-northeast-2"),
            ),
            ("<Other/>".to_string(), None),
            ("<LocationConstraint>".to_string(), None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_location(&text).ok().as_deref(), want, "{text}");
        }
    }

    #[test]
    fn public_access_blocks() {
        let all = "<PublicAccessBlockConfiguration><BlockPublicAcls>true</BlockPublicAcls>\
            <IgnorePublicAcls>true</IgnorePublicAcls><BlockPublicPolicy>true</BlockPublicPolicy>\
            <RestrictPublicBuckets>true</RestrictPublicBuckets></PublicAccessBlockConfiguration>";
        assert!(parse_public_access_block(all).expect("valid").all_on());
        let some = "<PublicAccessBlockConfiguration><BlockPublicAcls>true</BlockPublicAcls>\
            <IgnorePublicAcls>false</IgnorePublicAcls></PublicAccessBlockConfiguration>";
        let pab = parse_public_access_block(some).expect("valid");
        assert_eq!(
            pab.settings_off(),
            [
                "IgnorePublicAcls",
                "BlockPublicPolicy",
                "RestrictPublicBuckets"
            ]
        );
        let bad = "<PublicAccessBlockConfiguration><BlockPublicAcls>yes</BlockPublicAcls></PublicAccessBlockConfiguration>";
        assert!(parse_public_access_block(bad).is_err());
    }

    #[test]
    fn acls() {
        let text = r#"<AccessControlPolicy xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
          <Owner><ID>abc</ID></Owner><AccessControlList>
            <Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="CanonicalUser"><ID>abc</ID></Grantee><Permission>FULL_CONTROL</Permission></Grant>
            <Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="Group"><URI>http://acs.amazonaws.com/groups/global/AllUsers</URI></Grantee><Permission>READ</Permission></Grant>
          </AccessControlList></AccessControlPolicy>"#;
        let acl = parse_acl(text).expect("valid");
        assert_eq!(acl.owner_id, "abc");
        assert_eq!(acl.grants.len(), 2);
        assert_eq!(acl.grants[1].grantee_type, "Group");
        assert_eq!(
            acl.grants[1].grantee,
            "http://acs.amazonaws.com/groups/global/AllUsers"
        );
        assert_eq!(acl.grants[1].permission, "READ");
    }

    #[test]
    fn encryption_versioning_logging() {
        let kms = "<ServerSideEncryptionConfiguration><Rule><ApplyServerSideEncryptionByDefault>\
            <SSEAlgorithm>aws:kms</SSEAlgorithm><KMSMasterKeyID>arn:aws:kms:us-east-1:1:key/k</KMSMasterKeyID>\
            </ApplyServerSideEncryptionByDefault><BucketKeyEnabled>true</BucketKeyEnabled></Rule>\
            </ServerSideEncryptionConfiguration>";
        let rules = parse_encryption(kms).expect("valid");
        assert_eq!(rules[0].algorithm, "aws:kms");
        assert!(rules[0].bucket_key_enabled);
        assert!(parse_encryption("<ServerSideEncryptionConfiguration><Rule><ApplyServerSideEncryptionByDefault/></Rule></ServerSideEncryptionConfiguration>").is_err());

        let cases = [
            ("<VersioningConfiguration/>", (None, None)),
            ("<VersioningConfiguration><Status>Enabled</Status><MfaDelete>Enabled</MfaDelete></VersioningConfiguration>", (Some("Enabled"), Some("Enabled"))),
            ("<VersioningConfiguration><Status>Suspended</Status></VersioningConfiguration>", (Some("Suspended"), None)),
            ("<GetBucketVersioningResponse><Status>Enabled</Status></GetBucketVersioningResponse>", (Some("Enabled"), None)),
        ];
        for (text, (status, mfa)) in cases {
            let v = parse_versioning(text).expect("valid");
            assert_eq!(
                (v.status.as_deref(), v.mfa_delete.as_deref()),
                (status, mfa),
                "{text}"
            );
        }

        assert_eq!(
            parse_logging("<BucketLoggingStatus/>").expect("valid"),
            None
        );
        let on = "<BucketLoggingStatus><LoggingEnabled><TargetBucket>logs</TargetBucket><TargetPrefix>a/</TargetPrefix></LoggingEnabled></BucketLoggingStatus>";
        assert_eq!(
            parse_logging(on).expect("valid").map(|t| t.target_bucket),
            Some("logs".into())
        );
        assert!(
            parse_logging("<BucketLoggingStatus><LoggingEnabled/></BucketLoggingStatus>").is_err()
        );
    }
}
