//! The core loop: the single owner of daemon state (releases, services,
//! singletons, the event ring, the shutdown run). Everything reaches it as a
//! [`CoreMsg`] on one channel; it never blocks on a client, and its only
//! synchronous call is a supervisor snapshot, which that thread answers at
//! once. `status` therefore answers in microseconds whatever else runs.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::deploy::{self, DeployMsg, retire};
use super::liveness::DaemonLock;
use super::notify;
use super::ops;
use super::orphans::Orphan;
use super::persist::{self, PERSIST_EVERY, Persister};
use super::proxy_port::ProxyPort;
use super::state::{DaemonState, Named, Release, ReleaseState};
use super::status;
use crate::config::{Config, DeployStrategy, Policy};
use crate::control::fanout::{FanItem, Fanout};
use crate::control::protocol::{Reply, Request};
use crate::control::server::{ControlServer, Incoming, ReplyTo};
use crate::events::{Data, Event, EventRing};
use crate::log;
use crate::proxy::ProxyEvent;
use crate::runtime::RuntimeIdentity;
use crate::supervisor::{Notice, ProcKey, SupervisorHandle};
use crate::timefmt::iso_now;

mod admin;
mod adoption;
mod boot;
mod canary;
mod releases;
mod replacing;
mod upgrade;
mod upkeep;

pub use upgrade::DEFAULT_UPGRADE_TIMEOUT_MS;
pub use upkeep::Starting;
mod traffic;

pub enum CoreMsg {
    Control(Incoming),
    Supervisor(Notice),
    /// SIGTERM / SIGINT (shutdown) / SIGHUP (reopen the access log).
    Signal(i32),
    /// Shutdown step: control listener closed, socket unlinked (or error).
    ControlClosed(Option<String>),
    /// Shutdown step: every process stopped (`n` failed to stop).
    AllStopped(usize),
    /// A state file write finished (`Err`: it failed).
    Persisted(Result<(), String>),
    /// An event from an operation thread.
    Record(Event),
    /// The running mutating operation finished: start the next queued one.
    OpDone,
    /// From the proxy thread (drained releases, errors worth logging).
    Proxy(ProxyEvent),
    /// From a deploy/stop operation or a retirement thread.
    Deploy(DeployMsg),
    /// Shutdown step: the proxy finished its graceful stop.
    ProxyClosed,
    /// From the bootstrap/takeover activation thread.
    Boot(super::bootstrap::BootMsg),
    /// From a replacement of the proxied process.
    Replace(super::replace::ReplaceMsg),
    /// From the live health checks.
    Failing(super::replace::prober::Failing),
    /// `upgrade`: the new binary was probed.
    Upgrade(Box<upgrade::Probed>),
}

/// Exit notices forwarded to a running deploy (health-check fail-fast).
type ExitSender = Sender<(ProcKey, Option<i32>, Option<String>)>;

struct ShutdownRun {
    waiters: Vec<ReplyTo>,
    errors: Vec<String>,
    by_signal: bool,
}

pub struct Core {
    config: Config,
    events: EventRing,
    state: DaemonState,
    supervisor: SupervisorHandle,
    control: Option<ControlServer>,
    proxy: ProxyPort,
    tx: Sender<CoreMsg>,
    shutdown: Option<ShutdownRun>,
    orphans: Vec<Orphan>,
    persister: Option<Persister>,
    next_persist: Option<Instant>,
    runtime: Option<RuntimeIdentity>,
    /// A mutating operation (restart; deploy/stop/rollback next) runs.
    op_busy: bool,
    /// Which one (named when an upgrade is refused).
    op_name: String,
    /// The file the daemon was started from (the default for `upgrade`).
    started_from: String,
    op_queue: VecDeque<(Request, ReplyTo)>,
    /// The file the daemon was started with, reloaded before each deploy.
    config_path: Option<String>,
    op_exits: Option<ExitSender>,
    /// Retiring releases waiting for the proxy's "drained".
    drain_waiters: HashMap<String, Sender<()>>,
    /// Held for the daemon's life: "a daemon is alive" for other tools.
    lock: Option<DaemonLock>,
    /// The last state write failed (cleared by the next success).
    state_error: Option<String>,
    /// A deploy's release whose processes run but which is not active yet.
    starting: Option<Starting>,
    /// Device + inode of the control socket we bound (re-created if gone).
    control_ino: Option<(u64, u64)>,
    next_check: Option<Instant>,
    /// Live lines for `--follow` clients.
    fanout: Option<std::sync::Arc<Fanout>>,
    /// The `logs` source labels the followers last got.
    sources_sent: Vec<(ProcKey, String)>,
    /// When this daemon started (`daemon-info`).
    started: (String, Instant),
    /// `status.bootstrap` of a bootstrap start.
    bootstrap: Option<serde_json::Value>,
    /// Exit code that overrides the shutdown's (a failed bootstrap).
    forced_exit: Option<i32>,
    retiring: Option<boot::Retiring>,
    /// Maintenance and pause.
    traffic: traffic::Traffic,
    /// Deploy counts and the last push for the admin listener.
    admin: admin::AdminFeed,
    /// Replacements, live checks, automatic rollback.
    replacing: replacing::Replacing,
    /// The release started with `deploy --canary`, until promote/abort.
    canary: Option<canary::CanaryOn>,
}

