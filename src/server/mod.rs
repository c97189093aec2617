//! The HTTP server: one reactor thread receives requests, a fixed pool of
//! workers answers them.
//!
//! The reactor accepts connections and reads from all of them without
//! blocking (mio), so a client that sends its request byte by byte, or
//! opens a connection and says nothing, holds a slot in a table and no
//! thread. A request reaches a worker only once it is complete; one that
//! is not complete within `DSPM_HTTP_READ_TIMEOUT_MS` of its first byte is
//! answered 408. The table, the queue of complete requests and every
//! request's size are bounded; beyond them the answer is 503, 431 or 413 at
//! once. A worker writes its answer and hands a kept-alive connection back
//! to the reactor. A handler that panics is isolated: its request gets a
//! 500 and the worker keeps serving.
//!
//! SIGTERM and SIGINT stop accepting; requests in flight get
//! `DSPM_SHUTDOWN_GRACE` to finish, then `serve` returns and the process
//! exits 0.

pub mod http;
pub mod routes;

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{
    channel, sync_channel, Receiver, RecvTimeoutError, Sender, SyncSender, TrySendError,
};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use log::{error, info, warn};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use socket2::{Domain, Socket, Type};

use crate::audit::Target;
use crate::config::ServerSettings;
use http::{Limits, Parse};
use routes::{ApiRequest, ApiResponse, App};

/// Pending connections the kernel holds before refusing more.
const LISTEN_BACKLOG: i32 = 128;
/// Open connections the reactor keeps; more are answered 503 and closed.
const MAX_CONNECTIONS: usize = 1024;
/// Complete requests waiting for a worker; more are answered 503.
const QUEUE: usize = 256;
/// How often the reactor checks deadlines and the shutdown flag.
const TICK: Duration = Duration::from_millis(50);
/// Write limit for a response, so a client that does not read cannot
/// hold a worker.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a refused connection is drained so the client reads the answer.
const LINGER: Duration = Duration::from_secs(1);

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);

/// State shared by the reactor and the workers.
struct Shared {
    app: App,
    limits: Limits,
    stop: AtomicBool,
    /// Requests being handled by workers.
    busy: AtomicUsize,
}

/// A complete request on its way to a worker.
struct Job {
    stream: TcpStream,
    head: http::Head,
    body: Vec<u8>,
    /// Bytes after this request (a pipelined next request).
    leftover: Vec<u8>,
}

/// A kept-alive connection on its way back to the reactor.
struct Returned {
    stream: TcpStream,
    leftover: Vec<u8>,
}

