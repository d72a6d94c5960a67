//! Memory breaches of a process whose owner replaces it without downtime
//! (the active release's proxied process): instead of a stop and a start,
//! the owner is asked for a replacement ([`Notice::Replace`]) once the
//! memory-restart backoff allows it; the process keeps serving meanwhile.
//! The replacement inherits the counters ([`Loop::inherit`]).

use super::*;

impl Loop {
    /// Over the limit with the handoff on: the backoff decides when the
    /// owner is asked (at once the first time). Sampling pauses until the
    /// owner resumes it (the replacement failed) or the process stops.
    pub(super) fn memory_handoff(&mut self, key: ProcKey, generation: u64) {
        let Some(p) = self.procs.get_mut(&key) else {
            return;
        };
        p.memory_restarting = true;
        let now = Instant::now();
        let decision = memory::restart_backoff(
            &mut p.memory_history,
            &p.spec.restart,
            p.spec.restart_delay_ms,
            now,
        );
        match decision {
            RestartDecision::LimitReached => {
                // The process keeps serving: better over the limit than down.
                let data = p
                    .data()
                    .with("id", p.spec.id.as_str())
                    .with("maxRestarts", p.spec.restart.max_restarts.unwrap_or(0))
                    .with("reason", "memory")
                    .with("windowMs", p.spec.restart.window_ms);
                self.notice_event("restart limit reached", data);
            }
            RestartDecision::After(delay) if delay.is_zero() => {
                (self.sink)(Notice::Replace { key });
            }
            RestartDecision::After(delay) => {
                let data = p
                    .data()
                    .with("delayMs", delay.as_millis() as u64)
                    .with("id", p.spec.id.as_str());
                let t = self
                    .timers
                    .insert(now + delay, TimerKind::MemoryReplace { key, generation });
                p.restart_timer = Some(t);
                self.notice_event("memory restart delayed", data);
            }
        }
    }

    /// The backoff of a memory replacement ran out.
    pub(super) fn memory_replace_due(&mut self, key: ProcKey, generation: u64) {
        let Some(p) = self.procs.get_mut(&key) else {
            return;
        };
        p.restart_timer = None;
        if p.generation != generation || p.leader.is_none() || p.stop.is_some() || !p.handoff {
            return;
        }
        (self.sink)(Notice::Replace { key });
    }

    /// Sampling starts again after a replacement that did not happen.
    pub(super) fn memory_resume_sampling(&mut self, key: ProcKey) {
        let Some(p) = self.procs.get_mut(&key) else {
            return;
        };
        p.memory_restarting = false;
        let (Some(mem), Some(_)) = (p.spec.memory.as_ref(), p.leader) else {
            return;
        };
        if p.memory_timer.is_some() {
            return;
        }
        let generation = p.generation;
        let at = Instant::now() + Duration::from_millis(mem.check_interval_ms.max(1));
        p.memory_timer = Some(
            self.timers
                .insert(at, TimerKind::MemorySample { key, generation }),
        );
    }

    /// `to` took over from `from`: restart counters and backoff histories
    /// carry over, and this replacement counts (a memory restart with its
    /// time, or a restart).
    pub(super) fn inherit(&mut self, from: ProcKey, to: ProcKey, reason: StartReason) {
        let Some(old) = self.procs.get(&from) else {
            return;
        };
        let (restarts, memory_restarts, last_at) = (
            old.restarts,
            old.memory_restarts,
            old.last_memory_restart_at.clone(),
        );
        let (history, memory_history) = (old.history.clone(), old.memory_history.clone());
        let Some(p) = self.procs.get_mut(&to) else {
            return;
        };
        p.restarts = restarts;
        p.memory_restarts = memory_restarts;
        p.last_memory_restart_at = last_at;
        p.history = history;
        p.memory_history = memory_history;
        match reason {
            StartReason::Memory => {
                p.memory_restarts += 1;
                p.last_memory_restart_at = Some(iso_now());
            }
            StartReason::Crash => p.restarts += 1,
            StartReason::Deploy | StartReason::Manual => {}
        }
    }
}