impl Core {
    pub fn new(
        config: Config,
        events: EventRing,
        supervisor: SupervisorHandle,
        proxy: ProxyPort,
        tx: Sender<CoreMsg>,
        orphans: Vec<Orphan>,
    ) -> Core {
        Core {
            config,
            events,
            state: DaemonState::default(),
            supervisor,
            control: None,
            proxy,
            tx,
            shutdown: None,
            orphans,
            persister: None,
            next_persist: None,
            runtime: None,
            op_busy: false,
            op_name: String::new(),
            started_from: String::new(),
            op_queue: VecDeque::new(),
            config_path: None,
            op_exits: None,
            drain_waiters: HashMap::new(),
            lock: None,
            state_error: None,
            starting: None,
            control_ino: None,
            next_check: None,
            fanout: None,
            sources_sent: Vec::new(),
            started: (iso_now(), Instant::now()),
            bootstrap: None,
            forced_exit: None,
            retiring: None,
            traffic: traffic::Traffic::default(),
            admin: admin::AdminFeed::default(),
            replacing: replacing::Replacing::default(),
            canary: None,
        }
    }

    /// The config file to reload before each deploy.
    pub fn set_config_path(&mut self, path: Option<String>) {
        self.config_path = path;
    }

    /// The `daemonRuntime` status reports (absent when `None`).
    pub fn set_runtime(&mut self, runtime: Option<RuntimeIdentity>) {
        self.runtime = runtime;
    }

    /// Starts persistence (to `statePath`, or the default runtime record):
    /// first write now, then every [`PERSIST_EVERY`]. Call once the control
    /// socket is exposed.
    pub fn start_persistence(&mut self, state_path: &str) -> std::io::Result<()> {
        self.restore_maintenance(state_path);
        let tx = self.tx.clone();
        let persister = Persister::start(
            state_path.into(),
            Box::new(move |r| {
                let _ = tx.send(CoreMsg::Persisted(r));
            }),
        )?;
        self.persister = Some(persister);
        self.persist_now();
        Ok(())
    }

    /// Queues a state write (never while shutting down).
    pub fn persist_now(&mut self) {
        self.persist_with(None);
    }

    /// Queues a state write; `ack` hears its outcome (at once when there
    /// is nothing to write to).
    pub fn persist_with(&mut self, ack: Option<persist::Ack>) {
        if self.shutdown.is_some() || self.persister.is_none() {
            self.next_persist = None;
            if let Some(ack) = ack {
                let _ = ack.send(Ok(()));
            }
            return;
        }
        let status = self.status_core_json();
        let events =
            serde_json::to_string(&self.events.select(None)).unwrap_or_else(|_| "[]".into());
        let extra = self.persist_extra(&status);
        let content = persist::content(&status, &events, &iso_now(), &extra);
        if let Some(p) = self.persister.as_ref() {
            match ack {
                Some(ack) => p.write_acked(content, ack),
                None => p.write(content),
            }
        }
        self.next_persist = Some(Instant::now() + PERSIST_EVERY);
    }

