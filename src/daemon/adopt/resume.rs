//! Traffic back on an adopted release: the proxied process is health-checked
//! on the normal schedule (the one a deploy uses), then the proxy routes to
//! it again. An adopted canary follows the same way and gets its share of
//! new clients back (clients keep the release their cookie names); a canary
//! that fails its check is aborted. Nothing is started here. Runs in the
//! operation slot, so a deploy, promote or abort sent meanwhile waits for it.

use std::time::Instant;

use crossbeam_channel::Sender;

use crate::config::HealthConfig;
use crate::control::protocol::Request;
use crate::control::server::{Incoming, ReplyTo};
use crate::daemon::core::CoreMsg;
use crate::events::{Data, Event};
use crate::proxy::ProxyHandle;
use crate::release::health;

/// The adopted canary's share of the traffic.
pub struct CanaryShare {
    pub release_id: String,
    /// Its proxied process's port.
    pub port: u16,
    pub percent: u8,
}

pub struct Resume {
    pub release_id: String,
    pub port: u16,
    pub canary: Option<CanaryShare>,
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
            if let Some(c) = r.canary.as_ref() {
                resume_canary(&r, c);
            }
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

/// The canary's share back after its health check; else it is aborted
/// (queued behind this operation, so it runs right after it).
fn resume_canary(r: &Resume, c: &CanaryShare) {
    let routed = r
        .health
        .as_ref()
        .map_or(Ok(()), |hc| healthy(&r.upstream_host, c.port, hc))
        .and_then(|()| {
            crate::proxy::resolve(&r.upstream_host, c.port)
                .map_err(|e| format!("Cannot resolve {}: {e}", r.upstream_host))
        })
        .and_then(|upstream| {
            r.proxy
                .set_canary(c.release_id.as_str(), upstream, c.percent)
                .map_err(|e| format!("Cannot start the canary in the proxy: {e}"))
        });
    let failed = routed.is_err();
    let event = match routed {
        Ok(()) => Event::new(
            "canary resumed",
            Data::new()
                .with("percent", c.percent)
                .with("port", c.port)
                .with("releaseId", c.release_id.as_str()),
        ),
        Err(error) => Event::new(
            "adopted canary not routed",
            Data::new()
                .with("error", error)
                .with("releaseId", c.release_id.as_str()),
        ),
    };
    let _ = r.core.send(CoreMsg::Record(event));
    if failed {
        let (reply, _answer) = ReplyTo::local();
        let _ = r.core.send(CoreMsg::Control(Incoming::Request {
            request: Request::Abort,
            reply,
        }));
    }
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
