//! Getting an upstream connection for an exchange: a pooled one, or a
//! fresh non-blocking connect; the connect-retry rules for a refused
//! connect; and the restart of a stalled one.
//!
//! A stalled connect: apps listen on loopback, where a handshake takes
//! microseconds — unless the app's accept queue is full (a burst of new
//! connections at a cold start or right after a switch, against an app
//! with a small listen backlog). The kernel then drops the SYN and sends
//! the next one only after its initial retransmission timeout of one
//! second, and the request waits all that time. A connect still in
//! progress after [`STALL_FIRST`] is instead abandoned (nothing was sent
//! on it) and the request goes again: on a pooled connection if one came
//! free meanwhile, else on a new connect. The wait doubles up to
//! [`STALL_MAX`]; after [`MAX_STALLS`] restarts the kernel's own
//! retransmissions are left to run.

use super::conn::Conn;
use super::error::{ErrorKind, ProxyError};
use super::exchange::Upstream;
use super::release::Owner;
use super::session::{Phase, Session, Shared, Step, Verdict, upstream_token};
use super::transition::Transition;
use mio::net::TcpStream;
use mio::{Interest, Registry};
use std::cmp::Reverse;
use std::io;
use std::time::Duration;

/// First and largest pause between connect attempts during connect-retry.
pub(super) const RETRY_FIRST: Duration = Duration::from_millis(10);
const RETRY_MAX: Duration = Duration::from_millis(200);
/// How long a loopback connect may stay in progress before it is started
/// again, and the most that wait grows to.
pub(super) const STALL_FIRST: Duration = Duration::from_millis(25);
const STALL_MAX: Duration = Duration::from_millis(400);
/// Stalled connects started again per request before the kernel's own
/// retransmissions are left to run (about two seconds of restarts).
const MAX_STALLS: u32 = 8;

/// The wait before a connect started after `stalls` stalled ones counts
/// as stalled too.
pub(super) fn stall_wait(stalls: u32) -> Duration {
    STALL_FIRST
        .saturating_mul(1u32 << stalls.min(8))
        .min(STALL_MAX)
}

/// The stall check a new connect gets after `stalls` restarts, if any.
pub(super) fn stall_check(stalls: u32) -> Option<Duration> {
    (stalls < MAX_STALLS).then(|| stall_wait(stalls))
}

/// Ok(true) once a non-blocking connect has completed, Ok(false) while in
/// progress, Err with the connect error otherwise.
pub(super) fn connect_result(sock: &TcpStream) -> io::Result<bool> {
    if let Some(e) = sock.take_error()? {
        return Err(e);
    }
    match sock.peer_addr() {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(false),
        Err(e) => Err(e),
    }
}

impl Session {
    /// Connects (or, with `pool`, takes a pooled connection, probed for
    /// liveness when `pool` says so) to `release`. Returns whether the
    /// connection was reused. A fresh connect gets a stall check after
    /// `stall` (none when `None`).
    pub(super) fn attach(
        &mut self,
        release: usize,
        pool: Option<bool>,
        stall: Option<Duration>,
        sh: &mut Shared,
        reg: &Registry,
    ) -> io::Result<bool> {
        if let Some(probe) = pool {
            if let Some((conn, uid)) = sh.releases.checkout(release, self.idx, reg, probe) {
                self.up = Some(Upstream {
                    conn,
                    uid,
                    connecting: false,
                    reused: true,
                    got_bytes: false,
                    since: sh.now,
                });
                return Ok(true);
            }
        }
        let addr = sh
            .releases
            .get(release)
            .map(|r| r.addr)
            .ok_or_else(|| io::Error::other("release vanished"))?;
        let mut sock = TcpStream::connect(addr)?;
        let _ = sock.set_nodelay(true);
        let uid = sh.releases.alloc_uid(Owner::Session(self.idx));
        let token = upstream_token(uid);
        if let Err(e) = reg.register(&mut sock, token, Interest::READABLE | Interest::WRITABLE) {
            sh.releases.free_uid(uid);
            return Err(e);
        }
        let mut conn = Conn::new(sock);
        conn.readable = false;
        conn.writable = false;
        self.up = Some(Upstream {
            conn,
            uid,
            connecting: true,
            reused: false,
            got_bytes: false,
            since: sh.now,
        });
        if let Some(wait) = stall {
            sh.retries
                .push(Reverse((sh.now + wait, self.idx, self.serial)));
        }
        Ok(false)
    }

