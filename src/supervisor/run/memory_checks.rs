//! Memory samples and memory restarts.

use super::*;

impl Loop {
    pub(super) fn memory_sample(&mut self, key: ProcKey, generation: u64) {
        let Some(p) = self.procs.get_mut(&key) else {
            return;
        };
        p.memory_timer = None;
        let Some(cfg) = p.spec.memory.clone() else {
            return;
        };
        if p.generation != generation || p.stop.is_some() || p.memory_restarting {
            return;
        }
        let Some(pgid) = p.leader else {
            return;
        };
        // The group and every descendant that left it.
        let found = self.descendants_of(key, Some(pgid));
        let Some(p) = self.procs.get_mut(&key) else {
            return;
        };
        if !found.is_empty() {
            let members = descendants::samples(&found);
            p.rss = memory::total_rss(&members).or(p.rss);
            p.children = members;
        }
        let mut restart = false;
        if let Some(rss) = p.rss {
            match memory::judge(rss, &cfg, &mut p.warned) {
                MemoryVerdict::Fine => {}
                MemoryVerdict::Warn => {
                    let data = p
                        .data()
                        .with("id", p.spec.id.as_str())
                        .with("rssBytes", rss)
                        .with("warnBytes", cfg.warn_bytes);
                    self.notice_event("memory warning", data);
                }
                MemoryVerdict::Restart => {
                    let data = p
                        .data()
                        .with("id", p.spec.id.as_str())
                        .with("limitBytes", cfg.limit_bytes)
                        .with("rssBytes", rss);
                    self.notice_event("memory limit exceeded", data);
                    restart = true;
                }
            }
        }
        let Some(p) = self.procs.get_mut(&key) else {
            return;
        };
        if restart && p.handoff {
            self.memory_handoff(key, generation);
        } else if restart {
            p.memory_restarting = true;
            let tx = self.tx.clone();
            self.stop_proc(
                key,
                Box::new(move |_| {
                    let _ = tx.send(Msg::MemoryStopped { key });
                }),
            );
        } else {
            let at = Instant::now() + Duration::from_millis(cfg.check_interval_ms.max(1));
            p.memory_timer = Some(
                self.timers
                    .insert(at, TimerKind::MemorySample { key, generation }),
            );
        }
    }

    /// After the stop of a memory restart: unless the crash gate now
    /// refuses, wait out the backoff (the crash-restart schedule, on its
    /// own history) and start again with reason `memory`.
    pub(super) fn memory_restart_resume(&mut self, key: ProcKey) {
        let shutting_down = self.shutting_down;
        let Some(p) = self.procs.get_mut(&key) else {
            return;
        };
        p.memory_restarting = false;
        if !p.crash_gate || shutting_down || p.remove_when_stopped || p.leader.is_some() {
            return;
        }
        let now = Instant::now();
        let decision = memory::restart_backoff(
            &mut p.memory_history,
            &p.spec.restart,
            p.spec.restart_delay_ms,
            now,
        );
        match decision {
            RestartDecision::LimitReached => {
                p.state = ProcState::Failed;
                let data = p
                    .data()
                    .with("id", p.spec.id.as_str())
                    .with("maxRestarts", p.spec.restart.max_restarts.unwrap_or(0))
                    .with("reason", "memory")
                    .with("windowMs", p.spec.restart.window_ms);
                self.notice_event("restart limit reached", data);
                (self.sink)(Notice::GaveUp { key });
            }
            RestartDecision::After(delay) => {
                let generation = p.generation;
                let data = p
                    .data()
                    .with("delayMs", delay.as_millis() as u64)
                    .with("id", p.spec.id.as_str());
                if delay.is_zero() {
                    // The first memory restart: at once, as it always was.
                    self.memory_restart_due(key, generation);
                } else {
                    let t = self
                        .timers
                        .insert(now + delay, TimerKind::MemoryRestart { key, generation });
                    p.restart_timer = Some(t);
                    self.notice_event("memory restart delayed", data);
                }
            }
        }
    }

    /// The backoff of a memory restart ran out (or was zero).
    pub(super) fn memory_restart_due(&mut self, key: ProcKey, generation: u64) {
        let shutting_down = self.shutting_down;
        let Some(p) = self.procs.get_mut(&key) else {
            return;
        };
        p.restart_timer = None;
        if p.generation != generation
            || p.leader.is_some()
            || p.stop.is_some()
            || !p.crash_gate
            || shutting_down
            || p.remove_when_stopped
        {
            return;
        }
        p.memory_restarts += 1;
        p.last_memory_restart_at = Some(iso_now());
        p.warned = false;
        if let Err(error) = self.start_proc(key, StartReason::Memory) {
            if let Some(p) = self.procs.get(&key) {
                let data = p
                    .data()
                    .with("error", error.as_str())
                    .with("id", p.spec.id.as_str());
                self.notice_event("memory restart failed", data);
            }
        }
    }
}
