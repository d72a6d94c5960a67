//! A client connection: an enum of protocol phases driven by readiness.
//!
//! `Head` (waiting for a request head) → `Exchange` (one request routed to
//! one release, upstream connecting/sending/receiving) → back to `Head` for
//! the next keep-alive request, or `Tunnel` after a 101, or `Flush`
//! (writing a final answer, then a lingering close). Each step returns a
//! [`Transition`] value that [`Session::apply`] (in `transition.rs`) carries
//! out; the event loop only re-drives or tears down.
//!
//! Requests are handled one at a time per connection: pipelined requests
//! wait unread (in our buffer or the kernel's) until the response before
//! them is written, so answers are always in order. The `Exchange` phase
//! lives in `exchange.rs`.

use super::access_log::{Entry, Sink};
use super::buf::BufPool;
use super::codec::{Forwarding, HeadParse, parse_request};
use super::conn::Conn;
use super::error::{ErrorKind, ProxyError, Side};
use super::exchange::{Exchange, Upstream, close_upstream};
use super::handle::ProxyEvent;
use super::metrics::Metrics;
use super::options::ProxyOptions;
use super::release::Releases;
use super::request_id::RequestIds;
use super::timers::Timer;
use super::traffic::{Held, Traffic};
use super::transition::{Reply, Transition};
use super::tunnel::{self, Tunnel};
use crossbeam_channel::Sender;
use mio::net::TcpStream;
use mio::{Registry, Token};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Longest a final answer may take to flush before the socket is closed.
pub(super) const FLUSH_GRACE: Duration = Duration::from_secs(2);
/// Drive iterations before yielding to other connections (fairness).
const MAX_ROUNDS: usize = 32;

/// Loop-wide state a session needs while it runs (owned by the loop thread).
pub struct Shared {
    pub opts: ProxyOptions,
    pub bufs: BufPool,
    pub releases: Releases,
    /// Reused serialization buffer for heads.
    pub scratch: Vec<u8>,
    pub events: Sender<ProxyEvent>,
    /// Connect-retry wake-ups: (when, session index, session serial).
    pub retries: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    /// `Host` for HTTP/1.0 requests without one.
    pub default_host: String,
    pub shutting_down: bool,
    pub now: Instant,
    pub errors: ErrorWindow,
    /// Open client connections (sessions) and the cap they share with
    /// idle pooled upstream connections.
    pub sessions_open: usize,
    pub max_connections: usize,
    /// Maintenance, pause and the requests held by it.
    pub traffic: Traffic,
    /// Requests answered, by release and status, and their latency.
    pub metrics: Metrics,
    /// Rolls for canary assignment (used only while a canary runs).
    pub rng: super::sticky::Rng,
    /// The access log (`None`: off).
    pub access: Option<Sink>,
    /// Source of the request ids the proxy generates.
    pub ids: RequestIds,
    /// A daemon upgrade is preparing: no new request head is read.
    pub frozen: bool,
}

impl Shared {
    /// Reports an error worth logging. At most [`ERRORS_PER_SECOND`] go
    /// out per second; the rest are counted and summarized, so an outage
    /// cannot flood the daemon's event history.
    pub fn error(&mut self, release: Option<usize>, err: &ProxyError) {
        self.flush_suppressed();
        if self.errors.sent >= ERRORS_PER_SECOND {
            self.errors.suppressed += 1;
            return;
        }
        self.errors.sent += 1;
        let release_id = release
            .and_then(|r| self.releases.get(r))
            .map(|r| r.id.clone());
        let _ = self.events.try_send(ProxyEvent::Error {
            release_id,
            side: err.side,
            kind: err.kind,
            message: err.detail.clone(),
        });
    }

    /// Starts a new rate window when the old one is over, reporting how
    /// many errors it suppressed.
    pub fn flush_suppressed(&mut self) {
        if self.now.saturating_duration_since(self.errors.window) < Duration::from_secs(1) {
            return;
        }
        if self.errors.suppressed > 0 {
            let _ = self.events.try_send(ProxyEvent::Error {
                release_id: None,
                side: Side::Internal,
                kind: ErrorKind::Io,
                message: format!(
                    "{} more proxy errors in the last second were not reported",
                    self.errors.suppressed
                ),
            });
        }
        self.errors = ErrorWindow {
            window: self.now,
            sent: 0,
            suppressed: 0,
        };
    }
}

/// Most `ProxyEvent::Error`s per second.
pub const ERRORS_PER_SECOND: u32 = 20;

/// Error-event rate window.
#[derive(Debug, Clone, Copy)]
pub struct ErrorWindow {
    pub window: Instant,
    pub sent: u32,
    pub suppressed: u32,
}

