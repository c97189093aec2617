//! A scripted AWS stand-in on 127.0.0.1: a small threaded HTTP/1.1 server
//! whose every answer comes from a closure the test writes. It produces what
//! moto cannot: multi-page listings, S3 region redirects, throttling, 5xx,
//! malformed bodies, credential reports that take a while.
//!
//! ```ignore
//! mod support;
//! use support::stub::{Stub, StubResponse};
//!
//! let stub = Stub::start(|req| match req.aws_action().as_deref() {
//!     Some("sts:GetCallerIdentity") => StubResponse::query_xml("GetCallerIdentity", "..."),
//!     _ => StubResponse::s3_error(404, "NoSuchThing", "not scripted"),
//! });
//! // point the client at stub.endpoint(), then:
//! assert_eq!(stub.count(|r| r.form_action().as_deref() == Some("GetCallerIdentity")), 1);
//! ```
//!
//! Only std and serde_json. The server binds 127.0.0.1:0 and connects
//! nowhere (but to itself, to wake its acceptor when dropped). It speaks keep-alive and `Connection: close`, reads
//! `Content-Length` and chunked request bodies, and always answers with a
//! `Content-Length`. Dropping the [`Stub`] stops it and closes every
//! connection; a panic in the handler becomes a 500 answer and then fails
//! the test when the stub is dropped.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Longest request head (request line and headers) accepted.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Largest request body accepted.
const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
/// An idle keep-alive connection is closed after this long.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

type Handler = dyn Fn(&StubRequest) -> StubResponse + Send + Sync + 'static;

/// One request as the stub received it.
#[derive(Debug, Clone)]
pub struct StubRequest {
    /// Order of arrival, from 0, across all connections.
    pub seq: usize,
    /// Which connection it came on (0, 1, ...), to see keep-alive at work.
    pub connection: usize,
    pub method: String,
    /// The request target's path, still percent-encoded as sent.
    pub path: String,
    /// The query string as sent (no `?`), still encoded.
    pub raw_query: String,
    /// The query's pairs, decoded, in order. `acl=` and `acl` both give
    /// `("acl", "")`.
    pub query: Vec<(String, String)>,
    /// Header names lowercased, values trimmed, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl StubRequest {
    /// The first header called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name`.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The decoded value of the first query parameter `name`.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn has_query(&self, name: &str) -> bool {
        self.query.iter().any(|(k, _)| k == name)
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The pairs of a form-encoded body (query protocol), decoded.
    pub fn form(&self) -> Vec<(String, String)> {
        parse_pairs(&self.body_text())
    }

