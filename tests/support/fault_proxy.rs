//! A fault-injecting HTTP/1.1 proxy on 127.0.0.1 in front of a real moto:
//! requests pass through unchanged (so moto checks the real signatures)
//! unless a [`Rule`] picks them for a [`Fault`].
//!
//! ```ignore
//! mod support;
//! use support::fault_proxy::{Fault, FaultProxy, Nth, Rule};
//!
//! let proxy = FaultProxy::start(moto.port());
//! proxy.add(Rule::new("s3:GetBucketAcl", Nth::First(2), Fault::Status(503)).on("acme-logs"));
//! // point the product at proxy.endpoint(), run it, then:
//! assert_eq!(proxy.calls("s3:GetBucketAcl", "acme-logs").len(), 3);
//! ```
//!
//! Every request is recorded ([`Record`]): the AWS operation it carries,
//! the resource it names, its number among the requests for that
//! (operation, resource) pair (`nth`, from 1), its `x-amz-date`, when it
//! came, the fault applied and what moto answered. The operation is read
//! off the request as AWS would: `x-amz-target` for the JSON protocol, the
//! form's `Action` for the query protocol, method and sub-resource for S3.
//!
//! One request per connection: every answer says `Connection: close`, as
//! moto's own do. Only std and serde_json; the proxy binds 127.0.0.1:0 and
//! connects only to 127.0.0.1 (moto's port, and its own port to wake the
//! acceptor when dropped). Dropping the proxy stops it and its workers.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

use super::stub::{http_date, parse_amz_date, parse_pairs, percent_decode};

/// Longest request (head and body) the proxy reads.
const MAX_REQUEST_BYTES: usize = 1024 * 1024;
/// How long a client may take to send its request, and moto to answer.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// AWS's tolerance for clock skew (15 minutes).
const SKEW_TOLERANCE_SECS: i64 = 15 * 60;

/// The wire protocol of a request, as the proxy recognised it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Form-encoded POST with `Action=` (IAM, STS): XML errors.
    Query,
    /// JSON 1.1 with `x-amz-target` (Organizations): JSON errors.
    Json,
    /// S3 and S3 Control: XML `<Error>` documents.
    RestXml,
}

/// What to do to a request a rule picked.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Answer this status (500, 502, 503, 504, or any other) with the
    /// protocol's error document: see [`Fault::error_code`].
    Status(u16),
    /// Throttle in the protocol's shape: query `Throttling` 400, JSON
    /// `ThrottlingException` 400, S3 `SlowDown` 503.
    Throttle,
    /// Read the request and close with a TCP RST, answering nothing.
    Reset,
    /// Read the request, answer nothing, and close after this long (or as
    /// soon as the client hangs up).
    Stall(Duration),
    /// Forward to moto; send its head and half its body, then close.
    Truncate,
    /// Forward to moto; answer 200 with its body cut in half and garbage
    /// appended (the declared length matches what is sent).
    Corrupt,
    /// Answer 200 with an HTML error page (`text/html`).
    WrongContentType,
    /// Answer 200 with a well-formed start of an XML document followed by
    /// filler, this many bytes in all, streamed in 64 KiB pieces.
    Oversized(u64),
    /// Answer `RequestTimeTooSkewed` (403, in the protocol's shape) with a
    /// `Date` this many seconds away from local time. When
    /// `accept_corrected`, a request signed within 15 minutes of that
    /// shifted time passes to moto instead (a server whose clock is off).
    Skewed {
        offset_secs: i64,
        accept_corrected: bool,
    },
}

