//! `rollbridge predeploy-cleanup`: before the first deploy
//! after a migration, stop a stale daemon, recover its orphans and stop the
//! legacy supervisor's processes, so the deploy starts on a clean host.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cli::Args;
use crate::config::Config;
use crate::control::client;
use crate::control::probe::{Probe, probe};
use crate::daemon::recover::recover;

const SHUTDOWN_POLL: Duration = Duration::from_millis(250);
const SHUTDOWN_WAIT: Duration = Duration::from_secs(30);

pub fn run(args: &Args) -> i32 {
    match cleanup(args) {
        Ok(lines) => {
            crate::out!("{lines}");
            0
        }
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

/// The three summary lines, or the first error. `Ok` early (one line) when
/// the running daemon already serves this config.
fn cleanup(args: &Args) -> Result<String, String> {
    let config = crate::config::load(args.config.as_deref())?.config;
    let daemon_line = match stop_daemon(&config, args.release_path.as_deref())? {
        Daemon::AlreadyActive => {
            return Ok(
                "Rollbridge daemon already has an active release; no legacy cleanup needed.\n"
                    .into(),
            );
        }
        Daemon::Stopped => "Stopped existing Rollbridge daemon before deploy.",
        Daemon::None => "No active Rollbridge daemon found.",
    };
    let recovered = recover_orphans(&config)?;
    let legacy = match &config.legacy_takeover {
        Some(takeover) => super::legacy::stop(takeover)?,
        None => 0,
    };
    Ok(format!(
        "{daemon_line}\nRecovered {recovered} Rollbridge orphaned {}.\nStopped {legacy} legacy {}.\n",
        noun(recovered),
        noun(legacy)
    ))
}

fn noun(n: usize) -> &'static str {
    if n == 1 { "process" } else { "processes" }
}

enum Daemon {
    None,
    AlreadyActive,
    Stopped,
}

/// Step 2: leave a daemon that already serves this config alone; shut
/// down any other one of this application.
fn stop_daemon(config: &Config, pending_release: Option<&str>) -> Result<Daemon, String> {
    let path = &config.control.path;
    match probe(path)? {
        Probe::NotAlive => return Ok(Daemon::None),
        Probe::Unidentified => {
            return Err(format!(
                "A non-Rollbridge process is using {path}; refusing to continue."
            ));
        }
        Probe::Rollbridge { application, .. } if application != config.application => {
            return Err(format!(
                "The Rollbridge daemon on {path} serves application \"{application}\", expected \"{}\"; refusing to continue.",
                config.application
            ));
        }
        Probe::Rollbridge { .. } => {}
    }
    let status = client::request(
        path,
        r#"{"command":"status"}"#,
        Some(client::DEFAULT_TIMEOUT),
    )
    .map_err(|e| e.message().to_owned())?;
    let status: Value = serde_json::from_str(&status).map_err(|e| e.to_string())?;
    if serves(&status, config, pending_release) {
        return Ok(Daemon::AlreadyActive);
    }
    // The reply may never come if the daemon dies first; the poll decides.
    let _ = client::request(path, r#"{"command":"shutdown"}"#, Some(SHUTDOWN_WAIT));
    let deadline = Instant::now() + SHUTDOWN_WAIT;
    // Dead = its socket gone and its lock released (it holds the lock
    // until its processes are stopped).
    let state = crate::daemon::statefile::location(config).path;
    let alive = || {
        !matches!(probe(path), Ok(Probe::NotAlive))
            || crate::daemon::liveness::holder(&state) == crate::daemon::liveness::Holder::Daemon
    };
    while alive() {
        if Instant::now() >= deadline {
            return Err(format!(
                "Timed out waiting for the Rollbridge daemon at {path} to shut down."
            ));
        }
        std::thread::sleep(SHUTDOWN_POLL);
    }
    Ok(Daemon::Stopped)
}

/// Active release, same proxy host/port/upstreamHost, and no known
/// Rollbridge version difference between the active and pending release.
fn serves(status: &Value, config: &Config, pending_release: Option<&str>) -> bool {
    let Some(active) = status.get("activeReleaseId").and_then(Value::as_str) else {
        return false;
    };
    let proxy = &status["proxy"];
    if proxy["host"].as_str() != Some(config.proxy.host.as_str())
        || proxy["port"].as_u64() != Some(u64::from(config.proxy.port))
        || proxy["upstreamHost"].as_str() != Some(config.proxy.upstream_host.as_str())
    {
        return false;
    }
    let Some(pending) = pending_release else {
        return true;
    };
    let active_path = status["releases"].as_array().and_then(|rs| {
        rs.iter()
            .find(|r| r["releaseId"].as_str() == Some(active))
            .and_then(|r| r["releasePath"].as_str())
    });
    match (
        active_path.and_then(bundled_version),
        bundled_version(pending),
    ) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}

/// The Rollbridge version installed in a release, as the original reads it.
fn bundled_version(release_path: &str) -> Option<String> {
    let file = std::path::Path::new(release_path).join("node_modules/rollbridge/package.json");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(file).ok()?).ok()?;
    v.get("version")?.as_str().map(str::to_owned)
}

/// Step 3: forced recover when `statePath` is set; any survivor fails.
fn recover_orphans(config: &Config) -> Result<usize, String> {
    if config.state_path.is_none() {
        return Ok(0);
    }
    let outcome = recover(config, true)?;
    if !outcome.remaining.is_empty() {
        let n = outcome.remaining.len();
        return Err(format!(
            "Could not stop {n} Rollbridge orphaned {}.",
            noun(n)
        ));
    }
    if let Some(e) = outcome.clear_error {
        return Err(e);
    }
    Ok(outcome.stopped.len())
}
