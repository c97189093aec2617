//! Where each call goes: endpoints per service, region and partition, and the
//! operator's overrides.
//!
//! Defaults follow AWS's published endpoints: IAM and Organizations are
//! global services with one endpoint per partition, STS and S3 are regional,
//! S3 Control is addressed by account id. `AWS_ENDPOINT_URL` and
//! `AWS_ENDPOINT_URL_<SERVICE>` override them, as the AWS SDKs do. With an
//! override nothing is ever prepended to the host (no virtual-hosted buckets,
//! no `{account}.s3-control`): S3 is path-style and S3 Control takes the
//! account in the `x-amz-account-id` header.
//!
//! Plain http is accepted only toward loopback; any other host must be https.

use std::fmt;
use std::net::IpAddr;

/// The AWS services this product calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    S3,
    S3Control,
    Iam,
    Sts,
    Organizations,
}

impl Service {
    pub const ALL: [Service; 5] = [
        Service::S3,
        Service::S3Control,
        Service::Iam,
        Service::Sts,
        Service::Organizations,
    ];

    /// The SigV4 signing name.
    pub fn signing_name(self) -> &'static str {
        match self {
            Service::S3 | Service::S3Control => "s3",
            Service::Iam => "iam",
            Service::Sts => "sts",
            Service::Organizations => "organizations",
        }
    }

    /// The suffix of `AWS_ENDPOINT_URL_<SERVICE>` (the SDKs' service id,
    /// upper-cased, spaces as underscores).
    pub fn env_suffix(self) -> &'static str {
        match self {
            Service::S3 => "S3",
            Service::S3Control => "S3_CONTROL",
            Service::Iam => "IAM",
            Service::Sts => "STS",
            Service::Organizations => "ORGANIZATIONS",
        }
    }
}

/// The regions whose STS calls `AWS_STS_REGIONAL_ENDPOINTS=legacy` sends to
/// the global endpoint, per the AWS SDKs and Tools reference ("AWS STS
/// Regionalized endpoints"); every other region stays regional.
const LEGACY_GLOBAL_STS: &[&str] = &[
    "ap-northeast-1",
    "ap-south-1",
    "ap-southeast-1",
    "ap-southeast-2",
    "ca-central-1",
    "eu-central-1",
    "eu-north-1",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
];

/// An AWS partition and what differs between partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partition {
    Aws,
    AwsCn,
    AwsUsGov,
}

impl Partition {
    pub fn of_region(region: &str) -> Partition {
        if region.starts_with("cn-") {
            Partition::AwsCn
        } else if region.starts_with("us-gov-") {
            Partition::AwsUsGov
        } else {
            Partition::Aws
        }
    }

    pub fn id(self) -> &'static str {
        match self {
            Partition::Aws => "aws",
            Partition::AwsCn => "aws-cn",
            Partition::AwsUsGov => "aws-us-gov",
        }
    }

    fn dns_suffix(self) -> &'static str {
        match self {
            Partition::AwsCn => "amazonaws.com.cn",
            Partition::Aws | Partition::AwsUsGov => "amazonaws.com",
        }
    }

    /// Host and signing region of IAM's single endpoint in this partition.
    fn iam(self) -> (&'static str, &'static str) {
        match self {
            Partition::Aws => ("iam.amazonaws.com", "us-east-1"),
            Partition::AwsCn => ("iam.cn-north-1.amazonaws.com.cn", "cn-north-1"),
            Partition::AwsUsGov => ("iam.us-gov.amazonaws.com", "us-gov-west-1"),
        }
    }

    /// Host and signing region of the Organizations endpoint.
    fn organizations(self) -> (&'static str, &'static str) {
        match self {
            Partition::Aws => ("organizations.us-east-1.amazonaws.com", "us-east-1"),
            Partition::AwsCn => (
                "organizations.cn-northwest-1.amazonaws.com.cn",
                "cn-northwest-1",
            ),
            Partition::AwsUsGov => ("organizations.us-gov-west-1.amazonaws.com", "us-gov-west-1"),
        }
    }
}

/// A parsed base URL: scheme, host (IPv6 without brackets), port, base path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    pub https: bool,
    pub host: String,
    pub port: Option<u16>,
    /// Path prefix without a trailing slash ("" for none).
    pub path: String,
}

/// A configuration problem with an endpoint URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointError(pub String);

impl fmt::Display for EndpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EndpointError {}

