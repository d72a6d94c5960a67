//! Daemon-owned records (only the core loop touches them): releases,
//! services, singletons. Deploys fill them; status reads them.

use crate::supervisor::ProcKey;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReleaseState {
    Starting,
    Active,
    /// Started and healthy, taking a share of new clients (`deploy --canary`).
    Canary,
    Draining,
    Stopped,
    Failed,
}

/// One retained release.
#[derive(Debug, Clone)]
pub struct Release {
    pub id: String,
    pub path: String,
    pub revision: String,
    pub state: ReleaseState,
    pub activated_at: Option<String>,
    pub drain_started_at: Option<String>,
    pub stopped_at: Option<String>,
    /// Process id -> port, config order (persistent services included).
    pub ports: Vec<(String, u16)>,
    /// Instances (instance id + supervisor key) in start order.
    pub processes: Vec<Named>,
    /// In-flight proxied requests / open upgraded sockets (from the proxy).
    pub http: u64,
    pub websocket: u64,
}

/// A daemon-wide process (persistent service or singleton).
#[derive(Debug, Clone)]
pub struct Named {
    pub id: String,
    pub key: ProcKey,
}

/// Everything the core owns besides the event ring.
#[derive(Debug, Default)]
pub struct DaemonState {
    pub active_release_id: Option<String>,
    /// First-insertion order.
    pub releases: Vec<Release>,
    pub services: Vec<Named>,
    /// Stable ports of running persistent services (id -> port).
    pub service_ports: Vec<(String, u16)>,
    pub singletons: Vec<Named>,
}

impl DaemonState {
    /// Every supervisor key status needs, in status order.
    pub fn active(&self) -> Option<&Release> {
        let id = self.active_release_id.as_deref()?;
        self.releases.iter().find(|r| r.id == id)
    }

    pub fn all_keys(&self) -> Vec<ProcKey> {
        let mut keys: Vec<ProcKey> = Vec::new();
        for r in &self.releases {
            keys.extend(r.processes.iter().map(|p| p.key));
        }
        keys.extend(self.services.iter().map(|s| s.key));
        keys.extend(self.singletons.iter().map(|s| s.key));
        keys
    }
}