    /// The decoded value of form field `name`.
    pub fn form_param(&self, name: &str) -> Option<String> {
        self.form()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// The `Action` of a query-protocol (IAM, STS) request.
    pub fn form_action(&self) -> Option<String> {
        if self.method != "POST" || self.json_target().is_some() {
            return None;
        }
        self.form_param("Action")
    }

    /// The `x-amz-target` header of a JSON-protocol request, in full
    /// (`AWSOrganizationsV20161128.ListParents`).
    pub fn json_target(&self) -> Option<&str> {
        self.header("x-amz-target")
    }

    /// The operation part of `x-amz-target` (`ListParents`).
    pub fn json_operation(&self) -> Option<&str> {
        self.json_target()
            .map(|t| t.rsplit_once('.').map_or(t, |(_, op)| op))
    }

    /// The body parsed as JSON (`Value::Null` when it is not JSON).
    pub fn json_body(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The `Credential=` of the SigV4 `Authorization` header, split:
    /// `[key id, date, region, service, "aws4_request"]`.
    pub fn credential_scope(&self) -> Option<Vec<&str>> {
        let auth = self.header("authorization")?;
        let rest = auth.strip_prefix("AWS4-HMAC-SHA256")?.trim_start();
        let credential = rest
            .split(',')
            .map(str::trim)
            .find_map(|part| part.strip_prefix("Credential="))?;
        let parts: Vec<&str> = credential.split('/').collect();
        (parts.len() == 5).then_some(parts)
    }

    /// The region the request was signed for.
    pub fn signing_region(&self) -> Option<&str> {
        self.credential_scope().map(|p| p[2])
    }

    /// The service the request was signed for (`s3`, `iam`, `sts`, ...).
    pub fn signing_service(&self) -> Option<&str> {
        self.credential_scope().map(|p| p[3])
    }

    /// The `SignedHeaders=` list of the `Authorization` header.
    pub fn signed_headers(&self) -> Vec<&str> {
        self.header("authorization")
            .and_then(|auth| {
                auth.split(',')
                    .map(str::trim)
                    .find_map(|p| p.strip_prefix("SignedHeaders="))
            })
            .map(|list| list.split(';').collect())
            .unwrap_or_default()
    }

    /// The path's segments, percent-decoded (empty segments dropped).
    pub fn path_segments(&self) -> Vec<String> {
        self.path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| percent_decode(s, false))
            .collect()
    }

    /// Whether this is an S3 Control call (`/v20180820/...`).
    pub fn is_s3_control(&self) -> bool {
        self.path.starts_with("/v20180820/")
    }

    /// The bucket of a path-style S3 request (`/{bucket}?...`).
    pub fn s3_bucket(&self) -> Option<String> {
        if self.method != "GET" || self.is_s3_control() {
            return None;
        }
        self.path_segments().into_iter().next()
    }

    /// The sub-resource of a bucket request: the first query parameter
    /// (`acl`, `policy`, `location`, ...).
    pub fn s3_subresource(&self) -> Option<&str> {
        self.s3_bucket()?;
        self.query.first().map(|(k, _)| k.as_str())
    }

    /// Whether this is S3 `ListBuckets` (`GET /`, signed for s3).
    pub fn is_list_buckets(&self) -> bool {
        self.method == "GET" && self.path == "/" && self.signing_service() == Some("s3")
    }

    /// The IAM action this request exercises, spelt as in an IAM policy
    /// (`s3:GetBucketAcl`, `iam:ListUsers`, `organizations:ListParents`),
    /// or `None` for anything the product is not known to send.
    pub fn aws_action(&self) -> Option<String> {
        if let Some(op) = self.json_operation() {
            let service = self.signing_service().unwrap_or("organizations");
            return Some(format!("{service}:{op}"));
        }
        if let Some(action) = self.form_action() {
            let service = match self.signing_service() {
                Some(s) => s.to_string(),
                None if action == "GetCallerIdentity" => "sts".into(),
                None => "iam".into(),
            };
            return Some(format!("{service}:{action}"));
        }
        if self.method != "GET" {
            return None;
        }
        if self.is_s3_control() {
            return match self.path.as_str() {
                "/v20180820/configuration/publicAccessBlock" => {
                    Some("s3:GetAccountPublicAccessBlock".into())
                }
                _ => None,
            };
        }
        if self.path == "/" {
            return Some("s3:ListAllMyBuckets".into());
        }
        let action = match self.s3_subresource()? {
            "location" => "GetBucketLocation",
            "publicAccessBlock" => "GetBucketPublicAccessBlock",
            "policy" => "GetBucketPolicy",
            "policyStatus" => "GetBucketPolicyStatus",
            "acl" => "GetBucketAcl",
            "encryption" => "GetEncryptionConfiguration",
            "versioning" => "GetBucketVersioning",
            "logging" => "GetBucketLogging",
            _ => return None,
        };
        Some(format!("s3:{action}"))
    }
}

/// An answer the handler gives.
#[derive(Debug, Clone)]
pub struct StubResponse {
    pub status: u16,
    /// Extra headers; `Content-Length` is always computed by the stub.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Close the connection after this answer without saying so (the
    /// answer still reads `Connection: keep-alive`), as a server whose idle
    /// timeout fires does. A `Connection: close` header closes openly.
    pub close_silently: bool,
}

/// The namespace S3 writes on its XML documents.
pub const S3_NS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

impl StubResponse {
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> StubResponse {
        StubResponse {
            status,
            headers: Vec::new(),
            body: body.into(),
            close_silently: false,
        }
    }

    /// See [`StubResponse::close_silently`].
    pub fn closing_silently(mut self) -> StubResponse {
        self.close_silently = true;
        self
    }

