//! `deploy` (and the deploy half of `rollback`) on an operation thread.
//! The thread does the slow steps — config reload,
//! port probes, spawns, the health check, singleton replacement — and asks
//! the core, by message, for every change to daemon state. So `status`
//! answers at once throughout, and the core stays the only owner.

pub mod build;
pub mod companions;
pub(crate) mod health_wait;
pub mod promote;
pub mod retire;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, bounded};

use super::core::CoreMsg;
use super::state::{Named, Release, ReleaseState};
use crate::config::{Config, DeployStrategy, Policy, ProcessConfig};
use crate::control::server::{Progress, ReplyTo};
use crate::events::{Data, Event};
use crate::release::{compat, ports};
use crate::supervisor::{ProcKey, ProcessStatus, StartReason, SupervisorHandle};
use build::ReleaseIds;

/// What the op thread asks the core to do.
pub enum DeployMsg {
    /// A persistent service this deploy started.
    ServiceStarted {
        id: String,
        key: ProcKey,
        port: Option<u16>,
    },
    /// A service this deploy started was rolled back.
    ServiceRemoved {
        id: String,
    },
    /// Switch traffic: adopt `config`, make `release` active. The reply is
    /// the previous active release id, or the reason it could not switch.
    Activate {
        release: Box<Release>,
        config: Box<Config>,
        upstream: SocketAddr,
        reply: Sender<Result<Option<String>, String>>,
    },
    /// Start `release` as the canary taking `percent` % of new clients;
    /// `config` is adopted only on promote. The reply is the active
    /// release id, or the reason it could not start.
    Canary {
        release: Box<Release>,
        config: Box<Config>,
        upstream: SocketAddr,
        percent: u8,
        reply: Sender<Result<String, String>>,
    },
    /// Make the canary the active release. The reply: the switch done
    /// (previous active id, the canary's release and config), or why not.
    Promote {
        reply: Sender<Result<promote::Switched, String>>,
    },
    SingletonReplaced {
        id: String,
        key: ProcKey,
    },
    /// Retire (drain, then stop) a release in the background.
    Retire {
        release_id: String,
    },
    /// A release was stopped without a drain (`stop`, rollback target).
    /// `status` (the reply to `stop`) is sent on `status` when given.
    Stopped {
        release_id: String,
        keys: Vec<ProcKey>,
        status: Option<Sender<String>>,
        event: bool,
    },
    /// A retirement finished (`error`: some process did not stop).
    /// `keys` identify the incarnation: a release re-activated under the
    /// same id meanwhile (rollback) has other keys and is left alone.
    Retired {
        release_id: String,
        keys: Vec<ProcKey>,
        error: Option<String>,
    },
    /// Close every proxied connection of a release now.
    ForceClose {
        release_id: String,
    },
    /// Write the state file now; `ack` hears the outcome.
    Persist {
        ack: Option<crate::daemon::persist::Ack>,
    },
    /// Write-ahead: these processes of `release_id` run (not active yet);
    /// record them durably before anything else. `ack`: on disk (or why
    /// not).
    WriteAhead {
        release_id: String,
        processes: Vec<Named>,
        ack: crate::daemon::persist::Ack,
    },
    /// The starting release's processes were stopped (deploy failed).
    StartingCleared,
}

/// The identity a deploy was asked for.
#[derive(Debug, Clone)]
pub struct Request {
    pub release_path: String,
    pub release_id: Option<String>,
    pub revision: Option<String>,
    /// `--canary P`: start as the canary instead of switching.
    pub canary: Option<u8>,
}

/// A retained release that must stop before the deploy (a rollback target
/// or a re-deployed id still draining).
pub struct PreStop {
    pub release_id: String,
    pub keys: Vec<ProcKey>,
}