impl Fault {
    /// The AWS error code this fault answers with, in `protocol`, if it
    /// answers with an error document at all.
    pub fn error_code(&self, protocol: Protocol) -> Option<&'static str> {
        match (self, protocol) {
            (Fault::Status(500), Protocol::RestXml) => Some("InternalError"),
            (Fault::Status(500), Protocol::Query) => Some("InternalFailure"),
            (Fault::Status(500), Protocol::Json) => Some("ServiceException"),
            (Fault::Status(502), _) => Some("BadGateway"),
            (Fault::Status(504), _) => Some("GatewayTimeout"),
            (Fault::Status(s), _) if *s >= 500 => Some("ServiceUnavailable"),
            (Fault::Status(_), _) => Some("BadRequest"),
            (Fault::Throttle, Protocol::Query) => Some("Throttling"),
            (Fault::Throttle, Protocol::Json) => Some("ThrottlingException"),
            (Fault::Throttle, Protocol::RestXml) => Some("SlowDown"),
            (Fault::Skewed { .. }, _) => Some("RequestTimeTooSkewed"),
            _ => None,
        }
    }

    /// A short name for logs.
    pub fn label(&self) -> String {
        match self {
            Fault::Status(s) => format!("status-{s}"),
            Fault::Throttle => "throttle".into(),
            Fault::Reset => "reset".into(),
            Fault::Stall(d) => format!("stall-{}ms", d.as_millis()),
            Fault::Truncate => "truncate".into(),
            Fault::Corrupt => "corrupt".into(),
            Fault::WrongContentType => "wrong-content-type".into(),
            Fault::Oversized(n) => format!("oversized-{n}"),
            Fault::Skewed { offset_secs, .. } => format!("skewed-{offset_secs}s"),
        }
    }
}

/// Which requests of an (operation, resource) pair a rule applies to,
/// counting from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nth {
    /// The first n (a transient fault).
    First(usize),
    /// Only the n-th.
    Only(usize),
    /// Every one (a persistent fault).
    All,
}

impl Nth {
    fn covers(self, nth: usize) -> bool {
        match self {
            Nth::First(n) => nth <= n,
            Nth::Only(n) => nth == n,
            Nth::All => true,
        }
    }
}

/// Picks requests for a fault: by operation (`s3:GetBucketAcl`, or a
/// pattern ending in `*`: `s3:*`, `*`), optionally by resource, and by
/// their number. The first rule that matches wins.
#[derive(Debug, Clone)]
pub struct Rule {
    operation: String,
    resource: Option<String>,
    nth: Nth,
    fault: Fault,
}

impl Rule {
    pub fn new(operation: &str, nth: Nth, fault: Fault) -> Rule {
        Rule {
            operation: operation.to_string(),
            resource: None,
            nth,
            fault,
        }
    }

    /// Only requests naming `resource` (a bucket, user name, policy ARN,
    /// Organizations id); `"*"` means any request that names one.
    pub fn on(mut self, resource: &str) -> Rule {
        self.resource = Some(resource.to_string());
        self
    }

    fn matches(&self, call: &Call, nth: usize) -> bool {
        let op_ok = match self.operation.strip_suffix('*') {
            Some(prefix) => call.operation.starts_with(prefix),
            None => call.operation == self.operation,
        };
        let resource_ok = match self.resource.as_deref() {
            None => true,
            Some("*") => !call.resource.is_empty(),
            Some(r) => call.resource == r,
        };
        op_ok && resource_ok && self.nth.covers(nth)
    }
}

/// One request the proxy received.
#[derive(Debug, Clone)]
pub struct Record {
    /// Order of arrival, from 0.
    pub seq: usize,
    /// `service:Operation` (`s3:GetBucketAcl`, `iam:ListUsers`,
    /// `organizations:ListParents`, `s3control:GetPublicAccessBlock`).
    pub operation: String,
    /// The bucket, user name, policy ARN or Organizations id the request
    /// names; empty for account-level calls.
    pub resource: String,
    pub protocol: Protocol,
    /// This request's number among those for (operation, resource), from 1.
    pub nth: usize,
    /// The `x-amz-date` header as sent.
    pub amz_date: Option<String>,
    /// The `Authorization` header's presence.
    pub signed: bool,
    /// When it arrived.
    pub received: SystemTime,
    /// When it arrived, since the proxy started.
    pub at: Duration,
    /// The fault applied, if any ([`Fault::label`]).
    pub fault: Option<String>,
    /// moto's status, when the request reached moto.
    pub upstream_status: Option<u16>,
    /// Body bytes written to the client.
    pub body_bytes_sent: u64,
    /// For a stall: how long after arrival the client hung up (`None` if it
    /// never did before the stall ended).
    pub client_gave_up_after: Option<Duration>,
}

impl Record {
    /// Unix seconds of `x-amz-date`.
    pub fn signed_at(&self) -> Option<i64> {
        self.amz_date.as_deref().and_then(parse_amz_date)
    }

    pub fn received_unix(&self) -> i64 {
        unix(self.received)
    }
}

/// What a request asks for, as far as the rules care.
#[derive(Debug, Clone)]
struct Call {
    operation: String,
    resource: String,
    protocol: Protocol,
}

