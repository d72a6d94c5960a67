//! `recover` (daemon.md §9): find the processes a crashed daemon left behind
//! in `statePath` and, with force, stop their process groups. No daemon is
//! involved; a live control socket means those pids are not orphans.

use std::time::Duration;

use super::orphans::{self, Orphan};
use super::pgroup::{self, Sent};
use crate::config::Config;
use crate::control::probe::{Probe, probe};

const POLL: Duration = Duration::from_millis(50);
/// How long SIGKILL gets to take effect before the orphan counts as remaining.
const KILL_CONFIRM: Duration = Duration::from_millis(500);

/// What a recover run found and did.
#[derive(Debug, Default)]
pub struct Outcome {
    pub state_path: String,
    /// Live orphans found in the snapshot (dry run: the list to review).
    pub orphans: Vec<Orphan>,
    pub stopped: Vec<Orphan>,
    pub remaining: Vec<Orphan>,
    /// The state file was removed (force, nothing remaining).
    pub cleared: bool,
    /// Removing the state file failed.
    pub clear_error: Option<String>,
}

/// Refusals: no `statePath`, or something is live on `control.path`.
pub fn recover(config: &Config, force: bool) -> Result<Outcome, String> {
    let Some(state_path) = config.state_path.clone() else {
        return Err(
            "No statePath is configured; set statePath in the Rollbridge config to enable recovery."
                .to_owned(),
        );
    };
    let path = &config.control.path;
    if !matches!(probe(path), Ok(Probe::NotAlive)) {
        return Err(format!(
            "A Rollbridge daemon or another process is using {path}; stop it first. \
             recover is for cleaning up after a daemon crash."
        ));
    }
    let mut out = Outcome {
        orphans: orphans::detect(&state_path),
        state_path,
        ..Outcome::default()
    };
    if !force {
        return Ok(out);
    }
    let timeout = Duration::from_millis(config.proxy.force_stop_timeout_ms);
    for orphan in &out.orphans {
        if stop_group(orphan.pid, timeout) {
            out.stopped.push(orphan.clone());
        } else {
            out.remaining.push(orphan.clone());
        }
    }
    if out.remaining.is_empty() {
        match std::fs::remove_file(&out.state_path) {
            Ok(()) => out.cleared = true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => out.cleared = true,
            Err(e) => {
                out.clear_error = Some(format!(
                    "Cannot remove the state file {}: {e}",
                    out.state_path
                ))
            }
        }
    }
    Ok(out)
}

/// SIGTERM, wait for the whole group, SIGKILL, confirm; true when stopped.
fn stop_group(pgid: u32, timeout: Duration) -> bool {
    match pgroup::signal(pgid, libc::SIGTERM) {
        Sent::Gone => return true,
        Sent::Failed(_) => return false,
        Sent::Delivered => {}
    }
    if pgroup::wait_gone(pgid, timeout, POLL) {
        return true;
    }
    match pgroup::signal(pgid, libc::SIGKILL) {
        Sent::Gone => true,
        Sent::Failed(_) => false,
        Sent::Delivered => pgroup::wait_gone(pgid, KILL_CONFIRM, POLL),
    }
}
