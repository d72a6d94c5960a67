//! systemd socket activation: the proxy listener handed in as a file
//! descriptor (`LISTEN_FDS`/`LISTEN_PID`/`LISTEN_FDNAMES`, fds from 3 on)
//! instead of bound by the daemon. The listener outlives a daemon crash, so
//! clients connecting while no daemon runs wait in the kernel backlog.
//!
//! [`take`] runs first thing at start: it reads and clears the variables
//! (children must not see them) and marks every passed descriptor
//! close-on-exec (children must not inherit them). [`select`] later picks
//! the proxy listener: the descriptor named `proxy`, else the first TCP
//! listener on `proxy.host:proxy.port`.

use std::net::{SocketAddr, TcpListener};
use std::os::fd::{FromRawFd, RawFd};

/// First passed descriptor (`SD_LISTEN_FDS_START`).
const FIRST_FD: RawFd = 3;
/// The `FileDescriptorName=` the proxy listener is looked up by.
pub const PROXY_NAME: &str = "proxy";

/// Descriptors passed to this process: (fd, name).
#[derive(Debug, Default)]
pub struct Inherited {
    fds: Vec<(RawFd, Option<String>)>,
}

/// Reads and unsets the activation variables. `None` when they are absent
/// or meant for another process (`LISTEN_PID` differs).
pub fn take() -> Option<Inherited> {
    let pid = std::env::var("LISTEN_PID").ok();
    let count = std::env::var("LISTEN_FDS").ok();
    let names = std::env::var("LISTEN_FDNAMES").ok();
    for var in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        // SAFETY: called at daemon start, before any thread is started.
        unsafe { std::env::remove_var(var) };
    }
    let inherited = parse(
        pid.as_deref(),
        count.as_deref(),
        names.as_deref(),
        std::process::id(),
    )?;
    for (fd, _) in &inherited.fds {
        set_cloexec(*fd);
    }
    Some(inherited)
}

/// The environment as systemd sets it, checked against our pid.
fn parse(
    pid: Option<&str>,
    count: Option<&str>,
    names: Option<&str>,
    own_pid: u32,
) -> Option<Inherited> {
    let pid: u32 = pid?.trim().parse().ok()?;
    if pid != own_pid {
        return None;
    }
    let count: RawFd = count?.trim().parse().ok()?;
    if count <= 0 {
        return None;
    }
    let mut names = names.unwrap_or("").split(':');
    let fds = (FIRST_FD..FIRST_FD.saturating_add(count))
        .map(|fd| {
            let name = names.next().filter(|n| !n.is_empty()).map(str::to_owned);
            (fd, name)
        })
        .collect();
    Some(Inherited { fds })
}

fn set_cloexec(fd: RawFd) {
    // SAFETY: fcntl on a descriptor number; failure (not open) is harmless.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
        }
    }
}

/// Picks the proxy listener for `want` (port 0 accepts any port). An error
/// names what was passed when nothing fits.
pub fn select(inherited: &Inherited, want: SocketAddr) -> Result<TcpListener, String> {
    let named = inherited
        .fds
        .iter()
        .find(|(_, name)| name.as_deref() == Some(PROXY_NAME));
    let chosen = match named {
        Some((fd, _)) => {
            let addr = tcp_listener_addr(*fd).ok_or_else(|| {
                format!(
                    "socket activation: the descriptor named \"{PROXY_NAME}\" (fd {fd}) is not a listening TCP socket"
                )
            })?;
            if !matches(addr, want) {
                return Err(format!(
                    "socket activation: the descriptor named \"{PROXY_NAME}\" listens on {addr}, \
                     but proxy.host:proxy.port is {want}; make ListenStream= and the config agree"
                ));
            }
            *fd
        }
        None => {
            let mut seen = Vec::new();
            let mut found = None;
            for (fd, _) in &inherited.fds {
                match tcp_listener_addr(*fd) {
                    Some(addr) if matches(addr, want) => {
                        found = Some(*fd);
                        break;
                    }
                    Some(addr) => seen.push(format!("fd {fd}: {addr}")),
                    None => seen.push(format!("fd {fd}: not a listening TCP socket")),
                }
            }
            found.ok_or_else(|| {
                format!(
                    "socket activation: none of the {} passed descriptors is a TCP listener on {want} \
                     (proxy.host:proxy.port) [{}]; name one \"{PROXY_NAME}\" (FileDescriptorName=) or \
                     make ListenStream= match the config",
                    inherited.fds.len(),
                    seen.join(", ")
                )
            })?
        }
    };
    // SAFETY: the descriptor was passed to us and is used exactly once.
    let listener = unsafe { TcpListener::from_raw_fd(chosen) };
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("socket activation: cannot make fd {chosen} non-blocking: {e}"))?;
    Ok(listener)
}

