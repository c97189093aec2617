//! Loopback stand-ins for the credential tests: a scripted HTTP server (the
//! ECS / EKS Pod Identity agent, or STS) and a recording proxy in front of
//! moto, so that what the product sends can be read off the wire.
//!
//! ```ignore
//! let stub = CredsStub::start(|req| Reply::json(200, &container_creds("ASIA1", 3600)));
//! // AWS_CONTAINER_CREDENTIALS_FULL_URI = stub.url("/creds")
//! assert_eq!(stub.count(), 1);
//!
//! let proxy = CredsStub::proxy(moto.port(), |_req, body| body); // forwards as is
//! // AWS_ENDPOINT_URL_STS = proxy.base()
//! ```
//!
//! Only std. Binds 127.0.0.1:0, connects only to 127.0.0.1, answers every
//! request with `Connection: close`. Dropping it stops it.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use serde_json::{json, Value};

const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// One request as received, with the answer given.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Order of arrival, from 0.
    pub seq: usize,
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    /// Names lowercased, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The status and body of the answer.
    pub status: u16,
    pub response_body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The decoded value of form field `name` (query protocol bodies).
    pub fn form(&self, name: &str) -> Option<String> {
        String::from_utf8_lossy(&self.body)
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(k, _)| percent_decode(k) == name)
            .map(|(_, v)| percent_decode(v))
    }

    pub fn response_text(&self) -> String {
        String::from_utf8_lossy(&self.response_body).into_owned()
    }
}

/// A scripted answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// Wait this long before answering (to make callers overlap).
    pub delay: Duration,
}

impl Reply {
    pub fn json(status: u16, value: &Value) -> Reply {
        Reply {
            status,
            content_type: "application/json",
            body: value.to_string().into_bytes(),
            delay: Duration::ZERO,
        }
    }

    pub fn raw(status: u16, content_type: &'static str, body: &str) -> Reply {
        Reply {
            status,
            content_type,
            body: body.as_bytes().to_vec(),
            delay: Duration::ZERO,
        }
    }

    /// An STS query-protocol error document.
    pub fn sts_error(status: u16, code: &str, message: &str) -> Reply {
        Reply::raw(
            status,
            "text/xml",
            &format!(
                "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error>\
                 <Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>\
                 <RequestId>stub</RequestId></ErrorResponse>"
            ),
        )
    }