struct Shared {
    upstream: SocketAddr,
    started: Instant,
    rules: Mutex<Vec<Rule>>,
    log: Mutex<Vec<Record>>,
    counters: Mutex<HashMap<(String, String), usize>>,
    next_seq: AtomicUsize,
    stopping: AtomicBool,
    /// Clones of open connections by id, to shut them down on drop. A
    /// worker removes its own when done (or before a reset: a clone would
    /// keep the socket open).
    streams: Mutex<HashMap<usize, TcpStream>>,
    next_connection: AtomicUsize,
    workers: Mutex<Vec<JoinHandle<()>>>,
    problems: Mutex<Vec<String>>,
}

/// A running proxy on 127.0.0.1 forwarding to moto; stopped when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Binds 127.0.0.1:0 and forwards to 127.0.0.1:`upstream_port`.
    pub fn start(upstream_port: u16) -> FaultProxy {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared {
            upstream: SocketAddr::from((Ipv4Addr::LOCALHOST, upstream_port)),
            started: Instant::now(),
            rules: Mutex::new(Vec::new()),
            log: Mutex::new(Vec::new()),
            counters: Mutex::new(HashMap::new()),
            next_seq: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
            streams: Mutex::new(HashMap::new()),
            next_connection: AtomicUsize::new(0),
            workers: Mutex::new(Vec::new()),
            problems: Mutex::new(Vec::new()),
        });
        let acceptor = {
            let shared = shared.clone();
            thread::Builder::new()
                .name(format!("fault-proxy-{}", addr.port()))
                .spawn(move || accept_loop(listener, shared))
                .expect("spawn the acceptor")
        };
        FaultProxy {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// `http://127.0.0.1:PORT`, for `AWS_ENDPOINT_URL`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Adds a rule (after those already there).
    pub fn add(&self, rule: Rule) {
        lock(&self.shared.rules).push(rule);
    }

    /// Removes every rule and forgets the requests and their counts.
    pub fn reset(&self) {
        lock(&self.shared.rules).clear();
        lock(&self.shared.log).clear();
        lock(&self.shared.counters).clear();
    }

    /// Every request so far, in order of arrival.
    pub fn log(&self) -> Vec<Record> {
        let mut all = lock(&self.shared.log).clone();
        all.sort_by_key(|r| r.seq);
        all
    }

    /// The requests for `operation` on `resource` ("" for account-level).
    pub fn calls(&self, operation: &str, resource: &str) -> Vec<Record> {
        self.log()
            .into_iter()
            .filter(|r| r.operation == operation && r.resource == resource)
            .collect()
    }

    /// Protocol errors and unexpected failures inside the proxy.
    pub fn problems(&self) -> Vec<String> {
        lock(&self.shared.problems).clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the acceptor with a connection of our own, to our own port.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        for (_, stream) in lock(&self.shared.streams).drain() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        let workers: Vec<_> = lock(&self.shared.workers).drain(..).collect();
        for worker in workers {
            let _ = worker.join();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

fn unix(time: SystemTime) -> i64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        let id = shared.next_connection.fetch_add(1, Ordering::SeqCst);
        if let Ok(clone) = stream.try_clone() {
            lock(&shared.streams).insert(id, clone);
        }
        let worker_shared = shared.clone();
        let spawned = thread::Builder::new()
            .name(format!("fault-proxy-conn-{id}"))
            .spawn(move || {
                let result = serve(stream, id, &worker_shared);
                lock(&worker_shared.streams).remove(&id);
                if let Err(e) = result {
                    if !worker_shared.stopping.load(Ordering::SeqCst) && !is_disconnect(&e) {
                        lock(&worker_shared.problems).push(e.to_string());
                    }
                }
            });
        match spawned {
            Ok(handle) => {
                let mut workers = lock(&shared.workers);
                workers.retain(|w| !w.is_finished());
                workers.push(handle);
            }
            Err(e) => lock(&shared.problems).push(format!("cannot spawn a worker: {e}")),
        }
    }
}

use super::stub::{invalid, is_disconnect};

/// A request as received: its bytes (forwarded unchanged) and its parts.
struct Incoming {
    raw: Vec<u8>,
    method: String,
    path: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Incoming {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The service of the SigV4 credential scope (`s3`, `iam`, ...).
    fn signing_service(&self) -> Option<String> {
        let auth = self.header("authorization")?;
        let credential = auth
            .split([',', ' '])
            .find_map(|p| p.trim().strip_prefix("Credential="))?;
        credential.split('/').nth(3).map(str::to_string)
    }

    /// The AWS operation and the resource it names.
    fn call(&self) -> Call {
        if let Some(target) = self.header("x-amz-target") {
            let op = target.rsplit_once('.').map_or(target, |(_, op)| op);
            let service = self
                .signing_service()
                .unwrap_or_else(|| "organizations".into());
            let body: serde_json::Value =
                serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null);
            let resource = ["ChildId", "TargetId", "PolicyId", "AccountId"]
                .iter()
                .find_map(|k| body.get(*k).and_then(|v| v.as_str()))
                .unwrap_or("");
            return Call {
                operation: format!("{service}:{op}"),
                resource: resource.to_string(),
                protocol: Protocol::Json,
            };
        }
        if self.method == "POST" {
            let form = parse_pairs(&String::from_utf8_lossy(&self.body));
            let field = |name: &str| {
                form.iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.as_str())
            };
            if let Some(action) = field("Action") {
                let service = self.signing_service().unwrap_or_else(|| "sts".into());
                let resource = ["UserName", "PolicyArn", "RoleName", "GroupName"]
                    .iter()
                    .find_map(|k| field(k))
                    .unwrap_or("");
                return Call {
                    operation: format!("{service}:{action}"),
                    resource: resource.to_string(),
                    protocol: Protocol::Query,
                };
            }
        }
        self.rest_call()
    }

    /// S3 and S3 Control: method, path and the first query parameter.
    fn rest_call(&self) -> Call {
        let rest = |operation: String, resource: String| Call {
            operation,
            resource,
            protocol: Protocol::RestXml,
        };
        if let Some(path) = self.path.strip_prefix("/v20180820/") {
            let op = match (self.method.as_str(), path) {
                ("GET", "configuration/publicAccessBlock") => "GetPublicAccessBlock".to_string(),
                (method, path) => format!("{method} /{path}"),
            };
            let account = self.header("x-amz-account-id").unwrap_or("").to_string();
            return rest(format!("s3control:{op}"), account);
        }
        let segments: Vec<String> = self
            .path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| percent_decode(s, false))
            .collect();
        let sub = self.query.first().map(|(k, _)| k.as_str()).unwrap_or("");
        let op = match (self.method.as_str(), segments.len(), sub) {
            ("GET", 0, _) => "ListBuckets".to_string(),
            ("GET", 1, "location") => "GetBucketLocation".into(),
            ("GET", 1, "publicAccessBlock") => "GetPublicAccessBlock".into(),
            ("GET", 1, "policy") => "GetBucketPolicy".into(),
            ("GET", 1, "policyStatus") => "GetBucketPolicyStatus".into(),
            ("GET", 1, "acl") => "GetBucketAcl".into(),
            ("GET", 1, "encryption") => "GetBucketEncryption".into(),
            ("GET", 1, "versioning") => "GetBucketVersioning".into(),
            ("GET", 1, "logging") => "GetBucketLogging".into(),
            ("GET", 1, "") => "ListObjects".into(),
            (method, 1, "") => format!("{method} bucket"),
            (method, 1, sub) => format!("{method} ?{sub}"),
            (method, _, _) => format!("{method} object"),
        };
        rest(
            format!("s3:{op}"),
            segments.into_iter().next().unwrap_or_default(),
        )
    }
}

