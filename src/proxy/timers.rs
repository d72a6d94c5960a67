//! The per-session timers: which one a session's single `deadline` is, how
//! an exchange re-arms it after each step, and what the sweep does when it
//! fires.
//!
//! A session has one deadline at a time; its [`Timer`] says what it means.
//! During an exchange it is recomputed at the end of every step from three
//! instants the step keeps current (no syscall, no allocation):
//!
//! * bytes waiting for the client → `ClientWrite`, counted from the last
//!   write progress (or from when bytes started waiting);
//! * request sent, no response head yet → `ResponseHead`, counted from the
//!   moment the request was fully written upstream (504 when it fires);
//! * response body under way → `UpstreamRead`, counted from the last byte
//!   received (or from when the client caught up).
//!
//! A flowing response (an SSE stream with an event every second) keeps
//! moving these clocks and is never cut; an established WebSocket tunnel
//! has no deadline except its close grace.

use super::codec::BodyKind;
use super::error::{ErrorKind, ProxyError};
use super::session::{Phase, Session, Shared, Step, Verdict, later};
use super::transition::{Reply, Transition};
use mio::Registry;
use std::time::{Duration, Instant};

/// What a session's deadline stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// A request head must be complete (from accept, or from the first byte
    /// of a keep-alive request).
    Header,
    /// Idle keep-alive between requests.
    Idle,
    /// Flushing a final answer or closing a tunnel.
    Grace,
    /// The request was sent; the response head has not come.
    ResponseHead,
    /// The response body made no progress upstream.
    UpstreamRead,
    /// Bytes wait for a client that does not read them.
    ClientWrite,
    /// A request held while paused waited as long as the pause allows.
    Held,
}

/// When the exchange's clocks last moved.
#[derive(Debug, Clone, Copy)]
pub struct Clocks {
    /// The request (head and body) was fully written upstream.
    pub sent: Option<Instant>,
    /// Last response byte from upstream, or the last moment the upstream
    /// was not the one being waited for.
    pub upstream: Instant,
    /// Last write progress to the client, or the last moment nothing was
    /// waiting for it.
    pub client: Instant,
}

impl Clocks {
    pub fn new(now: Instant) -> Clocks {
        Clocks {
            sent: None,
            upstream: now,
            client: now,
        }
    }
}

/// `from + d`, or no deadline when `d` is zero (disabled).
fn after(from: Instant, d: Duration) -> Option<Instant> {
    (!d.is_zero()).then(|| later(from, d))
}

impl Session {
    /// Sets the deadline and what it means.
    pub(super) fn arm(&mut self, timer: Timer, at: Option<Instant>) {
        self.timer = timer;
        self.deadline = at;
    }

    /// Recomputes the exchange's deadline after a step.
    pub(super) fn arm_exchange_timer(&mut self, sh: &Shared) {
        let Phase::Exchange(ex) = &mut self.phase else {
            return;
        };
        let Some(up) = self.up.as_ref() else {
            self.deadline = None; // waiting for a connect retry
            return;
        };
        let now = sh.now;
        if ex.clocks.sent.is_none() && ex.req_done && !up.connecting && up.conn.pending_out() == 0 {
            ex.clocks.sent = Some(now);
        }
        let for_client =
            self.client.pending_out() > 0 || (ex.resp.is_some() && up.conn.pending_in() > 0);
        let (timer, at) = if for_client {
            // Backpressure: the upstream is not read while the client lags.
            ex.clocks.upstream = now;
            (
                Timer::ClientWrite,
                after(ex.clocks.client, sh.opts.client_write_timeout),
            )
        } else {
            ex.clocks.client = now;
            match (ex.resp.is_some(), ex.clocks.sent) {
                (true, _) => (
                    Timer::UpstreamRead,
                    after(ex.clocks.upstream, sh.opts.upstream_read_timeout),
                ),
                (false, Some(sent)) => (
                    Timer::ResponseHead,
                    after(sent, sh.opts.upstream_response_timeout),
                ),
                // A connect the app does not complete (its accept queue
                // stays full) counts against the same wait, from the head.
                (false, None) if up.connecting => (
                    Timer::ResponseHead,
                    after(ex.started, sh.opts.upstream_response_timeout),
                ),
                // Still sending the request: no timer (as before).
                (false, None) => (Timer::ResponseHead, None),
            }
        };
        self.arm(timer, at);
    }

    /// The sweep found the deadline passed: close, or answer 504 first.
    pub fn expire(&mut self, sh: &mut Shared, reg: &Registry) -> Verdict {
        let release = self.release();
        let addr = release
            .and_then(|r| sh.releases.get(r))
            .map_or_else(|| "?".into(), |r| r.addr.to_string());
        let ms = |d: Duration| d.as_millis();
        match self.timer {
            Timer::Header | Timer::Idle | Timer::Grace => Verdict::Close,
            Timer::ClientWrite => {
                let e = ProxyError::client(
                    ErrorKind::Timeout,
                    format!(
                        "client {} read nothing for {} ms; connection closed",
                        self.peer,
                        ms(sh.opts.client_write_timeout)
                    ),
                );
                sh.error(release, &e);
                Verdict::Close
            }
            Timer::UpstreamRead => {
                let e = ProxyError::upstream(
                    ErrorKind::Timeout,
                    format!(
                        "upstream {addr} sent no response bytes for {} ms; response cut",
                        ms(sh.opts.upstream_read_timeout)
                    ),
                );
                sh.error(release, &e);
                Verdict::Close
            }
            Timer::Held => {
                let Phase::Held(h) = &self.phase else {
                    return Verdict::Close;
                };
                let keep = h.info.keep_alive && h.info.body == BodyKind::None;
                let e = ProxyError::client(ErrorKind::HeldTooLong, String::new());
                self.deadline = None;
                let t = Transition::Respond(Reply::closing(e).keep_alive(keep));
                if self.apply(t, sh, reg) == Step::Close {
                    return Verdict::Close;
                }
                self.drive(sh, reg)
            }
            Timer::ResponseHead => {
                if !matches!(self.phase, Phase::Exchange(_)) {
                    return Verdict::Close;
                }
                let waited = ms(sh.opts.upstream_response_timeout);
                let detail = if self.up.as_ref().is_some_and(|u| u.connecting) {
                    format!(
                        "upstream {addr} accepted no connection within {waited} ms (its accept queue stayed full)"
                    )
                } else {
                    format!("upstream {addr} sent no response head within {waited} ms")
                };
                let e = ProxyError::upstream(ErrorKind::UpstreamTimeout, detail);
                sh.error(release, &e);
                self.deadline = None;
                let t = Transition::Respond(Reply::closing(e).keep_alive(true));
                if self.apply(t, sh, reg) == Step::Close {
                    return Verdict::Close;
                }
                self.drive(sh, reg)
            }
        }
    }
}
