//! What is at the control path before binding: nothing,
//! a Rollbridge daemon (then the "already running" diagnostic), or some
//! other process. The same probe serves `doctor` and `recover`.

use std::io::{BufRead, BufReader, Write};
use std::time::Duration;

use super::client::{ClientError, connect};

/// How long the probe waits for the `status` answer.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(1000);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    NotAlive,
    Rollbridge {
        application: String,
        active_release_id: Option<String>,
        /// `proxy {host, port}` as reported, so `doctor` can tell the port
        /// is held by this very daemon.
        proxy: Option<(String, u16)>,
    },
    Unidentified,
}

pub fn probe(path: &str) -> Result<Probe, String> {
    probe_raw(path).map_err(|e| format!("Cannot check the control socket {path}: {e}"))
}

/// [`probe`] with the bare connect error (`connect EACCES <path>`), for
/// callers that word the failure themselves.
pub fn probe_raw(path: &str) -> Result<Probe, String> {
    let stream = match connect(path) {
        Ok(s) => s,
        Err(ClientError::NoDaemon(_)) => return Ok(Probe::NotAlive),
        Err(e) => return Err(e.message()),
    };
    let _ = stream.set_read_timeout(Some(PROBE_TIMEOUT));
    let _ = stream.set_write_timeout(Some(PROBE_TIMEOUT));
    if (&stream).write_all(b"{\"command\":\"status\"}\n").is_err() {
        return Ok(Probe::Unidentified);
    }
    let mut line = Vec::new();
    let mut reader = BufReader::new(std::io::Read::take(&stream, 16 * 1024 * 1024));
    if reader.read_until(b'\n', &mut line).is_err() || !line.ends_with(b"\n") {
        return Ok(Probe::Unidentified);
    }
    Ok(identify(&line))
}

fn identify(line: &[u8]) -> Probe {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(line) else {
        return Probe::Unidentified;
    };
    match value.get("application").and_then(|a| a.as_str()) {
        Some(app) if value.is_object() => Probe::Rollbridge {
            application: app.to_owned(),
            active_release_id: value
                .get("activeReleaseId")
                .and_then(|a| a.as_str())
                .map(str::to_owned),
            proxy: proxy_of(&value),
        },
        _ => Probe::Unidentified,
    }
}

fn proxy_of(status: &serde_json::Value) -> Option<(String, u16)> {
    let proxy = status.get("proxy")?;
    let host = proxy.get("host")?.as_str()?;
    let port = u16::try_from(proxy.get("port")?.as_u64()?).ok()?;
    Some((host.to_owned(), port))
}

/// The startup error for a live socket.
pub fn already_running_message(path: &str, probe: &Probe) -> String {
    match probe {
        Probe::Rollbridge {
            application,
            active_release_id,
            ..
        } => {
            let active = match active_release_id {
                Some(id) => format!("(active release: {id})"),
                None => "(no active release)".to_owned(),
            };
            format!(
                "A Rollbridge daemon for application \"{application}\" is already running on {path} {active}. \
                 Use `rollbridge status` to inspect it, `rollbridge shutdown` to stop it, \
                 or set a different control.path."
            )
        }
        _ => format!(
            "The control socket {path} is already in use by another process. \
             Stop that process or change control.path."
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_with_application_identifies_rollbridge() {
        assert_eq!(
            identify(br#"{"status":"success","activeReleaseId":"v1","application":"shop"}"#),
            Probe::Rollbridge {
                application: "shop".into(),
                active_release_id: Some("v1".into()),
                proxy: None,
            }
        );
    }

    #[test]
    fn status_proxy_is_remembered() {
        let p = identify(br#"{"application":"shop","proxy":{"host":"127.0.0.1","port":8182}}"#);
        assert!(matches!(p, Probe::Rollbridge { proxy: Some((h, 8182)), .. } if h == "127.0.0.1"));
    }

    #[test]
    fn anything_else_is_unidentified() {
        assert_eq!(identify(b"hello"), Probe::Unidentified);
        assert_eq!(identify(br#"{"application":1}"#), Probe::Unidentified);
    }

    #[test]
    fn messages_name_application_path_and_release() {
        let m = already_running_message(
            "/tmp/x.sock",
            &Probe::Rollbridge {
                application: "shop".into(),
                active_release_id: None,
                proxy: None,
            },
        );
        assert!(m.contains(
            "A Rollbridge daemon for application \"shop\" is already running on /tmp/x.sock (no active release)"
        ));
        assert!(m.contains("rollbridge status") && m.contains("rollbridge shutdown"));
        let m = already_running_message("/tmp/x.sock", &Probe::Unidentified);
        assert!(m.contains("/tmp/x.sock is already in use by another process"));
    }

    #[test]
    fn missing_path_is_not_alive() {
        assert_eq!(probe("/nonexistent-rb-dir/s.sock"), Ok(Probe::NotAlive));
    }
}
