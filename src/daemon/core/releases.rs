//! The core's side of deploy, stop, rollback and retirement: building the
//! plan for an operation thread and applying the state changes it asks for.
//! Every change to releases, services and singletons happens here, on the
//! core thread.

use super::*;
use crate::control::server::Progress;
use crate::release::retention;

impl Core {
    /// Starts a deploy (or the deploy half of a rollback) on an op thread.
    /// `Err` gives the reply back with the reason it could not start.
    pub(super) fn start_deploy(
        &mut self,
        request: deploy::Request,
        rollback: bool,
        reply: ReplyTo,
        progress: Option<Progress>,
    ) -> Result<(), (String, ReplyTo)> {
        if let Err(e) = self.canary_refusal(rollback, request.canary.is_some()) {
            return Err((e, reply));
        }
        if let Some(id) = request.release_id.as_deref() {
            if !rollback && self.state.active_release_id.as_deref() == Some(id) {
                return Err((
                    format!(
                        "Release \"{id}\" is already active; deploy with a new --release-id (or --revision)."
                    ),
                    reply,
                ));
            }
        }
        // A retained release with the same id that still has live
        // processes (draining, or a rollback target) stops first.
        let pre_stop = request.release_id.as_deref().and_then(|id| {
            self.state
                .releases
                .iter()
                .find(|r| {
                    r.id == id && matches!(r.state, ReleaseState::Draining | ReleaseState::Active)
                })
                .map(|r| deploy::PreStop {
                    release_id: r.id.clone(),
                    keys: r.processes.iter().map(|p| p.key).collect(),
                })
        });
        let mut plan = self.op_plan(request, rollback, progress);
        plan.pre_stop = pre_stop;
        deploy::spawn(plan, reply);
        Ok(())
    }

    /// What an op thread needs (the op slot is taken).
    pub(super) fn op_plan(
        &mut self,
        request: deploy::Request,
        rollback: bool,
        progress: Option<Progress>,
    ) -> deploy::Plan {
        let held_ports: HashSet<u16> = self
            .state
            .releases
            .iter()
            .filter(|r| {
                matches!(
                    r.state,
                    ReleaseState::Active
                        | ReleaseState::Canary
                        | ReleaseState::Draining
                        | ReleaseState::Starting
                )
            })
            .flat_map(|r| r.ports.iter().map(|(_, p)| *p))
            .collect();
        let services = self
            .state
            .services
            .iter()
            .map(|s| {
                let port = self
                    .state
                    .service_ports
                    .iter()
                    .find(|(id, _)| *id == s.id)
                    .map(|(_, p)| *p);
                (s.id.clone(), s.key, port)
            })
            .collect();
        let (exit_tx, exit_rx) = crossbeam_channel::unbounded();
        self.op_exits = Some(exit_tx);
        self.op_busy = true;
        self.op_name = if rollback { "rollback" } else { "deploy" }.into();
        deploy::Plan {
            request,
            rollback,
            pre_stop: None,
            config_path: self.config_path.clone(),
            adopted: self.config.clone(),
            services,
            singletons: self.state.singletons.clone(),
            held_ports,
            supervisor: self.supervisor.clone(),
            core: self.tx.clone(),
            exits: exit_rx,
            progress,
            proxy: self.proxy.handle().clone(),
        }
    }

    /// `stop`: the active pointer is cleared at once (the proxy answers
    /// 503), then every process of the release stops in parallel.
    pub(super) fn start_stop(&mut self, release_id: String, reply: ReplyTo) {
        if self.state.active_release_id.as_deref() == Some(release_id.as_str()) {
            self.state.active_release_id = None;
            let _ = self.proxy.handle().clear_active();
        }
        let keys: Vec<ProcKey> = self
            .state
            .releases
            .iter()
            .find(|r| r.id == release_id)
            .map(|r| r.processes.iter().map(|p| p.key).collect())
            .unwrap_or_default();
        for &k in &keys {
            self.supervisor.set_crash_gate(k, false);
        }
        let _ = self.proxy.handle().retire(release_id.as_str());
        let _ = self.proxy.handle().force_close(release_id.as_str());
        self.drain_waiters.remove(&release_id);
        self.op_busy = true;
        self.op_name = "stop".into();
        let supervisor = self.supervisor.clone();
        let core = self.tx.clone();
        ops::spawn_op("stop", self.tx.clone(), reply, move || {
            deploy::stop_parallel(&supervisor, &keys);
            let (tx, rx) = crossbeam_channel::bounded(1);
            let _ = core.send(CoreMsg::Deploy(DeployMsg::Stopped {
                release_id,
                keys,
                status: Some(tx),
                event: true,
            }));
            rx.recv()
                .map_err(|_| "Rollbridge is shutting down".to_owned())
        });
    }

