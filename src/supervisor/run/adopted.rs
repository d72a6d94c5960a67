//! The loop's side of adopted processes: taking one over (pidfd watch,
//! output capture re-opened, counters restored) and noticing its exit.

use std::os::fd::OwnedFd;

use super::*;
use crate::supervisor::adopted::{Adoption, exited, pidfd_open};
use crate::supervisor::pipes;

/// Longest the loop sleeps while an adopted process is watched, in case
/// its pidfd could not be registered with the poll.
pub(super) const ADOPTED_CHECK: Duration = Duration::from_secs(1);

/// The run of an adopted process.
pub(super) struct AdoptedRun {
    /// Where its descendants hang (its parent once its daemon died).
    pub root: i32,
    /// Watch on the leader, dropped once it exited.
    pub pidfd: Option<OwnedFd>,
}

impl Loop {
    pub(super) fn adopt_proc(&mut self, key: ProcKey, a: Adoption) {
        let Some(p) = self.procs.get_mut(&key) else {
            return;
        };
        if p.leader.is_some() {
            return;
        }
        p.restarts = a.restarts;
        p.memory_restarts = a.memory_restarts;
        p.last_memory_restart_at = a.last_memory_restart_at.clone();
        p.reason = a.reason;
        let watch = a
            .live
            .and_then(|live| pidfd_open(live.pid).ok().map(|fd| (live, fd)));
        let Some((live, pidfd)) = watch else {
            if a.exited_unseen || a.live.is_some() {
                // Gone before (or while) it could be watched: an exit
                // nobody saw, under the restart policy.
                p.generation += 1;
                let generation = p.generation;
                self.leader_gone(key, generation, None, None, true);
            }
            return;
        };
        self.register_pidfd(&pidfd);
        let Some(p) = self.procs.get_mut(&key) else {
            return;
        };
        p.generation += 1;
        p.leader = Some(live.pid);
        p.pgid = Some(live.pid);
        p.marker = Marker::from_env(&p.spec.env);
        p.state = ProcState::Running;
        p.stop_requested = false;
        p.exit = None;
        p.started = Some(started(a.started_at.as_deref()));
        p.adopted = Some(AdoptedRun {
            root: live.root,
            pidfd: Some(pidfd),
        });
        let generation = p.generation;
        if let Some(mem) = p.spec.memory.as_ref() {
            let at = Instant::now() + Duration::from_millis(mem.check_interval_ms.max(1));
            p.memory_timer = Some(
                self.timers
                    .insert(at, TimerKind::MemorySample { key, generation }),
            );
        }
        let mut captured = 0;
        for (fd, stream) in [(1, Stream::Stdout), (2, Stream::Stderr)] {
            if let Some(pipe) = pipes::reopen(live.pid, fd) {
                self.add_pipe(key, stream, pipe);
                captured += 1;
            }
        }
        if let Some(p) = self.procs.get(&key) {
            let data = p
                .data()
                .with("id", p.spec.id.as_str())
                .with("outputCaptured", captured == 2)
                .with("pid", live.pid)
                .with("restarts", p.restarts);
            self.notice_event("process adopted", data);
        }
    }

    /// A pidfd on `pid`, registered with the poll (an upgrade's import of
    /// an adopted process); `None` when the process is gone.
    pub(super) fn watch_adopted(&mut self, pid: i32) -> Option<OwnedFd> {
        let pidfd = pidfd_open(pid).ok()?;
        if exited(&pidfd) {
            return None;
        }
        self.register_pidfd(&pidfd);
        Some(pidfd)
    }

    fn register_pidfd(&mut self, pidfd: &OwnedFd) {
        let raw = pidfd.as_raw_fd();
        let token = Token(self.next_token);
        self.next_token += 1;
        // Wakes the loop on exit; every turn checks anyway.
        let _ = self
            .poll
            .registry()
            .register(&mut SourceFd(&raw), token, Interest::READABLE);
    }

    /// Adopted leaders whose pidfd says they exited: their last output is
    /// read, then the exit goes the way of a child's.
    pub(super) fn reap_adopted(&mut self) {
        let gone: Vec<(ProcKey, u64)> = self
            .procs
            .iter()
            .filter(|(_, p)| {
                p.adopted
                    .as_ref()
                    .and_then(|a| a.pidfd.as_ref())
                    .is_some_and(exited)
            })
            .map(|(k, p)| (*k, p.generation))
            .collect();
        for (key, generation) in gone {
            if let Some(fd) = self
                .procs
                .get_mut(&key)
                .and_then(|p| p.adopted.as_mut())
                .and_then(|a| a.pidfd.take())
            {
                let raw = fd.as_raw_fd();
                let _ = self.poll.registry().deregister(&mut SourceFd(&raw));
            }
            let tokens: Vec<Token> = self
                .pipes
                .iter()
                .filter(|(_, pipe)| pipe.key == key)
                .map(|(t, _)| *t)
                .collect();
            for t in tokens {
                self.read_pipe(t);
            }
            self.leader_gone(key, generation, None, None, true);
        }
    }

    /// Sleep bound while an adopted leader is watched.
    pub(super) fn watching_adopted(&self) -> bool {
        self.procs
            .values()
            .any(|p| p.adopted.as_ref().is_some_and(|a| a.pidfd.is_some()))
    }

    /// Group liveness; an adopted run's zombies do not count (its reaper
    /// is someone else, who may be slow).
    pub(super) fn run_group_alive(&self, key: ProcKey, pgid: i32) -> bool {
        let adopted = self.procs.get(&key).is_some_and(|p| p.adopted.is_some());
        if adopted {
            pgid > 0 && crate::daemon::pgroup::alive(pgid as u32)
        } else {
            group_alive(pgid)
        }
    }
}

/// The recorded start as (ISO, instant); now when unknown.
fn started(at: Option<&str>) -> (String, Instant) {
    let now = Instant::now();
    let Some((iso, ms)) = at.and_then(|s| Some((s, crate::timefmt::parse_iso(s)?))) else {
        return (iso_now(), now);
    };
    let ago = Duration::from_millis(crate::timefmt::now_ms().saturating_sub(ms));
    (iso.to_owned(), now.checked_sub(ago).unwrap_or(now))
}
