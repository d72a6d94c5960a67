//! Mutating operations (`restart`, `stop`, `rollback`):
//! target resolution as pure functions over the config and the core's
//! state, and the operation thread that carries an operation out by
//! messages (supervisor `stop_wait`/`start_wait`, events back to the core)
//! while the core keeps answering `status`. The core runs one operation at
//! a time and queues the rest (`CoreMsg::OpDone` starts the next).

use crossbeam_channel::Sender;

use super::core::CoreMsg;
use super::state::{DaemonState, Release};
use crate::config::{Config, Policy};
use crate::control::protocol::Reply;
use crate::control::server::ReplyTo;
use crate::events::{Data, Event};
use crate::supervisor::{ProcKey, StartReason, SupervisorHandle};

/// One process to restart: instance id and supervisor key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub id: String,
    pub key: ProcKey,
    /// The proxied process: replaced without downtime, not restarted.
    pub replace: bool,
}

/// `restart` targets, in config order.
pub fn restart_targets(
    config: &Config,
    state: &DaemonState,
    process_id: Option<&str>,
    policy: Option<&str>,
) -> Result<Vec<Target>, String> {
    let proxied = config.proxied();
    // The proxied process alone: replaced without downtime.
    if let Some(p) = proxied {
        let named =
            process_id.is_some_and(|pid| pid == p.id || p.instance_ids().iter().any(|i| i == pid));
        if policy == Some("proxied") || named {
            let instances = p.instance_ids();
            let targets: Vec<Target> = state
                .active()
                .map(|r| {
                    r.processes
                        .iter()
                        .filter(|n| instances.contains(&n.id))
                        .filter(|n| process_id.is_none_or(|pid| pid == p.id || pid == n.id))
                        .map(|n| Target {
                            id: n.id.clone(),
                            key: n.key,
                            replace: true,
                        })
                        .take(1)
                        .collect()
                })
                .unwrap_or_default();
            if let (Some(pid), true) = (process_id, targets.is_empty()) {
                return Err(format!("No managed process with id \"{pid}\" to restart."));
            }
            return Ok(targets);
        }
    }
    let mut targets = Vec::new();
    for cfg in &config.processes {
        if cfg.policy == Policy::Proxied {
            continue;
        }
        if policy.is_some_and(|p| p != cfg.policy.as_str()) {
            continue;
        }
        let candidates: Vec<Target> = match cfg.policy {
            Policy::Service => {
                // Handoff services are looked up among daemon services too,
                // and so are never found (as in the original).
                state
                    .services
                    .iter()
                    .filter(|s| s.id == cfg.id)
                    .map(|s| Target {
                        id: s.id.clone(),
                        key: s.key,
                        replace: false,
                    })
                    .collect()
            }
            Policy::Singleton => state
                .singletons
                .iter()
                .filter(|s| s.id == cfg.id)
                .map(|s| Target {
                    id: s.id.clone(),
                    key: s.key,
                    replace: false,
                })
                .collect(),
            _ => {
                let instances = cfg.instance_ids();
                state
                    .active()
                    .map(|r| {
                        r.processes
                            .iter()
                            .filter(|p| instances.contains(&p.id))
                            .map(|p| Target {
                                id: p.id.clone(),
                                key: p.key,
                                replace: false,
                            })
                            .collect()
                    })
                    .unwrap_or_default()
            }
        };
        for t in candidates {
            let matches = match process_id {
                None => true,
                Some(pid) => pid == cfg.id || pid == t.id,
            };
            if matches {
                targets.push(t);
            }
        }
    }
    if let Some(pid) = process_id {
        if targets.is_empty() {
            return Err(format!("No managed process with id \"{pid}\" to restart."));
        }
    }
    Ok(targets)
}

/// `stop` lookup.
pub fn stop_target<'a>(
    state: &'a DaemonState,
    release_id: Option<&str>,
) -> Result<&'a Release, String> {
    match release_id {
        Some(id) => state
            .releases
            .iter()
            .find(|r| r.id == id)
            .ok_or_else(|| format!("Release not found: {id}")),
        None => state
            .active()
            .ok_or_else(|| "Release not found: active".to_owned()),
    }
}

