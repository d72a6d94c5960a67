//! Signalling and waiting for a whole process group. The original waited for
//! the group leader only, so members that outlived it
//! went unnoticed; here a group counts as gone only when no live member is
//! left.

use std::time::{Duration, Instant};

/// What sending a signal to a group did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    Delivered,
    /// No such process group ("no such process").
    Gone,
    /// Any other error (typically permission denied).
    Failed(String),
}

/// `kill(-pgid, sig)`.
pub fn signal(pgid: u32, sig: i32) -> Sent {
    let Ok(pgid) = i32::try_from(pgid) else {
        return Sent::Gone;
    };
    if pgid <= 1 {
        return Sent::Gone;
    }
    // SAFETY: plain syscall; the negative pid addresses the group only.
    if unsafe { libc::kill(-pgid, sig) } == 0 {
        return Sent::Delivered;
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::ESRCH) {
        Sent::Gone
    } else {
        Sent::Failed(e.to_string())
    }
}

/// The group still has a member that is not a zombie. A denied probe counts
/// as alive; zombies are ignored because only their parent can reap them.
pub fn alive(pgid: u32) -> bool {
    match signal(pgid, 0) {
        Sent::Gone => false,
        Sent::Failed(_) => true,
        Sent::Delivered => live_member_in_proc(pgid).unwrap_or(true),
    }
}

/// Polls [`alive`] every `poll` until the group is gone or `timeout` passed;
/// true when it is gone.
pub fn wait_gone(pgid: u32, timeout: Duration, poll: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if !alive(pgid) {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        std::thread::sleep(poll.min(deadline - now));
    }
}

/// Scans `/proc` for a non-zombie process in group `pgid`; `None` when
/// `/proc` cannot be read (the caller then trusts the signal probe).
fn live_member_in_proc(pgid: u32) -> Option<bool> {
    let dir = std::fs::read_dir("/proc").ok()?;
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if let Some((state, pgrp)) = crate::supervisor::memory::parse_stat(&stat) {
            if i64::from(pgrp) == i64::from(pgid) && state != 'Z' && state != 'X' {
                return Some(true);
            }
        }
    }
    Some(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_group_is_alive_and_a_free_group_is_gone() {
        // SAFETY: getpgrp has no preconditions.
        let own = unsafe { libc::getpgrp() } as u32;
        assert!(alive(own));
        assert_eq!(signal(i32::MAX as u32, 0), Sent::Gone);
        assert!(!alive(i32::MAX as u32));
    }
}
