//! A fixed, fast, single-threaded HTTP/1.1 backend for `bench/proxy.sh`.
//!
//! `GET /small` answers 100 bytes, `GET /big` 64 KiB, `GET /huge` 1 MiB;
//! keep-alive unless the request says `Connection: close`. A WebSocket upgrade gets a 101 and the
//! connection is then held idle (bytes read and dropped).
//!
//! Usage: `bench_backend <port>` (prints `listening <port>`).

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use std::collections::VecDeque;
use std::io::{self, Read, Write};

const LISTENER: Token = Token(usize::MAX);

struct Conn {
    sock: TcpStream,
    inbuf: Vec<u8>,
    /// Responses waiting to be written (static, never copied) and how much
    /// of the first one is written.
    out: VecDeque<&'static [u8]>,
    sent: usize,
    close_after: bool,
    tunnel: bool,
}

fn main() -> io::Result<()> {
    rollbridge::daemon::raise_nofile_limit();
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let mut listener = TcpListener::bind(([127, 0, 0, 1], port).into())?;
    println!("listening {}", listener.local_addr()?.port());
    let small = response(100, false);
    let small_close = response(100, true);
    let big = response(64 * 1024, false);
    let big_close = response(64 * 1024, true);
    let huge = response(1024 * 1024, false);
    let huge_close = response(1024 * 1024, true);
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut events = Events::with_capacity(1024);
    let mut scratch = vec![0u8; 64 * 1024];
    loop {
        poll.poll(&mut events, None)?;
        for ev in events.iter() {
            if ev.token() == LISTENER {
                while let Ok((mut sock, _)) = listener.accept() {
                    let _ = sock.set_nodelay(true);
                    let idx = free.pop().unwrap_or_else(|| {
                        conns.push(None);
                        conns.len() - 1
                    });
                    poll.registry().register(
                        &mut sock,
                        Token(idx),
                        Interest::READABLE | Interest::WRITABLE,
                    )?;
                    conns[idx] = Some(Conn {
                        sock,
                        inbuf: Vec::new(),
                        out: VecDeque::new(),
                        sent: 0,
                        close_after: false,
                        tunnel: false,
                    });
                }
                continue;
            }
            let idx = ev.token().0;
            let Some(Some(c)) = conns.get_mut(idx) else {
                continue;
            };
            let mut dead = false;
            loop {
                match c.sock.read(&mut scratch) {
                    Ok(0) => {
                        dead = true;
                        break;
                    }
                    Ok(n) if c.tunnel => {
                        let _ = n;
                    }
                    Ok(n) => c.inbuf.extend_from_slice(&scratch[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        dead = true;
                        break;
                    }
                }
            }
            while !c.tunnel && !c.close_after {
                let Some(end) = find(&c.inbuf, b"\r\n\r\n") else {
                    break;
                };
                let raw = String::from_utf8_lossy(&c.inbuf[..end]).into_owned();
                let head = raw.to_ascii_lowercase();
                c.inbuf.drain(..end + 4);
                if head.contains("upgrade: websocket") {
                    // The key is case-sensitive base64: take it from the raw head.
                    let key = raw
                        .lines()
                        .find(|l| l.to_ascii_lowercase().starts_with("sec-websocket-key:"))
                        .and_then(|l| l.split_once(':'))
                        .map_or("", |(_, v)| v.trim());
                    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
                    let answer = format!(
                        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                         Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
                    );
                    c.out.push_back(answer.into_bytes().leak());
                    c.tunnel = true;
                    break;
                }
                let close = head.contains("connection: close");
                let r: &'static [u8] =
                    match (head.contains(" /big"), head.contains(" /huge"), close) {
                        (true, _, true) => big_close,
                        (true, _, false) => big,
                        (_, true, true) => huge_close,
                        (_, true, false) => huge,
                        (_, _, true) => small_close,
                        (_, _, false) => small,
                    };
                c.out.push_back(r);
                c.close_after = close;
            }
            while let Some(front) = c.out.front() {
                match c.sock.write(&front[c.sent..]) {
                    Ok(n) => {
                        c.sent += n;
                        if c.sent == front.len() {
                            c.out.pop_front();
                            c.sent = 0;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        dead = true;
                        break;
                    }
                }
            }
            if c.out.is_empty() && c.close_after {
                dead = true;
            }
            if dead {
                if let Some(mut c) = conns[idx].take() {
                    let _ = poll.registry().deregister(&mut c.sock);
                }
                free.push(idx);
            }
        }
    }
}

fn response(size: usize, close: bool) -> &'static [u8] {
    let mut r = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {size}\r\n{}\r\n",
        if close { "Connection: close\r\n" } else { "" }
    )
    .into_bytes();
    r.extend(std::iter::repeat_n(b'x', size));
    r.leak()
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}
