//! Traffic control as the daemon keeps it: maintenance (persisted in
//! `statePath` and read back on start) and pause. The proxy thread does the
//! work; the core records the settings, steers the proxy and reports them
//! in `status` and the event history.

use serde_json::{Map, Value};

use super::Core;
use crate::control::protocol::Reply;
use crate::events::{Data, Event};
use crate::proxy::Maintenance as Page;
use crate::proxy::traffic::DEFAULT_MAINTENANCE_MESSAGE;
use crate::timefmt::iso_now;

/// Default of `pause --timeout-ms`.
pub const DEFAULT_PAUSE_TIMEOUT_MS: u64 = 30_000;

#[derive(Debug, Default)]
pub struct Traffic {
    pub maintenance: Option<MaintenanceOn>,
    pub paused: Option<PausedSince>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MaintenanceOn {
    pub message: String,
    pub retry_after: Option<u64>,
    pub since: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PausedSince {
    pub since: String,
    pub timeout_ms: u64,
}

impl MaintenanceOn {
    /// The status / persisted form: `{message, retryAfter?, since}`.
    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("message".into(), self.message.clone().into());
        if let Some(s) = self.retry_after {
            m.insert("retryAfter".into(), s.into());
        }
        m.insert("since".into(), self.since.clone().into());
        Value::Object(m)
    }

    /// Reads the persisted form back (`None` for `null` or anything else).
    pub(super) fn from_json(v: &Value) -> Option<MaintenanceOn> {
        let o = v.as_object()?;
        Some(MaintenanceOn {
            message: o.get("message")?.as_str()?.to_string(),
            retry_after: o.get("retryAfter").and_then(Value::as_u64),
            since: o.get("since")?.as_str()?.to_string(),
        })
    }

    fn page(&self) -> Page {
        Page {
            message: self.message.clone(),
            retry_after: self.retry_after,
        }
    }
}

impl Core {
    /// `maintenance on|off`.
    pub(super) fn maintenance(
        &mut self,
        enabled: bool,
        message: Option<String>,
        retry_after: Option<u64>,
    ) -> Reply {
        if !enabled {
            let was = self.traffic.maintenance.take();
            self.proxy
                .handle()
                .set_maintenance(None)
                .map_err(|e| format!("proxy: {e}"))?;
            if was.is_some() {
                self.record(Event::new("maintenance off", Data::new()));
                self.persist_now();
            }
            return Ok(r#"{"message":"maintenance off","maintenance":null}"#.into());
        }
        let on = MaintenanceOn {
            message: message.unwrap_or_else(|| DEFAULT_MAINTENANCE_MESSAGE.into()),
            retry_after,
            // Changing the page of a running maintenance keeps its start.
            since: self
                .traffic
                .maintenance
                .as_ref()
                .map_or_else(iso_now, |m| m.since.clone()),
        };
        self.proxy
            .handle()
            .set_maintenance(Some(on.page()))
            .map_err(|e| format!("proxy: {e}"))?;
        let json = on.to_json();
        self.traffic.maintenance = Some(on);
        self.record(Event::new("maintenance on", event_data(&json)));
        self.persist_now();
        Ok(format!(
            r#"{{"message":"maintenance on","maintenance":{json}}}"#
        ))
    }

    /// `pause [--timeout-ms]`.
    pub(super) fn pause(&mut self, timeout_ms: Option<u64>) -> Reply {
        let timeout_ms = timeout_ms.unwrap_or(DEFAULT_PAUSE_TIMEOUT_MS);
        self.proxy
            .handle()
            .pause(std::time::Duration::from_millis(timeout_ms))
            .map_err(|e| format!("proxy: {e}"))?;
        let since = self
            .traffic
            .paused
            .as_ref()
            .map_or_else(iso_now, |p| p.since.clone());
        let first = self.traffic.paused.is_none();
        self.traffic.paused = Some(PausedSince { since, timeout_ms });
        if first {
            self.record(Event::new(
                "paused",
                Data::new().with("timeoutMs", timeout_ms),
            ));
        }
        let paused = self.traffic_status().1;
        Ok(format!(r#"{{"message":"paused","paused":{paused}}}"#))
    }

    /// `resume`: held requests go to the release active now.
    pub(super) fn resume(&mut self) -> Reply {
        let held = self.proxy.handle().held();
        self.proxy
            .handle()
            .resume()
            .map_err(|e| format!("proxy: {e}"))?;
        if self.traffic.paused.take().is_some() {
            self.record(Event::new("resumed", Data::new().with("held", held)));
            return Ok(format!(
                r#"{{"message":"resumed","resumed":{held},"paused":null}}"#
            ));
        }
        Ok(r#"{"message":"not paused","resumed":0,"paused":null}"#.into())
    }

    /// Status `maintenance` and `paused`.
    pub(super) fn traffic_status(&self) -> (Value, Value) {
        let maintenance = self
            .traffic
            .maintenance
            .as_ref()
            .map_or(Value::Null, MaintenanceOn::to_json);
        let paused = self.traffic.paused.as_ref().map_or(Value::Null, |p| {
            let mut m = Map::new();
            m.insert("since".into(), p.since.clone().into());
            m.insert("timeoutMs".into(), p.timeout_ms.into());
            m.insert("held".into(), self.proxy.handle().held().into());
            Value::Object(m)
        });
        (maintenance, paused)
    }

    /// Maintenance left on by a previous daemon (its `statePath` file) is
    /// on again before the first request is served.
    pub(super) fn restore_maintenance(&mut self, state_path: &str) {
        if self.traffic.maintenance.is_some() {
            // Carried over by an upgrade already.
            return;
        }
        let Some(on) = read_maintenance(state_path) else {
            return;
        };
        if self
            .proxy
            .handle()
            .set_maintenance(Some(on.page()))
            .is_err()
        {
            return;
        }
        let data = event_data(&on.to_json()).with("restored", true);
        self.traffic.maintenance = Some(on);
        self.record(Event::new("maintenance on", data));
    }
}

/// The `maintenance` member of a state file, when on.
fn read_maintenance(state_path: &str) -> Option<MaintenanceOn> {
    let text = std::fs::read_to_string(state_path).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    MaintenanceOn::from_json(v.get("maintenance")?)
}

fn event_data(json: &Value) -> Data {
    let mut data = Data::new();
    if let Some(o) = json.as_object() {
        for (k, v) in o {
            data = data.with(k, v.clone());
        }
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maintenance_round_trips_through_its_persisted_form() {
        let on = MaintenanceOn {
            message: "back soon".into(),
            retry_after: Some(30),
            since: "2026-01-01T00:00:00.000Z".into(),
        };
        let json = on.to_json();
        assert_eq!(
            json.to_string(),
            r#"{"message":"back soon","retryAfter":30,"since":"2026-01-01T00:00:00.000Z"}"#
        );
        assert_eq!(MaintenanceOn::from_json(&json), Some(on));
    }

    #[test]
    fn maintenance_without_retry_after_omits_the_key() {
        let on = MaintenanceOn {
            message: "m".into(),
            retry_after: None,
            since: "s".into(),
        };
        assert_eq!(on.to_json().to_string(), r#"{"message":"m","since":"s"}"#);
    }

    #[test]
    fn null_maintenance_is_off() {
        assert_eq!(MaintenanceOn::from_json(&Value::Null), None);
    }
}
