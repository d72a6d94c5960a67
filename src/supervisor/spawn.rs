//! Spawning: `/bin/sh -c <command>` in a new session (so its pid is the
//! process-group id every signal goes to), stdin from /dev/null, stdout and
//! stderr on non-blocking pipes, no other inherited descriptor. Only the
//! supervisor thread spawns, and it reaps with `waitpid(-1)`, so nobody in
//! the daemon may `wait` a child.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

/// A spawned child: pid (= pgid) and its output pipes.
pub struct Spawned {
    pub pid: i32,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

/// Spawns a managed process; errors name the reason (cwd or spawn).
pub fn spawn_managed(
    command: &str,
    cwd: &str,
    env: &[(String, String)],
) -> Result<Spawned, String> {
    check_cwd(cwd)?;
    let mut cmd = shell(command, cwd, env);
    // Pipes the child keeps writing to after a daemon crash (see pipes.rs).
    let out = super::pipes::output_pipe().map_err(|e| format!("cannot create a pipe: {e}"))?;
    let err = super::pipes::output_pipe().map_err(|e| format!("cannot create a pipe: {e}"))?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(out.child))
        .stderr(Stdio::from(err.child));
    // The Child is dropped unwaited: the supervisor reaps with waitpid(-1).
    let child = cmd
        .spawn()
        .map_err(|e| format!("spawn /bin/sh failed: {e}"))?;
    drop(cmd);
    let pid = child.id() as i32;
    let (stdout, stderr) = (out.read, err.read);
    set_nonblocking(&stdout).map_err(|e| e.to_string())?;
    set_nonblocking(&stderr).map_err(|e| e.to_string())?;
    Ok(Spawned {
        pid,
        stdout,
        stderr,
    })
}

/// Spawns a lifecycle hook: own process group, output discarded.
pub fn spawn_hook(command: &str, cwd: &str, env: &[(String, String)]) -> Result<i32, String> {
    let cwd = if std::path::Path::new(cwd).is_dir() {
        cwd
    } else {
        "/"
    };
    let mut cmd = shell(command, cwd, env);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = cmd.spawn().map_err(|e| e.to_string())?;
    Ok(child.id() as i32)
}

fn shell(command: &str, cwd: &str, env: &[(String, String)]) -> Command {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg(command).current_dir(cwd).env_clear();
    cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    // SAFETY: setsid and the raw close_range/getrlimit/fcntl calls are
    // async-signal-safe and allocate nothing; nothing else runs between
    // fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(io::Error::last_os_error());
            }
            // Only stdin/stdout/stderr survive exec: descriptors the daemon
            // inherited without close-on-exec (`exec 7>file` in the shell
            // that started it) must not reach app processes. They are
            // marked close-on-exec rather than closed so std's exec-error
            // pipe keeps working.
            let all = libc::c_uint::MAX;
            let flag = libc::CLOSE_RANGE_CLOEXEC;
            if libc::syscall(libc::SYS_close_range, 3 as libc::c_uint, all, flag) != 0 {
                // Kernels before 5.11: one fcntl per possible descriptor.
                let mut lim = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                let top = if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
                    lim.rlim_cur.min(1 << 20) as libc::c_int
                } else {
                    1024
                };
                for fd in 3..top {
                    let flags = libc::fcntl(fd, libc::F_GETFD);
                    if flags >= 0 && flags & libc::FD_CLOEXEC == 0 {
                        libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
                    }
                }
            }
            Ok(())
        });
    }
    cmd
}

fn check_cwd(cwd: &str) -> Result<(), String> {
    match std::fs::metadata(cwd) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(format!("working directory {cwd} is not a directory")),
        Err(e) => Err(format!("working directory {cwd} is not accessible: {e}")),
    }
}

fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    let raw = fd.as_raw_fd();
    // SAFETY: plain fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(raw, libc::F_GETFL);
        if flags == -1 || libc::fcntl(raw, libc::F_SETFL, flags | libc::O_NONBLOCK) == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Whether any member of process group `pgid` is still alive (EPERM counts
/// as alive). The daemon is a child subreaper and reaps promptly, so
/// zombies do not linger in the group.
pub fn group_alive(pgid: i32) -> bool {
    if pgid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks for existence.
    let r = unsafe { libc::kill(-pgid, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Sends `sig` to the whole group; "no such process" is not an error.
pub fn signal_group(pgid: i32, sig: i32) -> Result<(), String> {
    if pgid <= 0 {
        return Ok(());
    }
    // SAFETY: kill on a process group we created.
    let r = unsafe { libc::kill(-pgid, sig) };
    if r == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::ESRCH) {
        Ok(())
    } else {
        Err(format!("kill -{sig} -{pgid}: {err}"))
    }
}

/// Makes the calling process a child subreaper: orphaned grandchildren are
/// re-parented to it (and so reaped by the supervisor's waitpid loop).
pub fn become_subreaper() {
    // SAFETY: prctl with integer arguments.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
}

/// Decoded wait status: (exit code, signal number).
pub fn decode_status(status: i32) -> (Option<i32>, Option<i32>) {
    if libc::WIFEXITED(status) {
        (Some(libc::WEXITSTATUS(status)), None)
    } else if libc::WIFSIGNALED(status) {
        (None, Some(libc::WTERMSIG(status)))
    } else {
        (None, None)
    }
}

/// Reaps every exited child without blocking.
pub fn reap_all() -> Vec<(i32, i32)> {
    let mut out = Vec::new();
    loop {
        let mut status = 0;
        // SAFETY: waitpid with a valid out pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            break;
        }
        out.push((pid, status));
    }
    out
}
