//! The session side of a pause: holding a parsed request (no upstream
//! connection, no body read: read interest is dropped so the body stays in
//! the kernel), and routing it on resume to the release active then.

use super::codec::{BodyKind, RequestInfo};
use super::error::{ErrorKind, ProxyError};
use super::session::{Phase, Session, Shared, Step, Verdict, client_token, later};
use super::timers::Timer;
use super::traffic::Held;
use super::transition::{Reply, Transition};
use mio::{Interest, Registry};
use std::time::Duration;

impl Session {
    /// Holds the request until resume or `wait`; 503 at once when the hold
    /// queue is full.
    pub(super) fn hold(
        &mut self,
        info: RequestInfo,
        wait: Duration,
        sh: &mut Shared,
        reg: &Registry,
    ) -> Transition {
        let max = sh.opts.max_held_requests;
        let Some(seq) = sh.traffic.hold.hold(self.idx, self.serial, max) else {
            let keep = info.keep_alive && info.body == BodyKind::None;
            let err = ProxyError::client(ErrorKind::HoldQueueFull, String::new());
            return Transition::Respond(Reply::closing(err).keep_alive(keep));
        };
        self.watch_reads(false, reg);
        let head = sh.scratch.clone();
        self.phase = Phase::Held(Box::new(Held { seq, info, head }));
        self.arm(Timer::Held, Some(later(sh.now, wait)));
        Transition::Continue(Step::Idle)
    }

    /// Resume: the held request is routed now (to the release active at
    /// this moment), as if its head had just been parsed.
    pub fn resume_held(&mut self, sh: &mut Shared, reg: &Registry) -> Verdict {
        let phase = std::mem::replace(&mut self.phase, Phase::Head { started: true });
        let Phase::Held(h) = phase else {
            self.phase = phase;
            return Verdict::Keep;
        };
        let Held { info, head, .. } = *h;
        self.watch_reads(true, reg);
        sh.scratch.clear();
        sh.scratch.extend_from_slice(&head);
        let t = self.route(info, sh, reg);
        match self.apply(t, sh, reg) {
            Step::Close => Verdict::Close,
            _ => self.drive(sh, reg),
        }
    }

    /// Turns reading the client socket off (held) or back on.
    pub(super) fn watch_reads(&mut self, on: bool, reg: &Registry) {
        let interest = if on {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::WRITABLE
        };
        let _ = reg.reregister(&mut self.client.sock, client_token(self.idx), interest);
        // Edge-triggered: bytes that arrived meanwhile raise no new edge.
        self.client.readable = on;
    }
}
