//! The signed HTTP client: one place where requests are signed, sent,
//! retried and turned into bodies or errors.
//!
//! Retries follow the AWS SDKs' standard mode: at most `max_attempts`
//! attempts, full-jitter exponential backoff, on server faults, throttling
//! and transport errors, limited by a shared retry quota so that an endpoint
//! that keeps failing is not hammered. Every attempt is signed afresh.
//! Redirects are never followed here; S3 region redirects are the caller's.

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use log::{debug, trace, warn};

use super::credentials::CredentialsProvider;
use super::endpoint::{uri_encode, Endpoints, Service, Target};
use super::error::{parse_error_body, scrub, AwsError};
use crate::timestamp::Timestamp;

/// Responses larger than this are refused: AWS's largest answers we read
/// (credential report, a page of buckets) are a few megabytes.
const MAX_RESPONSE_BYTES: u64 = 32 * 1024 * 1024;

/// Retry quota, as in the SDKs' standard mode: a retry costs 5 tokens
/// (10 after a timeout), a success gives one back.
const RETRY_QUOTA: i64 = 500;
const RETRY_COST: i64 = 5;
const TIMEOUT_RETRY_COST: i64 = 10;

/// How the client behaves; every field can be set by the operator.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    pub connect_timeout: Duration,
    /// Limit for one whole attempt: sending, waiting and reading the body.
    pub call_timeout: Duration,
    pub max_attempts: u32,
    /// The first backoff's upper bound; it doubles per attempt, up to 20 s.
    pub retry_base: Duration,
    /// Parallel AWS calls per audit.
    pub concurrency: usize,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            connect_timeout: Duration::from_secs(3),
            call_timeout: Duration::from_secs(20),
            max_attempts: 3,
            retry_base: Duration::from_secs(1),
            concurrency: 8,
        }
    }
}

/// The wire protocol of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// AWS query: form-encoded POST, XML answer (IAM, STS).
    Query,
    /// REST with XML bodies (S3, S3 Control).
    RestXml,
    /// JSON 1.1 with `X-Amz-Target` (Organizations).
    Json,
}

/// One call, fully described before it is signed.
#[derive(Debug, Clone)]
pub struct Request {
    pub service: Service,
    pub protocol: Protocol,
    pub target: Target,
    pub method: &'static str,
    /// URL query parameters, in order.
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The IAM action this call needs, for logs and errors.
    pub action: String,
}

/// A successful answer.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(&self) -> Result<&str, AwsError> {
        std::str::from_utf8(&self.body).map_err(|_| AwsError::malformed("response is not UTF-8"))
    }
}

/// Counts of calls made, for the audit summary and the benchmarks.
#[derive(Debug, Default)]
pub struct CallStats {
    pub requests: AtomicU64,
    pub retries: AtomicU64,
    pub redirects: AtomicU64,
    /// Attempts per IAM action (`s3:GetBucketAcl` ...).
    by_action: Mutex<BTreeMap<String, u64>>,
}

impl CallStats {
    fn count(&self, action: &str) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut map = self.by_action.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry(action.to_string()).or_insert(0) += 1;
    }

    /// Attempts per action so far.
    pub fn by_action(&self) -> BTreeMap<String, u64> {
        self.by_action
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// A counting limit on requests in flight across every collector of one
/// audit, so that `DSPM_AWS_CONCURRENCY` bounds what AWS sees from us.
#[derive(Debug)]
struct Permits {
    free: Mutex<usize>,
    freed: Condvar,
}

struct Permit<'a>(&'a Permits);

impl Permits {
    fn new(count: usize) -> Permits {
        Permits {
            free: Mutex::new(count.max(1)),
            freed: Condvar::new(),
        }
    }

    fn acquire(&self) -> Permit<'_> {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        while *free == 0 {
            free = self.freed.wait(free).unwrap_or_else(|p| p.into_inner());
        }
        *free -= 1;
        Permit(self)
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.0.freed.notify_one();
    }
}

/// The AWS client shared by every collector of one audit.
pub struct AwsClient {
    agent: ureq::Agent,
    credentials: Arc<dyn CredentialsProvider>,
    endpoints: Endpoints,
    settings: ClientSettings,
    retry_tokens: AtomicI64,
    /// Seconds to add to the local clock when signing, learnt from AWS's
    /// `Date` header after a clock-skew error.
    clock_skew: AtomicI64,
    in_flight: Permits,
    pub stats: CallStats,
}

