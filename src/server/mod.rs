//! The HTTP server: one reactor thread moves every byte, a fixed pool of
//! workers answers requests.
//!
//! The reactor ([`reactor`]) accepts connections, reads requests and writes
//! answers without blocking, so a client that sends its request byte by
//! byte, says nothing, or does not read its answer holds a slot in a table
//! and no thread. A request reaches a worker only once it is complete; one
//! that is not complete within `DSPM_HTTP_READ_TIMEOUT_MS` of its first
//! byte is answered 408. The table (in all and per client address), the
//! queue of complete requests and every request's size are bounded; beyond
//! them the answer is 503, 431 or 413 at once. A worker renders its answer
//! to bytes and hands them back. A handler that panics is isolated: its
//! request gets a 500 and the worker keeps serving.
//!
//! SIGTERM and SIGINT stop accepting; requests in flight get
//! `DSPM_SHUTDOWN_GRACE` to finish, then `serve` returns and the process
//! exits 0.

pub mod http;
mod reactor;
pub mod routes;

use std::net::{SocketAddr, ToSocketAddrs};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use log::{error, info, warn};
use mio::net::TcpListener;
use mio::{Poll, Token, Waker};
use socket2::{Domain, Socket, Type};

use crate::audit::Target;
use crate::config::ServerSettings;
use http::Limits;
use reactor::{Reactor, TICK, WAKER};
use routes::{ApiRequest, ApiResponse, App};

/// Pending connections the kernel holds before refusing more.
const LISTEN_BACKLOG: i32 = 128;
/// Complete requests waiting for a worker; more are answered 503.
const QUEUE: usize = 256;

/// State shared by the reactor and the workers.
struct Shared {
    app: App,
    limits: Limits,
    stop: AtomicBool,
    /// Requests waiting in the queue.
    queued: AtomicUsize,
    /// Requests being handled by workers.
    busy: AtomicUsize,
    /// Connections handed to workers and not yet back with the reactor.
    outstanding: AtomicUsize,
}

/// A complete request, with its connection, on its way to a worker.
struct Job {
    token: Token,
    head: http::Head,
    body: Vec<u8>,
    stream: mio::net::TcpStream,
    peer: std::net::IpAddr,
    /// Bytes received after this request (a pipelined next one).
    leftover: Vec<u8>,
    peer_closed: bool,
}

