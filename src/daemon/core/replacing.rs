//! The core's side of replacing the proxied process without downtime, of
//! the live health checks and of the automatic rollback: which instance is
//! replaced and when (memory breach, `restart`, failing live checks), the
//! switch of the release's upstream, and the rollback window opened where
//! a switch is recorded ([`Core::note_switch`], also the hook for
//! `promote`).

use super::*;
use crate::daemon::handover::doc::WindowDoc;
use crate::daemon::replace::prober::{Failing, Probed, Prober};
use crate::daemon::replace::window::Window;
use crate::daemon::replace::{self, Job, ReplaceMsg, Target, Why};
use serde_json::Value;

/// Replacement, live-check and auto-rollback state.
#[derive(Default)]
pub(super) struct Replacing {
    /// An automatic replacement waiting for the op slot.
    pending: Option<Target>,
    /// Drain waiters of replaced instances, by ticket (the new key).
    drains: HashMap<ProcKey, Sender<()>>,
    window: Option<Window>,
    /// The release an automatic rollback goes back to: its activation
    /// opens no window (no rolling back and forth).
    rolling_back_to: Option<String>,
    last_auto_rollback: Option<Value>,
    prober: Option<Prober>,
    /// The live-check target last sent to the prober.
    probed: Option<Probed>,
    /// Instances a replacement runs besides the one its release names.
    others: Vec<Other>,
}

/// An instance of the proxied process that its release does not name: the
/// new one until the switch, then the old one until it stopped. The state
/// file lists them (`replacing`) so an adoption after a crash stops them.
#[derive(Debug, Clone)]
pub(super) struct Other {
    pub release_id: String,
    pub id: String,
    pub key: ProcKey,
    /// The replaced instance's key (the replacement's identity).
    pub of: ProcKey,
}

impl Core {
    /// The active release's proxied instance: (release id, instance id, key).
    fn active_proxied(&self) -> Option<(String, String, ProcKey)> {
        let cfg = self.config.proxied()?;
        let release = self.state.active()?;
        let p = release
            .processes
            .iter()
            .find(|p| cfg.instance_ids().contains(&p.id))?;
        Some((release.id.clone(), p.id.clone(), p.key))
    }

    /// A traffic switch to the active release was recorded (deploy,
    /// rollback; `promote` calls it too): memory breaches of its proxied
    /// process are handed off from now on, the auto-rollback window
    /// opens, and the live checks follow it.
    pub(super) fn note_switch(&mut self, previous: Option<&str>) {
        if let Some(prev) = previous.and_then(|id| self.state.releases.iter().find(|r| r.id == id))
        {
            for p in &prev.processes {
                self.supervisor.set_handoff(p.key, false);
            }
        }
        let active = self.active_proxied();
        if let Some((release_id, _, key)) = &active {
            self.supervisor.set_handoff(*key, true);
            let back = self.replacing.rolling_back_to.take();
            self.replacing.window = self
                .config
                .auto_rollback
                .as_ref()
                .filter(|_| back.as_deref() != Some(release_id.as_str()))
                .map(|a| Window::open(release_id, Instant::now(), a.window_ms));
        }
        self.replacing.probed = None;
        self.sync_watch();
    }

    /// Sends the prober the process to watch when it changed (called on
    /// the upkeep tick too, so a `stop` ends the checks).
    pub(super) fn sync_watch(&mut self) {
        let want = if self.shutdown.is_some() {
            None
        } else {
            self.watch_target()
        };
        if want == self.replacing.probed {
            return;
        }
        if want.is_some() && self.replacing.prober.is_none() {
            self.replacing.prober = Prober::start(self.tx.clone());
        }
        if let Some(p) = self.replacing.prober.as_ref() {
            p.set(want.clone());
        }
        self.replacing.probed = want;
    }

    fn watch_target(&self) -> Option<Probed> {
        let cfg = self.config.proxied()?;
        let hc = cfg.health.as_ref().filter(|h| h.watch.interval_ms > 0)?;
        let (release_id, id, key) = self.active_proxied()?;
        let port = self
            .state
            .active()?
            .ports
            .iter()
            .find(|(i, _)| *i == cfg.id)
            .map(|(_, p)| *p)?;
        Some(Probed {
            release_id,
            id,
            key,
            host: self.config.proxy.upstream_host.clone(),
            port,
            path: hc.path.clone(),
            watch: hc.watch,
        })
    }

    /// `health.watchFailures` live checks failed in a row.
    pub(super) fn failing(&mut self, f: Failing) {
        let current = self.active_proxied();
        if self.shutdown.is_some() || current.as_ref().map(|c| c.2) != Some(f.target.key) {
            return;
        }
        self.record(Event::new(
            "health check failing",
            Data::new()
                .with("id", f.target.id.as_str())
                .with("releaseId", f.target.release_id.as_str())
                .with("failures", f.failures)
                .with("lastResult", f.last_result.as_str()),
        ));
        self.replace_wanted(f.target.key, Why::Health);
    }