/// Everything the op thread needs, copied out of the core at request time.
pub struct Plan {
    pub request: Request,
    /// Set for `rollback`: event `rollback starting` first.
    pub rollback: bool,
    pub pre_stop: Option<PreStop>,
    pub config_path: Option<String>,
    pub adopted: Config,
    /// Running persistent services: id, key, stable port.
    pub services: Vec<(String, ProcKey, Option<u16>)>,
    pub singletons: Vec<Named>,
    /// Ports of releases still starting, active or draining: never reused.
    pub held_ports: HashSet<u16>,
    pub supervisor: SupervisorHandle,
    pub core: Sender<CoreMsg>,
    /// Exits of managed processes while this deploy runs (health fail-fast).
    pub exits: Receiver<(ProcKey, Option<i32>, Option<String>)>,
    /// Progress lines for a client that asked for them.
    pub progress: Option<Progress>,
    /// Connection counts of the release being drained.
    pub proxy: crate::proxy::ProxyHandle,
}

impl Plan {
    /// One progress line (only when the client asked for them).
    fn say(&self, text: impl FnOnce() -> String) {
        if let Some(p) = &self.progress {
            p.say(&text());
        }
    }
}

/// Runs the deploy on its own thread (the op slot's), then replies.
pub fn spawn(plan: Plan, reply: ReplyTo) {
    let core = plan.core.clone();
    crate::daemon::ops::spawn_op("deploy", core, reply, move || run(&plan).map(Outcome::json));
}

fn record(core: &Sender<CoreMsg>, message: &str, data: Data) {
    let _ = core.send(CoreMsg::Record(Event::new(message, data)));
}

fn send(core: &Sender<CoreMsg>, msg: DeployMsg) {
    let _ = core.send(CoreMsg::Deploy(msg));
}

/// What a deploy has started so far (undone on failure).
#[derive(Default)]
struct Started {
    services: Vec<(String, ProcKey)>,
    processes: Vec<Named>,
}

/// How long a deploy waits for a state write to reach the disk.
const STATE_WRITE_WAIT: Duration = Duration::from_secs(10);

/// Sends `msg` built around an ack channel and waits for the outcome.
fn persist_wait(
    core: &Sender<CoreMsg>,
    msg: impl FnOnce(crate::daemon::persist::Ack) -> DeployMsg,
) -> Result<(), String> {
    let (tx, rx) = bounded(1);
    send(core, msg(tx));
    match rx.recv_timeout(STATE_WRITE_WAIT) {
        Ok(r) => r,
        Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
            Err("the state write did not finish within 10 s".into())
        }
        Err(_) => Err("Rollbridge is shutting down".into()),
    }
}

/// Write-ahead record of what this deploy has started so far. A failure
/// does not stop the deploy; it is reported with the result.
fn write_ahead(
    core: &Sender<CoreMsg>,
    release_id: &str,
    started: &Started,
    errors: &mut Option<String>,
) {
    let result = persist_wait(core, |ack| DeployMsg::WriteAhead {
        release_id: release_id.to_owned(),
        processes: started.processes.clone(),
        ack,
    });
    if let Err(e) = result {
        *errors = Some(e);
    }
}

/// What a deploy (or promote) answers.
pub struct Outcome {
    pub active: String,
    pub previous: Option<String>,
    /// `deploy --canary`: the canary started.
    pub canary: Option<String>,
    pub state_error: Option<String>,
}

impl Outcome {
    fn json(self) -> String {
        let mut out =
            serde_json::json!({"activeReleaseId": self.active, "previousReleaseId": self.previous});
        if let Some(c) = self.canary {
            out["canaryReleaseId"] = c.into();
        }
        if let Some(e) = self.state_error {
            out["stateError"] = e.into();
        }
        out.to_string()
    }
}