    /// A connect failed: retry within the window, else 502.
    pub(super) fn connect_failed(
        &mut self,
        err: io::Error,
        sh: &mut Shared,
        reg: &Registry,
    ) -> Transition {
        let held = self.up.as_mut().and_then(|u| u.conn.output.take());
        self.drop_upstream(sh, reg);
        let Phase::Exchange(ex) = &mut self.phase else {
            return Transition::Close;
        };
        if held.is_some() {
            ex.held = held;
        }
        let retry_ok = matches!(
            err.kind(),
            io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset
        );
        if retry_ok && sh.now < ex.connect_deadline {
            let at = (sh.now + ex.backoff).min(ex.connect_deadline);
            ex.backoff = (ex.backoff * 2).min(RETRY_MAX);
            sh.retries.push(Reverse((at, self.idx, self.serial)));
            self.deadline = None;
            return Transition::Continue(Step::Idle);
        }
        let addr = sh.releases.get(ex.release()).map(|r| r.addr);
        let e = ProxyError::upstream(
            ErrorKind::ConnectFailed,
            format!(
                "connect {}: {err}",
                addr.map_or_else(|| "?".into(), |a| a.to_string())
            ),
        )
        .retryable();
        sh.error(Some(ex.release()), &e);
        ex.fail(e)
    }

    /// Called by the loop when a connect timer fires: a connect-retry
    /// (no upstream) or a stall check (a connect in progress). Each
    /// attempt goes to the release active at that moment: a request that
    /// waited for a crashed release is moved (and recounted, once) to the
    /// one that replaced it, and its held bytes are replayed there.
    pub fn retry_connect(&mut self, sh: &mut Shared, reg: &Registry) -> Verdict {
        let Phase::Exchange(ex) = &mut self.phase else {
            return Verdict::Keep;
        };
        let mut pool = None;
        if let Some(up) = self.up.as_mut() {
            if !up.connecting {
                return Verdict::Keep; // connected meanwhile
            }
            let due = up.since + stall_wait(ex.stalls);
            if sh.now < due {
                // Woken early (a switch wakes every waiting request): the
                // check stays due.
                sh.retries.push(Reverse((due, self.idx, self.serial)));
                return Verdict::Keep;
            }
            if !matches!(connect_result(&up.conn.sock), Ok(false)) {
                // Completed or failed: the socket's own event handles it.
                up.conn.readable = true;
                up.conn.writable = true;
                return self.drive(sh, reg);
            }
            // Stalled: nothing was sent on it; go again, preferring a
            // pooled connection that came free meanwhile (probed, as the
            // request may not be replayable).
            ex.held = up.conn.output.take().or(ex.held.take());
            ex.stalls = ex.stalls.saturating_add(1);
            sh.metrics.connect_stalled();
            pool = Some(true);
            self.drop_upstream(sh, reg);
        }
        let Phase::Exchange(ex) = &mut self.phase else {
            return Verdict::Keep;
        };
        // A canary's request stays with the canary.
        let stays = sh.releases.routable(ex.release());
        if let Some(active) = sh.releases.active.filter(|_| !stays) {
            sh.releases
                .recount(&mut ex.counted, active, reg, &sh.events);
            ex.backoff = RETRY_FIRST;
        }
        let release = ex.release();
        let held = ex.held.take();
        let stall = stall_check(ex.stalls);
        match self.attach(release, pool, stall, sh, reg) {
            Ok(_) => {
                if let Some(up) = self.up.as_mut() {
                    up.conn.output = held;
                }
                self.drive(sh, reg)
            }
            Err(e) => {
                if let Phase::Exchange(ex) = &mut self.phase {
                    ex.held = held;
                }
                let t = self.connect_failed(e, sh, reg);
                match self.apply(t, sh, reg) {
                    Step::Close => Verdict::Close,
                    _ => self.drive(sh, reg),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stall_wait_doubles_up_to_its_cap() {
        assert_eq!(stall_wait(0), STALL_FIRST);
        assert_eq!(stall_wait(1), STALL_FIRST * 2);
        assert_eq!(stall_wait(2), STALL_FIRST * 4);
        assert_eq!(stall_wait(10), STALL_MAX);
        assert_eq!(stall_wait(u32::MAX), STALL_MAX);
    }

    #[test]
    fn restarts_stop_after_the_last_stall() {
        assert_eq!(stall_check(0), Some(STALL_FIRST));
        assert_eq!(stall_check(MAX_STALLS - 1), Some(STALL_MAX));
        assert_eq!(stall_check(MAX_STALLS), None);
    }
}
