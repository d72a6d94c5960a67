//! The handover document: everything the next program needs to carry on
//! the running daemon's world, as versioned JSON. Descriptors appear as
//! numbers: they were duplicated without close-on-exec before `execve`, so
//! the same numbers are open in the new program.

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::proxy::handover::ConnDoc;
pub use crate::supervisor::handover::ProcDoc;

use super::{HANDOVER_VERSION, accepts};
use crate::events::Event;

/// The whole document (`{"handoverVersion":1, ...}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Handover {
    pub handover_version: u32,
    /// The version of the program that wrote it.
    pub from_version: String,
    /// The path the daemon was first started from (the default binary of
    /// the next upgrade).
    pub started_from: String,
    /// The connection of the `upgrade` request: the new program answers it.
    pub reply_fd: Option<i32>,
    /// `ensure-daemon`'s pid file, removed at a clean shutdown.
    pub pid_file: Option<String>,
    /// `NOTIFY_SOCKET` as captured at the first start.
    pub notify_socket: Option<String>,
    pub listeners: Listeners,
    pub core: CoreDoc,
    /// The release the proxy routes to and its upstream address.
    pub proxy_active: Option<(String, String)>,
    /// The supervisor's next process key.
    pub next_key: u64,
    pub processes: Vec<ProcDoc>,
    pub connections: Vec<ConnDoc>,
}

/// The listening sockets and the lock, by descriptor number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Listeners {
    pub proxy: i32,
    pub admin: Option<i32>,
    pub control: i32,
    /// The daemon lock (a held `flock` stays held across `execve`).
    pub lock: Option<i32>,
}