    /// A memory breach or failing live checks: replace `key` if it is still
    /// the active release's proxied process (after the running operation).
    pub(super) fn replace_wanted(&mut self, key: ProcKey, why: Why) {
        let target = match self.active_proxied() {
            Some((release_id, id, k)) if k == key && self.shutdown.is_none() => Target {
                release_id,
                id,
                key,
                why,
            },
            _ => {
                if why == Why::Memory {
                    self.supervisor.resume_memory(key);
                }
                return;
            }
        };
        if self.op_busy {
            if self.replacing.pending.is_none() {
                self.replacing.pending = Some(target);
            }
            return;
        }
        self.start_replacement(target, None);
    }

    /// `restart` of the proxied process (the op slot is free).
    pub(super) fn restart_proxied(&mut self, t: &ops::Target, reply: ReplyTo) {
        let Some((release_id, ..)) = self.active_proxied() else {
            return self.fail(
                reply,
                format!("No managed process with id \"{}\" to restart.", t.id),
            );
        };
        self.record(Event::new(
            "process restart requested",
            Data::new().with("processId", t.id.as_str()),
        ));
        let target = Target {
            release_id,
            id: t.id.clone(),
            key: t.key,
            why: Why::Manual,
        };
        self.start_replacement(target, Some(reply));
    }

    /// Starts a replacement waiting for the op slot; true if one started.
    pub(super) fn run_pending_replacement(&mut self) -> bool {
        let Some(t) = self.replacing.pending.take() else {
            return false;
        };
        let why = t.why;
        self.replace_wanted(t.key, why);
        self.op_busy
    }

    fn start_replacement(&mut self, target: Target, reply: Option<ReplyTo>) {
        let Some(release) = self
            .state
            .releases
            .iter()
            .find(|r| r.id == target.release_id)
        else {
            return;
        };
        let held_ports: HashSet<u16> = self
            .state
            .releases
            .iter()
            .filter(|r| {
                matches!(
                    r.state,
                    ReleaseState::Active | ReleaseState::Draining | ReleaseState::Starting
                )
            })
            .flat_map(|r| r.ports.iter().map(|(_, p)| *p))
            .collect();
        let (exit_tx, exit_rx) = crossbeam_channel::unbounded();
        let job = Job {
            release_path: release.path.clone(),
            revision: release.revision.clone(),
            ports: release.ports.clone(),
            held_ports,
            target,
            config: self.config.clone(),
            supervisor: self.supervisor.clone(),
            core: self.tx.clone(),
            exits: exit_rx,
            proxy: self.proxy.handle().clone(),
            drain_timeout: Duration::from_millis(self.config.proxy.drain_timeout_ms),
        };
        self.op_exits = Some(exit_tx);
        self.op_busy = true;
        self.op_name = format!("replacement of process \"{}\"", job.target.id);
        replace::spawn(job, reply);
    }

    /// Instances the state file lists under `replacing`.
    pub(super) fn replacing_others(&self) -> &[Other] {
        &self.replacing.others
    }

    pub(super) fn replace_msg(&mut self, msg: ReplaceMsg) {
        match msg {
            ReplaceMsg::Started { target, new_key } => {
                self.replacing.others.push(Other {
                    release_id: target.release_id.clone(),
                    id: target.id.clone(),
                    key: new_key,
                    of: target.key,
                });
                self.persist_now();
            }
            ReplaceMsg::Switch {
                target,
                new_key,
                port,
                pid,
                drained,
                reply,
            } => {
                let r = self.switch_instance(&target, new_key, port, pid, drained);
                let _ = reply.send(r);
            }
            ReplaceMsg::Failed { target, error } => {
                // The new instance was stopped before this message.
                self.replacing.others.retain(|o| o.of != target.key);
                self.record(Event::new(
                    "process replacement failed",
                    Data::new()
                        .with("error", error.as_str())
                        .with("id", target.id.as_str())
                        .with("reason", target.why.as_str())
                        .with("releaseId", target.release_id.as_str()),
                ));
                if target.why == Why::Memory {
                    self.supervisor.resume_memory(target.key);
                }
                if !self.auto_rollback(&target.release_id, "replacement failed") {
                    // The old instance keeps serving: watch it afresh.
                    self.replacing.probed = None;
                    self.sync_watch();
                }
            }
            ReplaceMsg::Finished { target, error } => {
                self.replacing.others.retain(|o| o.of != target.key);
                self.persist_now();
                let mut data = Data::new()
                    .with("id", target.id.as_str())
                    .with("releaseId", target.release_id.as_str());
                if let Some(e) = error {
                    data = data.with("error", e);
                }
                self.record(Event::new("replaced process stopped", data));
            }
        }
    }

