//! Descriptors that cross an `execve` (a daemon upgrade): inheritable
//! duplicates on the way out, close-on-exec again on the way in.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// A duplicate of `fd` that survives `execve` (no `FD_CLOEXEC`). Dropping
/// it (the exec failed) closes only the duplicate.
pub fn inheritable(fd: RawFd) -> std::io::Result<OwnedFd> {
    // SAFETY: dup of a descriptor the caller keeps open; the new one is ours.
    let new = unsafe { libc::dup(fd) };
    if new < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `new` was just returned by dup and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Marks an inherited descriptor close-on-exec again, so processes this
/// program spawns do not inherit it.
pub fn set_cloexec(fd: RawFd) {
    // SAFETY: fcntl on a descriptor number; a bad one only fails.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
        }
    }
}

/// Takes ownership of a descriptor a previous program passed by number,
/// marking it close-on-exec; `None` when that number is not open.
pub fn adopt(fd: RawFd) -> Option<OwnedFd> {
    // SAFETY: fcntl query on a number.
    if fd < 0 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return None;
    }
    set_cloexec(fd);
    // SAFETY: open (checked above) and passed to this program alone.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}
