//! `recover`: find the processes a crashed daemon left behind in its state
//! file (`statePath`, or the default runtime record) and, with force, stop
//! their process groups. No daemon is involved: a held daemon lock, a live
//! writer pid or a live control socket means those pids are not orphans.

use std::time::Duration;

use super::liveness::{self, DaemonLock, Holder};
use super::orphans::{self, Orphan};
use super::pgroup::{self, Sent};
use super::statefile::{self, Read};
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
    /// The state file was unreadable and its previous version was used.
    pub note: Option<String>,
    /// With `adoptOrphans`: what a daemon start would do with the snapshot.
    pub adoption: Option<super::adopt::Plan>,
}

/// Refusals: no state file to read, a live daemon (lock, writer pid or
/// control socket), an unreadable state file without a previous version.
pub fn recover(config: &Config, force: bool) -> Result<Outcome, String> {
    let location = statefile::location(config);
    let state_path = location.path.clone();
    let exists = |p: &str| std::fs::symlink_metadata(p).is_ok();
    if !location.configured && !exists(&state_path) && !exists(&statefile::prev_path(&state_path)) {
        return Err(
            "No statePath is configured; set statePath in the Rollbridge config to enable recovery."
                .to_owned(),
        );
    }
    refuse_live_daemon(config, &state_path)?;
    let read = statefile::read(&state_path);
    let note = match &read {
        Read::Corrupt { error } => {
            return Err(format!(
                "The state file {state_path} is unreadable ({error}) and there is no usable previous version \
                 ({}), so the processes it recorded cannot be listed. Look for leftover processes of this \
                 application by hand (for example `ps -eo pid,pgid,lstart,args`) and stop them, then move \
                 {state_path} aside so the next daemon starts clean.",
                statefile::prev_path(&state_path)
            ));
        }
        Read::FromPrev { error, .. } => Some(format!(
            "The state file {state_path} is unreadable ({error}); using its previous version {}.",
            statefile::prev_path(&state_path)
        )),
        _ => None,
    };
    if let Some(pid) = read.value().and_then(liveness::writer_alive) {
        return Err(format!(
            "The Rollbridge daemon (pid {pid}) that wrote {state_path} is still running; its processes are not \
             orphans. Stop it with `rollbridge shutdown` first."
        ));
    }
    let adoption = config.adopt_orphans.then(|| {
        read.value()
            .map(|v| super::adopt::plan(v, &super::adopt::proc_facts))
            .unwrap_or_default()
    });
    let mut out = Outcome {
        orphans: orphans::detect(read.value()),
        state_path,
        note,
        adoption,
        ..Outcome::default()
    };
    if !force {
        return Ok(out);
    }
    // Held while stopping: no daemon can start meanwhile.
    let _lock = match DaemonLock::acquire(&out.state_path) {
        Ok(lock) => Some(lock),
        Err(None) => return Err(live_message(config, &out.state_path)),
        Err(Some(_)) => None,
    };
    let timeout = Duration::from_millis(config.proxy.force_stop_timeout_ms);
    for orphan in &out.orphans {
        if stop_group(orphan.group(), timeout) {
            out.stopped.push(orphan.clone());
        } else {
            out.remaining.push(orphan.clone());
        }
    }
    if out.remaining.is_empty() {
        match statefile::clear(&out.state_path) {
            Ok(()) => out.cleared = true,
            Err(e) => out.clear_error = Some(e),
        }
    }
    Ok(out)
}

/// A daemon holding the lock is alive, whatever its socket says.
fn refuse_live_daemon(config: &Config, state_path: &str) -> Result<(), String> {
    let path = &config.control.path;
    if !matches!(probe(path), Ok(Probe::NotAlive)) {
        return Err(format!(
            "A Rollbridge daemon or another process is using {path}; stop it first. \
             recover is for cleaning up after a daemon crash."
        ));
    }
    match liveness::holder(state_path) {
        Holder::Nobody => {}
        Holder::Daemon => return Err(live_message(config, state_path)),
        Holder::Unknown(e) => {
            return Err(format!(
                "Cannot tell whether a Rollbridge daemon is running ({e}); run recover as the daemon's user."
            ));
        }
    }
    Ok(())
}

fn live_message(config: &Config, state_path: &str) -> String {
    format!(
        "A Rollbridge daemon for application \"{}\" is running (it holds {}), even if its control socket {} is \
         missing; its processes are not orphans. Stop it with `rollbridge shutdown` (it re-creates its socket \
         within a second). recover is for cleaning up after a daemon crash.",
        config.application,
        statefile::lock_path(state_path),
        config.control.path
    )
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