    /// An answer without a body.
    pub fn empty(status: u16) -> StubResponse {
        StubResponse::new(status, Vec::new())
    }

    pub fn with_header(mut self, name: &str, value: &str) -> StubResponse {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn with_status(mut self, status: u16) -> StubResponse {
        self.status = status;
        self
    }

    /// An answer with a body of the given content type, as given.
    pub fn raw(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> StubResponse {
        StubResponse::new(status, body).with_header("Content-Type", content_type)
    }

    /// A 200 S3 (REST-XML) answer: `document` behind an XML declaration.
    pub fn s3_xml(document: &str) -> StubResponse {
        StubResponse::raw(
            200,
            "application/xml",
            format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{document}"),
        )
        .with_header("x-amz-request-id", "STUBREQUEST")
    }

    /// An S3 error document: `<Error><Code>..</Code><Message>..</Message>`.
    pub fn s3_error(status: u16, code: &str, message: &str) -> StubResponse {
        StubResponse::raw(
            status,
            "application/xml",
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code>\
                 <Message>{}</Message><RequestId>STUBREQUEST</RequestId>\
                 <HostId>stub</HostId></Error>",
                xml_escape(code),
                xml_escape(message)
            ),
        )
        .with_header("x-amz-request-id", "STUBREQUEST")
    }

    /// S3's 301 for a bucket asked in the wrong region: a
    /// `PermanentRedirect` document and `x-amz-bucket-region`.
    pub fn s3_redirect(bucket: &str, region: &str) -> StubResponse {
        StubResponse::raw(
            301,
            "application/xml",
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>PermanentRedirect</Code>\
                 <Message>The bucket you are attempting to access must be addressed using the \
                 specified endpoint. Please send all future requests to this endpoint.</Message>\
                 <Endpoint>{b}.s3.{r}.amazonaws.com</Endpoint><Bucket>{b}</Bucket>\
                 <RequestId>STUBREQUEST</RequestId><HostId>stub</HostId></Error>",
                b = xml_escape(bucket),
                r = xml_escape(region),
            ),
        )
        .with_header("x-amz-bucket-region", region)
    }

    /// A 200 query-protocol answer:
    /// `<{action}Response><{action}Result>{inner}</..>` with metadata, in
    /// STS's namespace for STS actions and IAM's otherwise.
    pub fn query_xml(action: &str, inner: &str) -> StubResponse {
        let ns = query_namespace(action);
        StubResponse::raw(
            200,
            "text/xml",
            format!(
                "<{action}Response xmlns=\"{ns}\">\
                 <{action}Result>{inner}</{action}Result>\
                 <ResponseMetadata><RequestId>stub-request</RequestId></ResponseMetadata>\
                 </{action}Response>"
            ),
        )
    }

    /// A query-protocol answer with metadata only (no `Result` element).
    pub fn query_xml_no_result(action: &str) -> StubResponse {
        let ns = query_namespace(action);
        StubResponse::raw(
            200,
            "text/xml",
            format!(
                "<{action}Response xmlns=\"{ns}\">\
                 <ResponseMetadata><RequestId>stub-request</RequestId></ResponseMetadata>\
                 </{action}Response>"
            ),
        )
    }

    /// A query-protocol error: `<ErrorResponse><Error><Type>..<Code>..`.
    pub fn query_error(status: u16, code: &str, message: &str) -> StubResponse {
        let kind = if status >= 500 { "Receiver" } else { "Sender" };
        StubResponse::raw(
            status,
            "text/xml",
            format!(
                "<ErrorResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\">\
                 <Error><Type>{kind}</Type><Code>{}</Code><Message>{}</Message></Error>\
                 <RequestId>stub-request</RequestId></ErrorResponse>",
                xml_escape(code),
                xml_escape(message)
            ),
        )
    }

    /// A 200 JSON 1.1 answer.
    pub fn json(value: &serde_json::Value) -> StubResponse {
        StubResponse::raw(200, "application/x-amz-json-1.1", value.to_string())
    }