fn run(plan: &Plan) -> Result<Outcome, String> {
    let core = &plan.core;
    if let Some(pre) = &plan.pre_stop {
        send(
            core,
            DeployMsg::ForceClose {
                release_id: pre.release_id.clone(),
            },
        );
        stop_parallel(&plan.supervisor, &pre.keys);
        send(
            core,
            DeployMsg::Stopped {
                release_id: pre.release_id.clone(),
                keys: pre.keys.clone(),
                status: None,
                event: false,
            },
        );
    }
    let config = reload(plan)?;
    let req = &plan.request;
    let release_id = req
        .release_id
        .clone()
        .or_else(|| req.revision.clone())
        .unwrap_or_else(|| crate::timefmt::compact(crate::timefmt::now_ms()));
    let revision = req.revision.clone().unwrap_or_else(|| release_id.clone());
    if plan.rollback {
        record(
            core,
            "rollback starting",
            Data::new()
                .with("releaseId", release_id.as_str())
                .with("releasePath", req.release_path.as_str()),
        );
    }
    let mut data = Data::new()
        .with("releaseId", release_id.as_str())
        .with("releasePath", req.release_path.as_str());
    if let Some(r) = &req.revision {
        data = data.with("revision", r.as_str());
    }
    record(core, "deploy starting", data);

    let mut started = Started::default();
    let mut state_error: Option<String> = None;
    let fail_services = |started: &Started, error: String| -> String {
        record(
            core,
            "deploy failed",
            Data::new()
                .with("error", error.as_str())
                .with("releaseId", release_id.as_str()),
        );
        for (id, key) in started.services.iter().rev() {
            plan.supervisor.set_crash_gate(*key, false);
            let _ = plan.supervisor.stop_wait(*key);
            plan.supervisor.remove(*key);
            send(core, DeployMsg::ServiceRemoved { id: id.clone() });
        }
        error
    };

    // Ports, then services (daemon-wide, started once).
    let ports = allocate_ports(plan, &config).map_err(|e| fail_services(&started, e))?;
    let ids = ReleaseIds {
        id: &release_id,
        path: &req.release_path,
        revision: &revision,
        ports: &ports,
    };
    for cfg in config.processes.iter().filter(|p| is_persistent_service(p)) {
        if plan.services.iter().any(|(id, _, _)| *id == cfg.id) {
            continue;
        }
        let key = start_instances(plan, &config, cfg, &ids)
            .map_err(|e| fail_services(&started, e))?
            .into_iter()
            .next();
        if let Some(named) = key {
            started.services.push((cfg.id.clone(), named.key));
            let port = ports.iter().find(|(id, _)| *id == cfg.id).map(|(_, p)| *p);
            send(
                core,
                DeployMsg::ServiceStarted {
                    id: cfg.id.clone(),
                    key: named.key,
                    port,
                },
            );
            write_ahead(core, &release_id, &started, &mut state_error);
        }
    }

    // Release processes: handoff services, companions, then the proxied one.
    let fail_release = |started: &Started, error: String| -> String {
        release_failed(plan, &release_id, &started.processes, &error);
        send(core, DeployMsg::StartingCleared);
        fail_services(started, error)
    };
    let groups: [fn(&ProcessConfig) -> bool; 3] = [
        |p: &ProcessConfig| {
            p.policy == Policy::Service && p.deploy_strategy == DeployStrategy::Handoff
        },
        |p: &ProcessConfig| p.policy == Policy::Companion,
        |p: &ProcessConfig| p.policy == Policy::Proxied,
    ];
    for group in groups {
        for cfg in config.processes.iter().filter(|p| group(p)) {
            match start_instances(plan, &config, cfg, &ids) {
                Ok(list) => started.processes.extend(list),
                Err(e) => return Err(fail_release(&started, e)),
            }
            write_ahead(core, &release_id, &started, &mut state_error);
        }
    }
    let Some(proxied) = config.proxied() else {
        return Err(fail_release(
            &started,
            "Config must define exactly one proxied process".into(),
        ));
    };
    let proxied_key = started
        .processes
        .iter()
        .find(|p| p.id == proxied.id)
        .map(|p| p.key);
    let Some(port) = ports
        .iter()
        .find(|(id, _)| *id == proxied.id)
        .map(|(_, p)| *p)
    else {
        return Err(fail_release(
            &started,
            format!("Proxied process {} must define a port range", proxied.id),
        ));
    };
    let mut seen = companions::SeenExits::new();
    if let (Some(hc), Some(key)) = (proxied.health.as_ref(), proxied_key) {
        if let Err(e) = health_wait::health_check(
            &plan.waiter(),
            &config,
            hc,
            port,
            key,
            &proxied.id,
            &mut seen,
        ) {
            return Err(fail_release(&started, e));
        }
    }
    // Companions and handoff services must still be on their first run.
    let others: Vec<Named> = started
        .processes
        .iter()
        .filter(|p| p.id != proxied.id)
        .cloned()
        .collect();
    let settle = companions::settle_window(proxied.health.as_ref());
    if let Err(e) = companions::check(&plan.supervisor, &others, settle, &plan.exits, &mut seen) {
        return Err(fail_release(&started, e));
    }

    // Switch traffic.
    let upstream = crate::proxy::resolve(&config.proxy.upstream_host, port).map_err(|e| {
        fail_release(
            &started,
            format!("Cannot resolve {}: {e}", config.proxy.upstream_host),
        )
    })?;
    let release = Release {
        id: release_id.clone(),
        path: req.release_path.clone(),
        revision: revision.clone(),
        state: if req.canary.is_some() {
            ReleaseState::Canary
        } else {
            ReleaseState::Active
        },
        activated_at: req
            .canary
            .is_none()
            .then(|| crate::timefmt::iso(crate::timefmt::now_ms())),
        drain_started_at: None,
        stopped_at: None,
        ports: ports.clone(),
        processes: started.processes.clone(),
        http: 0,
        websocket: 0,
    };
    if let Some(percent) = req.canary {
        let (tx, rx) = bounded(1);
        send(
            core,
            DeployMsg::Canary {
                release: Box::new(release),
                config: Box::new(config),
                upstream,
                percent,
                reply: tx,
            },
        );
        let active = match rx.recv() {
            Ok(Ok(active)) => active,
            Ok(Err(e)) => return Err(fail_release(&started, e)),
            Err(_) => return Err(fail_release(&started, "Rollbridge is shutting down".into())),
        };
        plan.say(|| {
            format!("canary {release_id} takes {percent}% of new clients ({active} stays active)")
        });
        if let Err(e) = persist_wait(core, |ack| DeployMsg::Persist { ack: Some(ack) }) {
            state_error = Some(e);
        }
        plan.say(|| "done".into());
        return Ok(Outcome {
            active,
            previous: None,
            canary: Some(release_id),
            state_error,
        });
    }
    let (tx, rx) = bounded(1);
    send(
        core,
        DeployMsg::Activate {
            release: Box::new(release),
            config: Box::new(config.clone()),
            upstream,
            reply: tx,
        },
    );
    let previous = match rx.recv() {
        Ok(Ok(previous)) => previous,
        Ok(Err(e)) => return Err(fail_release(&started, e)),
        Err(_) => return Err(fail_release(&started, "Rollbridge is shutting down".into())),
    };
    let services: Vec<(String, ProcKey, Option<u16>)> = plan
        .services
        .iter()
        .cloned()
        .chain(
            started
                .services
                .iter()
                .map(|(id, k)| (id.clone(), *k, None)),
        )
        .collect();
    let mut outcome = after_switch(plan, &config, &ids, &services, previous)?;
    outcome.state_error = outcome.state_error.or(state_error);
    Ok(outcome)
}