impl BaseUrl {
    /// Parses `scheme://host[:port][/path]`, refusing userinfo, queries,
    /// fragments and plain http toward anything but loopback.
    pub fn parse(text: &str) -> Result<BaseUrl, EndpointError> {
        let bad = |why: &str| EndpointError(format!("endpoint URL {text:?} {why}"));
        let (https, rest) = if let Some(rest) = text.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = text.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(bad("must start with https:// (or http:// for loopback)"));
        };
        if rest.contains(['?', '#', '@']) || rest.chars().any(|c| c.is_whitespace()) {
            return Err(bad("must not contain credentials, a query or a fragment"));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        let (host, port) = split_host_port(authority).ok_or_else(|| bad("has no valid host"))?;
        let host = if https { host } else { pin_localhost(host) };
        let url = BaseUrl {
            https,
            host,
            port,
            path: path.to_string(),
        };
        if !url.https && !url.is_loopback() {
            return Err(bad(
                "uses plain http toward a host that is not loopback; use https",
            ));
        }
        Ok(url)
    }

    pub fn is_loopback(&self) -> bool {
        is_loopback_host(&self.host)
    }

    /// The `host[:port]` part as it goes into a URL.
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match self.port {
            Some(port) => format!("{host}:{port}"),
            None => host,
        }
    }

    pub fn origin(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}{}", self.authority(), self.path)
    }
}

/// For plain http, the name `localhost` is replaced by `127.0.0.1`, so that
/// "loopback" is decided on the address actually connected to: a resolver
/// or hosts file that maps the name elsewhere could otherwise carry signed
/// requests or a credentials token off the machine in clear text.
pub fn pin_localhost(host: String) -> String {
    if host.eq_ignore_ascii_case("localhost") {
        "127.0.0.1".to_string()
    } else {
        host
    }
}

/// `localhost`, 127.0.0.0/8 and ::1.
pub fn is_loopback_host(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Splits `host[:port]` or `[v6]:port`; the host lower-cased. Refuses an
/// empty host, characters outside host names and IP literals, unbracketed
/// IPv6, anything after `]` but a port, and port 0.
pub fn split_host_port(authority: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let end = rest.find(']')?;
        let host = &rest[..end];
        host.parse::<std::net::Ipv6Addr>().ok()?;
        let after = &rest[end + 1..];
        if !after.is_empty() && !after.starts_with(':') {
            return None;
        }
        (host, after.strip_prefix(':'))
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':');
    if host.is_empty() || !host.chars().all(valid) {
        return None;
    }
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok().filter(|p| *p != 0)?),
        None => None,
    };
    Some((host.to_ascii_lowercase(), port))
}

/// Where one request goes and how it is signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub base: BaseUrl,
    pub signing_region: String,
    /// The URL path of the request, starting with `/`.
    pub path: String,
    /// Headers the addressing needs (`x-amz-account-id` for S3 Control).
    pub headers: Vec<(String, String)>,
}

impl Target {
    pub fn url(&self, query: &str) -> String {
        let mut url = format!("{}{}", self.base.origin(), self.path);
        if !query.is_empty() {
            url.push('?');
            url.push_str(query);
        }
        url
    }
}

/// The endpoint table for one audit: the home region plus overrides.
#[derive(Debug, Clone)]
pub struct Endpoints {
    home_region: String,
    partition: Partition,
    overrides: Vec<(Service, BaseUrl)>,
    /// `AWS_STS_REGIONAL_ENDPOINTS=legacy`: STS at its global endpoint.
    sts_legacy_global: bool,
}

impl Endpoints {
    pub fn new(home_region: &str) -> Endpoints {
        Endpoints {
            home_region: home_region.to_string(),
            partition: Partition::of_region(home_region),
            overrides: Vec::new(),
            sts_legacy_global: false,
        }
    }

