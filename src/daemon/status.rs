//! The status object. Struct field order is
//! the key order; absent values are skipped, `null`s kept.

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::Value;

use super::orphans::Orphan;
use super::state::{DaemonState, ReleaseState};
use crate::config::{Config, IdOrName};
use crate::runtime::RuntimeIdentity;
use crate::supervisor::ProcessStatus;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusView {
    pub active_release_id: Option<String>,
    pub application: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bootstrap: Option<Value>,
    pub control: ControlView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daemon_runtime: Option<RuntimeIdentity>,
    pub orphans: Vec<Orphan>,
    pub proxy: ProxyView,
    pub releases: Vec<ReleaseView>,
    pub services: Vec<NamedProcess>,
    pub singletons: Vec<NamedProcess>,
    /// `null` or `{message, retryAfter?, since}` (set by the core).
    pub maintenance: Value,
    /// `null` or `{since, timeoutMs, held}` (set by the core).
    pub paused: Value,
    /// `null` or `{releaseId, percent, since}` (set by the core).
    pub canary: Value,
    /// `null` or `{at, fromReleaseId, toReleaseId, reason}` (set by the core).
    pub last_auto_rollback: Value,
}

#[derive(Debug, Serialize)]
pub struct ControlView {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<Value>,
    pub path: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyView {
    pub host: String,
    pub port: u16,
    pub upstream_host: String,
    pub max_connections: usize,
    pub open_connections: usize,
    pub at_connection_limit: bool,
}

/// What the running proxy contributes: the bound port and its load.
#[derive(Debug, Clone, Copy)]
pub struct ProxyLive {
    pub port: u16,
    pub load: crate::proxy::ConnectionLoad,
}

#[derive(Debug, Serialize)]
pub struct Connections {
    pub http: u64,
    pub websocket: u64,
}

/// `ports`: id -> port in config order.
#[derive(Debug)]
pub struct Ports(pub Vec<(String, u16)>);

impl Serialize for Ports {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseView {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activated_at: Option<String>,
    pub connection_count: u64,
    pub connections: Connections,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain_started_at: Option<String>,
    pub ports: Ports,
    pub processes: Vec<ProcessStatus>,
    pub release_id: String,
    pub release_path: String,
    pub revision: String,
    pub state: ReleaseState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct NamedProcess {
    pub id: String,
    pub process: ProcessStatus,
}

fn id_or_name(v: &IdOrName) -> Value {
    match v {
        IdOrName::Id(id) => Value::from(*id),
        IdOrName::Name(n) => Value::from(n.as_str()),
    }
}

/// Builds the view; `processes` holds the supervisor snapshots in the
/// order of [`DaemonState::all_keys`].
pub fn build(
    config: &Config,
    proxy: ProxyLive,
    state: &DaemonState,
    orphans: &[Orphan],
    runtime: Option<&RuntimeIdentity>,
    processes: Vec<Option<ProcessStatus>>,
) -> StatusView {
    let mut snaps = processes.into_iter();
    let mut next = |n: usize| -> Vec<ProcessStatus> {
        (0..n).filter_map(|_| snaps.next().flatten()).collect()
    };
    let releases = state
        .releases
        .iter()
        .map(|r| ReleaseView {
            activated_at: r.activated_at.clone(),
            connection_count: r.http + r.websocket,
            connections: Connections {
                http: r.http,
                websocket: r.websocket,
            },
            drain_started_at: r.drain_started_at.clone(),
            ports: Ports(r.ports.clone()),
            processes: next(r.processes.len()),
            release_id: r.id.clone(),
            release_path: r.path.clone(),
            revision: r.revision.clone(),
            state: r.state,
            stopped_at: r.stopped_at.clone(),
        })
        .collect();
    let mut named = |list: &[super::state::Named]| -> Vec<NamedProcess> {
        list.iter()
            .filter_map(|n| {
                next(1).pop().map(|process| NamedProcess {
                    id: n.id.clone(),
                    process,
                })
            })
            .collect()
    };
    let services = named(&state.services);
    let singletons = named(&state.singletons);
    StatusView {
        active_release_id: state.active_release_id.clone(),
        application: config.application.clone(),
        bootstrap: None,
        control: ControlView {
            group: config.control.group.as_ref().map(id_or_name),
            mode: config.control.mode,
            owner: config.control.owner.as_ref().map(id_or_name),
            path: config.control.path.clone(),
        },
        daemon_runtime: runtime.cloned(),
        orphans: orphans.to_vec(),
        proxy: ProxyView {
            host: config.proxy.host.clone(),
            port: proxy.port,
            upstream_host: config.proxy.upstream_host.clone(),
            max_connections: proxy.load.max_connections,
            open_connections: proxy.load.open_connections,
            at_connection_limit: proxy.load.at_connection_limit,
        },
        releases,
        services,
        singletons,
        maintenance: Value::Null,
        paused: Value::Null,
        canary: Value::Null,
        last_auto_rollback: Value::Null,
    }
}