/// Serves until SIGTERM or SIGINT, then drains within the grace period.
pub fn serve(settings: &ServerSettings, target: Target) -> Result<(), String> {
    let listener = listen(&settings.listen)?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let stop_signal = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop_signal.clone())
            .map_err(|e| format!("cannot install the signal handler: {e}"))?;
    }
    info!(
        "dspm-audit {} listening on {address} with {} workers, \
         at most {} audits at once; auditing {}",
        env!("CARGO_PKG_VERSION"),
        settings.workers,
        settings.max_concurrent_audits,
        target.describe()
    );
    if settings.api_token.is_none() && !address.ip().is_loopback() {
        warn!(
            "listening on {address} beyond loopback without an API token: anyone who can reach \
             the port can run audits; set DSPM_API_TOKEN_FILE or restrict access \
             with a network policy"
        );
    }

    let shared = Arc::new(Shared {
        app: App::new(
            target,
            settings.max_concurrent_audits,
            settings.api_token.clone(),
        ),
        limits: Limits {
            request_deadline: settings.read_timeout,
            ..Limits::default()
        },
        stop: AtomicBool::new(false),
        busy: AtomicUsize::new(0),
    });
    let poll = Poll::new().map_err(|e| format!("cannot create the event poller: {e}"))?;
    let waker = Arc::new(
        Waker::new(poll.registry(), WAKER).map_err(|e| format!("cannot create the waker: {e}"))?,
    );
    let (jobs, job_queue) = sync_channel::<Job>(QUEUE);
    let (returns, returned) = channel::<Returned>();
    let job_queue = Arc::new(Mutex::new(job_queue));

    let workers = (0..settings.workers)
        .map(|i| {
            let (shared, queue, returns, waker) = (
                shared.clone(),
                job_queue.clone(),
                returns.clone(),
                waker.clone(),
            );
            std::thread::Builder::new()
                .name(format!("http-{i}"))
                .spawn(move || worker(&shared, &queue, &returns, &waker))
                .map_err(|e| format!("cannot start worker thread: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    drop(returns);
    let reactor = {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("reactor".into())
            .spawn(move || Reactor::new(poll, listener, shared, jobs, returned).run())
            .map_err(|e| format!("cannot start the reactor thread: {e}"))?
    };

    while !stop_signal.load(Ordering::Relaxed) && !reactor.is_finished() {
        std::thread::sleep(TICK);
    }
    shared.stop.store(true, Ordering::Relaxed);
    let _ = waker.wake();
    let _ = reactor.join();
    info!(
        "shutting down: not accepting; {} requests in flight get up to {} s",
        shared.busy.load(Ordering::Relaxed),
        settings.shutdown_grace.as_secs()
    );
    let deadline = Instant::now() + settings.shutdown_grace;
    while workers.iter().any(|w| !w.is_finished()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    match shared.busy.load(Ordering::Relaxed) {
        0 => info!("all requests finished; exiting"),
        n => warn!("grace period over with {n} requests unfinished; exiting"),
    }
    Ok(())
}

fn listen(address: &str) -> Result<TcpListener, String> {
    let addr: SocketAddr = address
        .to_socket_addrs()
        .map_err(|e| format!("DSPM_LISTEN {address:?} is not an address: {e}"))?
        .next()
        .ok_or_else(|| format!("DSPM_LISTEN {address:?} resolves to nothing"))?;
    let fail = |what: &str, e: std::io::Error| format!("cannot listen on {addr}: {what}: {e}");
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)
        .map_err(|e| fail("socket", e))?;
    socket
        .set_reuse_address(true)
        .map_err(|e| fail("SO_REUSEADDR", e))?;
    socket
        .set_nonblocking(true)
        .map_err(|e| fail("O_NONBLOCK", e))?;
    socket.bind(&addr.into()).map_err(|e| fail("bind", e))?;
    socket
        .listen(LISTEN_BACKLOG)
        .map_err(|e| fail("listen", e))?;
    Ok(TcpListener::from_std(socket.into()))
}

/// A connection the reactor is receiving a request on.
struct Incoming {
    stream: TcpStream,
    buffer: Vec<u8>,
    /// When the current request's first byte arrived.
    started: Option<Instant>,
    /// When the connection last finished a request (or opened).
    idle_since: Instant,
    continue_sent: bool,
    /// Refused: drain input until then, so the client reads our answer.
    draining_until: Option<Instant>,
}

struct Reactor {
    poll: Poll,
    listener: TcpListener,
    shared: Arc<Shared>,
    jobs: SyncSender<Job>,
    returned: Receiver<Returned>,
    connections: HashMap<Token, Incoming>,
    next_token: usize,
}

impl Reactor {
    fn new(
        poll: Poll,
        listener: TcpListener,
        shared: Arc<Shared>,
        jobs: SyncSender<Job>,
        returned: Receiver<Returned>,
    ) -> Reactor {
        Reactor {
            poll,
            listener,
            shared,
            jobs,
            returned,
            connections: HashMap::new(),
            next_token: 2,
        }
    }

    fn run(mut self) {
        if let Err(e) =
            self.poll
                .registry()
                .register(&mut self.listener, LISTENER, Interest::READABLE)
        {
            error!("cannot watch the listening socket: {e}");
            return;
        }
        let mut events = Events::with_capacity(256);
        while !self.shared.stop.load(Ordering::Relaxed) {
            if let Err(e) = self.poll.poll(&mut events, Some(TICK)) {
                if e.kind() != ErrorKind::Interrupted {
                    error!("event poll failed: {e}");
                    return;
                }
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(),
                    WAKER => self.take_back(),
                    token => self.receive(token),
                }
            }
            self.expire();
        }
    }

    fn accept(&mut self) {
        loop {
            let (mut stream, _) = match self.listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) => {
                    warn!("accept failed: {e}");
                    return;
                }
            };
            if self.connections.len() >= MAX_CONNECTIONS {
                refuse_now(&mut stream, 503, "too many open connections; retry shortly");
                continue;
            }
            let _ = stream.set_nodelay(true);
            self.watch(stream, Vec::new());
        }
    }

    fn watch(&mut self, mut stream: TcpStream, leftover: Vec<u8>) {
        let token = Token(self.next_token);
        self.next_token += 1;
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, token, Interest::READABLE)
        {
            warn!("cannot watch a connection: {e}");
            return;
        }
        let now = Instant::now();
        let started = (!leftover.is_empty()).then_some(now);
        self.connections.insert(
            token,
            Incoming {
                stream,
                buffer: leftover,
                started,
                idle_since: now,
                continue_sent: false,
                draining_until: None,
            },
        );
        if started.is_some() {
            self.advance(token);
        }
    }

    fn take_back(&mut self) {
        while let Ok(back) = self.returned.try_recv() {
            if self.connections.len() >= MAX_CONNECTIONS {
                continue;
            }
            self.watch(back.stream, back.leftover);
        }
    }

    /// Reads what the connection has; closes it on EOF or error.
    fn receive(&mut self, token: Token) {
        let Some(conn) = self.connections.get_mut(&token) else {
            return;
        };
        let mut chunk = [0u8; 8192];
        loop {
            match conn.stream.read(&mut chunk) {
                Ok(0) => {
                    self.close(token);
                    return;
                }
                Ok(n) if conn.draining_until.is_some() => {
                    let _ = n;
                }
                Ok(n) => {
                    conn.started.get_or_insert_with(Instant::now);
                    conn.buffer.extend_from_slice(&chunk[..n]);
                    if conn.buffer.len()
                        > self.shared.limits.head_bytes + self.shared.limits.body_bytes + 4
                    {
                        break;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.close(token);
                    return;
                }
            }
        }
        if self
            .connections
            .get(&token)
            .is_some_and(|c| c.draining_until.is_none())
        {
            self.advance(token);
        }
    }

    /// Acts on the bytes received so far: wait, dispatch, or refuse.
    fn advance(&mut self, token: Token) {
        let Some(conn) = self.connections.get_mut(&token) else {
            return;
        };
        match http::parse_request(&conn.buffer, &self.shared.limits) {
            Parse::Incomplete => {
                if !conn.continue_sent && http::expects_continue(&conn.buffer) {
                    conn.continue_sent = true;
                    let _ = conn.stream.write(b"HTTP/1.1 100 Continue\r\n\r\n");
                }
            }
            Parse::Refused(e) => self.refuse(token, e.status, &e.message),
            Parse::Complete {
                head,
                body,
                consumed,
            } => {
                let Some(mut conn) = self.connections.remove(&token) else {
                    return;
                };
                let _ = self.poll.registry().deregister(&mut conn.stream);
                let leftover = conn.buffer.split_off(consumed);
                let job = Job {
                    stream: conn.stream,
                    head,
                    body,
                    leftover,
                };
                match self.jobs.try_send(job) {
                    Ok(()) => {}
                    Err(TrySendError::Full(mut job)) | Err(TrySendError::Disconnected(mut job)) => {
                        warn!("request queue full: answered 503");
                        refuse_now(&mut job.stream, 503, "the server is busy; retry shortly");
                    }
                }
            }
        }
    }

    /// Answers with an error, then drains the connection for a moment.
    fn refuse(&mut self, token: Token, status: u16, message: &str) {
        let Some(conn) = self.connections.get_mut(&token) else {
            return;
        };
        refuse_now(&mut conn.stream, status, message);
        let _ = conn.stream.shutdown(std::net::Shutdown::Write);
        conn.draining_until = Some(Instant::now() + LINGER);
        conn.buffer = Vec::new();
        info!("- - {status} (refused before routing: {message})");
    }

    /// Enforces the request deadline, the idle timeout and the drain time.
    fn expire(&mut self) {
        let now = Instant::now();
        let limits = self.shared.limits;
        let mut late = Vec::new();
        let mut done = Vec::new();
        for (token, conn) in &self.connections {
            match (conn.draining_until, conn.started) {
                (Some(until), _) if now >= until => done.push(*token),
                (Some(_), _) => {}
                (None, Some(started)) if now.duration_since(started) >= limits.request_deadline => {
                    late.push(*token)
                }
                (None, None) if now.duration_since(conn.idle_since) >= limits.idle_timeout => {
                    done.push(*token)
                }
                _ => {}
            }
        }
        for token in late {
            self.refuse(token, 408, "the request did not arrive in time");
        }
        for token in done {
            self.close(token);
        }
    }

    fn close(&mut self, token: Token) {
        if let Some(mut conn) = self.connections.remove(&token) {
            let _ = self.poll.registry().deregister(&mut conn.stream);
        }
    }
}

