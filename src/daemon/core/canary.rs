//! The canary as the core keeps it: the record behind status `canary`,
//! starting one (`deploy --canary`), the switch of `promote`, and `abort`.
//! The proxy does the assignment; the core steers it and keeps the state.

use std::net::SocketAddr;

use serde_json::{Map, Value};

use super::*;
use crate::daemon::deploy::promote::Switched;

/// A running canary.
#[derive(Debug, Clone)]
pub struct CanaryOn {
    pub release_id: String,
    pub percent: u8,
    pub since: String,
    /// The config the canary was started with (adopted on promote).
    pub config: Box<Config>,
    pub upstream: SocketAddr,
}

impl CanaryOn {
    /// The status form: `{releaseId, percent, since}`.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("releaseId".into(), self.release_id.clone().into());
        m.insert("percent".into(), self.percent.into());
        m.insert("since".into(), self.since.clone().into());
        Value::Object(m)
    }
}

/// Why a deploy or rollback cannot start, given the canary and the active
/// release (pure, for the core's checks).
pub fn refusal(
    canary: Option<&str>,
    active: Option<&str>,
    rollback: bool,
    as_canary: bool,
) -> Option<String> {
    let what = if rollback { "rollback" } else { "deploy" };
    if let Some(id) = canary {
        return Some(format!(
            "Release \"{id}\" is running as the canary: run `rollbridge promote` or `rollbridge abort` before another {what}."
        ));
    }
    if as_canary && active.is_none() {
        return Some(
            "deploy --canary needs an active release to share the traffic with; deploy without --canary first."
                .into(),
        );
    }
    None
}

impl Core {
    /// `Err` when a deploy/rollback must not start because of the canary.
    pub(super) fn canary_refusal(&self, rollback: bool, as_canary: bool) -> Result<(), String> {
        match refusal(
            self.canary.as_ref().map(|c| c.release_id.as_str()),
            self.state.active_release_id.as_deref(),
            rollback,
            as_canary,
        ) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The canary's identity as a deploy request (what promote runs as).
    pub(super) fn canary_request(&self) -> deploy::Request {
        let r = self
            .canary
            .as_ref()
            .and_then(|c| self.state.releases.iter().find(|r| r.id == c.release_id));
        deploy::Request {
            release_path: r.map(|r| r.path.clone()).unwrap_or_default(),
            release_id: r.map(|r| r.id.clone()),
            revision: r.map(|r| r.revision.clone()),
            canary: None,
        }
    }

    /// Status `canary`.
    pub(super) fn canary_status(&self) -> Value {
        self.canary.as_ref().map_or(Value::Null, CanaryOn::to_json)
    }

    /// `deploy --canary`: the started, healthy release becomes the canary.
    /// Returns the active release id.
    pub(super) fn start_canary(
        &mut self,
        mut release: Release,
        config: Box<Config>,
        upstream: SocketAddr,
        percent: u8,
    ) -> Result<String, String> {
        if self.shutdown.is_some() {
            return Err("Rollbridge is shutting down".into());
        }
        let Some(active) = self.state.active_release_id.clone() else {
            return Err(refusal(None, None, false, true).unwrap_or_default());
        };
        for (id, port) in &self.state.service_ports {
            if !release.ports.iter().any(|(i, _)| i == id) {
                release.ports.push((id.clone(), *port));
            }
        }
        let id = release.id.clone();
        self.proxy
            .handle()
            .set_canary(id.as_str(), upstream, percent)
            .map_err(|e| format!("Cannot start the canary in the proxy: {e}"))?;
        match self.state.releases.iter_mut().find(|r| r.id == id) {
            Some(slot) => *slot = release,
            None => self.state.releases.push(release),
        }
        let on = CanaryOn {
            release_id: id.clone(),
            percent,
            since: iso_now(),
            config,
            upstream,
        };
        self.record(Event::new(
            "canary started",
            Data::new()
                .with("activeReleaseId", active.as_str())
                .with("percent", percent)
                .with("releaseId", id.as_str()),
        ));
        self.canary = Some(on);
        Ok(active)
    }

    /// `promote`'s switch: the canary becomes active (traffic switched,
    /// its config adopted).
    pub(super) fn promote_switch(&mut self) -> Result<Switched, String> {
        let Some(on) = self.canary.take() else {
            return Err(NO_CANARY_PROMOTE.into());
        };
        let Some(mut release) = self
            .state
            .releases
            .iter()
            .find(|r| r.id == on.release_id)
            .cloned()
        else {
            return Err(format!("Canary release \"{}\" is gone.", on.release_id));
        };
        release.state = ReleaseState::Active;
        release.activated_at = Some(iso_now());
        let previous = self.activate(release.clone(), (*on.config).clone(), on.upstream)?;
        self.record(Event::new(
            "canary promoted",
            Data::new()
                .with("percent", on.percent)
                .with(
                    "previousReleaseId",
                    previous.as_deref().map(Value::from).unwrap_or_default(),
                )
                .with("releaseId", on.release_id.as_str()),
        ));
        Ok(Switched {
            previous,
            release: Box::new(release),
            config: on.config,
        })
    }

    /// `abort`: the canary drains (requests and tunnels, bounded by
    /// drainTimeoutMs) and stops; its clients go back to the active release.
    pub(super) fn abort_canary(&mut self) -> Reply {
        let Some(on) = self.canary.take() else {
            return Err(NO_CANARY_ABORT.into());
        };
        self.record(Event::new(
            "canary aborted",
            Data::new()
                .with("percent", on.percent)
                .with("releaseId", on.release_id.as_str()),
        ));
        self.retire_with(on.release_id.clone(), *on.config);
        self.persist_now();
        let out = serde_json::json!({
            "message": "canary aborted",
            "abortedReleaseId": on.release_id,
            "activeReleaseId": self.state.active_release_id,
            "canary": null,
        });
        Ok(out.to_string())
    }

    /// A `stop` of the canary release ends the canary too.
    pub(super) fn forget_canary(&mut self, release_id: &str) {
        if self
            .canary
            .as_ref()
            .is_some_and(|c| c.release_id == release_id)
        {
            let on = self.canary.take();
            let percent = on.map_or(0, |c| c.percent);
            self.record(Event::new(
                "canary aborted",
                Data::new()
                    .with("percent", percent)
                    .with("releaseId", release_id),
            ));
        }
    }
}

pub const NO_CANARY_PROMOTE: &str =
    "No canary to promote: start one with `rollbridge deploy --canary <percent>`.";
pub const NO_CANARY_ABORT: &str =
    "No canary to abort: start one with `rollbridge deploy --canary <percent>`.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deploy_and_rollback_are_refused_naming_the_canary() {
        let e = refusal(Some("v2"), Some("v1"), false, false).unwrap();
        assert!(
            e.contains("\"v2\"") && e.contains("promote") && e.contains("abort"),
            "{e}"
        );
        assert!(e.contains("another deploy"), "{e}");
        let e = refusal(Some("v2"), Some("v1"), true, false).unwrap();
        assert!(e.contains("another rollback"), "{e}");
        assert!(refusal(Some("v2"), Some("v1"), false, true).is_some());
    }

    #[test]
    fn canary_needs_an_active_release() {
        assert!(refusal(None, None, false, true).is_some());
        assert_eq!(refusal(None, Some("v1"), false, true), None);
        assert_eq!(refusal(None, None, false, false), None);
    }
}
