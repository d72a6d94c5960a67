//! Retiring a release in the background: stop the
//! non-blocking companions at once, wait for the proxy to report the
//! release drained (or the drain deadline, then cut what is left), stop
//! the connection-dependent processes, then handoff services.

use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

use super::{DeployMsg, stop_parallel};
use crate::daemon::core::CoreMsg;
use crate::proxy::ProxyHandle;
use crate::supervisor::{ProcKey, SupervisorHandle};

/// The retiring release's processes, partitioned by when they stop.
#[derive(Debug, Default, Clone)]
pub struct Groups {
    /// `nonBlockingDrain` companions: stop in parallel with the drain.
    pub non_blocking: Vec<ProcKey>,
    /// Everything that serves connections: stop after the drain.
    pub dependent: Vec<ProcKey>,
    /// Handoff services: stop last.
    pub handoff: Vec<ProcKey>,
}

impl Groups {
    pub fn all(&self) -> Vec<ProcKey> {
        let mut keys = self.non_blocking.clone();
        keys.extend(&self.dependent);
        keys.extend(&self.handoff);
        keys
    }
}

pub struct Retirement {
    pub release_id: String,
    pub groups: Groups,
    pub drain_timeout: Duration,
    /// Fires when the proxy reports the release drained.
    pub drained: Receiver<()>,
    pub proxy: ProxyHandle,
    pub supervisor: SupervisorHandle,
    pub core: Sender<CoreMsg>,
}

/// Runs the retirement on its own thread; the core hears `Retired`.
pub fn spawn(r: Retirement) {
    let core = r.core.clone();
    let id = r.release_id.clone();
    let keys = r.groups.all();
    let run = move || {
        let supervisor = r.supervisor.clone();
        let early = r.groups.non_blocking.clone();
        let early_stops = std::thread::spawn(move || stop_parallel(&supervisor, &early));
        if r.drained.recv_timeout(r.drain_timeout).is_err() {
            // Deadline: responses in progress are cut, tunnels torn down.
            let _ = r.proxy.force_close(r.release_id.as_str());
        }
        let mut failed = stop_parallel(&r.supervisor, &r.groups.dependent);
        failed += early_stops.join().unwrap_or(0);
        failed += stop_parallel(&r.supervisor, &r.groups.handoff);
        let error = (failed > 0).then(|| format!("{failed} process(es) did not stop"));
        let keys = r.groups.all();
        let _ = r.core.send(CoreMsg::Deploy(DeployMsg::Retired {
            release_id: r.release_id,
            keys,
            error,
        }));
    };
    if std::thread::Builder::new()
        .name("retire".into())
        .spawn(run)
        .is_err()
    {
        let _ = core.send(CoreMsg::Deploy(DeployMsg::Retired {
            release_id: id,
            keys,
            error: Some("cannot start the retirement thread".into()),
        }));
    }
}