    pub fn set_control(&mut self, control: ControlServer) {
        let fanout = control.fanout();
        self.supervisor.set_output_tap(fanout.clone());
        self.fanout = Some(fanout);
        self.control = Some(control);
        self.control_ino = self.control_socket_id();
    }

    /// Records an event: ring + stdout line (+ followers).
    pub fn record(&mut self, event: Event) {
        log::event(&event);
        self.count_deploy(&event.message);
        if let Some(f) = self.fanout.as_ref().filter(|f| f.active()) {
            f.publish(FanItem::Event(event.clone()));
        }
        self.events.push(event);
    }

    /// Followers label output lines by source (`release v1 (active)`,
    /// `service`, `singleton`): sends the labels when they changed.
    fn publish_sources(&mut self) {
        let Some(f) = self.fanout.as_ref().filter(|f| f.active()) else {
            return;
        };
        let mut list: Vec<(ProcKey, String)> = Vec::new();
        for r in &self.state.releases {
            let state = serde_json::to_value(r.state).unwrap_or_default();
            let label = format!("release {} ({})", r.id, state.as_str().unwrap_or(""));
            list.extend(r.processes.iter().map(|p| (p.key, label.clone())));
        }
        list.extend(
            self.state
                .services
                .iter()
                .map(|s| (s.key, "service".into())),
        );
        list.extend(
            self.state
                .singletons
                .iter()
                .map(|s| (s.key, "singleton".into())),
        );
        if list != self.sources_sent {
            f.publish(FanItem::Sources(list.clone()));
            self.sources_sent = list;
        }
    }

    /// `daemon-info`: who answers, since when.
    fn daemon_info(&self) -> String {
        serde_json::json!({
            "pid": std::process::id(),
            "version": env!("CARGO_PKG_VERSION"),
            "startedAt": self.started.0,
            "uptimeMs": self.started.1.elapsed().as_millis() as u64,
        })
        .to_string()
    }

