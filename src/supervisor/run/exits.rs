//! Reaping: hook exits and group-leader exits (exit record, crash-restart decision).

use super::*;

impl Loop {
    pub(super) fn reap(&mut self) {
        for (pid, status) in spawn::reap_all() {
            if let Some((key, kind)) = self.hooks.remove(&pid) {
                self.hook_exited(key, kind, pid, status);
            } else if let Some((key, generation)) = self.by_pid.remove(&pid) {
                self.leader_exited(key, generation, status);
            }
            // Anything else: a re-parented grandchild or a hook already
            // killed at its limit. Reaping it is all there is to do.
        }
    }

    pub(super) fn hook_exited(&mut self, key: ProcKey, kind: HookKind, pid: i32, status: i32) {
        let Some(p) = self.procs.get_mut(&key) else {
            return;
        };
        if let Some((hook_pid, timer)) = p.hook {
            if hook_pid == pid {
                p.hook = None;
                self.timers.cancel(timer);
            }
        }
        let id = p.spec.id.clone();
        let data = p.data();
        match decode_status(status) {
            (Some(0), _) => {}
            (Some(code), _) => self.notice_event(
                &format!("{} exited non-zero", kind.label()),
                data.with("code", code).with("id", id),
            ),
            (_, Some(sig)) => self.notice_event(
                &format!("{} exited on signal", kind.label()),
                data.with("id", id).with("signal", sig_text(sig)),
            ),
            _ => {}
        }
    }

    pub(super) fn leader_exited(&mut self, key: ProcKey, generation: u64, status: i32) {
        let (code, sig) = decode_status(status);
        self.leader_gone(key, generation, code, sig, false);
    }

    /// The leader of `key`'s run `generation` is gone; `unknown`: an
    /// adopted leader, whose exit status only its parent could read.
    pub(super) fn leader_gone(
        &mut self,
        key: ProcKey,
        generation: u64,
        code: Option<i32>,
        sig: Option<i32>,
        unknown: bool,
    ) {
        let shutting_down = self.shutting_down;
        let Some(p) = self.procs.get_mut(&key) else {
            return;
        };
        if p.generation != generation {
            return;
        }
        let signal = sig.map(sig_text);
        p.leader = None;
        p.exit = Some((code, signal.clone()));
        p.rss = None;
        p.children.clear();
        if let Some(t) = p.memory_timer.take() {
            self.timers.cancel(t);
        }
        let requested = p.stop_requested;
        if !requested {
            p.state = ProcState::Failed;
        } else if p.stop.is_none() {
            p.state = ProcState::Stopped;
        }
        let data = p
            .data()
            .with(
                "code",
                code.map(serde_json::Value::from).unwrap_or_default(),
            )
            .with("id", p.spec.id.as_str())
            .with(
                "signal",
                signal
                    .clone()
                    .map(serde_json::Value::from)
                    .unwrap_or_default(),
            );
        let data = if unknown {
            data.with("exitStatus", "unknown: not a child of this daemon")
        } else {
            data
        };
        let mut follow_up = None;
        if !requested && p.crash_gate && !shutting_down {
            let now = Instant::now();
            match p
                .history
                .decide(&p.spec.restart, p.spec.restart_delay_ms, now)
            {
                RestartDecision::After(delay) => {
                    let t = self
                        .timers
                        .insert(now + delay, TimerKind::Restart { key, generation });
                    p.restart_timer = Some(t);
                }
                RestartDecision::LimitReached => {
                    follow_up = Some(
                        p.data()
                            .with("id", p.spec.id.as_str())
                            .with("maxRestarts", p.spec.restart.max_restarts.unwrap_or(0))
                            .with("windowMs", p.spec.restart.window_ms),
                    );
                }
            }
        }
        self.notice_event("process exited", data);
        (self.sink)(Notice::Exited {
            key,
            requested,
            code,
            signal,
        });
        if let Some(d) = follow_up {
            self.notice_event("restart limit reached", d);
            (self.sink)(Notice::GaveUp { key });
        }
    }
}