/// A connection on its way back to the reactor, with the answer and how
/// much of it the worker could write without waiting.
struct Answer {
    token: Token,
    stream: mio::net::TcpStream,
    peer: std::net::IpAddr,
    leftover: Vec<u8>,
    peer_closed: bool,
    output: Vec<u8>,
    written: usize,
    keep_alive: bool,
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
        queued: AtomicUsize::new(0),
        busy: AtomicUsize::new(0),
        outstanding: AtomicUsize::new(0),
    });
    let poll = Poll::new().map_err(|e| format!("cannot create the event poller: {e}"))?;
    let waker = Arc::new(
        Waker::new(poll.registry(), WAKER).map_err(|e| format!("cannot create the waker: {e}"))?,
    );
    let (jobs, job_queue) = sync_channel::<Job>(QUEUE);
    let (answers, answered) = channel::<Answer>();
    let job_queue = Arc::new(Mutex::new(job_queue));

    let workers = (0..settings.workers)
        .map(|i| {
            let (shared, queue, answers, waker) = (
                shared.clone(),
                job_queue.clone(),
                answers.clone(),
                waker.clone(),
            );
            std::thread::Builder::new()
                .name(format!("http-{i}"))
                .spawn(move || worker(&shared, &queue, &answers, &waker))
                .map_err(|e| format!("cannot start worker thread: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    drop(answers);
    let reactor = {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("reactor".into())
            .spawn(move || Reactor::new(poll, listener, shared, jobs, answered).run())
            .map_err(|e| format!("cannot start the reactor thread: {e}"))?
    };

    while !stop_signal.load(Ordering::Relaxed) && !reactor.is_finished() {
        std::thread::sleep(TICK);
    }
    shared.stop.store(true, Ordering::Relaxed);
    let _ = waker.wake();
    info!(
        "shutting down: not accepting; {} requests in flight get up to {} s",
        shared.busy.load(Ordering::Relaxed) + shared.queued.load(Ordering::Relaxed),
        settings.shutdown_grace.as_secs()
    );
    let deadline = Instant::now() + settings.shutdown_grace;
    while !reactor.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    match (reactor.is_finished(), workers.len()) {
        (true, _) => info!("all requests finished; exiting"),
        (false, _) => warn!(
            "grace period over with {} requests unfinished; exiting",
            shared.busy.load(Ordering::Relaxed) + shared.queued.load(Ordering::Relaxed)
        ),
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

fn worker(shared: &Shared, queue: &Mutex<Receiver<Job>>, answers: &Sender<Answer>, waker: &Waker) {
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
        shared.queued.fetch_sub(1, Ordering::Relaxed);
        let answer = answer(shared, job);
        let sent = answers.send(answer);
        shared.busy.fetch_sub(1, Ordering::Relaxed);
        if sent.is_ok() {
            let _ = waker.wake();
        }
    }
}

/// Handles one request, renders the answer and writes as much of it as
/// the socket takes without waiting; the reactor sends any rest.
fn answer(shared: &Shared, job: Job) -> Answer {
    let started = Instant::now();
    let head = &job.head;
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
    let mut keep_alive = head.keep_alive() && !shared.stop.load(Ordering::Relaxed);
    let output = response_bytes(&response, head.method == "HEAD", keep_alive);
    info!(
        "{} {} {status} {} ms",
        routes::clip(&head.method),
        routes::clip(path),
        started.elapsed().as_millis()
    );

    let mut stream = job.stream;
    let mut written = 0;
    while written < output.len() {
        match std::io::Write::write(&mut stream, &output[written..]) {
            Ok(0) => break,
            Ok(n) => written += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(_) => {
                // The client is gone: nothing more to send or keep.
                written = output.len();
                keep_alive = false;
            }
        }
    }
    Answer {
        token: job.token,
        stream,
        peer: job.peer,
        leftover: job.leftover,
        peer_closed: job.peer_closed,
        output,
        written,
        keep_alive,
    }
}

/// Runs a handler; a panic becomes a 500 for this request only.
fn isolate(method: &str, path: &str, handler: impl FnOnce() -> ApiResponse) -> ApiResponse {
    catch_unwind(AssertUnwindSafe(handler)).unwrap_or_else(|_| {
        error!(
            "{} {}: the handler panicked; answering 500",
            routes::clip(method),
            routes::clip(path)
        );
        ApiResponse::error(500, "internal error; the server keeps running")
    })
}

/// The whole answer: status line, headers and body. Every answer is JSON,
/// never sniffed and never cached (audit data and errors alike).
fn response_bytes(response: &ApiResponse, head_only: bool, keep_alive: bool) -> Vec<u8> {
    let mut body = match &response.rendered {
        Some(bytes) => bytes.clone(),
        None => serde_json::to_vec(&response.body).unwrap_or_default(),
    };
    body.push(b'\n');
    let mut headers = vec![
        ("Content-Type", "application/json".to_string()),
        ("X-Content-Type-Options", "nosniff".to_string()),
        ("Cache-Control", "no-store".to_string()),
    ];
    headers.extend(response.headers.iter().map(|(k, v)| (*k, v.clone())));
    let mut out = Vec::new();
    let _ = http::write_response(
        &mut out,
        response.status,
        &headers,
        &body,
        head_only,
        keep_alive,
    );
    out
}

/// A short error answer written before routing (refusals, capacity).
fn error_bytes(status: u16, message: &str) -> Vec<u8> {
    let mut response = ApiResponse::error(status, message);
    if status == 503 {
        response.headers.push(("Retry-After", "1".to_string()));
    }
    response_bytes(&response, false, false)
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