    /// A JSON 1.1 error: `__type` in the body and `x-amzn-ErrorType`.
    pub fn json_error(status: u16, error_type: &str, message: &str) -> StubResponse {
        let body = serde_json::json!({ "__type": error_type, "Message": message });
        StubResponse::raw(status, "application/x-amz-json-1.1", body.to_string())
            .with_header("x-amzn-ErrorType", error_type)
            .with_header("x-amzn-RequestId", "stub-request")
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn query_namespace(action: &str) -> &'static str {
    match action {
        "GetCallerIdentity" | "AssumeRole" | "AssumeRoleWithWebIdentity" | "GetSessionToken" => {
            "https://sts.amazonaws.com/doc/2011-06-15/"
        }
        _ => "https://iam.amazonaws.com/doc/2010-05-08/",
    }
}

/// State shared between the [`Stub`] and its threads.
struct Shared {
    handler: Box<Handler>,
    requests: Mutex<Vec<StubRequest>>,
    next_seq: AtomicUsize,
    next_connection: AtomicUsize,
    stopping: AtomicBool,
    /// Clones of open connections, to shut them down on drop.
    streams: Mutex<Vec<TcpStream>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    /// Handler panics and protocol errors, reported when the stub drops.
    problems: Mutex<Vec<String>>,
}

/// A running stub on 127.0.0.1; stopped when dropped.
pub struct Stub {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl Stub {
    /// Binds 127.0.0.1:0 and serves every request with `handler`.
    pub fn start<F>(handler: F) -> Stub
    where
        F: Fn(&StubRequest) -> StubResponse + Send + Sync + 'static,
    {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared {
            handler: Box::new(handler),
            requests: Mutex::new(Vec::new()),
            next_seq: AtomicUsize::new(0),
            next_connection: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
            streams: Mutex::new(Vec::new()),
            workers: Mutex::new(Vec::new()),
            problems: Mutex::new(Vec::new()),
        });
        let acceptor = {
            let shared = shared.clone();
            thread::Builder::new()
                .name(format!("stub-accept-{}", addr.port()))
                .spawn(move || accept_loop(listener, shared))
                .expect("spawn the acceptor")
        };
        Stub {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `127.0.0.1:PORT`, as a Host header names it.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port())
    }

    /// `http://127.0.0.1:PORT`, for `AWS_ENDPOINT_URL`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.host())
    }

    /// Every request so far, in order of arrival.
    pub fn requests(&self) -> Vec<StubRequest> {
        let mut all = lock(&self.shared.requests).clone();
        all.sort_by_key(|r| r.seq);
        all
    }

    /// The requests for which `filter` holds, in order of arrival.
    pub fn requests_where(&self, filter: impl Fn(&StubRequest) -> bool) -> Vec<StubRequest> {
        self.requests().into_iter().filter(|r| filter(r)).collect()
    }

    /// How many requests `filter` holds for.
    pub fn count(&self, filter: impl Fn(&StubRequest) -> bool) -> usize {
        lock(&self.shared.requests)
            .iter()
            .filter(|r| filter(r))
            .count()
    }

    /// Requests whose [`StubRequest::aws_action`] is `action`.
    pub fn calls(&self, action: &str) -> Vec<StubRequest> {
        self.requests_where(|r| r.aws_action().as_deref() == Some(action))
    }

    /// Forgets the requests recorded so far.
    pub fn clear_requests(&self) {
        lock(&self.shared.requests).clear();
    }