/// `rollback` target.
pub fn rollback_target<'a>(
    state: &'a DaemonState,
    release_id: Option<&str>,
) -> Result<&'a Release, String> {
    let active = state.active_release_id.as_deref();
    match release_id {
        Some(id) => {
            let r = state
                .releases
                .iter()
                .find(|r| r.id == id)
                .ok_or_else(|| format!("No retained release \"{id}\" to roll back to."))?;
            if Some(id) == active {
                return Err(format!("Release \"{id}\" is already active."));
            }
            Ok(r)
        }
        None => state
            .releases
            .iter()
            .enumerate()
            .filter(|(_, r)| Some(r.id.as_str()) != active)
            // Latest activatedAt; ties go to the later map position.
            .max_by(|(ia, a), (ib, b)| {
                a.activated_at
                    .as_deref()
                    .unwrap_or("")
                    .cmp(b.activated_at.as_deref().unwrap_or(""))
                    .then(ia.cmp(ib))
            })
            .map(|(_, r)| r)
            .ok_or_else(|| "No previous release to roll back to.".to_owned()),
    }
}

/// Runs one mutating operation on its own thread. Its result is the reply;
/// a failure is also recorded as `command failed`; a panic becomes an error
/// reply; the op slot is freed (`OpDone`) in every case, so a bug can never
/// wedge later deploys.
pub fn spawn_op(
    name: &str,
    core: Sender<CoreMsg>,
    reply: ReplyTo,
    work: impl FnOnce() -> Reply + Send + 'static,
) {
    let done = core.clone();
    let label = name.to_owned();
    let run = move || {
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).unwrap_or_else(|panic| {
                Err(format!(
                    "Internal error during {label}: {}",
                    crate::guard::panic_message(&*panic)
                ))
            });
        if let Err(e) = &result {
            let _ = core.send(CoreMsg::Record(Event::new(
                "command failed",
                Data::new().with("error", e.as_str()),
            )));
        }
        reply.send(result);
        let _ = core.send(CoreMsg::OpDone);
    };
    if let Err(e) = std::thread::Builder::new()
        .name(format!("op-{name}"))
        .spawn(run)
    {
        // The closure and its ReplyTo are gone (the connection is
        // released); free the operation slot and say why.
        let _ = done.send(CoreMsg::Record(Event::new(
            "command failed",
            Data::new().with("error", format!("cannot start the operation thread: {e}")),
        )));
        let _ = done.send(CoreMsg::OpDone);
    }
}

