//! Zero-downtime replacement of the active release's proxied process: a
//! second instance on a free port of the release's range, health-checked,
//! then the proxy's upstream for the release switches to it and the old
//! instance drains (requests and tunnels, up to `drainTimeoutMs`, Close
//! 1001 at the deadline) before it stops. Triggered by a memory breach, by
//! `restart` of the proxied process, and by failing live health checks
//! ([`watch`], [`prober`]). A failed replacement leaves the old instance
//! serving.
//!
//! The job runs on the op slot up to the switch (so no deploy interleaves
//! with it); the drain and the stop run on a thread of their own, as a
//! retirement does. The core applies every state change
//! ([`ReplaceMsg`], `core/replacing.rs`).

pub mod prober;
pub mod watch;
pub mod window;

use std::collections::HashSet;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, bounded};

use super::core::CoreMsg;
use super::deploy::build::{self, ReleaseIds};
use super::deploy::companions::SeenExits;
use super::deploy::health_wait::{Waiter, health_check};
use crate::config::Config;
use crate::control::protocol::Reply;
use crate::control::server::ReplyTo;
use crate::events::{Data, Event};
use crate::proxy::ProxyHandle;
use crate::release::ports;
use crate::supervisor::{ProcKey, StartReason, SupervisorHandle};

/// What asked for a replacement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// `memory.limitBytes` exceeded.
    Memory,
    /// `rollbridge restart` of the proxied process.
    Manual,
    /// `health.watchFailures` live checks failed in a row.
    Health,
}

impl Why {
    pub fn as_str(self) -> &'static str {
        match self {
            Why::Memory => "memory",
            Why::Manual => "manual",
            Why::Health => "health",
        }
    }

    /// `lastStartReason` of the new instance (and which counter counts it):
    /// a live-check replacement counts as a crash restart.
    pub fn start_reason(self) -> StartReason {
        match self {
            Why::Memory => StartReason::Memory,
            Why::Manual => StartReason::Manual,
            Why::Health => StartReason::Crash,
        }
    }
}

/// What the job asks the core.
pub enum ReplaceMsg {
    /// The new instance runs (not yet checked): the state file names it,
    /// so a daemon crash from here on leaves no unsupervised process.
    Started { target: Target, new_key: ProcKey },
    /// The new instance is healthy: route the release to `port`, tell
    /// `drained` when the old instance has nothing in flight. The reply
    /// says whether the switch happened.
    Switch {
        target: Target,
        new_key: ProcKey,
        port: u16,
        pid: u32,
        drained: Sender<()>,
        reply: Sender<Result<(), String>>,
    },
    /// The replacement failed before the switch; the old instance serves.
    Failed { target: Target, error: String },
    /// The old instance drained (or hit the deadline) and stopped.
    Finished {
        target: Target,
        error: Option<String>,
    },
}

/// The instance being replaced.
#[derive(Debug, Clone)]
pub struct Target {
    pub release_id: String,
    /// Instance id (`web`).
    pub id: String,
    pub key: ProcKey,
    pub why: Why,
}

/// Everything the job needs, copied out of the core.
pub struct Job {
    pub target: Target,
    pub release_path: String,
    pub revision: String,
    /// The release's ports (process id -> port).
    pub ports: Vec<(String, u16)>,
    /// Ports of live releases: never handed out.
    pub held_ports: HashSet<u16>,
    pub config: Config,
    pub supervisor: SupervisorHandle,
    pub core: Sender<CoreMsg>,
    pub exits: Receiver<(ProcKey, Option<i32>, Option<String>)>,
    pub proxy: ProxyHandle,
    pub drain_timeout: Duration,
}

/// Runs the job on its own thread; `reply` (a `restart`) hears the result.
/// The op slot is freed (`OpDone`) when the switch is done or failed.
pub fn spawn(job: Job, reply: Option<ReplyTo>) {
    let core = job.core.clone();
    let run = move || {
        let result: Reply =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| replace(&job)))
                .unwrap_or_else(|panic| {
                    Err(format!(
                        "Internal error during the replacement: {}",
                        crate::guard::panic_message(&*panic)
                    ))
                });
        if let Some(reply) = reply {
            if let Err(e) = &result {
                record(
                    &job.core,
                    "command failed",
                    Data::new().with("error", e.as_str()),
                );
            }
            reply.send(result);
        }
        let _ = job.core.send(CoreMsg::OpDone);
    };
    if std::thread::Builder::new()
        .name("op-replace".into())
        .spawn(run)
        .is_err()
    {
        let _ = core.send(CoreMsg::OpDone);
    }
}

fn record(core: &Sender<CoreMsg>, message: &str, data: Data) {
    let _ = core.send(CoreMsg::Record(Event::new(message, data)));
}

