//! The core's side of `adoptOrphans`: rebuilding releases, services and
//! singletons from a crashed daemon's state file, handing the living
//! processes to the supervisor, and putting traffic back on the active
//! release once its proxied process answers its health check.

use super::*;
use crate::daemon::adopt::{self, Plan, ProcRecord, ReleaseRecord, Verdict};
use crate::daemon::deploy::build::{self, ReleaseIds};
use crate::supervisor::ProcessSpec;
use crate::supervisor::adopted::{Adoption, LiveRun};

impl Core {
    /// Takes over what `plan` found. Call before persistence starts.
    pub fn adopt(&mut self, plan: Plan) {
        let config = self.config.clone();
        for (o, why) in plan.dropped() {
            self.record(Event::new(
                "recorded process dropped",
                Data::new()
                    .with("pid", o.pid)
                    .with("processId", o.id.as_str())
                    .with("reason", why)
                    .with("releaseId", release_value(o.release_id.as_deref())),
            ));
        }
        let active = plan.active_release_id.clone();
        let canary = plan.canary.as_ref().map(|c| c.release_id.as_str());
        let mut draining = Vec::new();
        for r in &plan.releases {
            let is_active = active.as_deref() == Some(r.id.as_str());
            let is_canary = canary == Some(r.id.as_str());
            let ports = config_order(&config, &r.ports);
            let ids = ReleaseIds {
                id: &r.id,
                path: &r.path,
                revision: &r.revision,
                ports: &ports,
            };
            let processes = r
                .processes
                .iter()
                .filter_map(|p| {
                    let gate = is_active || is_canary;
                    let key = self.adopt_one(&config, &ids, p, Some(&r.id), gate)?;
                    Some(Named {
                        id: p.id.clone(),
                        key,
                    })
                })
                .collect();
            let state = match r.state {
                _ if is_active => ReleaseState::Active,
                _ if is_canary => ReleaseState::Canary,
                ReleaseState::Active | ReleaseState::Starting | ReleaseState::Canary => {
                    ReleaseState::Stopped
                }
                s => s,
            };
            if state == ReleaseState::Draining {
                draining.push(r.id.clone());
            }
            self.state.releases.push(Release {
                id: r.id.clone(),
                path: r.path.clone(),
                revision: r.revision.clone(),
                state,
                activated_at: r.activated_at.clone(),
                drain_started_at: r.drain_started_at.clone(),
                stopped_at: r.stopped_at.clone(),
                ports,
                processes,
                http: 0,
                websocket: 0,
            });
        }
        self.state.active_release_id = active.clone();
        // Services and singletons are built from the active release (else
        // the newest one recorded).
        let base = plan
            .releases
            .iter()
            .find(|r| Some(&r.id) == active.as_ref())
            .or(plan.releases.last())
            .cloned()
            .unwrap_or_else(|| ReleaseRecord {
                id: String::new(),
                path: "/".into(),
                revision: String::new(),
                state: ReleaseState::Stopped,
                activated_at: None,
                drain_started_at: None,
                stopped_at: None,
                ports: Vec::new(),
                processes: Vec::new(),
            });
        let ports = config_order(&config, &base.ports);
        let ids = ReleaseIds {
            id: &base.id,
            path: &base.path,
            revision: &base.revision,
            ports: &ports,
        };
        for s in &plan.services {
            if let Some(key) = self.adopt_one(&config, &ids, s, None, true) {
                self.state.services.push(Named {
                    id: s.id.clone(),
                    key,
                });
                if let Some((_, port)) = ports.iter().find(|(id, _)| *id == s.id) {
                    self.state.service_ports.push((s.id.clone(), *port));
                }
            }
        }
        for s in &plan.singletons {
            if let Some(key) = self.adopt_one(&config, &ids, s, None, true) {
                self.state.singletons.push(Named {
                    id: s.id.clone(),
                    key,
                });
            }
        }
        // A release that never became active: its deploy died with the
        // daemon. Its living processes are stopped (they are verified).
        for (release_id, p) in &plan.starting {
            if !matches!(p.verdict, Verdict::Adopt { .. }) {
                continue;
            }
            let rid = release_id.clone().unwrap_or_default();
            let ids = ReleaseIds {
                id: &rid,
                path: "/",
                revision: &rid,
                ports: &[],
            };
            let reason = "its release never became active";
            self.adopt_and_stop(&config, &ids, p, release_id.as_deref(), reason);
        }
        // A replacement the crash cut short: the instance its release does
        // not name (new and unchecked, or old and draining) is stopped.
        for (release_id, p) in &plan.replaced {
            if !matches!(p.verdict, Verdict::Adopt { .. }) {
                continue;
            }
            let rid = release_id.clone().unwrap_or_default();
            let base = plan.releases.iter().find(|r| r.id == rid);
            let ids = ReleaseIds {
                id: &rid,
                path: base.map_or("/", |r| r.path.as_str()),
                revision: base.map_or(rid.as_str(), |r| r.revision.as_str()),
                ports: &[],
            };
            let reason = "its replacement was cut short by the crash";
            self.adopt_and_stop(&config, &ids, p, release_id.as_deref(), reason);
        }
        let count = plan.adopted().len();
        self.record(Event::new(
            "orphans adopted",
            Data::new()
                .with("activeReleaseId", release_value(active.as_deref()))
                .with("count", count)
                .with("dropped", plan.dropped().len()),
        ));
        for id in draining {
            self.retire(id);
        }
        if let Some(c) = &plan.canary {
            self.adopt_canary(c);
        }
        self.resume_traffic();
    }