/// `restart`: per target, sequentially, event `process restart requested`,
/// full stop, start with reason `manual`; the first error aborts the rest.
/// Replies once every target runs again.
pub fn spawn_restart(
    targets: Vec<Target>,
    supervisor: SupervisorHandle,
    core: Sender<CoreMsg>,
    reply: ReplyTo,
) {
    let events = core.clone();
    spawn_op("restart", core, reply, move || {
        let mut restarted = Vec::new();
        for t in &targets {
            let _ = events.send(CoreMsg::Record(Event::new(
                "process restart requested",
                Data::new().with("processId", t.id.as_str()),
            )));
            supervisor.stop_wait(t.key)?;
            supervisor.start_wait(t.key, StartReason::Manual)?;
            restarted.push(t.id.clone());
        }
        let list = serde_json::to_string(&restarted).unwrap_or_else(|_| "[]".into());
        Ok(format!(r#"{{"restarted":{list}}}"#))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::state::{Named, ReleaseState};

    fn config() -> Config {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("rb-ops-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("rollbridge.json");
        std::fs::write(
            &path,
            r#"{"application":"a","proxy":{},"processes":[
                {"id":"web","command":"x","policy":"proxied","port":{"from":0,"to":0}},
                {"id":"worker","command":"x","policy":"companion","replicas":2},
                {"id":"db","command":"x","policy":"service"},
                {"id":"cron","command":"x","policy":"singleton"}]}"#,
        )
        .unwrap();
        let loaded = crate::config::load(Some(path.to_str().unwrap())).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        loaded.config
    }

    fn release(id: &str, activated: Option<&str>, procs: &[(&str, u64)]) -> Release {
        Release {
            id: id.into(),
            path: format!("/r/{id}"),
            revision: id.into(),
            state: ReleaseState::Stopped,
            activated_at: activated.map(str::to_owned),
            drain_started_at: None,
            stopped_at: None,
            ports: Vec::new(),
            processes: procs
                .iter()
                .map(|(i, k)| Named {
                    id: (*i).into(),
                    key: *k,
                })
                .collect(),
            http: 0,
            websocket: 0,
        }
    }

    fn state() -> DaemonState {
        DaemonState {
            active_release_id: Some("v2".into()),
            releases: vec![
                release("v1", Some("2026-01-01T00:00:00.000Z"), &[]),
                release(
                    "v2",
                    Some("2026-01-02T00:00:00.000Z"),
                    &[("worker#0", 1), ("worker#1", 2), ("web", 3)],
                ),
            ],
            services: vec![Named {
                id: "db".into(),
                key: 10,
            }],
            service_ports: Vec::new(),
            singletons: vec![Named {
                id: "cron".into(),
                key: 11,
            }],
        }
    }

    fn ids(t: Vec<Target>) -> Vec<String> {
        t.into_iter().map(|t| t.id).collect()
    }

    #[test]
    fn restart_everything_but_the_proxied_in_config_order() {
        let got = restart_targets(&config(), &state(), None, None).unwrap();
        assert_eq!(ids(got), ["worker#0", "worker#1", "db", "cron"]);
    }

    #[test]
    fn restart_by_base_id_instance_id_and_policy() {
        let (c, s) = (config(), state());
        assert_eq!(
            ids(restart_targets(&c, &s, Some("worker"), None).unwrap()),
            ["worker#0", "worker#1"]
        );
        assert_eq!(
            ids(restart_targets(&c, &s, Some("worker#1"), None).unwrap()),
            ["worker#1"]
        );
        assert_eq!(
            ids(restart_targets(&c, &s, None, Some("service")).unwrap()),
            ["db"]
        );
        assert_eq!(
            ids(restart_targets(&c, &s, None, Some("nonsense")).unwrap()),
            Vec::<String>::new()
        );
    }

    #[test]
    fn restart_of_the_proxied_process_is_a_replacement() {
        let (c, s) = (config(), state());
        for (pid, policy) in [(Some("web"), None), (None, Some("proxied"))] {
            let got = restart_targets(&c, &s, pid, policy).unwrap();
            assert_eq!(
                got,
                [Target {
                    id: "web".into(),
                    key: 3,
                    replace: true
                }]
            );
        }
        // A plain restart keeps leaving it alone.
        let all = restart_targets(&c, &s, None, None).unwrap();
        assert!(all.iter().all(|t| !t.replace && t.id != "web"));
    }

    #[test]
    fn restart_of_an_unknown_id_says_so() {
        assert_eq!(
            restart_targets(&config(), &state(), Some("ghost"), None).unwrap_err(),
            "No managed process with id \"ghost\" to restart."
        );
        // Nothing running at all, no id: an empty list, not an error.
        assert!(
            restart_targets(&config(), &DaemonState::default(), None, None)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn stop_lookup_errors() {
        let empty = DaemonState::default();
        assert_eq!(
            stop_target(&empty, None).unwrap_err(),
            "Release not found: active"
        );
        assert_eq!(
            stop_target(&empty, Some("v9")).unwrap_err(),
            "Release not found: v9"
        );
        assert_eq!(stop_target(&state(), None).unwrap().id, "v2");
    }

    #[test]
    fn rollback_picks_the_latest_activated_non_active_release() {
        let s = state();
        assert_eq!(rollback_target(&s, None).unwrap().id, "v1");
        assert_eq!(
            rollback_target(&s, Some("v2")).unwrap_err(),
            "Release \"v2\" is already active."
        );
        assert_eq!(
            rollback_target(&s, Some("v0")).unwrap_err(),
            "No retained release \"v0\" to roll back to."
        );
        assert_eq!(
            rollback_target(&DaemonState::default(), None).unwrap_err(),
            "No previous release to roll back to."
        );
    }
}
