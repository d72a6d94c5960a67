//! Port allocation for a release: the lowest port of a
//! range that this deploy has not reserved and that can be bound on
//! `proxy.upstreamHost`. Ports are only probed, never held: the child binds.

use std::collections::HashSet;
use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};

use crate::config::PortRange;

/// How a single bind probe went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    Free(u16),
    InUse,
    /// Another bind error, by its errno name (`EACCES`, ...).
    Unbindable(String),
}

/// Binds `host:port` and releases it at once. Port 0 returns the port the
/// OS chose.
pub fn probe(host: &str, port: u16) -> Probe {
    let addrs: Vec<SocketAddr> = match (host, port).to_socket_addrs() {
        Ok(a) => a.collect(),
        Err(e) => return Probe::Unbindable(errno_name(&e)),
    };
    let Some(addr) = addrs.first() else {
        return Probe::Unbindable("ENOTFOUND".into());
    };
    match TcpListener::bind(addr) {
        Ok(l) => Probe::Free(l.local_addr().map(|a| a.port()).unwrap_or(port)),
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => Probe::InUse,
        Err(e) => Probe::Unbindable(errno_name(&e)),
    }
}

/// Picks a port for one process of a deploy. `reserved` holds the ports
/// this deploy already chose; the pick is added to it. `probe` is injected
/// so the counting logic is tested without real sockets.
pub fn allocate(
    range: PortRange,
    host: &str,
    reserved: &mut HashSet<u16>,
    probe: &mut dyn FnMut(&str, u16) -> Probe,
) -> Result<u16, String> {
    if range.is_ephemeral() {
        return match probe(host, 0) {
            Probe::Free(p) => {
                reserved.insert(p);
                Ok(p)
            }
            Probe::InUse => Err(format!(
                "Unable to allocate an ephemeral port on {host} (EADDRINUSE)"
            )),
            Probe::Unbindable(code) => Err(format!(
                "Unable to allocate an ephemeral port on {host} ({code})"
            )),
        };
    }
    let (mut taken, mut in_use, mut unbindable) = (0u32, 0u32, 0u32);
    let mut last_code = String::new();
    for port in range.from..=range.to {
        if reserved.contains(&port) {
            taken += 1;
            continue;
        }
        match probe(host, port) {
            Probe::Free(_) => {
                reserved.insert(port);
                return Ok(port);
            }
            Probe::InUse => in_use += 1,
            Probe::Unbindable(code) => {
                unbindable += 1;
                last_code = code;
            }
        }
    }
    let count = u32::from(range.to - range.from) + 1;
    let mut msg = format!(
        "No available ports in range {}-{} ({count} port{} on {host}): {taken} reserved by this deploy, {in_use} already in use",
        range.from,
        range.to,
        if count == 1 { "" } else { "s" }
    );
    if unbindable > 0 {
        msg.push_str(&format!(
            ", {unbindable} could not be bound (e.g. {last_code})"
        ));
    }
    msg.push_str(". Widen the port range, free a port, or check bind permissions.");
    Err(msg)
}

/// The errno name Node would print (`EADDRINUSE`), or the OS text.
pub fn errno_name(e: &io::Error) -> String {
    let Some(code) = e.raw_os_error() else {
        return e.to_string();
    };
    let name = match code {
        libc::EACCES => "EACCES",
        libc::EPERM => "EPERM",
        libc::EADDRINUSE => "EADDRINUSE",
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        libc::EINVAL => "EINVAL",
        libc::ENOENT => "ENOENT",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::ECONNRESET => "ECONNRESET",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::EMFILE => "EMFILE",
        libc::ENFILE => "ENFILE",
        _ => return e.to_string(),
    };
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(from: u16, to: u16) -> PortRange {
        PortRange { from, to }
    }

    #[test]
    fn lowest_free_port_wins_and_is_reserved() {
        let mut reserved = HashSet::new();
        let mut probe = |_: &str, p: u16| {
            if p < 18002 {
                Probe::InUse
            } else {
                Probe::Free(p)
            }
        };
        assert_eq!(
            allocate(range(18000, 18010), "127.0.0.1", &mut reserved, &mut probe),
            Ok(18002)
        );
        assert_eq!(
            allocate(range(18000, 18010), "127.0.0.1", &mut reserved, &mut probe),
            Ok(18003)
        );
    }

    #[test]
    fn exhaustion_counts_each_reason() {
        let mut reserved = HashSet::from([7000]);
        let mut probe = |_: &str, p: u16| match p {
            7001 => Probe::InUse,
            _ => Probe::Unbindable("EACCES".into()),
        };
        let err = allocate(range(7000, 7002), "127.0.0.1", &mut reserved, &mut probe).unwrap_err();
        assert_eq!(
            err,
            "No available ports in range 7000-7002 (3 ports on 127.0.0.1): 1 reserved by this deploy, 1 already in use, 1 could not be bound (e.g. EACCES). Widen the port range, free a port, or check bind permissions."
        );
    }

    #[test]
    fn single_port_wording() {
        let mut probe = |_: &str, _: u16| Probe::InUse;
        let err = allocate(range(7330, 7330), "::1", &mut HashSet::new(), &mut probe).unwrap_err();
        assert!(err.starts_with("No available ports in range 7330-7330 (1 port on ::1): 0 reserved by this deploy, 1 already in use."), "{err}");
    }

    #[test]
    fn ephemeral_range_asks_the_os() {
        let mut reserved = HashSet::new();
        let mut probe = |_: &str, p: u16| {
            assert_eq!(p, 0);
            Probe::Free(40123)
        };
        assert_eq!(
            allocate(range(0, 0), "127.0.0.1", &mut reserved, &mut probe),
            Ok(40123)
        );
    }

    #[test]
    fn real_probe_sees_a_listener() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert_eq!(probe("127.0.0.1", port), Probe::InUse);
        drop(l);
        assert!(matches!(probe("127.0.0.1", 0), Probe::Free(p) if p != 0));
    }
}