    /// Runs until shutdown completes; returns the exit code.
    pub fn run(mut self, rx: Receiver<CoreMsg>) -> i32 {
        self.next_check = Some(Instant::now() + upkeep::CHECK_EVERY);
        loop {
            let wake = match (self.next_persist, self.next_check) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let msg = match wake {
                Some(at) => match rx.recv_timeout(at.saturating_duration_since(Instant::now())) {
                    Ok(m) => m,
                    Err(RecvTimeoutError::Timeout) => {
                        self.tick();
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => return 0,
                },
                None => match rx.recv() {
                    Ok(m) => m,
                    Err(_) => return 0,
                },
            };
            if let Some(code) = self.handle(msg) {
                return code;
            }
            self.publish_sources();
            self.publish_admin(false);
        }
    }

    fn handle(&mut self, msg: CoreMsg) -> Option<i32> {
        match msg {
            CoreMsg::Control(Incoming::Failed { error }) => {
                self.record(Event::new(
                    "command failed",
                    Data::new().with("error", error),
                ));
            }
            CoreMsg::Control(Incoming::Request { request, reply }) => self.request(request, reply),
            CoreMsg::Control(Incoming::ConnectionError { code, error }) => {
                let code = code.map(serde_json::Value::from).unwrap_or_default();
                self.record(Event::new(
                    "control connection error",
                    Data::new().with("code", code).with("error", error),
                ));
            }
            CoreMsg::Supervisor(Notice::Event(event)) => self.record(event),
            CoreMsg::Supervisor(Notice::Exited {
                key,
                requested,
                code,
                signal,
            }) => {
                if let (false, Some(tx)) = (requested, self.op_exits.as_ref()) {
                    let _ = tx.send((key, code, signal));
                }
            }
            CoreMsg::Supervisor(Notice::Replace { key }) => {
                self.replace_wanted(key, super::replace::Why::Memory)
            }
            CoreMsg::Supervisor(Notice::GaveUp { key }) => self.gave_up(key),
            CoreMsg::Replace(msg) => self.replace_msg(msg),
            CoreMsg::Failing(f) => self.failing(f),
            CoreMsg::Proxy(ProxyEvent::InstanceDrained { ticket, .. }) => {
                self.instance_drained(ticket)
            }
            CoreMsg::Proxy(ProxyEvent::Drained { release_id }) => {
                if let Some(tx) = self.drain_waiters.remove(&release_id) {
                    let _ = tx.send(());
                }
            }
            CoreMsg::Proxy(ProxyEvent::Error {
                release_id,
                message,
                ..
            }) => {
                let mut data = Data::new().with("error", message);
                if let Some(id) = release_id {
                    data = data.with("releaseId", id);
                }
                self.record(Event::new("proxy error", data));
            }
            CoreMsg::Proxy(ProxyEvent::ConnectionLimit {
                reached,
                max_connections,
            }) => {
                let message = if reached {
                    "proxy connection limit reached"
                } else {
                    "proxy connection limit cleared"
                };
                let data = Data::new().with("maxConnections", max_connections);
                self.record(Event::new(message, data));
            }
            CoreMsg::Deploy(msg) => self.deploy_msg(msg),
            CoreMsg::ProxyClosed => {
                let tx = self.tx.clone();
                self.supervisor.stop_all(Box::new(move |failed| {
                    let _ = tx.send(CoreMsg::AllStopped(failed));
                }));
            }
            CoreMsg::Signal(libc::SIGHUP) => self.reopen_logs(),
            CoreMsg::Signal(_) => self.begin_shutdown(None, true),
            CoreMsg::ControlClosed(error) => {
                self.hand_over();
                if let Some(run) = self.shutdown.as_mut() {
                    run.errors.extend(error);
                }
                // Stop accepting, let in-flight requests finish (bounded by
                // proxy.drainTimeoutMs) while their backends still run.
                let proxy = self.proxy.handle().clone();
                let tx = self.tx.clone();
                // Lame duck: keep serving while load balancers notice the
                // 503 of `/ready` (counted from the start of the shutdown).
                let delay = Duration::from_millis(self.config.proxy.shutdown_delay_ms);
                let until = self.admin.lame_duck_until(delay);
                std::thread::spawn(move || {
                    std::thread::sleep(until.saturating_duration_since(Instant::now()));
                    let _ = proxy.shutdown();
                    let _ = tx.send(CoreMsg::ProxyClosed);
                });
            }
            CoreMsg::AllStopped(failed) => {
                let code = self.finish_shutdown(failed);
                return Some(self.forced_exit.unwrap_or(code));
            }
            CoreMsg::Boot(msg) => self.boot_msg(msg),
            CoreMsg::Upgrade(probed) => self.upgrade_probed(*probed),
            CoreMsg::Record(event) => self.record(event),
            CoreMsg::OpDone => {
                self.op_busy = false;
                self.op_exits = None;
                if self.run_pending_replacement() {
                    return None;
                }
                if let Some((request, reply)) = self.op_queue.pop_front() {
                    self.request(request, reply);
                }
            }
            CoreMsg::Persisted(Ok(())) => {
                if self.state_error.take().is_some() {
                    self.record(Event::new("state persisted again", Data::new()));
                }
            }
            CoreMsg::Persisted(Err(error)) => {
                self.state_error = Some(error.clone());
                self.record(Event::new(
                    "state persist failed",
                    Data::new().with("error", error),
                ));
            }
        }
        None
    }

    fn request(&mut self, request: Request, reply: ReplyTo) {
        let result: Reply = match request {
            Request::Status => Ok(self.status_json()),
            Request::Events { limit } | Request::FollowEvents { limit } => {
                // Serialized straight from the structs: a serde_json Value
                // would sort the keys of each event's data.
                let events = self.events.select(limit);
                let list = serde_json::to_string(&events).unwrap_or_else(|_| "[]".into());
                Ok(format!(r#"{{"events":{list}}}"#))
            }
            Request::Logs { .. } => {
                // A new follower needs the labels even if nothing changed.
                self.sources_sent.clear();
                Ok(self.status_json())
            }
            Request::DaemonInfo => Ok(self.daemon_info()),
            Request::Shutdown => {
                self.begin_shutdown(Some(reply), false);
                return;
            }
            Request::RetireOwner { attestation } => {
                self.retire_owner(attestation, reply);
                return;
            }
            Request::Maintenance {
                enabled,
                message,
                retry_after,
            } => self.maintenance(enabled, message, retry_after),
            Request::Pause { timeout_ms } => self.pause(timeout_ms),
            Request::Resume => self.resume(),
            Request::Upgrade {
                binary,
                timeout_ms,
                progress,
            } => {
                self.upgrade(binary, timeout_ms, progress, reply);
                return;
            }
            Request::Deploy { .. } | Request::Rollback { .. } if self.shutdown.is_some() => {
                Err("Rollbridge is shutting down".into())
            }
            // Mutating operations run one at a time; later ones wait.
            request @ (Request::Restart { .. }
            | Request::Deploy { .. }
            | Request::Rollback { .. }
            | Request::Stop { .. }
            | Request::Promote { .. }
            | Request::Abort)
                if self.op_busy =>
            {
                self.op_queue.push_back((request, reply));
                return;
            }
            Request::Deploy {
                release_path,
                release_id,
                revision,
                progress,
                canary,
            } => {
                let request = deploy::Request {
                    release_path,
                    release_id,
                    revision,
                    canary,
                };
                let progress = progress.then(|| reply.progress());
                match self.start_deploy(request, false, reply, progress) {
                    Ok(()) => return,
                    Err((e, reply)) => {
                        self.fail(reply, e);
                        return;
                    }
                }
            }
            Request::Rollback {
                release_id,
                progress,
            } => {
                let progress = progress.then(|| reply.progress());
                let target = ops::rollback_target(&self.state, release_id.as_deref()).map(|r| {
                    deploy::Request {
                        release_path: r.path.clone(),
                        release_id: Some(r.id.clone()),
                        revision: Some(r.revision.clone()),
                        canary: None,
                    }
                });
                match target {
                    Ok(request) => match self.start_deploy(request, true, reply, progress) {
                        Ok(()) => return,
                        Err((e, reply)) => {
                            self.fail(reply, e);
                            return;
                        }
                    },
                    Err(e) => Err(e),
                }
            }
            Request::Stop { release_id } => {
                match ops::stop_target(&self.state, release_id.as_deref()).map(|r| r.id.clone()) {
                    Ok(id) => {
                        self.forget_canary(&id);
                        self.start_stop(id, reply);
                        return;
                    }
                    Err(e) => Err(e),
                }
            }
            Request::Promote { .. } if self.canary.is_none() => {
                Err(canary::NO_CANARY_PROMOTE.into())
            }
            Request::Promote { progress } => {
                let progress = progress.then(|| reply.progress());
                let request = self.canary_request();
                let plan = self.op_plan(request, false, progress);
                self.op_name = "promote".into();
                deploy::promote::spawn(plan, reply);
                return;
            }
            Request::Abort => self.abort_canary(),
            Request::Restart { process_id, policy } => {
                match ops::restart_targets(
                    &self.config,
                    &self.state,
                    process_id.as_deref(),
                    policy.as_deref(),
                ) {
                    Ok(targets) if targets.iter().any(|t| t.replace) => {
                        self.restart_proxied(&targets[0], reply);
                        return;
                    }
                    Ok(targets) => {
                        self.op_busy = true;
                        self.op_name = "restart".into();
                        ops::spawn_restart(
                            targets,
                            self.supervisor.clone(),
                            self.tx.clone(),
                            reply,
                        );
                        return;
                    }
                    Err(e) => Err(e),
                }
            }
        };
        if let Err(error) = &result {
            self.record(Event::new(
                "command failed",
                Data::new().with("error", error.as_str()),
            ));
        }
        reply.send(result);
    }

    /// Records `command failed` and answers with the error.
    fn fail(&mut self, reply: ReplyTo, error: String) {
        self.record(Event::new(
            "command failed",
            Data::new().with("error", error.as_str()),
        ));
        reply.send(Err(error));
    }

    /// The status object as compact JSON (without the `status` member),
    /// `stateError` appended after the contract's keys while state writes
    /// fail.
    pub fn status_json(&mut self) -> String {
        let json = self.status_core_json();
        match self.state_error.as_deref() {
            Some(e) => upkeep::append_key(json, "stateError", e),
            None => json,
        }
    }

    /// The contract's status object alone.
    fn status_core_json(&mut self) -> String {
        // Live connection counts from the proxy thread (one round trip).
        if let Ok(counts) = self.proxy.handle().counts() {
            for r in &mut self.state.releases {
                let c = counts.iter().find(|c| c.release_id == r.id);
                r.http = c.map_or(0, |c| c.http);
                r.websocket = c.map_or(0, |c| c.websocket);
            }
        }
        // Orphans: liveness re-checked on every call, dead ones dropped.
        self.orphans.retain(Orphan::alive);
        let keys = self.state.all_keys();
        let snaps = if keys.is_empty() {
            Vec::new()
        } else {
            self.supervisor.snapshot(keys)
        };
        let view = status::build(
            &self.config,
            status::ProxyLive {
                port: self.proxy.port(),
                load: self.proxy.handle().connections(),
            },
            &self.state,
            &self.orphans,
            self.runtime.as_ref(),
            snaps,
        );
        let mut view = status::StatusView {
            bootstrap: self.bootstrap.clone(),
            ..view
        };
        (view.maintenance, view.paused) = self.traffic_status();
        view.last_auto_rollback = self.last_auto_rollback();
        view.canary = self.canary_status();
        serde_json::to_string(&view).unwrap_or_else(|_| "{}".into())
    }

    /// SIGHUP: the access log is opened again (logrotate); never a
    /// shutdown.
    fn reopen_logs(&mut self) {
        let reopened = self.proxy.handle().reopen_access_log();
        let data = Data::new().with("accessLog", self.config.proxy.access_log.clone());
        let message = if reopened {
            "access log reopen requested"
        } else {
            "SIGHUP ignored: no proxy.accessLog configured"
        };
        self.record(Event::new(message, data));
    }

    /// Idempotent: later callers share the run and get the same reply.
    fn begin_shutdown(&mut self, requester: Option<ReplyTo>, by_signal: bool) {
        if let Some(run) = self.shutdown.as_mut() {
            run.waiters.extend(requester);
            return;
        }
        notify::stopping();
        self.admin.lame_duck_from = Some(Instant::now());
        let _ = self.proxy.handle().lame_duck();
        self.next_persist = None;
        self.next_check = None;
        let keep: Vec<u64> = requester.iter().map(ReplyTo::conn).collect();
        self.shutdown = Some(ShutdownRun {
            waiters: requester.into_iter().collect(),
            errors: Vec::new(),
            by_signal,
        });
        let tx = self.tx.clone();
        let done = Box::new(move |error: Option<String>| {
            let _ = tx.send(CoreMsg::ControlClosed(error));
        });
        match self.control.as_ref() {
            Some(control) => control.close(keep, done),
            None => done(None),
        }
    }

    fn finish_shutdown(&mut self, failed: usize) -> i32 {
        let Some(mut run) = self.shutdown.take() else {
            return 0;
        };
        if let Some(persister) = self.persister.take() {
            self.orphans.retain(Orphan::alive);
            let content = if self.orphans.is_empty() && self.traffic.maintenance.is_none() {
                None
            } else {
                let list = serde_json::to_string(&self.orphans).unwrap_or_else(|_| "[]".into());
                let kept = persist::orphans_only(&list);
                // Maintenance outlives the daemon: the next start reads it.
                if self.traffic.maintenance.is_some() {
                    let maintenance = self.traffic_status().0.to_string();
                    Some(persist::with_member(&kept, "maintenance", &maintenance))
                } else {
                    Some(kept)
                }
            };
            if let Err(e) = persister.finalize(content) {
                run.errors
                    .push(format!("persistent state cleanup failed: {e}"));
            }
        }
        if failed > 0 {
            let s = if failed == 1 { "" } else { "s" };
            run.errors.push(format!(
                "Shutdown failed to stop {failed} owned resource{s}."
            ));
        }
        let reply: Reply = if run.errors.is_empty() {
            Ok(r#"{"message":"shutdown"}"#.into())
        } else {
            Err(run.errors.join("; "))
        };
        for waiter in run.waiters {
            waiter.send(reply.clone());
        }
        if let Some(control) = self.control.take() {
            control.finish();
        }
        if run.errors.is_empty() || !run.by_signal {
            0
        } else {
            1
        }
    }
}
