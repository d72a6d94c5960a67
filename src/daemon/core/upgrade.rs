//! `upgrade` on the core: the checks, the probe of the new binary (on its
//! own thread), then the handover on the core thread: control socket,
//! proxy and supervisor freeze and export, the document goes into a memfd,
//! `execve`. If the exec fails everything thaws and the old program serves
//! on. The new program's side is [`Core::import_world`] (called by
//! `daemon::resume`).

use super::*;
use crate::control::server::Progress;
use crate::daemon::handover::doc::{
    CanaryDoc, CoreDoc, Listeners, NamedDoc, PausedDoc, ReleaseDoc,
};
use crate::daemon::handover::{self, Handover, fallback, fds, probe};
use crate::proxy::Maintenance as Page;

/// `upgrade --timeout-ms` default.
pub const DEFAULT_UPGRADE_TIMEOUT_MS: u64 = 10_000;
/// How long requests in flight get to finish before the handover.
const SETTLE: Duration = Duration::from_millis(1500);

/// The probe's verdict, back on the core thread.
pub struct Probed {
    binary: String,
    result: Result<String, String>,
    reply: ReplyTo,
    progress: Option<Progress>,
}

impl Core {
    /// The file the daemon was started from (the default new binary).
    pub fn set_started_from(&mut self, path: String) {
        self.started_from = path;
    }

    pub(super) fn upgrade(
        &mut self,
        binary: Option<String>,
        timeout_ms: Option<u64>,
        progress: bool,
        reply: ReplyTo,
    ) {
        if let Err(e) = self.may_upgrade() {
            self.fail(reply, e);
            return;
        }
        let binary = binary.unwrap_or_else(|| self.started_from.clone());
        let timeout = Duration::from_millis(timeout_ms.unwrap_or(DEFAULT_UPGRADE_TIMEOUT_MS));
        let progress = progress.then(|| reply.progress());
        self.op_busy = true;
        self.op_name = "upgrade".into();
        let tx = self.tx.clone();
        let spawned = std::thread::Builder::new()
            .name("op-upgrade".into())
            .spawn(move || {
                if let Some(p) = &progress {
                    p.say(&format!("checking the new binary {binary}"));
                }
                let result = probe::probe(&binary, timeout);
                let _ = tx.send(CoreMsg::Upgrade(Box::new(Probed {
                    binary,
                    result,
                    reply,
                    progress,
                })));
            });
        if let Err(e) = spawned {
            self.op_busy = false;
            self.record(Event::new(
                "command failed",
                Data::new().with("error", format!("cannot start the upgrade: {e}")),
            ));
        }
    }

    fn may_upgrade(&self) -> Result<(), String> {
        if self.shutdown.is_some() || self.retiring.is_some() {
            return Err("Rollbridge is shutting down".into());
        }
        if self.op_busy {
            return Err(format!(
                "Cannot upgrade while a {} is running; try again once it has finished.",
                self.op_name
            ));
        }
        if self.control.is_none() {
            return Err("Cannot upgrade while the daemon is still starting.".into());
        }
        if let Some(r) = self
            .state
            .releases
            .iter()
            .find(|r| r.state == ReleaseState::Draining)
        {
            return Err(format!(
                "Cannot upgrade while release {} is draining; try again once it has stopped.",
                r.id
            ));
        }
        let held = self.proxy.handle().held();
        if held > 0 {
            return Err(format!(
                "Cannot upgrade while {held} requests are held by pause; resume first."
            ));
        }
        Ok(())
    }

    pub(super) fn upgrade_probed(&mut self, p: Probed) {
        let Probed {
            binary,
            result,
            reply,
            progress,
        } = p;
        let outcome = match result {
            Ok(version) => {
                if let Some(pr) = &progress {
                    pr.say(&format!("handing over to rollbridge {version}"));
                }
                // Returns only when the program could not be replaced.
                self.replace_program(&binary, reply.conn())
            }
            Err(e) => Err(e),
        };
        if let Err(e) = outcome {
            self.fail(reply, format!("Upgrade failed: {e}"));
        }
        let _ = self.tx.send(CoreMsg::OpDone);
    }

    /// Freezes, exports and execs `binary`. Returns only on failure, with
    /// everything thawed.
    fn replace_program(&mut self, binary: &str, conn: u64) -> Result<(), String> {
        let core = self.export_core();
        let Some(control) = self.control.as_ref() else {
            return Err("the control socket is closed".into());
        };
        notify::reloading();
        let control_parts = control.freeze(conn)?;
        let proxy = match self.proxy.handle().freeze(SETTLE) {
            Ok(p) => p,
            Err(e) => {
                control.thaw();
                notify::ready();
                return Err(format!("cannot freeze the proxy: {e}"));
            }
        };
        let supervisor = match self.supervisor.freeze() {
            Ok(s) => s,
            Err(e) => {
                proxy.thaw();
                control.thaw();
                notify::ready();
                return Err(e);
            }
        };
        let lock = self
            .lock
            .as_ref()
            .and_then(|l| crate::inherit::inheritable(l.raw_fd()).ok());
        let listeners = Listeners {
            proxy: fds::num(&proxy.parts.listener),
            admin: proxy.parts.admin.as_ref().map(fds::num),
            control: fds::num(&control_parts.listener),
            lock: lock.as_ref().map(fds::num),
        };
        let mut doc = Handover::empty(core, listeners);
        doc.started_from = binary.to_owned();
        doc.reply_fd = control_parts.conn.as_ref().map(fds::num);
        doc.pid_file = handover::pid_file();
        doc.notify_socket = notify::captured();
        doc.next_key = self.supervisor.next_key();
        doc.processes = supervisor.procs.clone();
        doc.connections = proxy.parts.conns.clone();
        doc.proxy_active = proxy.parts.active.clone();
        let result = fds::write_document(&doc.encode())
            .map_err(|e| format!("cannot write the handover document: {e}"))
            .and_then(|memfd| {
                let mut env: Vec<(String, String)> = std::env::vars()
                    .filter(|(k, _)| k != handover::HANDOVER_FD_ENV)
                    .collect();
                env.push((
                    handover::HANDOVER_FD_ENV.into(),
                    fds::num(&memfd).to_string(),
                ));
                // The new program's way back to this one.
                let own = fallback::own_binary().ok();
                env.retain(|(k, _)| k != fallback::FROM_ENV && k != fallback::FAILED_ENV);
                if let Some(exe) = &own {
                    env.push((
                        fallback::FROM_ENV.into(),
                        fallback::from_value(fds::num(exe), fds::num(&memfd)),
                    ));
                }
                let argv: Vec<String> = std::env::args().collect();
                log::flush(Duration::from_secs(1));
                let e = fds::exec(binary, &argv, &env);
                drop(memfd);
                Err(format!("cannot run the new binary {binary}: {e}"))
            });
        // Still here: the exec failed. Carry on as before.
        drop(lock);
        supervisor.thaw();
        proxy.thaw();
        control.thaw();
        notify::ready();
        result
    }