impl AwsClient {
    pub fn new(
        credentials: Arc<dyn CredentialsProvider>,
        endpoints: Endpoints,
        settings: ClientSettings,
    ) -> AwsClient {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_connect(Some(settings.connect_timeout))
            .timeout_global(Some(settings.connect_timeout + settings.call_timeout))
            .user_agent(concat!("dspm-audit/", env!("CARGO_PKG_VERSION")))
            .max_response_header_size(64 * 1024)
            // Keep a connection per parallel call alive, so a large audit
            // does not pay a TLS handshake for most of its calls.
            .max_idle_connections_per_host(settings.concurrency)
            .max_idle_connections(settings.concurrency * 4)
            .build()
            .new_agent();
        let concurrency = settings.concurrency;
        AwsClient {
            agent,
            credentials,
            endpoints,
            settings,
            retry_tokens: AtomicI64::new(RETRY_QUOTA),
            clock_skew: AtomicI64::new(0),
            in_flight: Permits::new(concurrency),
            stats: CallStats::default(),
        }
    }

    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    pub fn settings(&self) -> &ClientSettings {
        &self.settings
    }

    /// An AWS query-protocol call (IAM, STS): `Action`, `Version` and params.
    pub fn query(
        &self,
        service: Service,
        action: &str,
        version: &str,
        params: &[(&str, &str)],
    ) -> Result<Response, AwsError> {
        self.send(&self.query_request(service, action, version, params))
    }

    /// A query-protocol call sent without a signature, for the STS actions
    /// that take none (`AssumeRoleWithWebIdentity`). The client's credentials
    /// are never asked for; retries are as for signed calls.
    pub fn query_unsigned(
        &self,
        service: Service,
        action: &str,
        version: &str,
        params: &[(&str, &str)],
    ) -> Result<Response, AwsError> {
        self.send_with(&self.query_request(service, action, version, params), false)
    }

    fn query_request(
        &self,
        service: Service,
        action: &str,
        version: &str,
        params: &[(&str, &str)],
    ) -> Request {
        let mut form = format!(
            "Action={}&Version={}",
            uri_encode(action),
            uri_encode(version)
        );
        for (k, v) in params {
            form.push_str(&format!("&{}={}", uri_encode(k), uri_encode(v)));
        }
        Request {
            service,
            protocol: Protocol::Query,
            target: self.endpoints.service(service),
            method: "POST",
            query: Vec::new(),
            headers: vec![(
                "content-type".into(),
                "application/x-www-form-urlencoded; charset=utf-8".into(),
            )],
            body: form.into_bytes(),
            action: format!("{}:{action}", service.signing_name()),
        }
    }