/// After traffic moved to `ids.id`: service definitions follow it,
/// singletons swap, the previous release drains, the state is written.
fn after_switch(
    plan: &Plan,
    config: &Config,
    ids: &ReleaseIds,
    services: &[(String, ProcKey, Option<u16>)],
    previous: Option<String>,
) -> Result<Outcome, String> {
    let core = &plan.core;
    let release_id = ids.id.to_owned();
    let mut state_error = None;
    plan.say(|| match &previous {
        Some(p) => format!("traffic switched to {release_id} (from {p})"),
        None => format!("traffic switched to {release_id}"),
    });
    if let Some(p) = previous.as_deref().filter(|p| *p != release_id) {
        plan.say(|| drain_counts(&plan.proxy, p));
    }

    // Service definitions follow the newest release (running ones untouched).
    for (id, key, _) in services {
        if let Some(cfg) = config.process(id) {
            if let Ok(mut specs) = build::instance_specs(config, cfg, ids) {
                if let Some(spec) = specs.pop() {
                    plan.supervisor.update(*key, spec);
                }
            }
        }
    }

    // Singletons: stop the old copy fully, then start the new one.
    let mut singleton_error = None;
    for cfg in config
        .processes
        .iter()
        .filter(|p| p.policy == Policy::Singleton)
    {
        if let Some(old) = plan.singletons.iter().find(|s| s.id == cfg.id) {
            plan.supervisor.set_crash_gate(old.key, false);
            let _ = plan.supervisor.stop_wait(old.key);
            plan.supervisor.remove(old.key);
        }
        match start_instances(plan, config, cfg, ids) {
            Ok(list) => {
                for n in list {
                    send(
                        core,
                        DeployMsg::SingletonReplaced {
                            id: n.id,
                            key: n.key,
                        },
                    );
                }
            }
            Err(e) => {
                singleton_error = Some(e);
                break;
            }
        }
    }

    // Traffic already moved: the previous release drains in any case.
    if let Some(prev) = &previous {
        if *prev != release_id {
            send(
                core,
                DeployMsg::Retire {
                    release_id: prev.clone(),
                },
            );
        }
    }
    if let Err(e) = persist_wait(core, |ack| DeployMsg::Persist { ack: Some(ack) }) {
        state_error = Some(e);
    }
    if singleton_error.is_none() {
        plan.say(|| "done".into());
    }
    match singleton_error {
        Some(e) => Err(e),
        None => Ok(Outcome {
            active: release_id,
            previous,
            canary: None,
            state_error,
        }),
    }
}