    /// Routes the release to its new instance; the old one drains.
    fn switch_instance(
        &mut self,
        t: &Target,
        new_key: ProcKey,
        port: u16,
        pid: u32,
        drained: Sender<()>,
    ) -> Result<(), String> {
        if self.shutdown.is_some() {
            return Err("Rollbridge is shutting down".into());
        }
        if self.active_proxied().map(|a| a.2) != Some(t.key) {
            return Err(format!(
                "Process \"{}\" of release \"{}\" is no longer the serving one",
                t.id, t.release_id
            ));
        }
        let base = self
            .config
            .proxied()
            .map(|c| c.id.clone())
            .unwrap_or_default();
        self.proxy
            .handle()
            .replace_upstream(t.release_id.as_str(), port, new_key)
            .map_err(|e| format!("Cannot switch the proxy: {e}"))?;
        self.replacing.drains.insert(new_key, drained);
        let mut previous_port = Value::Null;
        if let Some(r) = self
            .state
            .releases
            .iter_mut()
            .find(|r| r.id == t.release_id)
        {
            for p in r.processes.iter_mut().filter(|p| p.key == t.key) {
                p.key = new_key;
            }
            if let Some(slot) = r.ports.iter_mut().find(|(i, _)| *i == base) {
                previous_port = Value::from(slot.1);
                slot.1 = port;
            }
        }
        self.replacing.others.retain(|o| o.of != t.key);
        self.replacing.others.push(Other {
            release_id: t.release_id.clone(),
            id: t.id.clone(),
            key: t.key,
            of: t.key,
        });
        let s = &self.supervisor;
        s.inherit(t.key, new_key, t.why.start_reason());
        s.set_handoff(t.key, false);
        s.set_crash_gate(t.key, false);
        s.set_crash_gate(new_key, true);
        s.set_handoff(new_key, true);
        self.record(Event::new(
            "process replaced",
            Data::new()
                .with("id", t.id.as_str())
                .with("pid", pid)
                .with("port", port)
                .with("previousPort", previous_port)
                .with("reason", t.why.as_str())
                .with("releaseId", t.release_id.as_str()),
        ));
        self.replacing.probed = None;
        self.sync_watch();
        self.persist_now();
        Ok(())
    }

    /// The proxy has nothing left on a replaced instance.
    pub(super) fn instance_drained(&mut self, ticket: u64) {
        if let Some(tx) = self.replacing.drains.remove(&ticket) {
            let _ = tx.send(());
        }
    }

    /// The restart policy of `key` gave up: within the window, the active
    /// release's proxied process failing rolls back.
    pub(super) fn gave_up(&mut self, key: ProcKey) {
        if let Some((release_id, _, k)) = self.active_proxied() {
            if k == key {
                self.auto_rollback(&release_id, "process failed");
            }
        }
    }

    /// Rolls back from `from` as `rollback` does when the window covers
    /// it and a previous release is retained; true if it did.
    fn auto_rollback(&mut self, from: &str, reason: &str) -> bool {
        let active = self.state.active_release_id.clone();
        let covered = self
            .replacing
            .window
            .as_ref()
            .is_some_and(|w| w.covers(from, active.as_deref(), Instant::now()));
        if !covered || self.shutdown.is_some() {
            return false;
        }
        let Ok(to) = ops::rollback_target(&self.state, None).map(|r| r.id.clone()) else {
            return false;
        };
        self.replacing.window = None;
        self.replacing.rolling_back_to = Some(to.clone());
        self.record(Event::new(
            "auto rollback",
            Data::new()
                .with("fromReleaseId", from)
                .with("toReleaseId", to.as_str())
                .with("reason", reason),
        ));
        self.replacing.last_auto_rollback = Some(serde_json::json!({
            "at": iso_now(),
            "fromReleaseId": from,
            "toReleaseId": to,
            "reason": reason,
        }));
        let (reply, _answer) = ReplyTo::local();
        self.request(
            Request::Rollback {
                release_id: Some(to),
                progress: false,
            },
            reply,
        );
        true
    }

    /// The automatic-rollback state an upgrade carries: status
    /// `lastAutoRollback`, the open window (time left), the release a
    /// rollback is going back to.
    pub(super) fn export_rollback(&self) -> (Option<Value>, Option<WindowDoc>, Option<String>) {
        let window = self.replacing.window.as_ref().map(|w| {
            let (release_id, remaining_ms) = w.remaining(Instant::now());
            WindowDoc {
                release_id: release_id.to_owned(),
                remaining_ms,
            }
        });
        (
            self.replacing.last_auto_rollback.clone(),
            window,
            self.replacing.rolling_back_to.clone(),
        )
    }

    /// The previous program's automatic-rollback state.
    pub(super) fn import_rollback(
        &mut self,
        last: Option<Value>,
        window: Option<WindowDoc>,
        rolling_back_to: Option<String>,
    ) {
        self.replacing.last_auto_rollback = last;
        self.replacing.window =
            window.map(|w| Window::open(&w.release_id, Instant::now(), w.remaining_ms));
        self.replacing.rolling_back_to = rolling_back_to;
    }

    /// Status `lastAutoRollback`.
    pub(super) fn last_auto_rollback(&self) -> Value {
        self.replacing
            .last_auto_rollback
            .clone()
            .unwrap_or(Value::Null)
    }
}