/// The core loop's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CoreDoc {
    /// When the daemon first started, and its uptime at the handover.
    pub started_at: String,
    pub uptime_ms: u64,
    pub active_release_id: Option<String>,
    pub releases: Vec<ReleaseDoc>,
    pub services: Vec<NamedDoc>,
    pub service_ports: Vec<(String, u16)>,
    pub singletons: Vec<NamedDoc>,
    pub events: Vec<Event>,
    /// `status.maintenance` (null when off).
    pub maintenance: Value,
    pub paused: Option<PausedDoc>,
    pub deploys_success: u64,
    pub deploys_failure: u64,
    pub bootstrap: Option<Value>,
    /// The running canary (status `canary`) and its upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryDoc>,
    /// Status `lastAutoRollback`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_auto_rollback: Option<Value>,
    /// An open automatic-rollback window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_window: Option<WindowDoc>,
    /// The release an automatic rollback is going back to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling_back_to: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CanaryDoc {
    pub release_id: String,
    pub percent: u8,
    pub since: String,
    /// The canary's upstream address (`host:port`).
    pub upstream: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WindowDoc {
    pub release_id: String,
    /// What was left of it at the handover.
    pub remaining_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseDoc {
    pub id: String,
    pub path: String,
    pub revision: String,
    pub state: crate::daemon::state::ReleaseState,
    pub activated_at: Option<String>,
    pub drain_started_at: Option<String>,
    pub stopped_at: Option<String>,
    pub ports: Vec<(String, u16)>,
    pub processes: Vec<NamedDoc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedDoc {
    pub id: String,
    pub key: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PausedDoc {
    pub since: String,
    pub timeout_ms: u64,
}

impl CoreDoc {
    /// Maintenance and pause on the proxy, as they were.
    pub fn apply_traffic(&self, proxy: &crate::proxy::ProxyHandle) {
        if let Some(o) = self.maintenance.as_object() {
            let page = crate::proxy::Maintenance {
                message: o
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                retry_after: o.get("retryAfter").and_then(Value::as_u64),
            };
            let _ = proxy.set_maintenance(Some(page));
        }
        if let Some(p) = &self.paused {
            let _ = proxy.pause(std::time::Duration::from_millis(p.timeout_ms));
        }
        // The same split: cookies name releases, so clients stay where
        // they were assigned.
        if let Some(c) = &self.canary {
            if let Ok(addr) = c.upstream.parse() {
                let _ = proxy.set_canary(c.release_id.as_str(), addr, c.percent);
            }
        }
    }
}

impl Handover {
    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }

    /// Reads a document, refusing a version this program does not know
    /// before looking at anything else in it.
    pub fn decode(text: &str) -> Result<Handover, String> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| format!("the handover document is not JSON: {e}"))?;
        let version = value
            .get("handoverVersion")
            .and_then(Value::as_u64)
            .ok_or("the handover document has no handoverVersion")?;
        accepts(u32::try_from(version).unwrap_or(u32::MAX))?;
        serde_json::from_value(value).map_err(|e| format!("the handover document is invalid: {e}"))
    }

    /// Every descriptor number the document names.
    pub fn fds(&self) -> Vec<i32> {
        let l = &self.listeners;
        let mut fds = vec![l.proxy, l.control];
        fds.extend(l.admin);
        fds.extend(l.lock);
        fds.extend(self.reply_fd);
        for p in &self.processes {
            fds.extend(p.pipes.iter().map(|pipe| pipe.fd));
        }
        for c in &self.connections {
            fds.extend(c.fds());
        }
        fds
    }

    /// An empty document of the current version (tests, and the start of
    /// an export).
    pub fn empty(core: CoreDoc, listeners: Listeners) -> Handover {
        Handover {
            handover_version: HANDOVER_VERSION,
            from_version: env!("CARGO_PKG_VERSION").into(),
            started_from: String::new(),
            reply_fd: None,
            pid_file: None,
            notify_socket: None,
            listeners,
            core,
            proxy_active: None,
            next_key: 1,
            processes: Vec::new(),
            connections: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Data;

    fn core() -> CoreDoc {
        CoreDoc {
            started_at: "2024-01-01T00:00:00.000Z".into(),
            uptime_ms: 1234,
            active_release_id: Some("v1".into()),
            releases: vec![ReleaseDoc {
                id: "v1".into(),
                path: "/srv/app/v1".into(),
                revision: "r1".into(),
                state: crate::daemon::state::ReleaseState::Active,
                activated_at: Some("2024-01-01T00:00:01.000Z".into()),
                drain_started_at: None,
                stopped_at: None,
                ports: vec![("web".into(), 3000)],
                processes: vec![NamedDoc {
                    id: "web".into(),
                    key: 3,
                }],
            }],
            services: Vec::new(),
            service_ports: Vec::new(),
            singletons: Vec::new(),
            events: vec![Event::new(
                "traffic switched",
                Data::new().with("releaseId", "v1").with("port", 3000),
            )],
            maintenance: Value::Null,
            paused: Some(PausedDoc {
                since: "t".into(),
                timeout_ms: 500,
            }),
            deploys_success: 1,
            deploys_failure: 0,
            bootstrap: None,
            canary: None,
            last_auto_rollback: None,
            rollback_window: None,
            rolling_back_to: None,
        }
    }

    fn listeners() -> Listeners {
        Listeners {
            proxy: 5,
            admin: None,
            control: 6,
            lock: Some(7),
        }
    }

    #[test]
    fn handover_document_round_trips() {
        let mut doc = Handover::empty(core(), listeners());
        doc.reply_fd = Some(9);
        doc.started_from = "/usr/local/bin/rollbridge".into();
        doc.processes
            .push(crate::supervisor::handover::tests::sample());
        doc.connections
            .push(crate::proxy::handover::tests::sample_tunnel());
        doc.connections
            .push(crate::proxy::handover::tests::sample_idle());
        doc.connections
            .push(crate::proxy::handover::tests::sample_stream());
        let text = doc.encode();
        assert!(
            text.starts_with(&format!(r#"{{"handoverVersion":{HANDOVER_VERSION},"#)),
            "{text}"
        );
        let back = Handover::decode(&text).unwrap();
        assert_eq!(back, doc);
        // Event data keeps its key order through the round trip.
        assert_eq!(
            serde_json::to_string(&back.core.events[0].data).unwrap(),
            r#"{"releaseId":"v1","port":3000}"#
        );
    }

    #[test]
    fn canary_and_auto_rollback_state_round_trip() {
        let mut c = core();
        c.canary = Some(CanaryDoc {
            release_id: "v2".into(),
            percent: 25,
            since: "2024-01-01T00:00:02.000Z".into(),
            upstream: "127.0.0.1:3001".into(),
        });
        c.last_auto_rollback = Some(serde_json::json!({"fromReleaseId": "v3"}));
        c.rollback_window = Some(WindowDoc {
            release_id: "v1".into(),
            remaining_ms: 4000,
        });
        c.rolling_back_to = Some("v0".into());
        let doc = Handover::empty(c, listeners());
        assert_eq!(Handover::decode(&doc.encode()).unwrap(), doc);
    }

    #[test]
    fn a_first_format_document_without_the_newer_keys_is_read() {
        // What the first release of `upgrade` wrote: no canary, no
        // auto-rollback state, processes without adoptedRoot/handoff.
        let mut v: Value =
            serde_json::from_str(&Handover::empty(core(), listeners()).encode()).unwrap();
        let mut p = serde_json::to_value(crate::supervisor::handover::tests::sample()).unwrap();
        p.as_object_mut().unwrap().remove("adoptedRoot");
        p.as_object_mut().unwrap().remove("handoff");
        v["processes"] = Value::Array(vec![p]);
        v["handoverVersion"] = 1.into();
        assert!(v["core"].get("canary").is_none());
        let back = Handover::decode(&v.to_string()).unwrap();
        assert_eq!(back.core.canary, None);
        assert_eq!(back.core.rollback_window, None);
        assert_eq!(back.processes[0].adopted_root, None);
    }

    #[test]
    fn newer_handover_version_is_refused() {
        let mut v: Value =
            serde_json::from_str(&Handover::empty(core(), listeners()).encode()).unwrap();
        v["handoverVersion"] = (HANDOVER_VERSION + 1).into();
        // Whatever else a newer format holds, the version is what is named.
        v["somethingNew"] = true.into();
        let e = Handover::decode(&v.to_string()).unwrap_err();
        assert!(
            e.contains(&format!("version {} is newer", HANDOVER_VERSION + 1)),
            "{e}"
        );
    }

    #[test]
    fn handover_without_version_is_refused() {
        let e = Handover::decode(r#"{"core":{}}"#).unwrap_err();
        assert!(e.contains("no handoverVersion"), "{e}");
        let e = Handover::decode("not json").unwrap_err();
        assert!(e.contains("not JSON"), "{e}");
    }

    #[test]
    fn accepted_versions_are_named() {
        assert!(accepts(HANDOVER_VERSION).is_ok());
        assert!(accepts(1).is_ok(), "the first format is still read");
        assert!(accepts(0).is_err());
    }
}
