//! Orphans from a previous daemon (`daemon.md` §9): pids still alive that the
//! last state snapshot names. Report-only: never signalled, never adopted;
//! re-checked on every status call and dropped for good once dead.

use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Orphan {
    pub id: String,
    pub pid: u32,
    pub release_id: Option<String>,
}

/// Hint of the summary event.
pub const HINT: &str = "These processes were started by a previous Rollbridge daemon that did not shut down cleanly. \
They are not managed by this daemon; stop them with `rollbridge recover --force` (or by hand) once they are no longer needed.";

/// Reads `state_path`; a missing or malformed snapshot yields nothing.
pub fn detect(state_path: &str) -> Vec<Orphan> {
    let Ok(text) = std::fs::read_to_string(state_path) else {
        return Vec::new();
    };
    let Ok(snapshot) = serde_json::from_str::<Value>(&text) else {
        return Vec::new();
    };
    candidates(&snapshot)
        .into_iter()
        .filter(|o| alive(o.pid))
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
                });
            }
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
                });
            }
        }
    }
    out
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
    fn malformed_snapshot_yields_nothing() {
        assert!(candidates(&serde_json::json!([1, 2])).is_empty());
        assert!(detect("/nonexistent/state.json").is_empty());
    }

    #[test]
    fn own_pid_is_alive() {
        assert!(alive(std::process::id()));
    }
}
