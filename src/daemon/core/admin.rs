//! What the admin listener needs from the core: a small snapshot (status,
//! version, processes, deploy counts) pushed to the proxy about every
//! second and soon after each change, so an admin answer never waits on
//! the core.

use serde_json::Value;

use super::*;
use crate::proxy::{AdminSnapshot, ProcessSample};

/// Events the status page shows.
const PAGE_EVENTS: usize = 20;

/// Least time between two pushes caused by changes (the tick pushes anyway).
const MIN_GAP: Duration = Duration::from_millis(250);

#[derive(Debug, Default)]
pub(super) struct AdminFeed {
    pub(super) deploys_success: u64,
    pub(super) deploys_failure: u64,
    last: Option<Instant>,
    /// When the shutdown began (`/ready` turned 503).
    pub(super) lame_duck_from: Option<Instant>,
}

impl AdminFeed {
    /// When the proxy may stop accepting: `delay` after the shutdown began.
    pub(super) fn lame_duck_until(&self, delay: Duration) -> Instant {
        self.lame_duck_from.unwrap_or_else(Instant::now) + delay
    }
}

impl Core {
    /// Counts deploys (rollbacks included) from the events that end them.
    pub(super) fn count_deploy(&mut self, message: &str) {
        match message {
            "traffic switched" => self.admin.deploys_success += 1,
            "deploy failed" => self.admin.deploys_failure += 1,
            _ => {}
        }
    }

    /// Pushes a fresh snapshot; `force` ignores the rate limit.
    pub(super) fn publish_admin(&mut self, force: bool) {
        if self.proxy.handle().admin_addr().is_none() || self.shutdown.is_some() {
            return;
        }
        let now = Instant::now();
        if !force && self.admin.last.is_some_and(|t| now < t + MIN_GAP) {
            return;
        }
        self.admin.last = Some(now);
        let status = self.status_json();
        let mut snapshot = snapshot(
            &status,
            self.admin.deploys_success,
            self.admin.deploys_failure,
        );
        snapshot.daemon_json = self.daemon_info();
        // Serialized from the structs, as `events` does (key order kept).
        let events = self.events.select(Some(PAGE_EVENTS as f64));
        snapshot.events_json = serde_json::to_string(&events).unwrap_or_else(|_| "[]".into());
        let _ = self.proxy.handle().publish_admin(snapshot);
    }
}

/// The snapshot from the status object (compact JSON without `status`).
fn snapshot(status: &str, success: u64, failure: u64) -> AdminSnapshot {
    let v: Value = serde_json::from_str(status).unwrap_or(Value::Null);
    let active = v.get("activeReleaseId").and_then(Value::as_str);
    let revision = active.and_then(|id| {
        v.get("releases")?
            .as_array()?
            .iter()
            .find(|r| r.get("releaseId").and_then(Value::as_str) == Some(id))?
            .get("revision")?
            .as_str()
    });
    let text = |s: Option<&str>| s.map_or(Value::Null, Value::from).to_string();
    let version_json = format!(
        r#"{{"application":{},"version":{},"activeReleaseId":{},"revision":{}}}"#,
        text(v.get("application").and_then(Value::as_str)),
        text(Some(env!("CARGO_PKG_VERSION"))),
        text(active),
        text(revision),
    );
    let body = status.trim_start().strip_prefix('{').unwrap_or("}");
    let sep = if body.trim_start().starts_with('}') {
        ""
    } else {
        ","
    };
    AdminSnapshot {
        version_json,
        status_json: format!(r#"{{"status":"success"{sep}{body}"#),
        daemon_json: String::new(),
        events_json: String::new(),
        processes: processes(&v),
        deploys_success: success,
        deploys_failure: failure,
    }
}

/// Every supervised process: each retained release's, services, singletons.
fn processes(v: &Value) -> Vec<ProcessSample> {
    let mut out = Vec::new();
    let mut add = |p: &Value, release: &str| {
        let Some(id) = p.get("id").and_then(Value::as_str) else {
            return;
        };
        out.push(ProcessSample {
            process: id.to_string(),
            release: release.to_string(),
            restarts: p.get("restarts").and_then(Value::as_u64).unwrap_or(0),
            rss_bytes: p.get("rssBytes").and_then(Value::as_u64).or_else(|| {
                // Sampled only under a memory limit: read it here otherwise.
                let pid = p.get("pid").and_then(Value::as_u64)?;
                let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
                crate::supervisor::memory::parse_vmrss(&text)
            }),
        });
    };
    let list = |key: &str| {
        v.get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    for r in list("releases") {
        let release = r.get("releaseId").and_then(Value::as_str).unwrap_or("");
        for p in r
            .get("processes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            add(p, release);
        }
    }
    for key in ["services", "singletons"] {
        for s in list(key) {
            if let Some(p) = s.get("process") {
                add(p, "");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_names_the_active_release_and_its_revision() {
        let status = r#"{"activeReleaseId":"r2","application":"app","releases":[
            {"releaseId":"r1","revision":"aaa","processes":[{"id":"web","restarts":1}]},
            {"releaseId":"r2","revision":"bbb","processes":[{"id":"web","restarts":0,"rssBytes":1024}]}],
            "services":[{"id":"q","process":{"id":"q","restarts":3}}],"singletons":[]}"#;
        let s = snapshot(status, 2, 1);
        let v: Value = serde_json::from_str(&s.version_json).unwrap();
        assert_eq!(v["application"], "app");
        assert_eq!(v["activeReleaseId"], "r2");
        assert_eq!(v["revision"], "bbb");
        assert!(
            s.status_json
                .starts_with(r#"{"status":"success","activeReleaseId""#)
        );
        assert_eq!(s.processes.len(), 3);
        assert_eq!(s.processes[1].rss_bytes, Some(1024));
        assert_eq!(s.processes[2].release, "");
        assert_eq!(s.processes[2].restarts, 3);
    }

    #[test]
    fn snapshot_without_a_release_has_nulls() {
        let s = snapshot(r#"{"activeReleaseId":null,"application":"app"}"#, 0, 0);
        let v: Value = serde_json::from_str(&s.version_json).unwrap();
        assert!(v["activeReleaseId"].is_null());
        assert!(v["revision"].is_null());
    }
}
