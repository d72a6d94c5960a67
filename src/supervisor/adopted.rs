//! Adopted processes: ones a crashed daemon started that the current daemon
//! takes over. They are not its children (`waitpid` never sees them), so
//! each is watched through a pidfd (`pidfd_open`), polled by the
//! supervisor's loop: an exit is noticed on the loop turn it happens and
//! goes through the same restart policy as a child's, with an unknown exit
//! status. Their output is captured again from `/proc/<pid>/fd/1` and `/2`
//! (see `pipes.rs`).

use super::{Msg, ProcKey, StartReason, SupervisorHandle};

/// What a state file recorded about one process, and whether it still runs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Adoption {
    /// Alive and verified (same start time, same process group): take it.
    pub live: Option<LiveRun>,
    pub restarts: u64,
    pub memory_restarts: u64,
    /// ISO time of its start (`startedAt`).
    pub started_at: Option<String>,
    pub reason: Option<StartReason>,
    pub last_memory_restart_at: Option<String>,
    /// Not alive any more although it ran: handle it as an exit (unknown
    /// status) under the restart policy.
    pub exited_unseen: bool,
}

/// A verified living process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveRun {
    /// Its pid, which is also its process group.
    pub pid: i32,
    /// Its parent now (init or a subreaper): where its descendants are
    /// looked for.
    pub root: i32,
}

impl SupervisorHandle {
    /// Gives a registered (not started) process the record of a crashed
    /// daemon's run, taking over the live process when there is one.
    pub fn adopt(&self, key: ProcKey, adoption: Adoption) {
        self.send(Msg::Adopt {
            key,
            adoption: Box::new(adoption),
        });
    }
}

/// `pidfd_open(pid)`: a descriptor that becomes readable when `pid` exits.
pub fn pidfd_open(pid: i32) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor we own.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) })
}

/// Whether a pidfd says its process exited (readable), without waiting.
pub fn exited(fd: &std::os::fd::OwnedFd) -> bool {
    use std::os::fd::AsRawFd;
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n > 0 && p.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pidfd_turns_readable_when_the_process_exits() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let fd = pidfd_open(child.id() as i32).unwrap();
        assert!(!exited(&fd));
        child.kill().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while !exited(&fd) {
            assert!(std::time::Instant::now() < deadline, "pidfd never readable");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        child.wait().unwrap();
    }
}