/// Waits until a whole request is in the socket's receive buffer and
/// returns it without consuming it (so that a reset can still leave it
/// unread). `None` when the client closed first.
fn peek_request(stream: &TcpStream, shared: &Shared) -> io::Result<Option<Incoming>> {
    let deadline = Instant::now() + IO_TIMEOUT;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = stream.peek(&mut buf)?;
        if n == 0 {
            return Ok(None);
        }
        if let Some(head_len) = find(&buf[..n], b"\r\n\r\n").map(|i| i + 4) {
            let head = String::from_utf8_lossy(&buf[..head_len]).into_owned();
            let length = content_length(&head)?;
            let total = head_len + length;
            if total > MAX_REQUEST_BYTES {
                return Err(invalid(format!("request of {total} bytes")));
            }
            if n >= total {
                return parse_request(buf[..total].to_vec(), head_len).map(Some);
            }
            if buf.len() < total {
                buf.resize(total, 0);
                continue;
            }
        } else if n == buf.len() {
            if buf.len() >= MAX_REQUEST_BYTES {
                return Err(invalid("request head too large"));
            }
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if Instant::now() >= deadline || shared.stopping.load(Ordering::SeqCst) {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "incomplete request",
            ));
        }
        // Part of the request is here; wait for the rest.
        thread::sleep(Duration::from_millis(1));
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn content_length(head: &str) -> io::Result<usize> {
    for line in head.split("\r\n").skip(1) {
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case("transfer-encoding") {
                return Err(invalid("chunked requests are not supported"));
            }
            if name.trim().eq_ignore_ascii_case("content-length") {
                return value
                    .trim()
                    .parse()
                    .map_err(|_| invalid(format!("bad content-length {value:?}")));
            }
        }
    }
    Ok(0)
}

