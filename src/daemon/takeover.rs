//! The candidate's side of an owner takeover: send `retire-owner` to the
//! current owner and receive its proxy listener with the reply; or, when
//! the owner does not pass one (an older or Node daemon), bind the port the
//! moment it is free (see [`super::portwatch`]).

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use crate::control::fdpass;

/// Longest reply line accepted from the owner.
const MAX_REPLY: usize = 64 * 1024;

/// Retires the owner listening on `path`. `Ok(Some(fd))`: its proxy
/// listener came along with the reply.
pub fn retire_owner(
    path: &str,
    attestation: &str,
    timeout: Duration,
) -> Result<Option<OwnedFd>, String> {
    let fail = |e: std::io::Error| format!("retire-owner via {path} failed: {e}");
    let mut stream = UnixStream::connect(path)
        .map_err(|e| format!("cannot reach the current owner at {path}: {e}"))?;
    stream.set_read_timeout(Some(timeout)).map_err(fail)?;
    stream.set_write_timeout(Some(timeout)).map_err(fail)?;
    let request = serde_json::json!({"command": "retire-owner", "attestation": attestation});
    stream
        .write_all(format!("{request}\n").as_bytes())
        .map_err(fail)?;
    let mut line = Vec::new();
    let mut fd = None;
    let mut buf = [0u8; 4096];
    while !line.contains(&b'\n') {
        let (n, got) = fdpass::recv_with_fd(stream.as_raw_fd(), &mut buf).map_err(fail)?;
        if got.is_some() {
            fd = got;
        }
        if n == 0 {
            return Err(format!(
                "the current owner at {path} closed the connection without answering retire-owner"
            ));
        }
        line.extend_from_slice(&buf[..n]);
        if line.len() > MAX_REPLY {
            return Err(format!(
                "the current owner at {path} sent an over-long reply"
            ));
        }
    }
    let end = line.iter().position(|&b| b == b'\n').unwrap_or(line.len());
    let reply: serde_json::Value = serde_json::from_slice(&line[..end]).map_err(|e| {
        format!("the current owner at {path} answered retire-owner with bad JSON: {e}")
    })?;
    if reply["status"] == "success" {
        Ok(fd)
    } else {
        let error = reply["error"]
            .as_str()
            .unwrap_or("Unknown Rollbridge error");
        Err(format!("the current owner refused retire-owner: {error}"))
    }
}

/// The passed descriptor as a listener, if it is a TCP listener on `want`
/// (any port when 0).
pub fn usable(fd: OwnedFd, want: SocketAddr) -> Result<TcpListener, String> {
    let addr = super::activation::tcp_listener_addr(fd.as_raw_fd())
        .ok_or_else(|| "the descriptor from the previous owner is not a TCP listener".to_owned())?;
    if addr.ip() != want.ip() || (want.port() != 0 && addr.port() != want.port()) {
        return Err(format!(
            "the previous owner's listener is on {addr}, not on {want}"
        ));
    }
    let listener = TcpListener::from(fd);
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("cannot use the previous owner's listener: {e}"))?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_on_another_address_is_not_used() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let other = SocketAddr::new(addr.ip(), addr.port().wrapping_add(1).max(1));
        assert!(usable(OwnedFd::from(l), other).is_err());
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        assert_eq!(
            usable(OwnedFd::from(l), addr)
                .unwrap()
                .local_addr()
                .unwrap(),
            addr
        );
    }
}
