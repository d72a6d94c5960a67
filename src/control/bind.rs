//! Binding the control socket (`daemon.md` §2.1): probe the path, remove a
//! stale file, listen with the configured mode already in the umask (no
//! window with looser permissions), then chmod/chown. A failed chown
//! removes the socket it just created.

use std::io::ErrorKind;

use mio::net::UnixListener;

use super::perms;
use super::probe::{Probe, already_running_message, probe};
use crate::config::ControlConfig;

/// Probes `path`; a live daemon or foreign listener is an error, a stale
/// file is removed. Run before binding anything else, so a second daemon
/// gets the "already running" diagnostic instead of "address in use".
pub fn clear_path(path: &str) -> Result<(), String> {
    match probe(path)? {
        Probe::NotAlive => {}
        alive => return Err(already_running_message(path, &alive)),
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("Cannot remove stale control socket {path}: {e}")),
    }
}

/// Listens on `control.path` with mode and ownership applied.
pub fn bind(cfg: &ControlConfig) -> Result<UnixListener, String> {
    let path = &cfg.path;
    // SAFETY: umask only swaps the process mask; startup is single-threaded
    // here (no other thread creates files yet).
    let old_mask = cfg
        .mode
        .map(|m| unsafe { libc::umask((!m & 0o777) as libc::mode_t) });
    let bound = UnixListener::bind(path);
    if let Some(old) = old_mask {
        // SAFETY: restores the previous mask.
        unsafe {
            libc::umask(old);
        }
    }
    let listener = bound.map_err(|e| format!("Cannot listen on control socket {path}: {e}"))?;
    if let Err(e) = perms::apply(path, cfg.mode, cfg.owner.as_ref(), cfg.group.as_ref()) {
        let _ = std::fs::remove_file(path);
        return Err(e);
    }
    Ok(listener)
}