/// Best-effort short answer on a non-blocking socket (fits its buffer).
fn refuse_now(stream: &mut TcpStream, status: u16, message: &str) {
    let response = ApiResponse::error(status, message);
    let body = response_body(&response);
    let mut headers = vec![("Content-Type", "application/json".to_string())];
    if status == 503 {
        headers.push(("Retry-After", "1".to_string()));
    }
    let mut bytes = Vec::new();
    let _ = http::write_response(&mut bytes, status, &headers, &body, false, false);
    let _ = stream.write(&bytes);
}

fn worker(
    shared: &Shared,
    queue: &Mutex<Receiver<Job>>,
    returns: &Sender<Returned>,
    waker: &Waker,
) {
    loop {
        let next = queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .recv_timeout(TICK);
        let job = match next {
            Ok(job) => job,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        shared.busy.fetch_add(1, Ordering::Relaxed);
        let kept = answer(shared, job);
        shared.busy.fetch_sub(1, Ordering::Relaxed);
        if let Some(back) = kept {
            if returns.send(back).is_ok() {
                let _ = waker.wake();
            }
        }
    }
}

/// Answers one request; returns the connection if it stays open.
fn answer(shared: &Shared, job: Job) -> Option<Returned> {
    let started = Instant::now();
    let head = &job.head;
    let mut stream: std::net::TcpStream = job.stream.into();
    let ready = stream
        .set_nonblocking(false)
        .and_then(|()| stream.set_write_timeout(Some(WRITE_TIMEOUT)));
    if ready.is_err() {
        return None;
    }
    let (path, query) = head.target.split_once('?').unwrap_or((&head.target, ""));
    let request = ApiRequest {
        method: &head.method,
        path,
        query,
        content_type: head.header("content-type"),
        authorization: head.header("authorization"),
        body: &job.body,
    };
    let response = isolate(&head.method, path, || routes::handle(&shared.app, &request));
    let status = response.status;
    let keep_alive = head.keep_alive() && !shared.stop.load(Ordering::Relaxed);
    let sent = send(&mut stream, response, head.method == "HEAD", keep_alive);
    info!(
        "{} {path} {status} {} ms",
        head.method,
        started.elapsed().as_millis()
    );

    if sent.is_err() || !keep_alive || stream.set_nonblocking(true).is_err() {
        return None;
    }
    Some(Returned {
        stream: TcpStream::from_std(stream),
        leftover: job.leftover,
    })
}

/// Runs a handler; a panic becomes a 500 for this request only.
fn isolate(method: &str, path: &str, handler: impl FnOnce() -> ApiResponse) -> ApiResponse {
    catch_unwind(AssertUnwindSafe(handler)).unwrap_or_else(|_| {
        error!("{method} {path}: the handler panicked; answering 500");
        ApiResponse::error(500, "internal error; the server keeps running")
    })
}

fn response_body(response: &ApiResponse) -> Vec<u8> {
    let mut body = serde_json::to_vec(&response.body).unwrap_or_default();
    body.push(b'\n');
    body
}

fn send(
    stream: &mut impl Write,
    response: ApiResponse,
    head_only: bool,
    keep_alive: bool,
) -> std::io::Result<()> {
    let body = response_body(&response);
    let mut headers = vec![
        ("Content-Type", "application/json".to_string()),
        ("X-Content-Type-Options", "nosniff".to_string()),
    ];
    if response.sensitive {
        headers.push(("Cache-Control", "no-store".to_string()));
    }
    headers.extend(response.headers.iter().map(|(k, v)| (*k, v.clone())));
    http::write_response(
        stream,
        response.status,
        &headers,
        &body,
        head_only,
        keep_alive,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_handler_answers_500_and_nothing_else_breaks() {
        let response = isolate("GET", "/boom", || panic!("handler bug"));
        assert_eq!(response.status, 500);
        assert_eq!(response.body["error"], "internal_error");
        let response = isolate("GET", "/fine", || ApiResponse::ok(serde_json::json!({})));
        assert_eq!(response.status, 200);
    }
}