fn parse_request(raw: Vec<u8>, head_len: usize) -> io::Result<Incoming> {
    let head = String::from_utf8_lossy(&raw[..head_len]).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Err(invalid(format!("bad request line {request_line:?}")));
    };
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Ok(Incoming {
        method: method.to_string(),
        path: path.to_string(),
        query: parse_pairs(query),
        headers,
        body: raw[head_len..].to_vec(),
        raw,
    })
}

/// Serves the one request of a connection.
fn serve(mut stream: TcpStream, id: usize, shared: &Shared) -> io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    stream.set_nodelay(true)?;
    let Some(request) = peek_request(&stream, shared)? else {
        return Ok(());
    };
    let received = SystemTime::now();
    let at = shared.started.elapsed();
    let call = request.call();
    let nth = {
        let mut counters = lock(&shared.counters);
        let n = counters
            .entry((call.operation.clone(), call.resource.clone()))
            .or_insert(0);
        *n += 1;
        *n
    };
    let fault = lock(&shared.rules)
        .iter()
        .find(|r| r.matches(&call, nth))
        .map(|r| r.fault.clone());
    let fault = match fault {
        // A server with a skewed clock lets through what is signed by it.
        Some(Fault::Skewed {
            offset_secs,
            accept_corrected: true,
        }) if signed_near(&request, unix(SystemTime::now()) + offset_secs) => None,
        other => other,
    };
    let index = {
        let mut log = lock(&shared.log);
        log.push(Record {
            seq: shared.next_seq.fetch_add(1, Ordering::SeqCst),
            operation: call.operation.clone(),
            resource: call.resource.clone(),
            protocol: call.protocol,
            nth,
            amz_date: request.header("x-amz-date").map(str::to_string),
            signed: request.header("authorization").is_some(),
            received,
            at,
            fault: fault.as_ref().map(Fault::label),
            upstream_status: None,
            body_bytes_sent: 0,
            client_gave_up_after: None,
        });
        log.len() - 1
    };
    let update = |f: &dyn Fn(&mut Record)| {
        if let Some(record) = lock(&shared.log).get_mut(index) {
            f(record);
        }
    };

    if fault == Some(Fault::Reset) {
        // Closing with the request still unread makes the kernel answer
        // with RST instead of FIN (RFC 2525 2.17; Linux tcp_close). The
        // clone kept for shutdown-on-drop must go first, or the socket
        // would stay open.
        drop(lock(&shared.streams).remove(&id));
        drop(stream);
        return Ok(());
    }
    // Consume the request we peeked.
    let mut sink = vec![0u8; request.raw.len()];
    stream.read_exact(&mut sink)?;

    let Some(fault) = fault else {
        let (status, raw) = forward(shared, &request.raw)?;
        update(&|r| r.upstream_status = Some(status));
        stream.write_all(&raw)?;
        let _ = stream.shutdown(Shutdown::Write);
        return Ok(());
    };

    match fault {
        Fault::Status(status) => {
            let code = fault.error_code(call.protocol).unwrap_or("InternalError");
            let answer = error_answer(call.protocol, status, code, "injected by the fault proxy");
            write_answer(&mut stream, &answer)?;
        }
        Fault::Throttle => {
            let code = fault.error_code(call.protocol).unwrap_or("Throttling");
            let status = if call.protocol == Protocol::RestXml {
                503
            } else {
                400
            };
            let answer = error_answer(call.protocol, status, code, "Rate exceeded");
            write_answer(&mut stream, &answer)?;
        }
        Fault::Skewed { offset_secs, .. } => {
            let server_time = shift(SystemTime::now(), offset_secs);
            let mut answer = error_answer(
                call.protocol,
                403,
                "RequestTimeTooSkewed",
                "The difference between the request time and the current time is too large.",
            );
            answer.headers.push(("Date".into(), http_date(server_time)));
            write_answer(&mut stream, &answer)?;
        }
        Fault::Reset => unreachable!("handled above"),
        Fault::Stall(limit) => {
            let gave_up = wait_for_hangup(&stream, limit, shared);
            update(&|r| r.client_gave_up_after = gave_up);
        }
        Fault::Truncate => {
            let (status, raw) = forward(shared, &request.raw)?;
            update(&|r| r.upstream_status = Some(status));
            let (head, body) = split_response(&raw)?;
            let mut answer = Answer::new(status, &content_type(&head), Vec::new());
            answer.declared_length = Some(body.len());
            answer.body = body[..body.len() / 2].to_vec();
            write_answer(&mut stream, &answer)?;
            update(&|r| r.body_bytes_sent = (body.len() / 2) as u64);
        }
        Fault::Corrupt => {
            let (status, raw) = forward(shared, &request.raw)?;
            update(&|r| r.upstream_status = Some(status));
            let (head, body) = split_response(&raw)?;
            let mut garbage = body[..body.len() / 2].to_vec();
            garbage.extend_from_slice(b"\x00\xff<<</ garbage ]]> &;\x01");
            let answer = Answer::new(200, &content_type(&head), garbage);
            write_answer(&mut stream, &answer)?;
        }
        Fault::WrongContentType => {
            let page = "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\
                <body><h1>502 Bad Gateway</h1><p>The upstream server is unavailable.\
                <br></p><hr><center>corporate-proxy</center></body></html>\n";
            let answer = Answer::new(200, "text/html; charset=utf-8", page.as_bytes().to_vec());
            write_answer(&mut stream, &answer)?;
        }
        Fault::Oversized(total) => {
            let sent = stream_oversized(&mut stream, total, shared);
            update(&|r| r.body_bytes_sent = sent);
        }
    }
    let _ = stream.shutdown(Shutdown::Write);
    Ok(())
}