    pub fn delayed(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

/// The container endpoint's JSON for `key` expiring `lifetime_secs` from now.
pub fn container_creds(key: &str, secret: &str, token: &str, expiration: &str) -> Value {
    json!({
        "AccessKeyId": key,
        "SecretAccessKey": secret,
        "Token": token,
        "Expiration": expiration,
        "RoleArn": "arn:aws:iam::123456789012:role/task",
    })
}

/// An STS `AssumeRoleWithWebIdentity` answer.
pub fn web_identity_answer(key: &str, secret: &str, token: &str, expiration: &str) -> Reply {
    Reply::raw(
        200,
        "text/xml",
        &format!(
            "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
             <AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>{key}</AccessKeyId>\
             <SecretAccessKey>{secret}</SecretAccessKey><SessionToken>{token}</SessionToken>\
             <Expiration>{expiration}</Expiration></Credentials><AssumedRoleUser>\
             <Arn>arn:aws:sts::123456789012:assumed-role/irsa/stub</Arn>\
             <AssumedRoleId>AROA:stub</AssumedRoleId></AssumedRoleUser>\
             </AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>"
        ),
    )
}

type Handler = dyn Fn(&Recorded) -> Reply + Send + Sync + 'static;
type Rewrite = dyn Fn(&Recorded, Vec<u8>) -> Vec<u8> + Send + Sync + 'static;

enum Mode {
    Script(Box<Handler>),
    /// Forward to 127.0.0.1:port; the closure may rewrite the answer body.
    Proxy(u16, Box<Rewrite>),
}

/// A running stand-in; stopped when dropped.
pub struct CredsStub {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Recorded>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl CredsStub {
    /// A server answering every request with `handler`.
    pub fn start(handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> CredsStub {
        CredsStub::spawn(Mode::Script(Box::new(handler)))
    }

    /// A recording proxy to the server on 127.0.0.1:`port` (moto): the
    /// request bytes are forwarded untouched (so signatures still verify),
    /// and `rewrite` may change the answer's body.
    pub fn proxy(
        port: u16,
        rewrite: impl Fn(&Recorded, Vec<u8>) -> Vec<u8> + Send + Sync + 'static,
    ) -> CredsStub {
        CredsStub::spawn(Mode::Proxy(port, Box::new(rewrite)))
    }

    fn spawn(mode: Mode) -> CredsStub {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local addr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let mode = Arc::new(mode);
        let thread = {
            let (log, stop) = (log.clone(), stop.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let (log, mode) = (log.clone(), mode.clone());
                            thread::spawn(move || {
                                let _ = serve(stream, &mode, &log);
                            });
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            thread::sleep(Duration::from_millis(5));
                        }
                        Err(_) => thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        CredsStub {
            addr,
            log,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn count(&self) -> usize {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Requests whose form `Action` is `action`.
    pub fn actions(&self, action: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.form("Action").as_deref() == Some(action))
            .collect()
    }
}

impl Drop for CredsStub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(mut stream: TcpStream, mode: &Mode, log: &Mutex<Vec<Recorded>>) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let (raw, head_len, content_length) = read_request(&mut stream)?;
    let head = String::from_utf8_lossy(&raw[..head_len]).into_owned();
    let mut lines = head.split("\r\n");
    let mut start = lines.next().unwrap_or_default().split(' ');
    let method = start.next().unwrap_or_default().to_string();
    let target = start.next().unwrap_or_default().to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let body = raw[head_len + 4..head_len + 4 + content_length].to_vec();

    let mut recorded = {
        let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
        let seq = log.len();
        let r = Recorded {
            seq,
            method,
            target,
            headers,
            body,
            status: 0,
            response_body: Vec::new(),
        };
        log.push(r.clone());
        r
    };

    let (status, content_type, answer) = match mode {
        Mode::Script(handler) => {
            let reply = handler(&recorded);
            thread::sleep(reply.delay);
            (reply.status, reply.content_type.to_string(), reply.body)
        }
        Mode::Proxy(port, rewrite) => {
            let mut upstream = TcpStream::connect((Ipv4Addr::LOCALHOST, *port))?;
            upstream.set_read_timeout(Some(IO_TIMEOUT))?;
            upstream.write_all(&raw[..head_len + 4 + content_length])?;
            let (status, content_type, body) = read_response(&mut upstream)?;
            let body = rewrite(&recorded, body);
            (status, content_type, body)
        }
    };
    recorded.status = status;
    recorded.response_body = answer.clone();
    {
        let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = log.get_mut(recorded.seq) {
            *slot = recorded;
        }
    }
    let head = format!(
        "HTTP/1.1 {status} Stub\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        answer.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(&answer)?;
    stream.flush()?;
    Ok(())
}

/// Reads one request: the raw bytes, the head's length (up to the blank
/// line) and the body's `Content-Length`.
fn read_request(stream: &mut TcpStream) -> io::Result<(Vec<u8>, usize, usize)> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let head_len = loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "no request"));
        }
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..head_len]).to_ascii_lowercase();
    let content_length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while raw.len() < head_len + 4 + content_length {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "short body"));
        }
        raw.extend_from_slice(&buf[..n]);
    }
    Ok((raw, head_len, content_length))
}

/// Reads an upstream answer to EOF (moto closes every connection):
/// status, content type and the body (de-chunked).
fn read_response(stream: &mut TcpStream) -> io::Result<(u16, String, Vec<u8>)> {
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no response head"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(502);
    let lower = head.to_ascii_lowercase();
    let content_type = head
        .lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.trim().eq_ignore_ascii_case("content-type"))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "text/xml".to_string());
    let mut body = raw[split + 4..].to_vec();
    if lower.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    Ok((status, content_type, body))
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&raw[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 || raw.len() < eol + 2 + size {
            break;
        }
        out.extend_from_slice(&raw[eol + 2..eol + 2 + size]);
        raw = &raw[(eol + 4 + size).min(raw.len())..];
    }
    out
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The text of the first `<tag>` element of `xml` (no parser needed for
/// STS's flat answers).
pub fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&close)? + start;
    Some(xml[start..end].to_string())
}

/// Every `<tag>` text of `xml`.
pub fn xml_texts(xml: &str, tag: &str) -> Vec<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(s) = rest.find(&open) {
        let after = &rest[s + open.len()..];
        let Some(e) = after.find(&close) else { break };
        out.push(after[..e].to_string());
        rest = &after[e + close.len()..];
    }
    out
}

/// `xml` with the text of every `<Expiration>` replaced by `expiration`.
pub fn replace_expiration(xml: &str, expiration: &str) -> String {
    let mut out = String::new();
    let mut rest = xml;
    while let Some(s) = rest.find("<Expiration>") {
        out.push_str(&rest[..s + "<Expiration>".len()]);
        let after = &rest[s + "<Expiration>".len()..];
        match after.find("</Expiration>") {
            Some(e) => {
                out.push_str(expiration);
                rest = &after[e..];
            }
            None => {
                rest = after;
                break;
            }
        }
    }
    out.push_str(rest);
    out
}
