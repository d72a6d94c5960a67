//! "Is a daemon alive for this state file?" answered by something the
//! daemon holds while it lives: an exclusive `flock` on `<state>.lock`
//! (opened close-on-exec, so children never inherit it), backed by the
//! daemon's pid + start time recorded in the state (`daemon` key). The
//! control socket can vanish (tmp cleaners) while the daemon lives on.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};

use serde_json::Value;

use super::procinfo;
use super::statefile;

/// The held lock (released when dropped, or when the daemon dies).
pub struct DaemonLock {
    file: File,
    path: String,
}

/// Who holds the lock, as far as can be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    Nobody,
    /// The lock is held: a daemon is alive.
    Daemon,
    /// The lock file exists but cannot be opened (permissions).
    Unknown(String),
}

impl DaemonLock {
    /// Takes the lock beside `state_path`; `Err(None)` when another
    /// process holds it, `Err(Some(msg))` when it cannot be taken.
    pub fn acquire(state_path: &str) -> Result<DaemonLock, Option<String>> {
        let path = statefile::lock_path(state_path);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .custom_flags(libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| Some(format!("Cannot open the lock file {path}: {e}")))?;
        if try_lock(&file, libc::LOCK_EX) {
            Ok(DaemonLock { file, path })
        } else {
            Err(None)
        }
    }

    /// The descriptor holding the lock (a daemon upgrade passes it on: the
    /// lock belongs to the open file, so it stays held across `execve`).
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        self.file.as_raw_fd()
    }

    /// The lock a previous program of this daemon held, passed on by an
    /// upgrade.
    pub fn adopt(fd: std::os::fd::OwnedFd, state_path: &str) -> DaemonLock {
        DaemonLock {
            file: File::from(fd),
            path: statefile::lock_path(state_path),
        }
    }

    /// The lock file was removed or replaced (tmp cleaner, removed
    /// folder): lock a fresh file at the path so others still see it.
    /// Returns true when it had to do so.
    pub fn refresh(&mut self) -> bool {
        let ours = self.file.metadata().map(|m| (m.dev(), m.ino())).ok();
        let there = std::fs::metadata(&self.path)
            .map(|m| (m.dev(), m.ino()))
            .ok();
        if ours.is_some() && ours == there {
            return false;
        }
        if let Ok(fresh) = DaemonLock::acquire(self.path.trim_end_matches(".lock")) {
            *self = fresh;
        }
        true
    }
}

fn try_lock(file: &File, op: i32) -> bool {
    // SAFETY: flock on a descriptor we own.
    unsafe { libc::flock(file.as_raw_fd(), op | libc::LOCK_NB) == 0 }
}

/// Probes the lock beside `state_path` without keeping it.
pub fn holder(state_path: &str) -> Holder {
    let path = statefile::lock_path(state_path);
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Holder::Nobody,
        Err(e) => return Holder::Unknown(format!("cannot open {path}: {e}")),
    };
    if try_lock(&file, libc::LOCK_SH) {
        Holder::Nobody
    } else {
        Holder::Daemon
    }
}

/// The `daemon` record of a state snapshot: `{"pid", "startTime"}` of the
/// daemon that wrote it.
pub fn record() -> Value {
    let pid = std::process::id();
    let start = procinfo::stat(pid).map(|s| s.start_time);
    serde_json::json!({"pid": pid, "startTime": start})
}

/// The daemon that wrote `snapshot` still runs (same pid, same start time).
pub fn writer_alive(snapshot: &Value) -> Option<u32> {
    let d = snapshot.get("daemon")?;
    let pid = u32::try_from(d.get("pid")?.as_u64()?).ok()?;
    let start = d.get("startTime")?.as_u64()?;
    (pid != std::process::id() && procinfo::same_process(pid, start)).then_some(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_is_seen_and_released_on_drop() {
        let d = std::env::temp_dir().join(format!("rb-lock-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let state = d.join("state.json").to_string_lossy().into_owned();
        assert_eq!(holder(&state), Holder::Nobody);
        let lock = DaemonLock::acquire(&state).unwrap();
        assert_eq!(holder(&state), Holder::Daemon);
        assert!(matches!(DaemonLock::acquire(&state), Err(None)));
        drop(lock);
        assert_eq!(holder(&state), Holder::Nobody);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
