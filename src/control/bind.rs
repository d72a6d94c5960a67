//! Binding the control socket: probe the path, remove a
//! stale socket (never anything else: a regular file, directory or link at
//! the path is the operator's and stops the start), listen with the configured mode already in the umask (no
//! window with looser permissions), then chmod/chown. A failed chown
//! removes the socket it just created.

use std::io::ErrorKind;
use std::os::unix::fs::FileTypeExt;

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
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {}
        Ok(meta) => return Err(not_a_socket_message(path, &meta.file_type())),
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("Cannot inspect the control path {path}: {e}")),
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("Cannot remove stale control socket {path}: {e}")),
    }
}

/// The start error for something other than a socket at `control.path`.
fn not_a_socket_message(path: &str, kind: &std::fs::FileType) -> String {
    let what = if kind.is_file() {
        "a regular file"
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_symlink() {
        "a symbolic link"
    } else if kind.is_fifo() {
        "a named pipe"
    } else {
        "a device or other special file"
    };
    format!(
        "control.path {path} is {what}, not a socket, so Rollbridge will not remove it. \
         Choose another control.path, or remove {path} yourself if it is not needed."
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_regular_file_at_the_path_is_kept_and_named() {
        let dir = std::env::temp_dir().join(format!("rb-bind-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let file = dir.join("notes.txt");
        let _ = std::fs::write(&file, "keep me");
        let path = file.to_string_lossy().into_owned();
        let err = clear_path(&path).unwrap_err();
        assert!(
            err.contains(&format!("control.path {path} is a regular file")),
            "{err}"
        );
        assert!(err.contains("Choose another control.path"), "{err}");
        assert_eq!(
            std::fs::read_to_string(&file).unwrap_or_default(),
            "keep me"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