    /// The recorded canary is the canary again (status, refusals, promote,
    /// abort); the proxy takes its share once its health check passes
    /// ([`Core::resume_traffic`]). Promote adopts the daemon's current
    /// config: the one the canary was deployed with is not persisted.
    fn adopt_canary(&mut self, c: &adopt::CanaryRecord) {
        let Some(port) = self.proxied_port(&c.release_id) else {
            return;
        };
        let Ok(upstream) = crate::proxy::resolve(&self.config.proxy.upstream_host, port) else {
            return;
        };
        self.canary = Some(super::canary::CanaryOn {
            release_id: c.release_id.clone(),
            percent: c.percent,
            since: Some(c.since.clone())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(iso_now),
            config: Box::new(self.config.clone()),
            upstream,
        });
    }

    /// The port of release `id`'s proxied process.
    fn proxied_port(&self, id: &str) -> Option<u16> {
        let proxied = self.config.proxied()?;
        let release = self.state.releases.iter().find(|r| r.id == id)?;
        release
            .ports
            .iter()
            .find(|(p, _)| *p == proxied.id)
            .map(|(_, port)| *port)
    }

    /// Registers one recorded process and hands it its record; `None` when
    /// the config no longer defines it (a living one stays a report-only
    /// orphan then).
    /// Adopts a living process only to stop it (it is verified, so the
    /// signal reaches the right one) and records why.
    fn adopt_and_stop(
        &mut self,
        config: &Config,
        ids: &ReleaseIds,
        p: &ProcRecord,
        release_id: Option<&str>,
        reason: &str,
    ) {
        if let Some(key) = self.adopt_one(config, ids, p, release_id, false) {
            self.supervisor.remove(key);
            self.record(Event::new(
                "adopted process stopped",
                Data::new()
                    .with("pid", p.pid.unwrap_or(0))
                    .with("processId", p.id.as_str())
                    .with("reason", reason)
                    .with("releaseId", release_value(release_id)),
            ));
        }
    }

    fn adopt_one(
        &mut self,
        config: &Config,
        ids: &ReleaseIds,
        p: &ProcRecord,
        release_id: Option<&str>,
        gate: bool,
    ) -> Option<ProcKey> {
        let Some(spec) = spec_for(config, ids, &p.id, release_id) else {
            if let (Verdict::Adopt { .. }, Some(pid)) = (p.verdict, p.pid) {
                let orphan = Orphan {
                    id: p.id.clone(),
                    pid,
                    release_id: release_id.map(str::to_owned),
                    ..Orphan::default()
                };
                self.record(Event::new(
                    "orphaned managed process detected",
                    Data::new()
                        .with("pid", pid)
                        .with("processId", p.id.as_str())
                        .with("reason", "no longer in the config")
                        .with("releaseId", release_value(release_id)),
                ));
                self.orphans.push(orphan);
            }
            return None;
        };
        let key = self.supervisor.register(spec);
        self.supervisor.set_crash_gate(key, gate);
        let live = match (p.verdict, p.pid) {
            (Verdict::Adopt { root }, Some(pid)) => Some(LiveRun {
                pid: pid as i32,
                root,
            }),
            _ => None,
        };
        self.supervisor.adopt(
            key,
            Adoption {
                live,
                restarts: p.restarts,
                memory_restarts: p.memory_restarts,
                started_at: p.started_at.clone(),
                reason: p.last_start_reason,
                last_memory_restart_at: p.last_memory_restart_at.clone(),
                exited_unseen: gate && matches!(p.verdict, Verdict::Gone | Verdict::Reused),
            },
        );
        Some(key)
    }

    /// Health check of the active release's proxied process, then traffic.
    fn resume_traffic(&mut self) {
        let Some(active) = self.state.active_release_id.clone() else {
            return;
        };
        let Some(proxied) = self.config.proxied() else {
            return;
        };
        let Some(port) = self.proxied_port(&active) else {
            return;
        };
        let canary = self.canary.as_ref().map(|c| adopt::resume::CanaryShare {
            release_id: c.release_id.clone(),
            port: c.upstream.port(),
            percent: c.percent,
        });
        let resume = adopt::resume::Resume {
            release_id: active,
            port,
            canary,
            upstream_host: self.config.proxy.upstream_host.clone(),
            health: proxied.health.clone(),
            proxy: self.proxy.handle().clone(),
            core: self.tx.clone(),
        };
        self.op_busy = true;
        self.op_name = "health check of the adopted processes".into();
        adopt::resume::spawn(resume);
    }
}

/// The spec of instance `id` built from the current config.
fn spec_for(
    config: &Config,
    ids: &ReleaseIds,
    id: &str,
    release_id: Option<&str>,
) -> Option<ProcessSpec> {
    let base = id.split('#').next().unwrap_or(id);
    let cfg = config.process(base)?;
    let built = build::instance_specs(config, cfg, ids)
        .ok()
        .and_then(|specs| specs.into_iter().find(|s| s.id == id));
    Some(built.unwrap_or_else(|| {
        // Templates that no longer render: enough to stop and watch it.
        ProcessSpec::from_config(
            cfg,
            id.to_owned(),
            release_id.map(str::to_owned),
            String::new(),
            "/".into(),
            Vec::new(),
        )
    }))
}

/// Ports in config order (a hand-edited snapshot may list them otherwise).
fn config_order(config: &Config, ports: &[(String, u16)]) -> Vec<(String, u16)> {
    let mut out: Vec<(String, u16)> = config
        .processes
        .iter()
        .filter_map(|p| ports.iter().find(|(id, _)| *id == p.id).cloned())
        .collect();
    for p in ports {
        if !out.iter().any(|(id, _)| *id == p.0) {
            out.push(p.clone());
        }
    }
    out
}

fn release_value(id: Option<&str>) -> serde_json::Value {
    id.map(serde_json::Value::from).unwrap_or_default()
}