    /// A JSON 1.1 call (Organizations) with `X-Amz-Target: {prefix}.{action}`.
    pub fn json(
        &self,
        service: Service,
        target_prefix: &str,
        action: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, AwsError> {
        let request = Request {
            service,
            protocol: Protocol::Json,
            target: self.endpoints.service(service),
            method: "POST",
            query: Vec::new(),
            headers: vec![
                ("content-type".into(), "application/x-amz-json-1.1".into()),
                ("x-amz-target".into(), format!("{target_prefix}.{action}")),
            ],
            body: body.to_string().into_bytes(),
            action: format!("{}:{action}", service.signing_name()),
        };
        let response = self.send(&request)?;
        serde_json::from_slice(&response.body).map_err(AwsError::malformed)
    }

    /// A REST-XML GET (S3, S3 Control) on `target` with `query`.
    pub fn rest_get(
        &self,
        service: Service,
        target: Target,
        query: &[(&str, &str)],
        action: &str,
    ) -> Result<Response, AwsError> {
        let headers = target.headers.clone();
        let request = Request {
            service,
            protocol: Protocol::RestXml,
            target,
            method: "GET",
            query: query
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            headers,
            body: Vec::new(),
            action: action.to_string(),
        };
        self.send(&request)
    }

    /// Sends `request`, retrying what may pass later. Returns the body of a
    /// 2xx answer, or the last error.
    pub fn send(&self, request: &Request) -> Result<Response, AwsError> {
        self.send_with(request, true)
    }

    fn send_with(&self, request: &Request, signed: bool) -> Result<Response, AwsError> {
        let mut skew_corrected = false;
        let mut attempt = 1;
        loop {
            let started = Instant::now();
            let result = {
                let _permit = self.in_flight.acquire();
                self.attempt(request, signed)
            };
            self.stats.count(&request.action);
            let error = match result {
                Ok(response) => {
                    self.refund_retry_token();
                    return Ok(response);
                }
                Err(error) => error,
            };
            debug!(
                "{} attempt {attempt} failed after {} ms: {}",
                request.action,
                started.elapsed().as_millis(),
                error.code
            );

            if !skew_corrected && self.correct_clock_skew(&error) {
                skew_corrected = true;
                continue;
            }
            if !error.is_retryable() || attempt >= self.settings.max_attempts {
                return Err(error);
            }
            if !self.take_retry_token(&error) {
                warn!("retry quota exhausted; not retrying {}", request.action);
                return Err(error);
            }
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(self.backoff(attempt));
            attempt += 1;
        }
    }

    fn attempt(&self, request: &Request, signed: bool) -> Result<Response, AwsError> {
        let query = encode_query(&request.query);
        let url = request.target.url(&query);
        let credentials = match signed {
            true => Some(
                self.credentials
                    .credentials()
                    .map_err(|e| AwsError::new("CredentialsUnavailable", e.0))?,
            ),
            false => None,
        };
        let signed = match &credentials {
            Some(c) => self.sign(request, &url, c)?,
            None => Vec::new(),
        };

        let mut builder = ureq::http::Request::builder()
            .method(request.method)
            .uri(&url);
        for (name, value) in request.headers.iter().chain(signed.iter()) {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let http_request = builder
            .body(request.body.clone())
            .map_err(|e| AwsError::new("InvalidRequest", e.to_string()))?;
        trace!("{} {} {}", request.action, request.method, redact_url(&url));

        let response = self.agent.run(http_request).map_err(transport_error);
        let response = response.and_then(read_response).map_err(|mut e| {
            // An error may quote our request back; never let the
            // credentials we signed with travel on in its message.
            if let Some(c) = &credentials {
                let token = c.session_token.as_deref().unwrap_or("");
                e.message = scrub(&e.message, &[&c.secret_access_key, token, &c.access_key_id]);
            }
            e
        })?;
        check_well_formed(request, &response)?;
        Ok(response)
    }

    fn sign(
        &self,
        request: &Request,
        url: &str,
        credentials: &super::Credentials,
    ) -> Result<Vec<(String, String)>, AwsError> {
        let mut settings = SigningSettings::default();
        if request.protocol == Protocol::RestXml {
            // S3's rules: the path is encoded once and never normalised, and
            // the payload hash travels in x-amz-content-sha256.
            settings.percent_encoding_mode = PercentEncodingMode::Single;
            settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
            settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        }
        let identity = aws_credential_types::Credentials::new(
            credentials.access_key_id.clone(),
            credentials.secret_access_key.clone(),
            credentials.session_token.clone(),
            None,
            "dspm-audit",
        )
        .into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&request.target.signing_region)
            .name(request.service.signing_name())
            .time(self.signing_time())
            .settings(settings)
            .build()
            .map_err(|e| AwsError::new("SigningFailed", e.to_string()))?
            .into();
        let signable = SignableRequest::new(
            request.method,
            url,
            request
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Bytes(&request.body),
        )
        .map_err(|e| AwsError::new("SigningFailed", e.to_string()))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| AwsError::new("SigningFailed", e.to_string()))?
            .into_parts();
        let (headers, _params) = instructions.into_parts();
        Ok(headers
            .into_iter()
            .map(|h| (h.name().to_string(), h.value().to_string()))
            .collect())
    }

    fn signing_time(&self) -> SystemTime {
        let skew = self.clock_skew.load(Ordering::Relaxed);
        let now = SystemTime::now();
        if skew >= 0 {
            now + Duration::from_secs(skew as u64)
        } else {
            now - Duration::from_secs(skew.unsigned_abs())
        }
    }

    /// After a clock-skew error whose response carried AWS's time, signs
    /// later requests with that time. Returns whether to retry at once.
    fn correct_clock_skew(&self, error: &AwsError) -> bool {
        let Some(server_time) = error.server_time else {
            return false;
        };
        if !is_clock_skew_code(&error.code) {
            return false;
        }
        let skew = server_time.0 - Timestamp::now().0;
        if skew.abs() < 60 {
            return false;
        }
        warn!("local clock is {skew} s off AWS's; signing with AWS's time from now on");
        self.clock_skew.store(skew, Ordering::Relaxed);
        true
    }