    /// Reads `AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_<SERVICE>` and
    /// `AWS_STS_REGIONAL_ENDPOINTS` through `lookup` (the environment, or a
    /// table in tests). Blank values count as unset.
    pub fn from_lookup(
        home_region: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Endpoints, EndpointError> {
        let mut endpoints = Endpoints::new(home_region);
        let global = lookup("AWS_ENDPOINT_URL");
        for service in Service::ALL {
            let name = format!("AWS_ENDPOINT_URL_{}", service.env_suffix());
            let value = lookup(&name).or_else(|| global.clone());
            if let Some(text) = value {
                let url =
                    BaseUrl::parse(&text).map_err(|e| EndpointError(format!("{name}: {e}")))?;
                endpoints.overrides.push((service, url));
            }
        }
        endpoints.sts_legacy_global =
            lookup("AWS_STS_REGIONAL_ENDPOINTS").is_some_and(|v| v.eq_ignore_ascii_case("legacy"));
        Ok(endpoints)
    }

    pub fn home_region(&self) -> &str {
        &self.home_region
    }

    pub fn partition(&self) -> Partition {
        self.partition
    }

    pub fn with_override(mut self, service: Service, url: BaseUrl) -> Endpoints {
        self.overrides.retain(|(s, _)| *s != service);
        self.overrides.push((service, url));
        self
    }

    fn overridden(&self, service: Service) -> Option<&BaseUrl> {
        self.overrides
            .iter()
            .find(|(s, _)| *s == service)
            .map(|(_, url)| url)
    }

    /// The operator-configured URLs, for the startup log.
    pub fn overrides(&self) -> impl Iterator<Item = (Service, &BaseUrl)> {
        self.overrides.iter().map(|(s, u)| (*s, u))
    }

    /// A global or home-region service (IAM, STS, Organizations).
    pub fn service(&self, service: Service) -> Target {
        let (host, region) = match service {
            Service::Iam => {
                let (h, r) = self.partition.iam();
                (h.to_string(), r.to_string())
            }
            Service::Organizations => {
                let (h, r) = self.partition.organizations();
                (h.to_string(), r.to_string())
            }
            Service::Sts
                if self.sts_legacy_global
                    && LEGACY_GLOBAL_STS.contains(&self.home_region.as_str()) =>
            {
                ("sts.amazonaws.com".to_string(), "us-east-1".to_string())
            }
            _ => (
                format!(
                    "{}.{}.{}",
                    service.signing_name(),
                    self.home_region,
                    self.partition.dns_suffix()
                ),
                self.home_region.clone(),
            ),
        };
        let base = self
            .overridden(service)
            .cloned()
            .unwrap_or_else(|| https(host));
        Target {
            base,
            signing_region: region,
            path: "/".to_string(),
            headers: Vec::new(),
        }
    }

    /// An S3 bucket operation in `region`. Virtual-hosted style on AWS for
    /// names that are valid host labels; path-style for dotted names and for
    /// every bucket behind an override.
    pub fn s3_bucket(&self, region: &str, bucket: &str) -> Target {
        let regional = format!("s3.{region}.{}", Partition::of_region(region).dns_suffix());
        let encoded = uri_encode(bucket);
        let (base, path) = match self.overridden(Service::S3) {
            Some(url) => (url.clone(), format!("/{encoded}")),
            None if is_virtual_host_compatible(bucket) => {
                (https(format!("{bucket}.{regional}")), "/".to_string())
            }
            None => (https(regional), format!("/{encoded}")),
        };
        Target {
            base,
            signing_region: region.to_string(),
            path,
            headers: Vec::new(),
        }
    }

    /// `ListBuckets` and other account-wide S3 calls, in the home region.
    pub fn s3_account(&self) -> Target {
        let region = &self.home_region;
        let host = format!("s3.{region}.{}", self.partition.dns_suffix());
        let base = self
            .overridden(Service::S3)
            .cloned()
            .unwrap_or_else(|| https(host));
        Target {
            base,
            signing_region: region.clone(),
            path: "/".to_string(),
            headers: Vec::new(),
        }
    }

    /// S3 Control for `account` in the home region; `path` below `/v20180820`.
    pub fn s3_control(&self, account: &str, path: &str) -> Target {
        let region = &self.home_region;
        let headers = vec![("x-amz-account-id".to_string(), account.to_string())];
        let base = match self.overridden(Service::S3Control) {
            Some(url) => url.clone(),
            None => https(format!(
                "{account}.s3-control.{region}.{}",
                self.partition.dns_suffix()
            )),
        };
        Target {
            base,
            signing_region: region.clone(),
            path: format!("/v20180820{path}"),
            headers,
        }
    }
}

fn https(host: String) -> BaseUrl {
    BaseUrl {
        https: true,
        host,
        port: None,
        path: String::new(),
    }
}

/// Bucket names that can be a DNS label under TLS: lowercase letters,
/// digits and hyphens, no dots (a dot breaks the wildcard certificate).
fn is_virtual_host_compatible(bucket: &str) -> bool {
    (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !bucket.starts_with('-')
        && !bucket.ends_with('-')
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn uri_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_polices_endpoint_urls() {
        let ok: &[(&str, &str, Option<u16>, bool)] = &[
            ("http://127.0.0.1:5000", "127.0.0.1", Some(5000), false),
            ("http://localhost:4566/", "127.0.0.1", Some(4566), false),
            ("https://localhost:4566/", "localhost", Some(4566), true),
            ("http://[::1]:9000", "::1", Some(9000), false),
            ("http://127.8.9.10", "127.8.9.10", None, false),
            (
                "https://vpce-1.s3.eu-west-1.vpce.amazonaws.com",
                "vpce-1.s3.eu-west-1.vpce.amazonaws.com",
                None,
                true,
            ),
        ];
        for (text, host, port, https) in ok {
            let url = BaseUrl::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(
                (url.host.as_str(), url.port, url.https),
                (*host, *port, *https)
            );
        }
        let refused = [
            "http://example.com",
            "http://169.254.169.254",
            "http://10.0.0.1:8080",
            "ftp://127.0.0.1",
            "127.0.0.1:5000",
            "https://user:pw@host",
            "https://host/?x=1",
            "https://",
            "http://127.0.0.1:0",
            "http://127.0.0.1:99999",
            "https://ho st",
            "http://[::2]:80",
        ];
        for text in refused {
            assert!(BaseUrl::parse(text).is_err(), "{text} should be refused");
        }
    }

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn default_endpoints_follow_the_partition() {
        let cases = [
            (
                "us-east-1",
                Service::Iam,
                "https://iam.amazonaws.com/",
                "us-east-1",
            ),
            (
                "eu-west-1",
                Service::Iam,
                "https://iam.amazonaws.com/",
                "us-east-1",
            ),
            (
                "cn-north-1",
                Service::Iam,
                "https://iam.cn-north-1.amazonaws.com.cn/",
                "cn-north-1",
            ),
            (
                "us-gov-east-1",
                Service::Iam,
                "https://iam.us-gov.amazonaws.com/",
                "us-gov-west-1",
            ),
            (
                "ap-northeast-2",
                Service::Sts,
                "https://sts.ap-northeast-2.amazonaws.com/",
                "ap-northeast-2",
            ),
            (
                "cn-northwest-1",
                Service::Sts,
                "https://sts.cn-northwest-1.amazonaws.com.cn/",
                "cn-northwest-1",
            ),
            (
                "eu-central-1",
                Service::Organizations,
                "https://organizations.us-east-1.amazonaws.com/",
                "us-east-1",
            ),
        ];
        for (region, service, url, signing) in cases {
            let target = Endpoints::new(region).service(service);
            assert_eq!(target.url(""), url, "{region} {service:?}");
            assert_eq!(target.signing_region, signing);
        }
    }

    #[test]
    fn s3_addressing() {
        let e = Endpoints::new("us-east-1");
        let t = e.s3_bucket("eu-west-1", "acme-data");
        assert_eq!(
            t.url("policy="),
            "https://acme-data.s3.eu-west-1.amazonaws.com/?policy="
        );
        let t = e.s3_bucket("eu-west-1", "acme.dotted");
        assert_eq!(
            t.url("acl="),
            "https://s3.eu-west-1.amazonaws.com/acme.dotted?acl="
        );
        let t = e.s3_control("123456789012", "/configuration/publicAccessBlock");
        assert_eq!(
            t.url(""),
            "https://123456789012.s3-control.us-east-1.amazonaws.com/v20180820/configuration/publicAccessBlock"
        );
        assert_eq!(
            t.headers,
            [("x-amz-account-id".into(), "123456789012".into())]
        );
    }

    #[test]
    fn overrides_are_path_style_and_never_prefix_the_host() {
        let e = Endpoints::from_lookup(
            "us-east-1",
            env(&[
                ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
                ("AWS_ENDPOINT_URL_IAM", "http://127.0.0.1:6000/iam/"),
            ]),
        )
        .expect("valid overrides");
        assert_eq!(
            e.s3_bucket("eu-west-1", "acme-data").url("acl="),
            "http://127.0.0.1:5000/acme-data?acl="
        );
        assert_eq!(
            e.s3_control("123456789012", "/configuration/publicAccessBlock")
                .url(""),
            "http://127.0.0.1:5000/v20180820/configuration/publicAccessBlock"
        );
        assert_eq!(
            e.service(Service::Iam).url(""),
            "http://127.0.0.1:6000/iam/"
        );
        assert_eq!(e.service(Service::Iam).signing_region, "us-east-1");
        assert_eq!(e.s3_bucket("eu-west-1", "b").signing_region, "eu-west-1");
    }

    #[test]
    fn refuses_plain_http_overrides_beyond_loopback() {
        let err = Endpoints::from_lookup(
            "us-east-1",
            env(&[("AWS_ENDPOINT_URL_STS", "http://sts.internal:80")]),
        )
        .expect_err("must refuse");
        assert!(err.0.contains("AWS_ENDPOINT_URL_STS"), "{err}");
        assert!(err.0.contains("https"), "{err}");
    }

    #[test]
    fn legacy_sts_goes_global() {
        let e = Endpoints::from_lookup(
            "eu-west-1",
            env(&[("AWS_STS_REGIONAL_ENDPOINTS", "legacy")]),
        )
        .expect("valid");
        assert_eq!(
            e.service(Service::Sts).url(""),
            "https://sts.amazonaws.com/"
        );
    }

    #[test]
    fn encodes_bucket_names_and_keys() {
        assert_eq!(uri_encode("a.b-c_d~e"), "a.b-c_d~e");
        assert_eq!(uri_encode("a b/é"), "a%20b%2F%C3%A9");
    }
}
