//! Traffic back on an adopted release: the proxied process is health-checked
//! on the normal schedule (the one a deploy uses), then the proxy routes to
//! it again. Nothing is started here. Runs in the operation slot, so a
//! deploy sent meanwhile waits for it.

use std::time::Instant;

use crossbeam_channel::Sender;

use crate::config::HealthConfig;
use crate::daemon::core::CoreMsg;
use crate::events::{Data, Event};
use crate::proxy::ProxyHandle;
use crate::release::health;

pub struct Resume {
    pub release_id: String,
    pub port: u16,
    pub upstream_host: String,
    pub health: Option<HealthConfig>,
    pub proxy: ProxyHandle,
    pub core: Sender<CoreMsg>,
}

/// Runs on its own thread; the core hears events, then `OpDone`.
pub fn spawn(r: Resume) {
    let core = r.core.clone();
    let started = std::thread::Builder::new()
        .name("adopt-resume".into())
        .spawn(move || {
            let core = r.core.clone();
            let event = match resume(&r) {
                Ok(()) => Event::new(
                    "traffic resumed",
                    Data::new()
                        .with("port", r.port)
                        .with("releaseId", r.release_id.as_str()),
                ),
                Err(error) => Event::new(
                    "adopted release not routed",
                    Data::new()
                        .with("error", error)
                        .with("releaseId", r.release_id.as_str()),
                ),
            };
            let _ = core.send(CoreMsg::Record(event));
            let _ = core.send(CoreMsg::OpDone);
        });
    if let Err(e) = started {
        let _ = core.send(CoreMsg::Record(Event::new(
            "adopted release not routed",
            Data::new().with("error", format!("cannot start the resume thread: {e}")),
        )));
        let _ = core.send(CoreMsg::OpDone);
    }
}

fn resume(r: &Resume) -> Result<(), String> {
    if let Some(hc) = r.health.as_ref() {
        healthy(&r.upstream_host, r.port, hc)?;
    }
    let upstream = crate::proxy::resolve(&r.upstream_host, r.port)
        .map_err(|e| format!("Cannot resolve {}: {e}", r.upstream_host))?;
    r.proxy
        .set_active(r.release_id.as_str(), upstream)
        .map_err(|e| format!("Cannot switch the proxy: {e}"))
}

/// Probes on the health schedule until healthy or its deadline.
fn healthy(host: &str, port: u16, hc: &HealthConfig) -> Result<(), String> {
    let mut schedule = health::Schedule::new(Instant::now(), hc, health::url(host, port, &hc.path));
    let mut next = schedule.first_probe();
    loop {
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        let outcome = health::probe(host, port, &hc.path, schedule.probe_timeout(Instant::now()));
        match schedule.record(Instant::now(), outcome) {
            health::Verdict::Healthy => return Ok(()),
            health::Verdict::ProbeAt(at) => next = at,
            health::Verdict::Failed(summary) => return Err(summary),
        }
    }
}