/// What a drive step achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Something moved; step again.
    Progress,
    /// Nothing to do until the next event or timer.
    Idle,
    /// The session is over; tear it down.
    Close,
}

/// What the loop should do with the session after a drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    /// Still has work but yielded for fairness: drive again soon.
    Again,
    Close,
}

#[derive(Debug)]
pub enum Phase {
    Head {
        started: bool,
    },
    Exchange(Box<Exchange>),
    Tunnel(Tunnel),
    /// Paused: the request head is parsed and kept, nothing is forwarded,
    /// the client socket is not read (its body stays in the kernel).
    Held(Box<Held>),
    /// Writing a final answer, then closing. With `linger` (the client may
    /// still be sending: an error answer, an unread body) we half-close and
    /// discard input until its EOF so it reads our answer, not a reset.
    Flush {
        linger: bool,
    },
}

pub struct Session {
    pub idx: usize,
    pub serial: u64,
    pub client: Conn,
    pub peer: IpAddr,
    pub trusted: bool,
    pub up: Option<Upstream>,
    pub phase: Phase,
    pub deadline: Option<Instant>,
    /// What `deadline` stands for.
    pub timer: Timer,
    /// The request being logged (only while the access log is on; kept
    /// between requests for its buffer).
    pub entry: Option<Box<Entry>>,
}

/// `now + d` that cannot overflow whatever the configured durations are.
pub fn later(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600))
}

/// Token of a session's client socket.
pub fn client_token(idx: usize) -> Token {
    Token(idx << 2)
}

/// Token of an upstream socket (by its uid, whoever owns it now).
pub fn upstream_token(uid: usize) -> Token {
    Token((uid << 2) | 1)
}

impl Session {
    pub fn new(idx: usize, serial: u64, sock: TcpStream, peer: IpAddr, sh: &Shared) -> Session {
        Session {
            idx,
            serial,
            client: Conn::new(sock),
            peer,
            trusted: sh.opts.is_trusted(peer),
            up: None,
            phase: Phase::Head { started: false },
            // The head is timed from the accept, not from its first byte.
            deadline: Some(later(sh.now, sh.opts.header_timeout)),
            timer: Timer::Header,
            entry: None,
        }
    }

    /// The release this session is currently counted against, if any.
    pub fn release(&self) -> Option<usize> {
        match &self.phase {
            Phase::Exchange(ex) => Some(ex.release()),
            Phase::Tunnel(t) => Some(t.release()),
            _ => None,
        }
    }

    /// True when nothing is in flight (idle keep-alive between requests).
    pub fn is_idle(&self) -> bool {
        matches!(self.phase, Phase::Head { started: false }) && self.client.pending_in() == 0
    }

    /// Runs the state machine until it has nothing to do.
    pub fn drive(&mut self, sh: &mut Shared, reg: &Registry) -> Verdict {
        for _ in 0..MAX_ROUNDS {
            let t = match self.phase {
                Phase::Head { .. } => self.step_head(sh, reg),
                Phase::Exchange(_) => self.step_exchange(sh, reg),
                Phase::Tunnel(_) => self.step_tunnel(sh).into(),
                Phase::Held(_) => self.step_held(),
                Phase::Flush { linger } => self.step_flush(sh, linger).into(),
            };
            match self.apply(t, sh, reg) {
                Step::Progress => {}
                Step::Idle => return Verdict::Keep,
                Step::Close => return Verdict::Close,
            }
        }
        Verdict::Again
    }

    /// Releases everything; what was in flight is uncounted by the same
    /// transition every other end of a phase goes through.
    pub fn teardown(&mut self, sh: &mut Shared, reg: &Registry) {
        self.apply(Transition::Close, sh, reg);
        self.drop_upstream(sh, reg);
        // No deregister: the client socket is closed when the session is
        // dropped, which removes it from the poll (one syscall less per
        // connection). A copy briefly held elsewhere (a child between
        // fork and exec) can only cause a spurious wake-up, which a read
        // or write answering WouldBlock absorbs.
        self.client.release_bufs(&mut sh.bufs);
    }

    pub(super) fn drop_upstream(&mut self, sh: &mut Shared, reg: &Registry) {
        if let Some(up) = self.up.take() {
            close_upstream(up, sh, reg);
        }
    }

    // ----- Head -----