/// Same address, or any port when 0 is configured.
fn matches(addr: SocketAddr, want: SocketAddr) -> bool {
    addr.ip() == want.ip() && (want.port() == 0 || addr.port() == want.port())
}

/// The local address of `fd` when it is a listening TCP socket.
pub fn tcp_listener_addr(fd: RawFd) -> Option<SocketAddr> {
    let int_opt = |level, name| -> Option<libc::c_int> {
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt into a local int of the stated size.
        let rc = unsafe { libc::getsockopt(fd, level, name, (&raw mut v).cast(), &mut len) };
        (rc == 0).then_some(v)
    };
    if int_opt(libc::SOL_SOCKET, libc::SO_TYPE)? != libc::SOCK_STREAM
        || int_opt(libc::SOL_SOCKET, libc::SO_ACCEPTCONN)? == 0
    {
        return None;
    }
    // SAFETY: sockaddr_storage is valid when zeroed; getsockname fills at
    // most `len` bytes.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    let rc = unsafe { libc::getsockname(fd, (&raw mut storage).cast(), &mut len) };
    if rc != 0 {
        return None;
    }
    match libc::c_int::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says it is a sockaddr_in.
            let a: libc::sockaddr_in = unsafe { std::ptr::read((&raw const storage).cast()) };
            let ip = std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::new(ip.into(), u16::from_be(a.sin_port)))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says it is a sockaddr_in6.
            let a: libc::sockaddr_in6 = unsafe { std::ptr::read((&raw const storage).cast()) };
            let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::new(ip.into(), u16::from_be(a.sin6_port)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsRawFd, IntoRawFd};

    #[test]
    fn variables_for_another_pid_are_ignored() {
        assert!(parse(Some("41"), Some("1"), None, 42).is_none());
        assert!(parse(None, Some("1"), None, 42).is_none());
        assert!(parse(Some("42"), Some("0"), None, 42).is_none());
        assert!(parse(Some("42"), Some("x"), None, 42).is_none());
    }

    #[test]
    fn names_are_matched_to_descriptors_in_order() {
        let i = parse(Some("42"), Some("3"), Some("admin:proxy"), 42).unwrap();
        assert_eq!(
            i.fds,
            vec![
                (3, Some("admin".into())),
                (4, Some("proxy".into())),
                (5, None)
            ]
        );
    }

    fn listener() -> (RawFd, SocketAddr) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        (l.into_raw_fd(), addr)
    }

    #[test]
    fn first_listener_on_the_configured_address_is_chosen() {
        let (other, _) = listener();
        let (mine, addr) = listener();
        let i = Inherited {
            fds: vec![(other, None), (mine, None)],
        };
        let l = select(&i, addr).unwrap();
        assert_eq!(l.as_raw_fd(), mine);
        assert_eq!(l.local_addr().unwrap(), addr);
        drop(l);
        // SAFETY: `other` is ours and still open.
        drop(unsafe { TcpListener::from_raw_fd(other) });
    }

    #[test]
    fn descriptor_named_proxy_wins() {
        let (first, addr) = listener();
        let (named, named_addr) = listener();
        let i = Inherited {
            fds: vec![(first, None), (named, Some("proxy".into()))],
        };
        let want = SocketAddr::new(addr.ip(), 0);
        let l = select(&i, want).unwrap();
        assert_eq!(l.local_addr().unwrap(), named_addr);
        drop(l);
        drop(unsafe { TcpListener::from_raw_fd(first) });
    }

    #[test]
    fn no_matching_listener_is_a_clear_error() {
        let (fd, addr) = listener();
        let i = Inherited {
            fds: vec![(fd, None)],
        };
        let want = SocketAddr::new(addr.ip(), addr.port().wrapping_add(1).max(1));
        let err = select(&i, want).unwrap_err();
        assert!(err.contains("none of the 1 passed descriptors"), "{err}");
        assert!(err.contains(&addr.to_string()), "{err}");
        drop(unsafe { TcpListener::from_raw_fd(fd) });
    }

    #[test]
    fn named_descriptor_on_the_wrong_address_is_refused() {
        let (fd, addr) = listener();
        let i = Inherited {
            fds: vec![(fd, Some("proxy".into()))],
        };
        let want = SocketAddr::new(addr.ip(), addr.port().wrapping_add(1).max(1));
        let err = select(&i, want).unwrap_err();
        assert!(err.contains("named \"proxy\""), "{err}");
        drop(unsafe { TcpListener::from_raw_fd(fd) });
    }
}