    /// Handler panics and protocol errors so far.
    pub fn problems(&self) -> Vec<String> {
        lock(&self.shared.problems).clone()
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the acceptor with a connection of our own, to our own port.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        for stream in lock(&self.shared.streams).drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
        let workers: Vec<_> = lock(&self.shared.workers).drain(..).collect();
        for worker in workers {
            let _ = worker.join();
        }
        let problems = self.problems();
        if !problems.is_empty() && !thread::panicking() {
            panic!("the stub saw problems:\n{}", problems.join("\n"));
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        if let Ok(clone) = stream.try_clone() {
            lock(&shared.streams).push(clone);
        }
        let id = shared.next_connection.fetch_add(1, Ordering::SeqCst);
        let worker_shared = shared.clone();
        let spawned = thread::Builder::new()
            .name(format!("stub-conn-{id}"))
            .spawn(move || {
                if let Err(e) = serve_connection(stream, id, &worker_shared) {
                    if !worker_shared.stopping.load(Ordering::SeqCst) && !is_disconnect(&e) {
                        lock(&worker_shared.problems).push(format!("connection {id}: {e}"));
                    }
                }
            });
        match spawned {
            Ok(handle) => lock(&shared.workers).push(handle),
            Err(e) => lock(&shared.problems).push(format!("cannot spawn a worker: {e}")),
        }
    }
}

/// Errors that mean the peer went away (or stopped answering).
pub fn is_disconnect(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
            | io::ErrorKind::WouldBlock
            | io::ErrorKind::TimedOut
    )
}

/// A malformed-input error for the test servers.
pub fn invalid(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

/// Serves requests on one connection until either side closes it.
fn serve_connection(stream: TcpStream, connection: usize, shared: &Shared) -> io::Result<()> {
    stream.set_read_timeout(Some(IDLE_TIMEOUT))?;
    stream.set_nodelay(true)?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let Some(parsed) = read_request(&mut reader)? else {
            return Ok(());
        };
        let (mut request, version) = parsed;
        request.connection = connection;
        request.seq = shared.next_seq.fetch_add(1, Ordering::SeqCst);
        lock(&shared.requests).push(request.clone());

        let response = match catch_unwind(AssertUnwindSafe(|| (shared.handler)(&request))) {
            Ok(response) => response,
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "(no message)".into());
                lock(&shared.problems).push(format!(
                    "handler panicked on {} {}?{}: {message}",
                    request.method, request.path, request.raw_query
                ));
                StubResponse::s3_error(500, "StubHandlerPanicked", &message)
            }
        };

        let client_closes = request
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
            || (version == "HTTP/1.0"
                && !request
                    .header("connection")
                    .is_some_and(|v| v.eq_ignore_ascii_case("keep-alive")));
        let we_close = response
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let close = client_closes || we_close;
        write_response(&mut writer, &response, close, request.method == "HEAD")?;
        if close || response.close_silently {
            let _ = writer.shutdown(Shutdown::Both);
            return Ok(());
        }
    }
}

/// Reads one request; `None` when the peer closed before sending one.
fn read_request(reader: &mut BufReader<TcpStream>) -> io::Result<Option<(StubRequest, String)>> {
    let mut head_bytes = 0;
    let mut line = String::new();
    // Tolerate blank lines between requests (RFC 9112 section 2.2).
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        head_bytes += line.len();
        if !line.trim().is_empty() {
            break;
        }
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid(format!("bad request line {line:?}")));
    };
    let (method, target, version) = (method.to_string(), target.to_string(), version.to_string());
    if !version.starts_with("HTTP/1.") {
        return Err(invalid(format!("unsupported version {version:?}")));
    }

    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed inside a request head",
            ));
        }
        head_bytes += line.len();
        if head_bytes > MAX_HEAD_BYTES {
            return Err(invalid("request head too large"));
        }
        let text = line.trim_end_matches(['\r', '\n']);
        if text.is_empty() {
            break;
        }
        let (name, value) = text
            .split_once(':')
            .ok_or_else(|| invalid(format!("bad header line {text:?}")))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }

    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let chunked =
        header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        read_chunked(reader)?
    } else if let Some(length) = header("content-length") {
        let length: usize = length
            .parse()
            .map_err(|_| invalid(format!("bad content-length {length:?}")))?;
        if length > MAX_BODY_BYTES {
            return Err(invalid("request body too large"));
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        body
    } else {
        Vec::new()
    };

    let (path, raw_query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target.clone(), String::new()),
    };
    let query = parse_pairs(&raw_query);
    Ok(Some((
        StubRequest {
            seq: 0,
            connection: 0,
            method,
            path,
            raw_query,
            query,
            headers,
            body,
        },
        version,
    )))
}

