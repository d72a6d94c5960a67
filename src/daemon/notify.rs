//! systemd notification (`Type=notify`): `READY=1` with `MAINPID=` once
//! serving, `STOPPING=1` when shutdown or retirement begins, `RELOADING=1`
//! for a reload. Each is one datagram to `$NOTIFY_SOCKET` (a path, or
//! `@name` for the abstract namespace). [`capture`] takes the variable out
//! of the environment at start so managed processes do not inherit it;
//! when the variable is unset every call does nothing.

use std::os::unix::net::UnixDatagram;
use std::sync::OnceLock;

static TARGET: OnceLock<Option<String>> = OnceLock::new();

/// Reads and unsets `NOTIFY_SOCKET`. Call once, before threads start.
pub fn capture() {
    let target = std::env::var("NOTIFY_SOCKET")
        .ok()
        .filter(|t| !t.is_empty());
    // SAFETY: called at daemon start, before any thread is started.
    unsafe { std::env::remove_var("NOTIFY_SOCKET") };
    let _ = TARGET.set(target);
}

/// The captured target, for a daemon upgrade to pass on.
pub fn captured() -> Option<String> {
    TARGET.get().cloned().flatten()
}

/// After an upgrade: the target the first program captured.
pub fn restore(target: Option<String>) {
    let _ = TARGET.set(target);
}

fn target() -> Option<String> {
    match TARGET.get() {
        Some(t) => t.clone(),
        // Not captured (tests, tools): read it as is.
        None => std::env::var("NOTIFY_SOCKET")
            .ok()
            .filter(|t| !t.is_empty()),
    }
}

/// Sends `state` (newline-separated assignments) if a manager listens.
pub fn notify(state: &str) {
    if let Some(target) = target() {
        let _ = send(&target, state);
    }
}

/// The daemon serves: proxy and control socket are up.
pub fn ready() {
    notify(&ready_message(std::process::id()));
}

/// Shutdown or owner retirement has begun.
pub fn stopping() {
    notify("STOPPING=1");
}

/// A reload (binary upgrade) has begun; `ready()` again ends it.
pub fn reloading() {
    notify(&reloading_message(monotonic_usec()));
}

fn ready_message(pid: u32) -> String {
    format!("READY=1\nMAINPID={pid}")
}

fn reloading_message(usec: u64) -> String {
    format!("RELOADING=1\nMONOTONIC_USEC={usec}")
}

/// CLOCK_MONOTONIC in microseconds (systemd matches it to the reload).
fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime fills a local struct.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000 + (ts.tv_nsec as u64) / 1_000
}

fn send(target: &str, state: &str) -> std::io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    if let Some(name) = target.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
        sock.send_to_addr(state.as_bytes(), &addr)?;
    } else {
        sock.send_to(state.as_bytes(), target)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagram_reaches_a_path_socket() {
        let dir = std::env::temp_dir().join(format!("rb-notify-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let rx = UnixDatagram::bind(&path).unwrap();
        send(path.to_str().unwrap(), "READY=1").unwrap();
        let mut buf = [0u8; 32];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn datagram_reaches_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("rb-notify-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let rx = UnixDatagram::bind_addr(&addr).unwrap();
        send(&format!("@{name}"), "STOPPING=1").unwrap();
        let mut buf = [0u8; 32];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
    }

    #[test]
    fn ready_names_the_main_pid_and_reloading_the_clock() {
        assert_eq!(ready_message(42), "READY=1\nMAINPID=42");
        assert_eq!(reloading_message(7), "RELOADING=1\nMONOTONIC_USEC=7");
        assert!(monotonic_usec() > 0);
    }
}