    fn step_head(&mut self, sh: &mut Shared, reg: &Registry) -> Transition {
        let flushed = match self.client.flush(&mut sh.bufs) {
            Ok(n) => n,
            Err(_) => return Transition::Close,
        };
        if self.client.pending_out() > 0 || sh.frozen {
            return Transition::Continue(Step::Idle);
        }
        let mut read = match self.client.fill(&mut sh.bufs) {
            Ok(n) => n,
            Err(_) => return Transition::Close,
        };
        if self.client.pending_in() == 0 && sh.shutting_down && !self.client.eof {
            // Stopping: one last non-blocking read, so a request already
            // in the kernel's buffer is served (with `Connection: close`)
            // instead of lost with the connection.
            self.client.readable = true;
            read += match self.client.fill(&mut sh.bufs) {
                Ok(n) => n,
                Err(_) => return Transition::Close,
            };
        }
        if self.client.pending_in() == 0 {
            if self.client.eof || sh.shutting_down {
                return Transition::Close;
            }
            return Transition::Continue(if flushed + read > 0 {
                Step::Progress
            } else {
                Step::Idle
            });
        }
        if let Phase::Head { started } = &mut self.phase {
            if !*started {
                *started = true;
                // A keep-alive request's head is timed from its first
                // byte; a new connection's from its accept.
                if self.timer == Timer::Idle {
                    self.arm(Timer::Header, Some(later(sh.now, sh.opts.header_timeout)));
                }
            }
        }
        let request_id = sh.ids.next_id();
        let fwd = Forwarding {
            peer: self.peer,
            trusted: self.trusted,
            default_host: &sh.default_host,
            underscores_in_headers: sh.opts.underscores_in_headers,
            request_id: &request_id,
        };
        sh.scratch.clear();
        let data = self.client.input.as_ref().map_or(&[][..], |b| b.data());
        match parse_request(data, sh.opts.max_head_bytes, &fwd, &mut sh.scratch) {
            Ok(HeadParse::Partial) => {
                if self.client.eof {
                    return Transition::Close;
                }
                if let Some(buf) = self.client.input.as_mut() {
                    if buf.free() == 0 && buf.capacity() <= sh.opts.max_head_bytes {
                        buf.grow(sh.opts.max_head_bytes + 1);
                        return Transition::Continue(Step::Progress);
                    }
                }
                Transition::Continue(if read > 0 { Step::Progress } else { Step::Idle })
            }
            Err(e) => {
                self.begin_unparsed_entry(sh, &request_id);
                Transition::Respond(Reply::closing(ProxyError::client(e.kind(), String::new())))
            }
            Ok(HeadParse::Complete(info)) => {
                let sent = self.client.sent;
                super::access_log::begin(&mut self.entry, sh, sent, data, &info, &request_id);
                if let Some(buf) = self.client.input.as_mut() {
                    buf.consume(info.head_len);
                }
                sh.bufs.release_if_empty(&mut self.client.input);
                self.route(info, sh, reg)
            }
        }
    }

    pub(super) fn enter_after_response(&mut self, sh: &mut Shared, close: bool, linger: bool) {
        if close {
            self.phase = Phase::Flush { linger };
            self.arm(Timer::Grace, Some(sh.now + FLUSH_GRACE));
        } else {
            let started = self.client.pending_in() > 0;
            self.phase = Phase::Head { started };
            let (timer, wait) = if started {
                (Timer::Header, sh.opts.header_timeout)
            } else {
                (Timer::Idle, sh.opts.client_idle_timeout)
            };
            self.arm(timer, Some(later(sh.now, wait)));
        }
    }

    // ----- Held / Tunnel / Flush -----

    /// A held request waits for resume or its deadline (a client that
    /// went away is noticed when its answer is written).
    fn step_held(&self) -> Transition {
        Transition::Continue(Step::Idle)
    }

    fn step_tunnel(&mut self, sh: &mut Shared) -> Step {
        let Phase::Tunnel(t) = &mut self.phase else {
            return Step::Close;
        };
        let Some(up) = self.up.as_mut() else {
            return Step::Close;
        };
        let step = tunnel::pump(t, &mut self.client, &mut up.conn, sh);
        if let Some(at) = t.closing_since {
            self.arm(Timer::Grace, Some(at + tunnel::CLOSE_GRACE));
        }
        step
    }

    fn step_flush(&mut self, sh: &mut Shared, linger: bool) -> Step {
        let n = match self.client.flush(&mut sh.bufs) {
            Ok(n) => n,
            Err(_) => return Step::Close,
        };
        if self.client.pending_out() > 0 {
            return if n > 0 { Step::Progress } else { Step::Idle };
        }
        if !linger {
            return Step::Close;
        }
        // Lingering close: half-close, then read and discard until the
        // client closes, so it reads our answer instead of a reset.
        self.client.shutdown_write();
        let read = match self.client.fill(&mut sh.bufs) {
            Ok(n) => n,
            Err(_) => return Step::Close,
        };
        if let Some(b) = self.client.input.as_mut() {
            let len = b.len();
            b.consume(len);
        }
        sh.bufs.release_if_empty(&mut self.client.input);
        if self.client.eof {
            return Step::Close;
        }
        if read > 0 { Step::Progress } else { Step::Idle }
    }
}