    pub(super) fn deploy_msg(&mut self, msg: DeployMsg) {
        match msg {
            DeployMsg::ServiceStarted { id, key, port } => {
                self.state.services.retain(|s| s.id != id);
                self.state.services.push(Named {
                    id: id.clone(),
                    key,
                });
                self.state.service_ports.retain(|(i, _)| *i != id);
                if let Some(p) = port {
                    self.state.service_ports.push((id, p));
                }
            }
            DeployMsg::ServiceRemoved { id } => {
                self.state.services.retain(|s| s.id != id);
                self.state.service_ports.retain(|(i, _)| *i != id);
            }
            DeployMsg::Activate {
                release,
                config,
                upstream,
                reply,
            } => {
                let result = self.activate(*release, *config, upstream);
                if result.is_ok() {
                    // Now recorded as a release (written right after).
                    self.starting = None;
                }
                let _ = reply.send(result);
            }
            DeployMsg::Canary {
                release,
                config,
                upstream,
                percent,
                reply,
            } => {
                let result = self.start_canary(*release, config, upstream, percent);
                if result.is_ok() {
                    self.starting = None;
                }
                let _ = reply.send(result);
            }
            DeployMsg::Promote { reply } => {
                let _ = reply.send(self.promote_switch());
            }
            DeployMsg::SingletonReplaced { id, key } => {
                match self.state.singletons.iter_mut().find(|s| s.id == id) {
                    Some(s) => s.key = key,
                    None => self.state.singletons.push(Named { id, key }),
                }
            }
            DeployMsg::Retire { release_id } => self.retire(release_id),
            DeployMsg::Retired {
                release_id,
                keys,
                error,
            } => {
                if !self.mark_stopped(&release_id, &keys) {
                    return;
                }
                match error {
                    None => self.record(Event::new(
                        "release drained",
                        Data::new().with("releaseId", release_id.as_str()),
                    )),
                    Some(e) => self.record(Event::new(
                        "release drain failed",
                        Data::new()
                            .with("error", e)
                            .with("releaseId", release_id.as_str()),
                    )),
                }
                self.prune();
                self.persist_now();
            }
            DeployMsg::Stopped {
                release_id,
                keys,
                status,
                event,
            } => {
                self.mark_stopped(&release_id, &keys);
                if event {
                    self.record(Event::new(
                        "release stopped",
                        Data::new().with("releaseId", release_id.as_str()),
                    ));
                    self.prune();
                    self.persist_now();
                }
                if let Some(tx) = status {
                    let _ = tx.send(self.status_json());
                }
            }
            DeployMsg::ForceClose { release_id } => {
                self.drain_waiters.remove(&release_id);
                let _ = self.proxy.handle().retire(release_id.as_str());
                let _ = self.proxy.handle().force_close(release_id.as_str());
            }
            DeployMsg::Persist { ack } => self.persist_with(ack),
            DeployMsg::WriteAhead {
                release_id,
                processes,
                ack,
            } => self.write_ahead(release_id, processes, ack),
            DeployMsg::StartingCleared => {
                self.starting = None;
                self.persist_now();
            }
        }
    }

    /// Traffic switch: adopt the config, insert the release (replacing a
    /// retained one with the same id in place), route new requests to it.
    pub(super) fn activate(
        &mut self,
        mut release: Release,
        config: Config,
        upstream: std::net::SocketAddr,
    ) -> Result<Option<String>, String> {
        if self.shutdown.is_some() {
            return Err("Rollbridge is shutting down".into());
        }
        let previous = self.state.active_release_id.clone();
        // Stable ports of persistent services show in every release.
        for (id, port) in &self.state.service_ports {
            if !release.ports.iter().any(|(i, _)| i == id) {
                release.ports.push((id.clone(), *port));
            }
        }
        let id = release.id.clone();
        match self.state.releases.iter_mut().find(|r| r.id == id) {
            Some(slot) => *slot = release,
            None => self.state.releases.push(release),
        }
        self.config = config;
        self.state.active_release_id = Some(id.clone());
        if let Err(e) = self.proxy.handle().set_active(id.as_str(), upstream) {
            return Err(format!("Cannot switch the proxy: {e}"));
        }
        self.record(Event::new(
            "traffic switched",
            Data::new()
                .with(
                    "previousReleaseId",
                    previous
                        .as_deref()
                        .map(serde_json::Value::from)
                        .unwrap_or_default(),
                )
                .with("releaseId", id.as_str()),
        ));
        self.note_switch(previous.as_deref());
        Ok(previous)
    }