/// Whether the request's `x-amz-date` is within AWS's tolerance of `server_unix`.
fn signed_near(request: &Incoming, server_unix: i64) -> bool {
    request
        .header("x-amz-date")
        .and_then(parse_amz_date)
        .is_some_and(|t| (t - server_unix).abs() <= SKEW_TOLERANCE_SECS)
}

fn shift(time: SystemTime, secs: i64) -> SystemTime {
    if secs >= 0 {
        time + Duration::from_secs(secs as u64)
    } else {
        time - Duration::from_secs(secs.unsigned_abs())
    }
}

/// Sends `raw` to moto and reads its whole answer (moto closes after it).
fn forward(shared: &Shared, raw: &[u8]) -> io::Result<(u16, Vec<u8>)> {
    let mut upstream = TcpStream::connect_timeout(&shared.upstream, IO_TIMEOUT)?;
    upstream.set_read_timeout(Some(IO_TIMEOUT))?;
    upstream.set_write_timeout(Some(IO_TIMEOUT))?;
    upstream.write_all(raw)?;
    let mut answer = Vec::new();
    upstream.read_to_end(&mut answer)?;
    let status = answer
        .split(|b| *b == b'\n')
        .next()
        .and_then(|line| std::str::from_utf8(line).ok())
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid("moto sent no status line"))?;
    Ok((status, answer))
}

/// The head (lower-cased header pairs) and the de-chunked body of an answer.
fn split_response(raw: &[u8]) -> io::Result<(Vec<(String, String)>, Vec<u8>)> {
    let split = find(raw, b"\r\n\r\n").ok_or_else(|| invalid("moto's answer has no head"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let headers: Vec<(String, String)> = head
        .split("\r\n")
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        body = dechunk(&body);
    } else if let Some(length) = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
    {
        body.truncate(length);
    }
    Ok((headers, body))
}

fn content_type(headers: &[(String, String)]) -> String {
    headers
        .iter()
        .find(|(k, _)| k == "content-type")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| "application/xml".into())
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = find(raw, b"\r\n") {
        let size_text = String::from_utf8_lossy(&raw[..eol]);
        let size = usize::from_str_radix(size_text.trim().split(';').next().unwrap_or(""), 16)
            .unwrap_or(0);
        if size == 0 || raw.len() < eol + 2 + size {
            break;
        }
        out.extend_from_slice(&raw[eol + 2..eol + 2 + size]);
        raw = &raw[(eol + 4 + size).min(raw.len())..];
    }
    out
}

