//! Timers firing: crash restarts and hook time limits.

use super::*;

impl Loop {
    pub(super) fn fire_timers(&mut self, now: Instant) {
        for (_, kind) in self.timers.pop_due(now) {
            match kind {
                TimerKind::Restart { key, generation } => self.restart_due(key, generation),
                TimerKind::MemorySample { key, generation } => self.memory_sample(key, generation),
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
            if let Some(p) = self.procs.get(&key) {
                let data = p
                    .data()
                    .with("error", error.as_str())
                    .with("id", p.spec.id.as_str());
                self.notice_event("process restart failed", data);
            }
        }
    }
}
