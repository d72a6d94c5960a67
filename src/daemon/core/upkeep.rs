//! The core's upkeep: what the state file records besides the status
//! (process identities, the daemon, a release still starting), the
//! write-ahead record of a deploy's processes, and the 1 s tick that
//! retries failed state writes, re-creates a vanished control socket and
//! keeps the daemon lock file in place.

use std::os::unix::fs::{FileTypeExt, MetadataExt};

use serde::Serialize;
use serde_json::Value;

use super::*;
use crate::daemon::persist::Extra;
use crate::daemon::{liveness, procinfo};

/// How often the tick runs.
pub const CHECK_EVERY: Duration = Duration::from_millis(1000);

/// A release whose processes run but which is not active yet.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Starting {
    pub release_id: String,
    pub processes: Vec<StartingProcess>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StartingProcess {
    pub id: String,
    pub pid: u32,
    pub pgid: u32,
    pub start_time: Option<u64>,
}

/// `{...}` + `"key": value` as the last member.
pub fn append_key(json: String, key: &str, value: &str) -> String {
    let Some(body) = json.strip_suffix('}') else {
        return json;
    };
    let sep = if body.trim_end().ends_with('{') {
        ""
    } else {
        ","
    };
    let value = serde_json::to_string(value).unwrap_or_else(|_| "null".into());
    format!("{body}{sep}\"{key}\":{value}}}")
}

impl Core {
    /// Device + inode of the control socket now at `control.path`.
    pub(super) fn control_socket_id(&self) -> Option<(u64, u64)> {
        std::fs::symlink_metadata(&self.config.control.path)
            .ok()
            .filter(|m| m.file_type().is_socket())
            .map(|m| (m.dev(), m.ino()))
    }

    /// The lock that tells other tools this daemon is alive.
    pub fn set_lock(&mut self, lock: Option<DaemonLock>) {
        self.lock = lock;
    }

    pub(super) fn tick(&mut self) {
        let now = Instant::now();
        if self.shutdown.is_some() {
            self.next_check = None;
            self.next_persist = None;
            return;
        }
        self.next_check = Some(now + CHECK_EVERY);
        self.check_control_socket();
        self.publish_admin(true);
        self.sync_watch();
        if self.lock.is_none() && self.retiring.is_none() {
            // A takeover (or a lock file that could not be opened at start):
            // take the lock once its previous holder has let it go.
            if let Ok(lock) = DaemonLock::acquire(&self.state_path_hint()) {
                self.lock = Some(lock);
            }
        }
        if let Some(lock) = self.lock.as_mut() {
            if lock.refresh() {
                self.record(Event::new(
                    "lock file re-created",
                    Data::new().with(
                        "path",
                        crate::daemon::statefile::lock_path(&self.state_path_hint()),
                    ),
                ));
            }
        }
        // Failed writes are retried on every tick until one succeeds.
        let due = self.next_persist.is_some_and(|at| at <= now);
        if due || (self.state_error.is_some() && self.persister.is_some()) {
            self.persist_now();
        }
    }

    fn state_path_hint(&self) -> String {
        crate::daemon::statefile::location(&self.config).path
    }

    /// Re-creates the control socket when its path vanished (a removed
    /// folder, a tmp cleaner): the daemon stays reachable.
    fn check_control_socket(&mut self) {
        if self.control.is_none() || self.control_ino.is_none() {
            return;
        }
        let path = self.config.control.path.clone();
        if std::fs::symlink_metadata(&path).is_ok() {
            // Ours, or something an operator put there: left alone.
            return;
        }
        if let Some(dir) = std::path::Path::new(&path).parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        match crate::control::bind::bind(&self.config.control) {
            Ok(listener) => {
                if let Some(control) = self.control.as_ref() {
                    control.rebind(listener);
                }
                self.control_ino = self.control_socket_id();
                self.record(Event::new(
                    "control socket re-created",
                    Data::new().with("path", path.as_str()),
                ));
            }
            Err(e) => self.record(Event::new(
                "control socket re-create failed",
                Data::new().with("error", e),
            )),
        }
    }

