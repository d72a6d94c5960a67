//! Timers firing: crash restarts and hook time limits.

use super::*;

impl Loop {
    pub(super) fn fire_timers(&mut self, now: Instant) {
        for (_, kind) in self.timers.pop_due(now) {
            match kind {
                TimerKind::Restart { key, generation } => self.restart_due(key, generation),
                TimerKind::MemorySample { key, generation } => self.memory_sample(key, generation),
                TimerKind::MemoryRestart { key, generation } => {
                    self.memory_restart_due(key, generation)
                }
                TimerKind::MemoryReplace { key, generation } => {
                    self.memory_replace_due(key, generation)
                }
                TimerKind::HookDeadline {
                    key,
                    pid,
                    kind,
                    timeout_ms,
                } => {
                    if self.hooks.remove(&pid).is_none() {
                        continue;
                    }
                    let _ = signal_group(pid, libc::SIGKILL);
                    if let Some(p) = self.procs.get_mut(&key) {
                        if p.hook.is_some_and(|(h, _)| h == pid) {
                            p.hook = None;
                        }
                        let data = p
                            .data()
                            .with("id", p.spec.id.as_str())
                            .with("timeoutMs", timeout_ms);
                        self.notice_event(&format!("{} timed out", kind.label()), data);
                    }
                }
            }
        }
    }

    pub(super) fn restart_due(&mut self, key: ProcKey, generation: u64) {
        let shutting_down = self.shutting_down;
        let Some(p) = self.procs.get_mut(&key) else {
            return;
        };
        p.restart_timer = None;
        if p.generation != generation
            || p.leader.is_some()
            || p.stop_requested
            || !p.crash_gate
            || shutting_down
        {
            return;
        }
        p.restarts += 1;
        if let Err(error) = self.start_proc(key, StartReason::Crash) {
            self.restart_spawn_failed(key, generation, &error, Instant::now());
        }
    }

    /// A crash restart could not spawn (EMFILE, ENOMEM, EAGAIN...): say so
    /// and try again with the restart backoff, like after a crash, until
    /// `maxRestarts` says stop. Never given up silently.
    fn restart_spawn_failed(&mut self, key: ProcKey, generation: u64, error: &str, now: Instant) {
        let shutting_down = self.shutting_down;
        let Some(p) = self.procs.get_mut(&key) else {
            return;
        };
        let retry = if shutting_down || p.stop_requested || !p.crash_gate {
            None
        } else {
            Some(
                p.history
                    .after_spawn_failure(&p.spec.restart, p.spec.restart_delay_ms, now),
            )
        };
        let mut data = p.data().with("error", error).with("id", p.spec.id.as_str());
        let mut follow_up = None;
        match retry {
            Some(RestartDecision::After(delay)) => {
                data = data.with("retryInMs", delay.as_millis() as u64);
                let t = self
                    .timers
                    .insert(now + delay, TimerKind::Restart { key, generation });
                p.restart_timer = Some(t);
            }
            Some(RestartDecision::LimitReached) => {
                follow_up = Some(
                    p.data()
                        .with("id", p.spec.id.as_str())
                        .with("maxRestarts", p.spec.restart.max_restarts.unwrap_or(0))
                        .with("windowMs", p.spec.restart.window_ms),
                );
            }
            None => {}
        }
        self.notice_event("process restart failed", data);
        if let Some(d) = follow_up {
            self.notice_event("restart limit reached", d);
        }
    }
}
