//! Stop sequences: starting them, advancing them every loop turn, running lifecycle hooks.

use super::*;

impl Loop {
    pub(super) fn stop_proc(&mut self, key: ProcKey, done: Done<Result<(), String>>) {
        let Some(p) = self.procs.get_mut(&key) else {
            done(Ok(()));
            return;
        };
        p.stop_requested = true;
        if let Some(t) = p.restart_timer.take() {
            self.timers.cancel(t);
        }
        if let Some(t) = p.memory_timer.take() {
            self.timers.cancel(t);
        }
        if let Some(run) = p.stop.as_mut() {
            run.waiters.push(done);
            return;
        }
        let old = p.pgid;
        let old_alive = old.is_some_and(|g| self.run_group_alive(key, g));
        let Some(p) = self.procs.get_mut(&key) else {
            done(Ok(()));
            return;
        };
        let mut pgid = p.leader.or(old.filter(|_| old_alive));
        if pgid.is_none() && (old.is_some() || p.marker.is_some()) {
            // Only escaped descendants may be left: still a stop.
            let old = old.unwrap_or(0);
            pgid = (!self.descendants_of(key, Some(old)).is_empty()).then_some(old);
        }
        let Some(p) = self.procs.get_mut(&key) else {
            done(Ok(()));
            return;
        };
        let Some(pgid) = pgid else {
            p.state = ProcState::Stopped;
            p.pgid = None;
            // Nothing of the run is left: forget its identity, so a later
            // instance with the same one is never taken for it.
            p.marker = None;
            done(Ok(()));
            if p.remove_when_stopped {
                self.procs.remove(&key);
            }
            return;
        };
        let lc = &p.spec.lifecycle;
        let plan = StopPlan {
            quiet_hook: lc.quiet_command.is_some() && p.leader.is_some(),
            drain: (lc.drain_timeout_ms > 0).then(|| Duration::from_millis(lc.drain_timeout_ms)),
            drain_hook: lc.drain_command.is_some(),
            stop_hook: lc.stop_command.is_some(),
            signal: p.spec.stop_signal.number,
            graceful: p.spec.graceful_stop.duration(),
        };
        p.state = ProcState::Stopping;
        p.stop = Some(StopRun {
            seq: StopSeq::new(plan),
            pgid,
            tracked: Vec::new(),
            waiters: vec![done],
        });
        self.refresh_tracked(key);
        // Advanced at the end of this loop turn.
    }

    pub(super) fn advance_stops(&mut self, now: Instant) {
        let keys: Vec<ProcKey> = self
            .procs
            .iter()
            .filter(|(_, p)| p.stop.is_some())
            .map(|(k, _)| *k)
            .collect();
        for key in keys {
            let Some(p) = self.procs.get_mut(&key) else {
                continue;
            };
            let leader_alive = p.leader.is_some();
            let hook_running = p.hook.is_some();
            let Some(run) = p.stop.as_mut() else {
                continue;
            };
            let pgid = run.pgid;
            let obs = Observed {
                leader_alive,
                group_alive: self.run_group_alive(key, pgid) || self.tracked_alive(key),
                hook_running,
            };
            let Some(run) = self.procs.get_mut(&key).and_then(|p| p.stop.as_mut()) else {
                continue;
            };
            let actions = run.seq.advance(now, obs);
            let mut error = None;
            for action in actions {
                match action {
                    StopAction::RunHook(kind) => {
                        self.run_hook(key, kind, pgid);
                        if kind == HookKind::Stop {
                            // The hook addresses the group; what left it
                            // gets the stop signal.
                            let sig = self.procs.get(&key).map(|p| p.spec.stop_signal.number);
                            if let Some(sig) = sig {
                                self.signal_escaped(key, sig);
                            }
                        }
                    }
                    StopAction::Signal(sig) => {
                        if let Err(e) = signal_group(pgid, sig) {
                            error = Some(e);
                        }
                        self.signal_escaped(key, sig);
                    }
                    StopAction::TimedOut => {
                        if let Some(p) = self.procs.get(&key) {
                            let data = p.data().with("id", p.spec.id.as_str()).with("pid", pgid);
                            self.notice_event("process stop timed out; sending SIGKILL", data);
                        }
                    }
                    StopAction::Kill => {
                        if let Err(e) = signal_group(pgid, libc::SIGKILL) {
                            error = Some(e);
                        }
                        self.signal_escaped(key, libc::SIGKILL);
                    }
                }
            }
            let Some(p) = self.procs.get_mut(&key) else {
                continue;
            };
            let finished = p.stop.as_ref().is_some_and(|r| r.seq.is_done());
            if finished || error.is_some() {
                let run = p.stop.take();
                let result = match error {
                    Some(e) => {
                        p.state = ProcState::Failed;
                        Err(format!("Could not stop process \"{}\": {e}", p.spec.id))
                    }
                    None => {
                        p.state = ProcState::Stopped;
                        p.pgid = None;
                        p.marker = None;
                        Ok(())
                    }
                };
                let remove = p.remove_when_stopped && result.is_ok();
                if let Some(run) = run {
                    for waiter in run.waiters {
                        waiter(result.clone());
                    }
                }
                if remove {
                    self.procs.remove(&key);
                }
            }
        }
    }

    pub(super) fn run_hook(&mut self, key: ProcKey, kind: HookKind, pgid: i32) {
        let now = Instant::now();
        let Some(p) = self.procs.get_mut(&key) else {
            return;
        };
        let lc = &p.spec.lifecycle;
        let command = match kind {
            HookKind::Quiet => lc.quiet_command.clone(),
            HookKind::Drain => lc.drain_command.clone(),
            HookKind::Stop => lc.stop_command.clone(),
        };
        let Some(command) = command else {
            return;
        };
        let pid_value = match kind {
            HookKind::Stop => pgid.to_string(),
            _ => p.leader.map(|l| l.to_string()).unwrap_or_default(),
        };
        let budget = match kind {
            HookKind::Drain => Duration::from_millis(lc.drain_timeout_ms),
            _ => p.spec.graceful_stop.hook_budget(),
        };
        let mut env: Vec<(String, String)> = p
            .spec
            .env
            .iter()
            .filter(|(k, _)| k != "ROLLBRIDGE_PID")
            .cloned()
            .collect();
        env.push(("ROLLBRIDGE_PID".into(), pid_value));
        match spawn::spawn_hook(&command, &p.spec.cwd, &env) {
            Ok(pid) => {
                let timer = self.timers.insert(
                    now + budget,
                    TimerKind::HookDeadline {
                        key,
                        pid,
                        kind,
                        timeout_ms: budget.as_millis() as u64,
                    },
                );
                p.hook = Some((pid, timer));
                self.hooks.insert(pid, (key, kind));
            }
            Err(error) => {
                let data = p
                    .data()
                    .with("error", error.as_str())
                    .with("id", p.spec.id.as_str());
                self.notice_event(&format!("{} failed", kind.label()), data);
            }
        }
    }

    pub(super) fn kill_everything(&mut self) {
        let keys: Vec<ProcKey> = self.procs.keys().copied().collect();
        for key in keys {
            let Some(p) = self.procs.get(&key) else {
                continue;
            };
            if let Some(g) = p.leader.or(p.pgid) {
                let _ = signal_group(g, libc::SIGKILL);
            }
            for f in self.descendants_of(key, None) {
                descendants::signal_verified(f.ident(), libc::SIGKILL);
            }
        }
    }
}