    /// Identities of every recorded process, the daemon, the starting
    /// release.
    pub(super) fn persist_extra(&self, status_json: &str) -> Extra {
        let mut extra = Extra::default();
        if let Ok(status) = serde_json::from_str::<Value>(status_json) {
            for key in ["releases", "services", "singletons"] {
                if let Some(v) = status.get(key) {
                    collect_pids(v, &mut |pid| {
                        if let Some(s) = procinfo::stat(pid) {
                            extra.identities.insert(pid, (s.pgid, s.start_time));
                        }
                    });
                }
            }
        }
        for o in &self.orphans {
            if let Some(t) = o.start_time {
                extra.identities.insert(o.pid, (o.group(), t));
            }
        }
        extra.daemon = Some(liveness::record().to_string());
        extra.starting = self
            .starting
            .as_ref()
            .and_then(|s| serde_json::to_string(s).ok());
        extra.replacing = self.replacing_record();
        extra
    }

    /// The `replacing` list: each instance a replacement runs that its
    /// release does not name, with its identity (`None` when there is none).
    fn replacing_record(&self) -> Option<String> {
        let others = self.replacing_others();
        if others.is_empty() {
            return None;
        }
        let snaps = self
            .supervisor
            .snapshot(others.iter().map(|o| o.key).collect());
        let list: Vec<Value> = others
            .iter()
            .zip(snaps)
            .filter_map(|(o, snap)| {
                let pid = snap?.pid?;
                let stat = procinfo::stat(pid);
                Some(serde_json::json!({
                    "releaseId": o.release_id,
                    "id": o.id,
                    "pid": pid,
                    "pgid": stat.map_or(pid, |s| s.pgid),
                    "startTime": stat.map(|s| s.start_time),
                }))
            })
            .collect();
        serde_json::to_string(&list).ok()
    }

    /// Write-ahead: records the deploy's processes as a starting release
    /// and writes the state; `ack` hears when it is on disk.
    pub(super) fn write_ahead(
        &mut self,
        release_id: String,
        processes: Vec<Named>,
        ack: persist::Ack,
    ) {
        let keys: Vec<ProcKey> = processes.iter().map(|p| p.key).collect();
        let snaps = if keys.is_empty() {
            Vec::new()
        } else {
            self.supervisor.snapshot(keys)
        };
        let list = processes
            .iter()
            .zip(snaps)
            .filter_map(|(named, snap)| {
                let pid = snap?.pid?;
                let stat = procinfo::stat(pid);
                Some(StartingProcess {
                    id: named.id.clone(),
                    pid,
                    pgid: stat.map_or(pid, |s| s.pgid),
                    start_time: stat.map(|s| s.start_time),
                })
            })
            .collect();
        self.starting = Some(Starting {
            release_id,
            processes: list,
        });
        self.persist_with(Some(ack));
    }
}

/// Every numeric `pid` member at any depth.
fn collect_pids(v: &Value, f: &mut impl FnMut(u32)) {
    match v {
        Value::Object(m) => {
            if let Some(pid) = m.get("pid").and_then(Value::as_u64) {
                if let Ok(pid) = u32::try_from(pid) {
                    f(pid);
                }
            }
            m.values().for_each(|x| collect_pids(x, f));
        }
        Value::Array(a) => a.iter().for_each(|x| collect_pids(x, f)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_error_is_appended_as_the_last_key() {
        assert_eq!(
            append_key(r#"{"a":1}"#.into(), "stateError", "disk \"full\""),
            r#"{"a":1,"stateError":"disk \"full\""}"#
        );
        assert_eq!(append_key("{}".into(), "k", "v"), r#"{"k":"v"}"#);
    }
}
