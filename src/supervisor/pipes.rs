//! Output pipes that outlive the daemon.
//!
//! The child's stdout/stderr is not the write end of a plain pipe but a
//! descriptor opened read-write on it (`/proc/self/fd/<write end>`,
//! `O_RDWR`): the child is then a reader of its own pipe, so it never gets
//! SIGPIPE or EPIPE when the daemon (the only other reader) dies. The pipe
//! is enlarged to `/proc/sys/fs/pipe-max-size` so it buffers output while
//! no daemon reads; once full, writes block until a daemon adopts the
//! process and re-opens `/proc/<pid>/fd/1` and `/2` for reading.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Used when `/proc/sys/fs/pipe-max-size` cannot be read or is refused.
const FALLBACK_PIPE_BYTES: i32 = 256 * 1024;

/// One output stream: the daemon's read end and the child's descriptor.
pub struct OutputPipe {
    pub read: OwnedFd,
    pub child: OwnedFd,
}

/// A pipe whose child side is opened `O_RDWR` (see the module docs).
pub fn output_pipe() -> io::Result<OutputPipe> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two descriptors on success.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors are fresh and ours.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let path = format!("/proc/self/fd/{}\0", write.as_raw_fd());
    // SAFETY: NUL-terminated path; a new descriptor or -1.
    let rw = unsafe { libc::open(path.as_ptr().cast(), libc::O_RDWR | libc::O_CLOEXEC) };
    let child = if rw >= 0 {
        // SAFETY: fresh descriptor.
        unsafe { OwnedFd::from_raw_fd(rw) }
    } else {
        // No /proc: a plain write end (the child may die with the daemon).
        write
    };
    enlarge(&child);
    Ok(OutputPipe { read, child })
}

/// Raises the pipe's capacity as far as allowed (best effort).
fn enlarge(fd: &OwnedFd) {
    let max = std::fs::read_to_string("/proc/sys/fs/pipe-max-size")
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .unwrap_or(FALLBACK_PIPE_BYTES);
    for size in [max, FALLBACK_PIPE_BYTES] {
        // SAFETY: fcntl on a descriptor we own.
        if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, size) } >= 0 {
            return;
        }
    }
}

/// Opens descriptor `fd` of process `pid` for reading, non-blocking, if it
/// is a pipe: the capture of an adopted process resumes on it.
pub fn reopen(pid: i32, fd: i32) -> Option<OwnedFd> {
    let path = format!("/proc/{pid}/fd/{fd}\0");
    // SAFETY: NUL-terminated path; a new descriptor or -1.
    let raw = unsafe {
        libc::open(
            path.as_ptr().cast(),
            libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if raw < 0 {
        return None;
    }
    // SAFETY: fresh descriptor.
    let owned = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: fstat into a zeroed struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::fstat(owned.as_raw_fd(), &mut st) } == 0
        && st.st_mode & libc::S_IFMT == libc::S_IFIFO;
    ok.then_some(owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn the_child_side_is_a_reader_so_writes_survive_the_daemon_closing_its_end() {
        let p = output_pipe().unwrap();
        drop(p.read);
        let mut child = std::fs::File::from(p.child);
        // A plain write end would fail with EPIPE (and raise SIGPIPE).
        child.write_all(b"still here\n").unwrap();
        let mut again =
            std::fs::File::from(reopen(std::process::id() as i32, child.as_raw_fd()).unwrap());
        let mut buf = [0u8; 32];
        let n = again.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"still here\n");
    }

    #[test]
    fn reopen_refuses_what_is_not_a_pipe() {
        let f = std::fs::File::open("/proc/self/stat").unwrap();
        assert!(reopen(std::process::id() as i32, f.as_raw_fd()).is_none());
    }
}