fn read_chunked(reader: &mut BufReader<TcpStream>) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let size_text = line.trim().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| invalid(format!("bad chunk size {line:?}")))?;
        if size == 0 {
            // Trailers, up to the blank line.
            loop {
                line.clear();
                if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        if body.len() + size > MAX_BODY_BYTES {
            return Err(invalid("request body too large"));
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        line.clear();
        reader.read_line(&mut line)?;
    }
}

fn write_response(
    writer: &mut TcpStream,
    response: &StubResponse,
    close: bool,
    head_only: bool,
) -> io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\n",
        response.status,
        reason_phrase(response.status)
    );
    for (name, value) in &response.headers {
        if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("connection") {
            continue;
        }
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if response.header("date").is_none() {
        head.push_str(&format!("Date: {}\r\n", http_date(SystemTime::now())));
    }
    head.push_str("Server: dspm-audit-test-stub\r\n");
    head.push_str(&format!("Content-Length: {}\r\n", response.body.len()));
    if close {
        head.push_str("Connection: close\r\n");
    } else {
        head.push_str("Connection: keep-alive\r\n");
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    if !head_only {
        bytes.extend_from_slice(&response.body);
    }
    writer.write_all(&bytes)?;
    writer.flush()
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        301 => "Moved Permanently",
        307 => "Temporary Redirect",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

// ---- encodings the tests need to build AWS answers ------------------------

/// Splits `a=1&b=two%20words` into decoded pairs (`+` is a space, as in
/// form encoding and as AWS reads queries).
pub fn parse_pairs(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k, true), percent_decode(v, true))
        })
        .collect()
}

/// Decodes `%XX` (invalid escapes are kept as they are); `+` becomes a
/// space when `plus_is_space`.
pub fn percent_decode(text: &str, plus_is_space: bool) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => match bytes.get(i + 1..i + 3).and_then(hex_byte) {
                Some(b) => {
                    out.push(b);
                    i += 3;
                    continue;
                }
                None => out.push(b'%'),
            },
            b'+' if plus_is_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_byte(pair: &[u8]) -> Option<u8> {
    let digit = |c: u8| (c as char).to_digit(16);
    Some((digit(pair[0])? * 16 + digit(pair[1])?) as u8)
}

/// Percent-encodes all but RFC 3986 unreserved characters (as IAM encodes
/// policy documents).
pub fn percent_encode(text: &str) -> String {
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

/// Escapes text for an XML element or attribute.
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Standard base64 with padding (the credential report's `Content`).
pub fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> shift) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

// ---- time -----------------------------------------------------------------

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `YYYY-MM-DDTHH:MM:SS` plus `suffix` (`Z`, `+00:00`, `.000Z`).
pub fn iso8601(unix: i64, suffix: &str) -> String {
    let (y, m, d, hh, mm, ss) = civil(unix);
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}{suffix}")
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub fn http_date(time: SystemTime) -> String {
    let unix = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (y, m, d, hh, mm, ss) = civil(unix);
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {d:02} {} {y:04} {hh:02}:{mm:02}:{ss:02} GMT",
        DAYS[unix.div_euclid(86_400).rem_euclid(7) as usize],
        MONTHS[(m - 1) as usize]
    )
}

/// The Unix time of an `x-amz-date` (`20240102T030405Z`).
pub fn parse_amz_date(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| text.get(range)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hh, mm, ss) = (num(9..11)?, num(11..13)?, num(13..15)?);
    // Howard Hinnant's days-from-civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// Year, month, day, hour, minute, second of a Unix time (UTC).
fn civil(unix: i64) -> (i64, i64, i64, i64, i64, i64) {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, secs / 3600, secs / 60 % 60, secs % 60)
}

/// Counters keyed by name, for "fail the first n times" scripts.
#[derive(Default)]
pub struct Counters(Mutex<HashMap<String, usize>>);

impl Counters {
    pub fn new() -> Counters {
        Counters::default()
    }

    /// Increments `key` and returns its new value (1 on the first call).
    pub fn bump(&self, key: &str) -> usize {
        let mut map = lock(&self.0);
        let n = map.entry(key.to_string()).or_insert(0);
        *n += 1;
        *n
    }

    pub fn get(&self, key: &str) -> usize {
        lock(&self.0).get(key).copied().unwrap_or(0)
    }
}