    fn export_core(&mut self) -> CoreDoc {
        let named = |v: &[Named]| -> Vec<NamedDoc> {
            v.iter()
                .map(|n| NamedDoc {
                    id: n.id.clone(),
                    key: n.key,
                })
                .collect()
        };
        let releases = self
            .state
            .releases
            .iter()
            .map(|r| ReleaseDoc {
                id: r.id.clone(),
                path: r.path.clone(),
                revision: r.revision.clone(),
                state: r.state,
                activated_at: r.activated_at.clone(),
                drain_started_at: r.drain_started_at.clone(),
                stopped_at: r.stopped_at.clone(),
                ports: r.ports.clone(),
                processes: named(&r.processes),
            })
            .collect();
        let (maintenance, _) = self.traffic_status();
        let (last_auto_rollback, rollback_window, rolling_back_to) = self.export_rollback();
        CoreDoc {
            started_at: self.started.0.clone(),
            uptime_ms: self.started.1.elapsed().as_millis() as u64,
            active_release_id: self.state.active_release_id.clone(),
            releases,
            services: named(&self.state.services),
            service_ports: self.state.service_ports.clone(),
            singletons: named(&self.state.singletons),
            events: self.events.select(None).into_iter().cloned().collect(),
            maintenance,
            paused: self.traffic.paused.as_ref().map(|p| PausedDoc {
                since: p.since.clone(),
                timeout_ms: p.timeout_ms,
            }),
            deploys_success: self.admin.deploys_success,
            deploys_failure: self.admin.deploys_failure,
            bootstrap: self.bootstrap.clone(),
            canary: self.canary.as_ref().map(|c| CanaryDoc {
                release_id: c.release_id.clone(),
                percent: c.percent,
                since: c.since.clone(),
                upstream: c.upstream.to_string(),
            }),
            last_auto_rollback,
            rollback_window,
            rolling_back_to,
        }
    }

    /// The new program takes over the world the previous one described:
    /// releases, services, singletons, events, maintenance and pause,
    /// counters, start time.
    pub fn import_world(&mut self, doc: CoreDoc) {
        let named = |v: Vec<NamedDoc>| -> Vec<Named> {
            v.into_iter()
                .map(|n| Named {
                    id: n.id,
                    key: n.key,
                })
                .collect()
        };
        self.state.active_release_id = doc.active_release_id;
        self.state.releases = doc
            .releases
            .into_iter()
            .map(|r| Release {
                id: r.id,
                path: r.path,
                revision: r.revision,
                state: r.state,
                activated_at: r.activated_at,
                drain_started_at: r.drain_started_at,
                stopped_at: r.stopped_at,
                ports: r.ports,
                processes: named(r.processes),
                http: 0,
                websocket: 0,
            })
            .collect();
        self.state.services = named(doc.services);
        self.state.service_ports = doc.service_ports;
        self.state.singletons = named(doc.singletons);
        for e in doc.events {
            self.events.push(e);
        }
        let age = Duration::from_millis(doc.uptime_ms);
        let now = Instant::now();
        self.started = (doc.started_at, now.checked_sub(age).unwrap_or(now));
        self.admin.deploys_success = doc.deploys_success;
        self.admin.deploys_failure = doc.deploys_failure;
        self.bootstrap = doc.bootstrap;
        // The proxy got the canary route from the document before its loop
        // started; the config a promote adopts is the one re-read here.
        self.canary = doc.canary.and_then(|c| {
            Some(canary::CanaryOn {
                upstream: c.upstream.parse().ok()?,
                release_id: c.release_id,
                percent: c.percent,
                since: c.since,
                config: Box::new(self.config.clone()),
            })
        });
        self.import_rollback(
            doc.last_auto_rollback,
            doc.rollback_window,
            doc.rolling_back_to,
        );
        if let Some(on) = traffic::MaintenanceOn::from_json(&doc.maintenance) {
            let page = Page {
                message: on.message.clone(),
                retry_after: on.retry_after,
            };
            if self.proxy.handle().set_maintenance(Some(page)).is_ok() {
                self.traffic.maintenance = Some(on);
            }
        }
        if let Some(p) = doc.paused {
            if self
                .proxy
                .handle()
                .pause(Duration::from_millis(p.timeout_ms))
                .is_ok()
            {
                self.traffic.paused = Some(traffic::PausedSince {
                    since: p.since,
                    timeout_ms: p.timeout_ms,
                });
            }
        }
    }
}