    /// Starts the background drain of a release that lost the traffic.
    pub(super) fn retire(&mut self, release_id: String) {
        self.retire_with(release_id, self.config.clone());
    }

    /// Same, its processes stopped under `config`'s definitions.
    pub(super) fn retire_with(&mut self, release_id: String, config: Config) {
        let drain_timeout = Duration::from_millis(self.config.proxy.drain_timeout_ms);
        let Some(release) = self.state.releases.iter_mut().find(|r| r.id == release_id) else {
            return;
        };
        if matches!(release.state, ReleaseState::Stopped | ReleaseState::Failed) {
            return;
        }
        release.state = ReleaseState::Draining;
        release.drain_started_at = Some(crate::timefmt::iso(crate::timefmt::now_ms()));
        // Old processes stop under the newly adopted definitions.
        let ids = deploy::build::ReleaseIds {
            id: &release.id,
            path: &release.path,
            revision: &release.revision,
            ports: &release.ports,
        };
        let mut groups = retire::Groups::default();
        for p in &release.processes {
            self.supervisor.set_crash_gate(p.key, false);
            let base = p.id.split('#').next().unwrap_or(&p.id);
            let cfg = config.process(base);
            if let Some(cfg) = cfg {
                if let Ok(specs) = deploy::build::instance_specs(&config, cfg, &ids) {
                    if let Some(spec) = specs.into_iter().find(|s| s.id == p.id) {
                        self.supervisor.update(p.key, spec);
                    }
                }
            }
            match cfg {
                Some(c) if c.policy == Policy::Companion && c.non_blocking_drain => {
                    groups.non_blocking.push(p.key)
                }
                Some(c)
                    if c.policy == Policy::Service
                        && c.deploy_strategy == DeployStrategy::Handoff =>
                {
                    groups.handoff.push(p.key)
                }
                _ => groups.dependent.push(p.key),
            }
        }
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.drain_waiters.insert(release_id.clone(), tx);
        let _ = self.proxy.handle().retire(release_id.as_str());
        retire::spawn(retire::Retirement {
            release_id,
            groups,
            drain_timeout,
            drained: rx,
            proxy: self.proxy.handle().clone(),
            supervisor: self.supervisor.clone(),
            core: self.tx.clone(),
        });
    }

    /// Marks the incarnation of `release_id` made of `keys` stopped; false
    /// when the id now names a newer incarnation (re-activated by a
    /// rollback or redeploy), which is left untouched.
    fn mark_stopped(&mut self, release_id: &str, keys: &[ProcKey]) -> bool {
        let Some(r) = self.state.releases.iter_mut().find(|r| r.id == release_id) else {
            return false;
        };
        if !keys.is_empty() && !r.processes.iter().any(|p| keys.contains(&p.key)) {
            return false;
        }
        r.state = ReleaseState::Stopped;
        r.stopped_at = Some(crate::timefmt::iso(crate::timefmt::now_ms()));
        self.drain_waiters.remove(release_id);
        true
    }

    /// Forgets stopped releases beyond `releaseRetention`.
    fn prune(&mut self) {
        let now = crate::timefmt::now_ms();
        let entries: Vec<retention::Entry> = self
            .state
            .releases
            .iter()
            .map(|r| retention::Entry {
                stopped_at: (r.state == ReleaseState::Stopped).then(|| {
                    r.stopped_at
                        .as_deref()
                        .and_then(crate::timefmt::parse_iso)
                        .unwrap_or(0)
                }),
            })
            .collect();
        let rr = &self.config.release_retention;
        let doomed = retention::prune(&entries, rr.keep, rr.max_age_ms, now);
        for i in doomed.into_iter().rev() {
            let r = self.state.releases.remove(i);
            for p in r.processes {
                self.supervisor.remove(p.key);
            }
        }
    }
}
