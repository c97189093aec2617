//! The reactor: one thread that accepts connections, receives requests and
//! sends answers for all of them without blocking (mio readiness polling).
//!
//! A connection is either receiving (bytes are gathered until they hold a
//! whole request, which then goes to a worker) or sending (a worker's answer
//! is written as the client takes it). No thread ever waits on a client:
//! one that sends slowly, says nothing, or does not read its answers only
//! holds a slot in the table until its deadline. The table is bounded, in
//! all and per client address.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Shutdown};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{error, info, warn};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

use super::http::{self, Parse};
use super::{error_bytes, Answer, Job, Shared};

/// Open connections kept; more are answered 503 and closed.
const MAX_CONNECTIONS: usize = 1024;
/// Open connections kept per client address, so one client cannot take
/// the whole table.
const MAX_PER_PEER: usize = 128;
/// How often deadlines and the shutdown flag are checked.
pub const TICK: Duration = Duration::from_millis(50);
/// Time a client gets to take a whole answer.
const WRITE_DEADLINE: Duration = Duration::from_secs(10);
/// How long a refused connection is drained so the client reads the answer.
const LINGER: Duration = Duration::from_secs(1);
/// At most one "refused for capacity" warning per this period.
const WARN_EVERY: Duration = Duration::from_secs(10);

pub const LISTENER: Token = Token(0);
pub const WAKER: Token = Token(1);

enum Phase {
    /// Gathering a request; `started` is when its first byte came.
    Receiving {
        started: Option<Instant>,
        continue_sent: bool,
    },
    /// Writing `output` from `written`; then keep the connection or close.
    Sending {
        output: Vec<u8>,
        written: usize,
        keep_alive: bool,
        deadline: Instant,
    },
    /// Refused: reading and dropping input until then, then closed.
    Draining { until: Instant },
}

struct Connection {
    stream: TcpStream,
    peer: IpAddr,
    /// Received bytes not yet used (the start of the next request).
    buffer: Vec<u8>,
    phase: Phase,
    idle_since: Instant,
    peer_closed: bool,
}

pub struct Reactor {
    poll: Poll,
    listener: Option<TcpListener>,
    shared: Arc<Shared>,
    jobs: SyncSender<Job>,
    answers: Receiver<Answer>,
    connections: HashMap<Token, Connection>,
    per_peer: HashMap<IpAddr, usize>,
    next_token: usize,
    refused_for_capacity: u64,
    last_warning: Option<Instant>,
}

impl Reactor {
    pub fn new(
        poll: Poll,
        listener: TcpListener,
        shared: Arc<Shared>,
        jobs: SyncSender<Job>,
        answers: Receiver<Answer>,
    ) -> Reactor {
        Reactor {
            poll,
            listener: Some(listener),
            shared,
            jobs,
            answers,
            connections: HashMap::new(),
            per_peer: HashMap::new(),
            next_token: 2,
            refused_for_capacity: 0,
            last_warning: None,
        }
    }