/// An answer the proxy makes up.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// A `Content-Length` other than the body's (to truncate).
    declared_length: Option<usize>,
}

impl Answer {
    fn new(status: u16, content_type: &str, body: Vec<u8>) -> Answer {
        Answer {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body,
            declared_length: None,
        }
    }
}

/// An AWS error document in the protocol's shape.
fn error_answer(protocol: Protocol, status: u16, code: &str, message: &str) -> Answer {
    match protocol {
        Protocol::Query => {
            let kind = if status >= 500 { "Receiver" } else { "Sender" };
            Answer::new(
                status,
                "text/xml",
                format!(
                    "<ErrorResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\">\
                     <Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message>\
                     </Error><RequestId>fault-proxy</RequestId></ErrorResponse>"
                )
                .into_bytes(),
            )
        }
        Protocol::Json => {
            let body = serde_json::json!({ "__type": code, "message": message });
            let mut answer = Answer::new(
                status,
                "application/x-amz-json-1.1",
                body.to_string().into_bytes(),
            );
            answer
                .headers
                .push(("x-amzn-ErrorType".into(), code.into()));
            answer
                .headers
                .push(("x-amzn-RequestId".into(), "fault-proxy".into()));
            answer
        }
        Protocol::RestXml => Answer::new(
            status,
            "application/xml",
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
                 <Message>{message}</Message><RequestId>fault-proxy</RequestId>\
                 <HostId>fault-proxy</HostId></Error>"
            )
            .into_bytes(),
        ),
    }
}

fn write_answer(stream: &mut TcpStream, answer: &Answer) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", answer.status, reason(answer.status));
    for (name, value) in &answer.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !answer.headers.iter().any(|(k, _)| k == "Date") {
        head.push_str(&format!("Date: {}\r\n", http_date(SystemTime::now())));
    }
    let length = answer.declared_length.unwrap_or(answer.body.len());
    head.push_str(&format!(
        "Server: dspm-audit-fault-proxy\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
    ));
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(&answer.body);
    stream.write_all(&bytes)?;
    stream.flush()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

/// Holds the connection open without answering until `limit` passes, the
/// client hangs up, or the proxy stops. Returns when the client hung up.
fn wait_for_hangup(stream: &TcpStream, limit: Duration, shared: &Shared) -> Option<Duration> {
    let started = Instant::now();
    let _ = stream.set_read_timeout(Some(Duration::from_millis(20)));
    let mut byte = [0u8; 1];
    while started.elapsed() < limit && !shared.stopping.load(Ordering::SeqCst) {
        match stream.peek(&mut byte) {
            // EOF or a reset: the client is gone.
            Ok(0) => return Some(started.elapsed()),
            Err(e)
                if !matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Some(started.elapsed())
            }
            // Unexpected extra bytes: keep waiting without reading them.
            Ok(_) => thread::sleep(Duration::from_millis(20)),
            Err(_) => {}
        }
    }
    None
}

/// Streams `total` bytes of body after a 200 head: an XML start that every
/// S3 and query parser would accept, then filler. Never holds more than one
/// piece in memory. Returns the body bytes written before the client stopped
/// reading (or all of them).
fn stream_oversized(stream: &mut TcpStream, total: u64, shared: &Shared) -> u64 {
    const PIECE: usize = 64 * 1024;
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nDate: {}\r\n\
         Server: dspm-audit-fault-proxy\r\nContent-Length: {total}\r\nConnection: close\r\n\r\n",
        http_date(SystemTime::now())
    );
    if stream.write_all(head.as_bytes()).is_err() {
        return 0;
    }
    let opening = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Filler>";
    let mut piece = vec![b' '; PIECE];
    let first = opening.len().min(PIECE);
    piece[..first].copy_from_slice(&opening[..first]);
    // A client that stops reading leaves us blocked on a full buffer.
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let mut sent = 0u64;
    while sent < total && !shared.stopping.load(Ordering::SeqCst) {
        let n = (total - sent).min(PIECE as u64) as usize;
        if stream.write_all(&piece[..n]).is_err() {
            break;
        }
        sent += n as u64;
        if sent == n as u64 {
            piece[..first].fill(b' ');
        }
    }
    sent
}
