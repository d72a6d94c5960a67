//! The handle's commands as the loop carries them out: switching and
//! retiring releases, canary, maintenance and pause, forced closes, and
//! the graceful shutdown.

use super::Loop;
use crate::proxy::handle::Command;
use crate::proxy::session::Session;
use crossbeam_channel::{Sender, TryRecvError};
use std::sync::atomic::Ordering;
use std::time::Duration;

impl Loop {
    pub(super) fn commands(&mut self) {
        loop {
            match self.rx.try_recv() {
                Ok(cmd) => self.command(cmd),
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Disconnected) => {
                    // Every handle is gone: stop gracefully.
                    if self.shutdown.is_none() {
                        self.begin_shutdown(self.sh.opts.drain_timeout, None);
                    }
                    return;
                }
            }
        }
    }

    pub(super) fn command(&mut self, cmd: Command) {
        let reg = self.poll.registry();
        match cmd {
            Command::SetActive { id, addr } => {
                let slot = self.sh.releases.set_active(id.clone(), addr, reg);
                self.sh.metrics.bind(slot, &id);
                // Requests waiting in connect retry try the new release now.
                let now = self.sh.now;
                self.sh.retries = std::mem::take(&mut self.sh.retries)
                    .into_iter()
                    .map(|std::cmp::Reverse((_, idx, serial))| {
                        std::cmp::Reverse((now, idx, serial))
                    })
                    .collect();
            }
            Command::SetCanary { id, addr, percent } => {
                let slot = self.sh.releases.set_canary(id.clone(), addr, percent, reg);
                self.sh.metrics.bind(slot, &id);
            }
            Command::ClearActive => self.sh.releases.active = None,
            Command::Retire { id } => self.sh.releases.retire(&id, reg, &self.sh.events),
            Command::ForceClose { id } => {
                let slots = self.sh.releases.all_of(&id);
                self.force_close(&slots);
            }
            Command::Replace { id, addr, ticket } => {
                let events = &self.sh.events;
                if let Some(slot) = self.sh.releases.replace(&id, addr, ticket, reg, events) {
                    self.sh.metrics.bind(slot, &id);
                }
            }
            Command::ForceCloseInstance { id, ticket } => {
                let slots: Vec<usize> = self
                    .sh
                    .releases
                    .find_replaced(&id, ticket)
                    .into_iter()
                    .collect();
                self.force_close(&slots);
            }
            Command::Counts(reply) => {
                let _ = reply.try_send(self.sh.releases.counts());
            }
            Command::SetMaintenance(page) => self.sh.traffic.maintenance = page,
            Command::Pause { hold_for } => self.sh.traffic.paused = Some(hold_for),
            Command::Resume => self.resume(),
            Command::Shutdown { within, reply } => self.begin_shutdown(within, Some(reply)),
            Command::Admin(snapshot) => {
                if let Some(a) = self.admin.as_mut() {
                    a.snapshot = *snapshot;
                }
            }
            Command::Freeze {
                within,
                reply,
                thaw,
            } => self.begin_freeze(within, reply, thaw),
            Command::Import { conns, reply } => {
                let n = self.import(conns);
                let _ = reply.send(n);
            }
            Command::LameDuck => {
                if let Some(a) = self.admin.as_mut() {
                    a.lame_duck = true;
                }
            }
        }
    }

    /// Closes every connection routed to one of `slots` now: tunnels get a
    /// Close 1001, spread out; the rest closes.
    pub(super) fn force_close(&mut self, slots: &[usize]) {
        let victims: Vec<usize> = self
            .sessions
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                s.as_ref()
                    .is_some_and(|s| s.release().is_some_and(|r| slots.contains(&r)))
            })
            .map(|(i, _)| i)
            .collect();
        let tunnels = self.tunnels(&victims);
        for idx in victims {
            if !tunnels.iter().any(|&(t, _)| t == idx) {
                self.close(idx);
            }
        }
        let spread = self.sh.opts.websocket_close_spread;
        self.farewells.schedule(self.sh.now, spread, &tunnels);
        for &r in slots {
            self.sh.releases.close_idle_of(r, self.poll.registry());
        }
    }

    /// Ends a pause: every held request is routed, oldest first, to the
    /// release active now.
    pub(super) fn resume(&mut self) {
        self.sh.traffic.paused = None;
        for (idx, serial) in self.sh.traffic.hold.drain() {
            let Some(Some(s)) = self.sessions.get_mut(idx) else {
                continue;
            };
            if s.serial != serial {
                continue;
            }
            let verdict = s.resume_held(&mut self.sh, self.poll.registry());
            self.apply(idx, verdict);
        }
        self.gauge.held.store(0, Ordering::Relaxed);
    }

    pub(super) fn begin_shutdown(&mut self, within: Duration, reply: Option<Sender<()>>) {
        if let Some(mut l) = self.listener.take() {
            if self.listening {
                let _ = self.poll.registry().deregister(&mut l);
            }
        }
        self.sh.shutting_down = true;
        self.shutdown = Some((crate::proxy::session::later(self.sh.now, within), reply));
        // Held requests are forwarded: the releases still run while in-flight
        // requests finish.
        self.resume();
        self.sh.releases.close_all_idle(self.poll.registry());
        // Tunnels get a Close 1001, spread out within the stop's bound.
        let all: Vec<usize> = (0..self.sessions.len()).collect();
        let tunnels = self.tunnels(&all);
        let spread = self.sh.opts.websocket_close_spread.min(within);
        self.farewells.schedule(self.sh.now, spread, &tunnels);
        // Idle connections close after a last read: a request already in
        // the socket buffer is served first, with `Connection: close`.
        let idle: Vec<usize> = self
            .sessions
            .iter()
            .enumerate()
            .filter(|(_, s)| s.as_ref().is_some_and(Session::is_idle))
            .map(|(i, _)| i)
            .collect();
        for idx in idle {
            self.drive(idx);
        }
    }

    pub(super) fn shutdown_done(&mut self) -> bool {
        let Some((deadline, _)) = &self.shutdown else {
            return false;
        };
        let empty = self.sessions.iter().all(Option::is_none);
        if !empty && self.sh.now < *deadline {
            return false;
        }
        for idx in 0..self.sessions.len() {
            self.close(idx);
        }
        self.sh.releases.close_all_idle(self.poll.registry());
        if let Some((_, Some(reply))) = self.shutdown.take() {
            let _ = reply.send(());
        }
        true
    }

    /// The tunnels among `sessions`, with their serials.
    pub(super) fn tunnels(&self, sessions: &[usize]) -> Vec<(usize, u64)> {
        sessions
            .iter()
            .filter_map(|&i| match self.sessions.get(i) {
                Some(Some(s)) if matches!(s.phase, crate::proxy::session::Phase::Tunnel(_)) => {
                    Some((i, s.serial))
                }
                _ => None,
            })
            .collect()
    }
}