    /// Runs until shutdown has been asked and every answer in flight is
    /// written (the caller bounds that wait by the grace period).
    pub fn run(mut self) {
        if let Some(listener) = self.listener.as_mut() {
            if let Err(e) = self
                .poll
                .registry()
                .register(listener, LISTENER, Interest::READABLE)
            {
                error!("cannot watch the listening socket: {e}");
                return;
            }
        }
        let mut events = Events::with_capacity(256);
        loop {
            if let Err(e) = self.poll.poll(&mut events, Some(TICK)) {
                if e.kind() != ErrorKind::Interrupted {
                    error!("event poll failed: {e}");
                    return;
                }
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(),
                    WAKER => self.take_answers(),
                    token => self.ready(token),
                }
            }
            self.take_answers();
            self.expire();
            if self.shared.stop.load(Ordering::Relaxed) && self.drained() {
                return;
            }
        }
    }

    /// On shutdown: stop accepting, drop connections with nothing in
    /// flight, and say whether anything is still owed to a client.
    fn drained(&mut self) -> bool {
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        let idle: Vec<Token> = self
            .connections
            .iter()
            .filter(|(_, c)| matches!(c.phase, Phase::Receiving { .. } | Phase::Draining { .. }))
            .map(|(t, _)| *t)
            .collect();
        for token in idle {
            self.close(token);
        }
        self.connections.is_empty() && self.shared.outstanding.load(Ordering::Relaxed) == 0
    }

    fn accept(&mut self) {
        loop {
            let Some(listener) = self.listener.as_ref() else {
                return;
            };
            let (mut stream, address) = match listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) => {
                    warn!("accept failed: {e}");
                    return;
                }
            };
            let peer = address.ip();
            let from_peer = self.per_peer.get(&peer).copied().unwrap_or(0);
            if self.connections.len() >= MAX_CONNECTIONS || from_peer >= MAX_PER_PEER {
                let _ = stream.write(&error_bytes(
                    503,
                    "too many open connections; retry shortly",
                ));
                self.note_refusal();
                continue;
            }
            let _ = stream.set_nodelay(true);
            *self.per_peer.entry(peer).or_insert(0) += 1;
            let token = Token(self.next_token);
            self.next_token += 1;
            let receiving = Phase::Receiving {
                started: None,
                continue_sent: false,
            };
            self.insert(
                token,
                stream,
                peer,
                Vec::new(),
                receiving,
                Interest::READABLE,
            );
        }
    }

    fn insert(
        &mut self,
        token: Token,
        mut stream: TcpStream,
        peer: IpAddr,
        buffer: Vec<u8>,
        phase: Phase,
        interest: Interest,
    ) {
        if let Err(e) = self.poll.registry().register(&mut stream, token, interest) {
            warn!("cannot watch a connection: {e}");
            self.forget_peer(peer);
            return;
        }
        let connection = Connection {
            stream,
            peer,
            buffer,
            phase,
            idle_since: Instant::now(),
            peer_closed: false,
        };
        self.connections.insert(token, connection);
    }

    fn note_refusal(&mut self) {
        self.refused_for_capacity += 1;
        let due = self.last_warning.is_none_or(|t| t.elapsed() >= WARN_EVERY);
        if due {
            warn!(
                "refused connections for capacity ({} so far): at most {MAX_CONNECTIONS} open, \
                 {MAX_PER_PEER} per client address",
                self.refused_for_capacity
            );
            self.last_warning = Some(Instant::now());
        }
    }

    /// Connections back from workers: the answer is written (the worker
    /// writes what the socket takes at once), or the rest is sent here.
    fn take_answers(&mut self) {
        while let Ok(answer) = self.answers.try_recv() {
            self.shared.outstanding.fetch_sub(1, Ordering::Relaxed);
            let Answer {
                token,
                stream,
                peer,
                leftover,
                peer_closed,
                output,
                written,
                keep_alive,
            } = answer;
            if written < output.len() {
                let sending = Phase::Sending {
                    output,
                    written,
                    keep_alive,
                    deadline: Instant::now() + WRITE_DEADLINE,
                };
                self.insert(token, stream, peer, leftover, sending, Interest::WRITABLE);
                if let Some(c) = self.connections.get_mut(&token) {
                    c.peer_closed = peer_closed;
                }
                continue;
            }
            if !keep_alive || peer_closed || self.shared.stop.load(Ordering::Relaxed) {
                let _ = stream.shutdown(Shutdown::Write);
                self.forget_peer(peer);
                continue;
            }
            let started = (!leftover.is_empty()).then(Instant::now);
            let receiving = Phase::Receiving {
                started,
                continue_sent: false,
            };
            self.insert(token, stream, peer, leftover, receiving, Interest::READABLE);
            // A pipelined request may already be here.
            self.receive(token);
        }
    }

    fn ready(&mut self, token: Token) {
        match self.connections.get(&token).map(|c| &c.phase) {
            Some(Phase::Sending { .. }) => self.send(token),
            Some(Phase::Receiving { .. } | Phase::Draining { .. }) => self.receive(token),
            None => {}
        }
    }

    /// Writes what the client will take; when all is written, waits for the
    /// next request or closes.
    fn send(&mut self, token: Token) {
        let Some(connection) = self.connections.get_mut(&token) else {
            return;
        };
        let Phase::Sending {
            output,
            written,
            keep_alive,
            ..
        } = &mut connection.phase
        else {
            return;
        };
        while *written < output.len() {
            match connection.stream.write(&output[*written..]) {
                Ok(0) => {
                    self.close(token);
                    return;
                }
                Ok(n) => *written += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    self.close(token);
                    return;
                }
            }
        }
        let keep =
            *keep_alive && !connection.peer_closed && !self.shared.stop.load(Ordering::Relaxed);
        if !keep {
            let _ = connection.stream.shutdown(Shutdown::Write);
            self.close(token);
            return;
        }
        let started = (!connection.buffer.is_empty()).then(Instant::now);
        connection.phase = Phase::Receiving {
            started,
            continue_sent: false,
        };
        connection.idle_since = Instant::now();
        if self
            .poll
            .registry()
            .reregister(&mut connection.stream, token, Interest::READABLE)
            .is_err()
        {
            self.close(token);
            return;
        }
        // A pipelined request may already be here; reading also notices
        // data that arrived while the answer was being written.
        self.receive(token);
    }

    /// Reads what the connection has, then acts on it.
    fn receive(&mut self, token: Token) {
        let limit = self.shared.limits.head_bytes + self.shared.limits.body_bytes + 4;
        let Some(connection) = self.connections.get_mut(&token) else {
            return;
        };
        let mut chunk = [0u8; 8192];
        loop {
            match connection.stream.read(&mut chunk) {
                Ok(0) => {
                    connection.peer_closed = true;
                    break;
                }
                Ok(_) if matches!(connection.phase, Phase::Draining { .. }) => {}
                Ok(n) => {
                    if let Phase::Receiving { started, .. } = &mut connection.phase {
                        started.get_or_insert_with(Instant::now);
                    }
                    connection.buffer.extend_from_slice(&chunk[..n]);
                    if connection.buffer.len() > limit {
                        break;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    self.close(token);
                    return;
                }
            }
        }
        let (draining, peer_closed) = (
            matches!(connection.phase, Phase::Draining { .. }),
            connection.peer_closed,
        );
        if draining {
            if peer_closed {
                self.close(token);
            }
            return;
        }
        // Bytes that came with the client's FIN still form a request.
        self.advance(token);
        let still_waiting = self
            .connections
            .get(&token)
            .is_some_and(|c| matches!(c.phase, Phase::Receiving { .. }));
        if peer_closed && still_waiting {
            self.close(token);
        }
    }

    /// Acts on the bytes received so far: wait, dispatch, or refuse.
    fn advance(&mut self, token: Token) {
        let Some(connection) = self.connections.get_mut(&token) else {
            return;
        };
        match http::parse_request(&connection.buffer, &self.shared.limits) {
            Parse::Incomplete => {
                if let Phase::Receiving { continue_sent, .. } = &mut connection.phase {
                    if !*continue_sent && http::expects_continue(&connection.buffer) {
                        *continue_sent = true;
                        let _ = connection.stream.write(b"HTTP/1.1 100 Continue\r\n\r\n");
                    }
                }
            }
            Parse::Refused(e) => self.refuse(token, e.status, &e.message),
            Parse::Complete {
                head,
                body,
                consumed,
            } => self.dispatch(token, head, body, consumed),
        }
    }

    /// Hands a complete request, with its connection, to the workers.
    fn dispatch(&mut self, token: Token, head: http::Head, body: Vec<u8>, consumed: usize) {
        let Some(mut connection) = self.connections.remove(&token) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut connection.stream);
        connection.buffer.drain(..consumed);
        let job = Job {
            token,
            head,
            body,
            stream: connection.stream,
            peer: connection.peer,
            leftover: connection.buffer,
            peer_closed: connection.peer_closed,
        };
        self.shared.outstanding.fetch_add(1, Ordering::Relaxed);
        self.shared.queued.fetch_add(1, Ordering::Relaxed);
        if let Err(TrySendError::Full(mut job)) | Err(TrySendError::Disconnected(mut job)) =
            self.jobs.try_send(job)
        {
            self.shared.outstanding.fetch_sub(1, Ordering::Relaxed);
            self.shared.queued.fetch_sub(1, Ordering::Relaxed);
            self.note_refusal();
            let _ = job
                .stream
                .write(&error_bytes(503, "the server is busy; retry shortly"));
            let _ = job.stream.shutdown(Shutdown::Write);
            self.forget_peer(job.peer);
        }
    }

    /// Answers with an error, then drains the connection for a moment so the
    /// client reads the answer instead of a reset.
    fn refuse(&mut self, token: Token, status: u16, message: &str) {
        let Some(connection) = self.connections.get_mut(&token) else {
            return;
        };
        let _ = connection.stream.write(&error_bytes(status, message));
        let _ = connection.stream.shutdown(Shutdown::Write);
        if self
            .poll
            .registry()
            .reregister(&mut connection.stream, token, Interest::READABLE)
            .is_err()
        {
            let _ =
                self.poll
                    .registry()
                    .register(&mut connection.stream, token, Interest::READABLE);
        }
        connection.phase = Phase::Draining {
            until: Instant::now() + LINGER,
        };
        connection.buffer = Vec::new();
        info!("- - {status} (refused before routing: {message})");
    }

    /// Enforces the request deadline, the idle timeout, the time to take an
    /// answer, and the drain time.
    fn expire(&mut self) {
        let now = Instant::now();
        let limits = self.shared.limits;
        let mut late = Vec::new();
        let mut done = Vec::new();
        for (token, c) in &self.connections {
            match &c.phase {
                Phase::Receiving {
                    started: Some(s), ..
                } if now.duration_since(*s) >= limits.request_deadline => late.push(*token),
                Phase::Receiving { started: None, .. }
                    if now.duration_since(c.idle_since) >= limits.idle_timeout =>
                {
                    done.push(*token)
                }
                Phase::Sending { deadline, .. } if now >= *deadline => done.push(*token),
                Phase::Draining { until } if now >= *until => done.push(*token),
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
        if let Some(mut connection) = self.connections.remove(&token) {
            let _ = self.poll.registry().deregister(&mut connection.stream);
            self.forget_peer(connection.peer);
        }
    }

    fn forget_peer(&mut self, peer: IpAddr) {
        if let Some(count) = self.per_peer.get_mut(&peer) {
            *count -= 1;
            if *count == 0 {
                self.per_peer.remove(&peer);
            }
        }
    }
}
