//! Opens N WebSocket connections (raw handshake) to 127.0.0.1:<port> and
//! holds them idle, for the RSS-per-tunnel figure in `bench/proxy.sh`.
//!
//! Usage: `ws_idle <port> <count>`; prints `ready <count>` once every
//! handshake got its 101, then holds until stdin closes.

use std::io::{Read, Write};
use std::net::TcpStream;

fn main() -> std::io::Result<()> {
    rollbridge::daemon::raise_nofile_limit();
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|p| p.parse().ok()).unwrap_or(8182);
    let count: usize = args.next().and_then(|p| p.parse().ok()).unwrap_or(10_000);
    let req = b"GET /ws HTTP/1.1\r\nHost: bench\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    let mut held = Vec::with_capacity(count);
    let mut buf = [0u8; 1024];
    for i in 0..count {
        let mut s = TcpStream::connect(("127.0.0.1", port))?;
        s.write_all(req)?;
        let mut got = Vec::new();
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf)?;
            if n == 0 {
                return Err(std::io::Error::other(format!(
                    "connection {i} closed during handshake"
                )));
            }
            got.extend_from_slice(&buf[..n]);
        }
        if !got.starts_with(b"HTTP/1.1 101") {
            return Err(std::io::Error::other(format!("connection {i}: no 101")));
        }
        held.push(s);
    }
    println!("ready {}", held.len());
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    Ok(())
}