fn send(core: &Sender<CoreMsg>, msg: ReplaceMsg) {
    let _ = core.send(CoreMsg::Replace(msg));
}

/// Start, check, switch; then the drain runs in the background.
fn replace(job: &Job) -> Reply {
    let t = &job.target;
    record(
        &job.core,
        "process replacement starting",
        Data::new()
            .with("id", t.id.as_str())
            .with("reason", t.why.as_str())
            .with("releaseId", t.release_id.as_str()),
    );
    let fail = |error: String| -> String {
        send(
            &job.core,
            ReplaceMsg::Failed {
                target: t.clone(),
                error: error.clone(),
            },
        );
        error
    };
    let (new_key, port, pid) = start_checked(job).map_err(fail)?;
    let (dtx, drx) = bounded(1);
    let (tx, rx) = bounded(1);
    send(
        &job.core,
        ReplaceMsg::Switch {
            target: t.clone(),
            new_key,
            port,
            pid,
            drained: dtx,
            reply: tx,
        },
    );
    let switched = rx
        .recv()
        .unwrap_or_else(|_| Err("Rollbridge is shutting down".into()));
    if let Err(e) = switched {
        let _ = job.supervisor.stop_wait(new_key);
        job.supervisor.remove(new_key);
        return Err(fail(e));
    }
    spawn_drain(job, new_key, drx);
    let list = serde_json::to_string(&[t.id.as_str()]).unwrap_or_else(|_| "[]".into());
    Ok(format!(r#"{{"restarted":{list}}}"#))
}

/// Spawns the new instance on a free port and waits for its health check;
/// on failure it is stopped and forgotten again.
fn start_checked(job: &Job) -> Result<(ProcKey, u16, u32), String> {
    let t = &job.target;
    let config = &job.config;
    let cfg = config
        .proxied()
        .ok_or_else(|| "Config must define exactly one proxied process".to_owned())?;
    let range = cfg
        .port
        .ok_or_else(|| format!("Proxied process {} must define a port range", cfg.id))?;
    let held = &job.held_ports;
    let mut probe = |host: &str, port: u16| {
        if port != 0 && held.contains(&port) {
            ports::Probe::InUse
        } else {
            ports::probe(host, port)
        }
    };
    let mut reserved = HashSet::new();
    let port = ports::allocate(
        range,
        &config.proxy.upstream_host,
        &mut reserved,
        &mut probe,
    )?;
    let mut release_ports = job.ports.clone();
    match release_ports.iter_mut().find(|(id, _)| *id == cfg.id) {
        Some(slot) => slot.1 = port,
        None => release_ports.push((cfg.id.clone(), port)),
    }
    let ids = ReleaseIds {
        id: &t.release_id,
        path: &job.release_path,
        revision: &job.revision,
        ports: &release_ports,
    };
    let spec = build::instance_specs(config, cfg, &ids)?
        .into_iter()
        .find(|s| s.id == t.id)
        .ok_or_else(|| format!("No instance \"{}\" in the config", t.id))?;
    let key = job.supervisor.register(spec);
    // No crash restart before the switch: an exit fails the check at once.
    job.supervisor.set_crash_gate(key, false);
    let undo = |e: String| -> String {
        let _ = job.supervisor.stop_wait(key);
        job.supervisor.remove(key);
        e
    };
    let pid = job
        .supervisor
        .start_wait(key, t.why.start_reason())
        .map_err(undo)?;
    send(
        &job.core,
        ReplaceMsg::Started {
            target: t.clone(),
            new_key: key,
        },
    );
    if let Some(hc) = cfg.health.as_ref() {
        let waiter = Waiter {
            exits: &job.exits,
            supervisor: &job.supervisor,
            progress: None,
        };
        let mut seen = SeenExits::new();
        health_check(&waiter, config, hc, port, key, &t.id, &mut seen).map_err(undo)?;
    }
    Ok((key, port, pid))
}

/// The old instance drains (up to the deadline, then what is left is
/// closed, tunnels with a Close 1001), then it stops and is forgotten.
fn spawn_drain(job: &Job, ticket: ProcKey, drained: Receiver<()>) {
    let target = job.target.clone();
    let (proxy, supervisor, core) = (job.proxy.clone(), job.supervisor.clone(), job.core.clone());
    let timeout = job.drain_timeout;
    let run = move || {
        if drained.recv_timeout(timeout).is_err() {
            let _ = proxy.force_close_instance(target.release_id.as_str(), ticket);
        }
        let error = supervisor.stop_wait(target.key).err();
        supervisor.remove(target.key);
        send(&core, ReplaceMsg::Finished { target, error });
    };
    if let Err(e) = std::thread::Builder::new()
        .name("replace-drain".into())
        .spawn(run)
    {
        record(
            &job.core,
            "command failed",
            Data::new().with("error", format!("cannot start the drain thread: {e}")),
        );
    }
}
