//! Orphans from a previous daemon: pids still alive that the
//! last state snapshot names. Report-only: never signalled, never adopted;
//! re-checked on every status call and dropped for good once dead.

use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Orphan {
    pub id: String,
    pub pid: u32,
    pub release_id: Option<String>,
    /// Recorded `/proc` start time: with it, a live pid is known to be the
    /// same process (not a recycled pid). Kept in the state file only.
    #[serde(skip)]
    pub start_time: Option<u64>,
    /// Recorded process group (the pid when not recorded).
    #[serde(skip)]
    pub pgid: Option<u32>,
    /// Part of a release that was still starting (never activated).
    #[serde(skip)]
    pub starting: bool,
}

impl Orphan {
    /// The recorded start time matches the live process.
    pub fn verified(&self) -> bool {
        self.start_time
            .is_some_and(|t| super::procinfo::same_process(self.pid, t))
    }

    /// Still alive: with a recorded start time, only the same process
    /// counts; without one, any live pid (legacy snapshots).
    pub fn alive(&self) -> bool {
        match self.start_time {
            Some(t) => super::procinfo::same_process(self.pid, t),
            None => alive(self.pid),
        }
    }

    /// The group to signal.
    pub fn group(&self) -> u32 {
        self.pgid.filter(|g| *g > 1).unwrap_or(self.pid)
    }
}

/// Hint of the summary event.
pub const HINT: &str = "These processes were started by a previous Rollbridge daemon that did not shut down cleanly. \
They are not managed by this daemon; stop them with `rollbridge recover --force` (or by hand) once they are no longer needed.";

/// The live processes a snapshot names.
/// `N orphaned process(es)`, pluralised (the start's refusal and `recover`).
pub fn count(n: usize) -> String {
    let noun = if n == 1 { "process" } else { "processes" };
    format!("{n} orphaned {noun}")
}

pub fn detect(snapshot: Option<&Value>) -> Vec<Orphan> {
    let Some(snapshot) = snapshot else {
        return Vec::new();
    };
    candidates(snapshot)
        .into_iter()
        .filter(Orphan::alive)
        .collect()
}

/// Every recorded pid, without the liveness check (in snapshot order,
/// each pid once).
pub fn candidates(snapshot: &Value) -> Vec<Orphan> {
    let mut out: Vec<Orphan> = Vec::new();
    let mut push = |o: Orphan| {
        if o.pid > 0 && !out.iter().any(|x| x.pid == o.pid) {
            out.push(o);
        }
    };
    let arr = |v: &Value, k: &str| {
        v.get(k)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    for o in arr(snapshot, "orphans") {
        let (Some(id), Some(pid)) = (o.get("id").and_then(Value::as_str), pid_of(&o)) else {
            continue;
        };
        let release_id = match o.get("releaseId") {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Null) | None => None,
            Some(_) => continue,
        };
        push(Orphan {
            id: id.into(),
            pid,
            release_id,
            ..identity(&o)
        });
    }
    for r in arr(snapshot, "releases") {
        let release_id = r
            .get("releaseId")
            .and_then(Value::as_str)
            .map(str::to_owned);
        for p in arr(&r, "processes") {
            if let (Some(id), Some(pid)) = (p.get("id").and_then(Value::as_str), pid_of(&p)) {
                push(Orphan {
                    id: id.into(),
                    pid,
                    release_id: release_id.clone(),
                    ..identity(&p)
                });
            }
        }
    }
    // A release recorded while it started (never activated).
    if let Some(starting) = snapshot.get("starting").filter(|s| s.is_object()) {
        let release_id = starting
            .get("releaseId")
            .and_then(Value::as_str)
            .map(str::to_owned);
        for p in arr(starting, "processes") {
            if let (Some(id), Some(pid)) = (p.get("id").and_then(Value::as_str), pid_of(&p)) {
                push(Orphan {
                    id: id.into(),
                    pid,
                    release_id: release_id.clone(),
                    starting: true,
                    ..identity(&p)
                });
            }
        }
    }
    // The other instance of a replacement of the proxied process.
    for p in arr(snapshot, "replacing") {
        if let (Some(id), Some(pid)) = (p.get("id").and_then(Value::as_str), pid_of(&p)) {
            push(Orphan {
                id: id.into(),
                pid,
                release_id: p
                    .get("releaseId")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                ..identity(&p)
            });
        }
    }
    for key in ["services", "singletons"] {
        for entry in arr(snapshot, key) {
            let Some(process) = entry.get("process") else {
                continue;
            };
            let id = entry
                .get("id")
                .or_else(|| process.get("id"))
                .and_then(Value::as_str);
            if let (Some(id), Some(pid)) = (id, pid_of(process)) {
                push(Orphan {
                    id: id.into(),
                    pid,
                    release_id: None,
                    ..identity(process)
                });
            }
        }
    }
    out
}

/// `startTime` and `pgid` as recorded beside a pid.
fn identity(v: &Value) -> Orphan {
    Orphan {
        start_time: v.get("startTime").and_then(Value::as_u64),
        pgid: v
            .get("pgid")
            .and_then(Value::as_u64)
            .and_then(|g| u32::try_from(g).ok()),
        ..Orphan::default()
    }
}

fn pid_of(v: &Value) -> Option<u32> {
    v.get("pid")
        .and_then(Value::as_u64)
        .and_then(|p| u32::try_from(p).ok())
        .filter(|p| *p > 1 && *p <= i32::MAX as u32)
}

/// `kill(pid, 0)` succeeds or is denied.
pub fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    let r = unsafe { libc::kill(pid as i32, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_come_from_orphans_releases_services_and_singletons() {
        let snap: Value = serde_json::json!({
            "orphans": [{"id": "old", "pid": 101, "releaseId": "v0"}, {"id": 5, "pid": 3}],
            "releases": [{"releaseId": "v1", "processes": [{"id": "web", "pid": 102}, {"id": "gone"}]}],
            "services": [{"id": "db", "process": {"id": "db", "pid": 103}}],
            "singletons": [{"id": "cron", "process": {"id": "cron", "pid": 104}}]
        });
        let c = candidates(&snap);
        let got: Vec<_> = c
            .iter()
            .map(|o| (o.id.as_str(), o.pid, o.release_id.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("old", 101, Some("v0")),
                ("web", 102, Some("v1")),
                ("db", 103, None),
                ("cron", 104, None)
            ]
        );
    }

    #[test]
    fn starting_release_processes_are_candidates_with_their_identity() {
        let snap: Value = serde_json::json!({
            "releases": [],
            "starting": {"releaseId": "r2", "processes": [{"id": "web", "pid": 200, "pgid": 200, "startTime": 77}]}
        });
        let c = candidates(&snap);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].release_id.as_deref(), Some("r2"));
        assert_eq!(
            (c[0].start_time, c[0].pgid, c[0].starting),
            (Some(77), Some(200), true)
        );
    }

    #[test]
    fn a_recycled_pid_is_not_an_orphan() {
        let me = std::process::id();
        let start = crate::daemon::procinfo::stat(me).unwrap().start_time;
        let o = |t| Orphan {
            id: "web".into(),
            pid: me,
            start_time: Some(t),
            ..Orphan::default()
        };
        assert!(o(start).alive() && o(start).verified());
        assert!(!o(start + 1).alive());
    }

    #[test]
    fn malformed_snapshot_yields_nothing() {
        assert!(candidates(&serde_json::json!([1, 2])).is_empty());
        assert!(detect(None).is_empty());
    }

    #[test]
    fn own_pid_is_alive() {
        assert!(alive(std::process::id()));
    }
}