    fn take_retry_token(&self, error: &AwsError) -> bool {
        let cost = if error.code == "Timeout" {
            TIMEOUT_RETRY_COST
        } else {
            RETRY_COST
        };
        let left = self.retry_tokens.fetch_sub(cost, Ordering::Relaxed);
        if left < cost {
            self.retry_tokens.fetch_add(cost, Ordering::Relaxed);
            return false;
        }
        true
    }

    fn refund_retry_token(&self) {
        let _ = self
            .retry_tokens
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                (t < RETRY_QUOTA).then_some(t + 1)
            });
    }

    /// Full jitter: a uniform delay up to `base * 2^(attempt-1)`, at most 20 s.
    fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self
            .settings
            .retry_base
            .saturating_mul(1 << (attempt - 1).min(16))
            .min(Duration::from_secs(20));
        ceiling.mul_f64(jitter())
    }
}

fn is_clock_skew_code(code: &str) -> bool {
    matches!(
        code,
        "RequestTimeTooSkewed"
            | "RequestExpired"
            | "RequestInTheFuture"
            | "InvalidSignatureException"
            | "SignatureDoesNotMatch"
            | "AuthFailure"
    )
}

fn encode_query(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", uri_encode(k), uri_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The URL without its query, for trace logs.
fn redact_url(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

fn read_response(mut response: ureq::http::Response<ureq::Body>) -> Result<Response, AwsError> {
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let error_type = header("x-amzn-errortype");
    let bucket_region = header("x-amz-bucket-region");
    let date = header("date");
    let declared = header("content-length").and_then(|n| n.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_RESPONSE_BYTES) {
        return Err(too_large(MAX_RESPONSE_BYTES));
    }

    let body = response
        .body_mut()
        .with_config()
        .limit(MAX_RESPONSE_BYTES)
        .read_to_vec()
        .map_err(transport_error)?;
    if (200..300).contains(&status) {
        return Ok(Response { status, body });
    }
    let mut error = parse_error_body(status, error_type.as_deref(), &body);
    error.bucket_region = bucket_region;
    error.server_time = date.and_then(|d| Timestamp::parse_http_date(&d).ok());
    Err(error)
}

/// An answer larger than any this product reads. Final, not retried:
/// fetching 32 MiB again would only repeat the cost.
fn too_large(limit: u64) -> AwsError {
    AwsError::new(
        "ResponseTooLarge",
        format!("response larger than {limit} bytes"),
    )
}

/// A 2xx answer must be a document of the protocol's kind. One that is not
/// (cut short, garbled, an HTML page from a proxy) is `MalformedResponse`,
/// which is retried like other transient faults; the collectors then parse
/// only documents that are at least well formed.
fn check_well_formed(request: &Request, response: &Response) -> Result<(), AwsError> {
    if response.body.is_empty() {
        return Ok(());
    }
    // S3's GetBucketPolicy answers with the policy itself, a JSON document.
    let json = request.protocol == Protocol::Json
        || (request.protocol == Protocol::RestXml
            && request.query.iter().any(|(k, _)| k == "policy"));
    match json {
        false => {
            let text = response.text()?;
            roxmltree::Document::parse(text)
                .map(|_| ())
                .map_err(|e| AwsError::malformed(format!("not an XML document: {e}")))
        }
        true => serde_json::from_slice::<serde::de::IgnoredAny>(&response.body)
            .map(|_| ())
            .map_err(|e| AwsError::malformed(format!("not a JSON document: {e}"))),
    }
}

fn transport_error(error: ureq::Error) -> AwsError {
    match error {
        ureq::Error::Timeout(what) => AwsError::new("Timeout", format!("timed out: {what}")),
        ureq::Error::BodyExceedsLimit(limit) => too_large(limit),
        ureq::Error::Io(e) if e.kind() == io::ErrorKind::TimedOut => {
            AwsError::new("Timeout", format!("timed out: {e}"))
        }
        ureq::Error::Io(e) => AwsError::new("ConnectionFailed", format!("connection failed: {e}")),
        ureq::Error::Protocol(e) => AwsError::malformed(format!("HTTP protocol error: {e}")),
        other => AwsError::new("ConnectionFailed", format!("request failed: {other}")),
    }
}

/// A uniform number in [0, 1) for backoff jitter. Not for anything secret.
fn jitter() -> f64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let mut x = STATE.load(Ordering::Relaxed);
    if x == 0 {
        x = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9E37_79B9_7F4A_7C15)
            | 1;
    }
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    STATE.store(x, Ordering::Relaxed);
    (x >> 11) as f64 / (1u64 << 53) as f64
}
