//! What a phase step decided, as a value, and the one function that applies
//! it to the session.
//!
//! Steps (`Head`, the exchange, the tunnel) never change phase themselves
//! once a request is counted against a release: they return a
//! [`Transition`] and [`Session::apply`] carries it out. That function is
//! the only place a request's or tunnel's [`Counted`] token is ended, so
//! the release accounting closes exactly once whatever path a connection
//! takes (an error answer, a finished response, a cut, a teardown).
//!
//! [`Counted`]: super::release::Counted

use super::error::{Page, ProxyError, canned_response};
use super::exchange::{Exchange, close_upstream};
use super::release::Kind;
use super::session::{FLUSH_GRACE, Phase, Session, Shared, Step};
use super::timers::Timer;
use super::tunnel::Tunnel;
use mio::Registry;
use std::time::Instant;

/// What a step decided.
#[derive(Debug)]
pub enum Transition {
    /// Same phase; `Progress` (step again) or `Idle` (wait for an event).
    Continue(Step),
    /// The proxy answers itself if no response byte went out yet, else the
    /// response is cut.
    Respond(Reply),
    /// The upstream switched protocols: the exchange becomes a tunnel.
    Upgrade,
    /// The response is complete and written; `reusable` says whether the
    /// upstream connection may go back to the pool.
    Done { reusable: bool },
    /// The connection is over.
    Close,
}

impl From<Step> for Transition {
    fn from(step: Step) -> Transition {
        match step {
            Step::Close => Transition::Close,
            step => Transition::Continue(step),
        }
    }
}

/// One of the proxy's own answers: the error (its status comes from the
/// one mapping), whether the client connection may stay open afterwards
/// (the exchange may still force a close), and how the body looks.
#[derive(Debug)]
pub struct Reply {
    pub err: ProxyError,
    pub keep_alive: bool,
    pub look: Look,
}

/// The body of an answer, chosen where the answer is decided; the page
/// text of maintenance is read when the answer is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Look {
    Standard,
    Bare,
    Maintenance { html: bool },
}

impl Reply {
    /// An answer after which the connection closes.
    pub fn closing(err: ProxyError) -> Reply {
        Reply {
            err,
            keep_alive: false,
            look: Look::Standard,
        }
    }

    pub fn keep_alive(mut self, keep: bool) -> Reply {
        self.keep_alive = keep;
        self
    }

    pub fn look(mut self, look: Look) -> Reply {
        self.look = look;
        self
    }
}

/// Whether a request that failed on its upstream connection may be sent
/// again on a fresh one: only when it provably never reached the app — an
/// idempotent request without a body, on a connection reused from the pool
/// (a stale keep-alive the app had closed), before any response byte.
pub fn may_replay(idempotent: bool, has_body: bool, reused: bool, got_response: bool) -> bool {
    idempotent && !has_body && reused && !got_response
}

impl Session {
    /// Carries out what a step decided. The single place where a phase
    /// that holds a [`Counted`](super::release::Counted) token is left.
    pub(super) fn apply(&mut self, t: Transition, sh: &mut Shared, reg: &Registry) -> Step {
        match t {
            Transition::Continue(step) => step,
            Transition::Upgrade => {
                let phase = std::mem::replace(&mut self.phase, Phase::Flush { linger: false });
                let Phase::Exchange(ex) = phase else {
                    self.phase = phase;
                    return Step::Close;
                };
                let Exchange {
                    counted,
                    mut held,
                    replay,
                    started,
                    ..
                } = *ex;
                sh.bufs.release(&mut held);
                if let Some(r) = replay {
                    sh.bufs.put_copy(r);
                }
                sh.metrics
                    .record(Some(counted.release()), 101, started, sh.now);
                // The tunnel is logged when it closes.
                self.phase = Phase::Tunnel(Tunnel::new(counted));
                // A tunnel keeps its own rules: no exchange timer.
                self.deadline = None;
                Step::Progress
            }
            Transition::Done { reusable } => {
                let Some(ex) = self.leave(sh, reg, reusable) else {
                    return Step::Close;
                };
                self.count(&ex, sh);
                // Stopping does not force a close here: a response that
                // went out with keep-alive lets a request already buffered
                // behind it be served (answered with `Connection: close`);
                // with none buffered, `Head` closes after a last read.
                let close = ex.close_client || !ex.req_done;
                let linger = !ex.req_done || self.client.pending_in() > 0;
                self.enter_after_response(sh, close, linger);
                Step::Progress
            }
            Transition::Respond(reply) => {
                let left = self.leave(sh, reg, false);
                let keep = match left {
                    Some(ex) if ex.resp_started => {
                        // The client already has part of a response: end
                        // it unfinished (counted with the status it got).
                        self.count(&ex, sh);
                        self.arm(Timer::Grace, Some(sh.now + FLUSH_GRACE));
                        return Step::Progress;
                    }
                    Some(ex) => {
                        reply.keep_alive && ex.req_done && !ex.close_client && ex.kind == Kind::Http
                    }
                    None => reply.keep_alive,
                };
                let origin = left.map(|ex| (ex.release, ex.started));
                self.respond(&reply, keep, sh, origin)
            }
            Transition::Close => {
                if let Some(ex) = self.leave(sh, reg, false) {
                    self.count_unfinished(&ex, sh);
                }
                Step::Close
            }
        }
    }