/// `draining v1: 3 http, 1 websocket connection(s) open`.
fn drain_counts(proxy: &crate::proxy::ProxyHandle, release_id: &str) -> String {
    let counts = proxy.counts().unwrap_or_default();
    let c = counts.iter().find(|c| c.release_id == release_id);
    let (http, ws) = c.map_or((0, 0), |c| (c.http, c.websocket));
    format!("draining {release_id}: {http} http, {ws} websocket connection(s) open")
}

fn is_persistent_service(p: &ProcessConfig) -> bool {
    p.policy == Policy::Service && p.deploy_strategy == DeployStrategy::Persistent
}

/// Re-reads the daemon's config file and refuses changes that need a
/// restart.
fn reload(plan: &Plan) -> Result<Config, String> {
    let Some(path) = plan.config_path.as_deref() else {
        return Ok(plan.adopted.clone());
    };
    let loaded = crate::config::load(Some(path))?;
    let changes = compat::incompatible_changes(&plan.adopted, &loaded.config);
    if !changes.is_empty() {
        return Err(compat::message(&changes));
    }
    Ok(loaded.config)
}

/// One port per ported process, config order. Running persistent services
/// keep theirs; ports of live releases are never handed out again.
fn allocate_ports(plan: &Plan, config: &Config) -> Result<Vec<(String, u16)>, String> {
    let mut reserved = HashSet::new();
    let mut out = Vec::new();
    let held = &plan.held_ports;
    let mut probe = |host: &str, port: u16| {
        if port != 0 && held.contains(&port) {
            ports::Probe::InUse
        } else {
            ports::probe(host, port)
        }
    };
    for cfg in &config.processes {
        let Some(range) = cfg.port else { continue };
        if is_persistent_service(cfg) {
            if let Some(port) = plan
                .services
                .iter()
                .find(|(id, _, _)| *id == cfg.id)
                .and_then(|(_, _, p)| *p)
            {
                reserved.insert(port);
                out.push((cfg.id.clone(), port));
                continue;
            }
        }
        let port = ports::allocate(
            range,
            &config.proxy.upstream_host,
            &mut reserved,
            &mut probe,
        )?;
        out.push((cfg.id.clone(), port));
    }
    Ok(out)
}

/// Renders, registers and spawns every instance of `cfg`; waits only for
/// the spawn. A failed spawn forgets its registration.
fn start_instances(
    plan: &Plan,
    config: &Config,
    cfg: &ProcessConfig,
    ids: &ReleaseIds,
) -> Result<Vec<Named>, String> {
    let specs = build::instance_specs(config, cfg, ids)?;
    let mut out: Vec<Named> = Vec::with_capacity(specs.len());
    for spec in specs {
        let id = spec.id.clone();
        let key = plan.supervisor.register(spec);
        plan.supervisor.set_crash_gate(key, true);
        let started = plan.supervisor.start_wait(key, StartReason::Deploy);
        if let Err(e) = started {
            plan.supervisor.set_crash_gate(key, false);
            plan.supervisor.remove(key);
            // Earlier instances of this process are not in the caller's
            // list yet: undo them here.
            for n in &out {
                let _ = plan.supervisor.stop_wait(n.key);
                plan.supervisor.remove(n.key);
            }
            return Err(e);
        }
        if let Ok(pid) = started {
            plan.say(|| format!("started {id} (pid {pid})"));
        }
        out.push(Named { id, key });
    }
    Ok(out)
}

/// `release startup failed` before and after stopping the release's
/// processes, with one `release startup process status` per process.
fn release_failed(plan: &Plan, release_id: &str, processes: &[Named], error: &str) {
    let core = &plan.core;
    let report = |phase: &str| {
        record(
            core,
            "release startup failed",
            Data::new()
                .with("error", error)
                .with("phase", phase)
                .with("releaseId", release_id),
        );
        let keys: Vec<ProcKey> = processes.iter().map(|p| p.key).collect();
        let snaps = if keys.is_empty() {
            Vec::new()
        } else {
            plan.supervisor.snapshot(keys)
        };
        for (named, snap) in processes.iter().zip(snaps) {
            record(
                core,
                "release startup process status",
                process_status_data(named, snap, phase, release_id),
            );
        }
    };
    report("before cleanup");
    for p in processes {
        plan.supervisor.set_crash_gate(p.key, false);
    }
    let keys: Vec<ProcKey> = processes.iter().map(|p| p.key).collect();
    stop_parallel(&plan.supervisor, &keys);
    report("after cleanup");
    for k in keys {
        plan.supervisor.remove(k);
    }
}

fn process_status_data(
    named: &Named,
    snap: Option<ProcessStatus>,
    phase: &str,
    release_id: &str,
) -> Data {
    use serde_json::Value;
    let (command, code, signal, logs, pid, state) = match snap {
        Some(s) => (
            Value::from(s.command),
            s.exit_code
                .flatten()
                .map(Value::from)
                .unwrap_or(Value::Null),
            s.exit_signal
                .flatten()
                .map(Value::from)
                .unwrap_or(Value::Null),
            serde_json::to_value(&s.logs).unwrap_or(Value::Null),
            s.pid.map(Value::from).unwrap_or(Value::Null),
            Value::from(s.state.as_str()),
        ),
        None => (
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Array(vec![]),
            Value::Null,
            Value::Null,
        ),
    };
    Data::new()
        .with("command", command)
        .with("exitCode", code)
        .with("exitSignal", signal)
        .with("logs", logs)
        .with("phase", phase)
        .with("pid", pid)
        .with("processId", named.id.as_str())
        .with("releaseId", release_id)
        .with("state", state)
}

/// Stops every key at once; returns when all groups are gone.
pub fn stop_parallel(supervisor: &SupervisorHandle, keys: &[ProcKey]) -> usize {
    let (tx, rx) = crossbeam_channel::unbounded();
    for &key in keys {
        supervisor.set_crash_gate(key, false);
        let tx = tx.clone();
        supervisor.stop(
            key,
            Box::new(move |r: Result<(), String>| {
                let _ = tx.send(r.is_ok());
            }),
        );
    }
    drop(tx);
    let mut failed = 0;
    for _ in keys {
        match rx.recv_timeout(Duration::from_secs(24 * 3600)) {
            Ok(true) => {}
            _ => failed += 1,
        }
    }
    failed
}