    /// Leaves the current phase: pools or closes the upstream, ends the
    /// count (the one `Releases::end` of a session), and returns what the
    /// caller needs to decide what comes next. The phase is `Flush`
    /// afterwards until the caller sets another.
    fn leave(&mut self, sh: &mut Shared, reg: &Registry, pool: bool) -> Option<Left> {
        let phase = std::mem::replace(&mut self.phase, Phase::Flush { linger: false });
        let up = self.up.take();
        let (counted, left) = match phase {
            Phase::Exchange(ex) => {
                let Exchange {
                    counted,
                    mut held,
                    replay,
                    req_done,
                    resp_started,
                    close_client,
                    started,
                    status,
                    ..
                } = *ex;
                sh.bufs.release(&mut held);
                if let Some(r) = replay {
                    sh.bufs.put_copy(r);
                }
                let left = Left {
                    release: counted.release(),
                    started,
                    status,
                    kind: counted.kind(),
                    req_done,
                    resp_started,
                    close_client,
                };
                (Some(counted), Some(left))
            }
            Phase::Tunnel(t) => {
                self.log_access(sh, Some(t.release()), 101, None, true);
                (Some(t.counted), None)
            }
            Phase::Held(h) => {
                // Nothing was counted; the client is read again.
                sh.traffic.hold.forget(h.seq);
                self.watch_reads(true, reg);
                (None, None)
            }
            _ => (None, None),
        };
        if let Some(mut up) = up {
            let to = counted.as_ref().map(|c| c.release());
            let pooled = pool
                && to.is_some()
                && super::budget::may_pool(
                    sh.sessions_open,
                    sh.releases.idle_count(),
                    sh.max_connections,
                );
            match to {
                Some(release) if pooled => {
                    let expires = super::session::later(sh.now, sh.opts.upstream_idle_timeout);
                    up.conn.readable = false;
                    sh.releases
                        .checkin(release, up.conn, up.uid, expires, reg, &mut sh.bufs);
                }
                _ => close_upstream(up, sh, reg),
            }
        }
        if let Some(c) = counted {
            sh.releases.end(c, reg, &sh.events);
        }
        left
    }

    /// Queues the proxy's own answer (counted under the release the
    /// request was routed to, if any); a kind without one closes.
    fn respond(
        &mut self,
        reply: &Reply,
        keep_alive: bool,
        sh: &mut Shared,
        origin: Option<(usize, Instant)>,
    ) -> Step {
        let keep = keep_alive && !sh.shutting_down && reply.look != Look::Bare;
        let page = match reply.look {
            Look::Standard => Page::Standard,
            Look::Bare => Page::Bare,
            Look::Maintenance { html } => {
                let (message, retry_after) = sh.traffic.maintenance_page();
                Page::Own {
                    message,
                    retry_after,
                    html,
                }
            }
        };
        let Some(bytes) = canned_response(&reply.err, keep, page) else {
            return Step::Close;
        };
        if let Some(status) = reply.err.status() {
            let since = origin.map_or(sh.now, |o| o.1);
            sh.metrics
                .record(origin.map(|o| o.0), status, since, sh.now);
            let body = bytes
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map_or(0, |end| bytes.len() - end - 4);
            self.log_access(sh, None, status, Some(body as u64), false);
        }
        self.client.queue(&mut sh.bufs, &bytes);
        self.enter_after_response(sh, !keep, true);
        Step::Progress
    }
}

/// What is left of an exchange after its phase ended.
#[derive(Debug, Clone, Copy)]
struct Left {
    release: usize,
    /// When the request head was received.
    started: Instant,
    /// The response status sent (0: none yet).
    status: u16,
    kind: Kind,
    req_done: bool,
    resp_started: bool,
    close_client: bool,
}

impl Session {
    /// Counts (and logs) the request with the status the client got from
    /// upstream.
    fn count(&mut self, left: &Left, sh: &mut Shared) {
        if left.status != 0 {
            sh.metrics
                .record(Some(left.release), left.status, left.started, sh.now);
            self.log_access(sh, Some(left.release), left.status, None, false);
        }
    }

    /// Counts (and logs) a request whose connection closed before its
    /// response was complete: with the status the client got, or
    /// [`CLIENT_CLOSED`] when it got none.
    fn count_unfinished(&mut self, left: &Left, sh: &mut Shared) {
        let status = match left.status {
            0 => CLIENT_CLOSED,
            s => s,
        };
        self.count(&Left { status, ..*left }, sh);
    }
}

/// The status counted and logged for a request whose connection closed
/// before any response status went out (nginx's "client closed request").
pub(super) const CLIENT_CLOSED: u16 = 499;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodiless_idempotent_request_on_reused_connection_is_replayed() {
        assert!(may_replay(true, false, true, false));
    }

    #[test]
    fn non_idempotent_request_is_never_replayed() {
        assert!(!may_replay(false, false, true, false));
    }

    #[test]
    fn request_with_body_is_never_replayed() {
        assert!(!may_replay(true, true, true, false));
    }

    #[test]
    fn fresh_connection_failure_is_not_replayed() {
        assert!(!may_replay(true, false, false, false));
    }

    #[test]
    fn request_that_got_a_response_byte_is_not_replayed() {
        assert!(!may_replay(true, false, true, true));
    }

    #[test]
    fn step_close_becomes_transition_close() {
        assert!(matches!(Transition::from(Step::Close), Transition::Close));
        assert!(matches!(
            Transition::from(Step::Idle),
            Transition::Continue(Step::Idle)
        ));
    }
}
