//! WebSocket upgrades: splice, counts, refusal passthrough, teardown.
mod proxy_support;

use proxy_support::*;
use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tungstenite::{Message, WebSocket};

/// A tungstenite echo server; stops accepting when dropped.
struct WsEcho {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accept: Option<std::thread::JoinHandle<()>>,
}

impl Drop for WsEcho {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

fn ws_echo_backend() -> WsEcho {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let st = stop.clone();
    let accept = std::thread::spawn(move || {
        for s in l.incoming() {
            if st.load(Ordering::SeqCst) {
                return;
            }
            let Ok(s) = s else { return };
            // Each echo thread ends when its peer closes or resets.
            std::thread::spawn(move || {
                let Ok(mut ws) = tungstenite::accept(s) else {
                    return;
                };
                while let Ok(m) = ws.read() {
                    if m.is_close() {
                        break;
                    }
                    if ws.send(m).is_err() {
                        break;
                    }
                }
            });
        }
    });
    WsEcho {
        addr,
        stop,
        accept: Some(accept),
    }
}

fn ws_connect(p: &Proxy) -> WebSocket<TcpStream> {
    let s = TcpStream::connect(p.addr).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    let (ws, resp) = tungstenite::client(format!("ws://{}/ws", p.addr), s).expect("ws handshake");
    assert_eq!(resp.status(), 101);
    ws
}

fn echo(ws: &mut WebSocket<TcpStream>, text: &str) {
    ws.send(Message::text(text)).unwrap();
    let m = ws.read().unwrap();
    assert_eq!(m.into_text().unwrap().as_str(), text);
}

#[test]
fn websocket_echoes_through_proxy_and_is_counted() {
    let p = Proxy::start();
    let echo_server = ws_echo_backend();
    p.handle.set_active("v1", echo_server.addr).unwrap();
    let mut ws = ws_connect(&p);
    echo(&mut ws, "hello");
    p.wait_counts("v1", (0, 1));
    ws.close(None).unwrap();
    let _ = ws.read();
    p.wait_counts("v1", (0, 0));
}

#[test]
fn upgrade_without_active_release_gets_bare_503() {
    let p = Proxy::start();
    let mut c = p.connect();
    c.send(
        b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    );
    assert_eq!(c.read_all(), b"HTTP/1.1 503 Service Unavailable\r\n\r\n");
}

#[test]
fn refused_upgrade_is_passed_through() {
    let b = Backend::start(std::sync::Arc::new(|_r, s| {
        respond(s, 403, &[("X-Why", "no")], b"forbidden");
        After::KeepAlive
    }));
    let p = Proxy::start();
    p.handle.set_active("v1", b.addr).unwrap();
    let mut c = p.connect();
    c.send(b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
    let r = c.response();
    assert_eq!(r.status, 403);
    assert_eq!(r.header("x-why"), Some("no"));
    assert_eq!(r.text(), "forbidden");
    assert!(c.is_closed());
    p.wait_counts("v1", (0, 0));
}

/// Raw backend: answers the handshake with 101 and, in the same write, the
/// first tunnel bytes; then echoes raw bytes until EOF.
fn raw_101_backend() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        let Ok((s, _)) = l.accept() else { return };
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        let Some(_head) = read_head(&mut r) else {
            return;
        };
        let _ = w.write_all(
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nEARLY",
        );
        let mut buf = [0u8; 1024];
        loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if w.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = w.shutdown(std::net::Shutdown::Write);
    });
    addr
}

#[test]
fn bytes_after_101_reach_tunnel_both_ways() {
    let p = Proxy::start();
    p.handle.set_active("v1", raw_101_backend()).unwrap();
    let mut c = p.connect();
    // The client's first tunnel bytes ride in the same write as its head.
    c.send(
        b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nfirst",
    );
    let head = read_head(&mut c.r).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"));
    let mut early = [0u8; 5];
    c.r.read_exact(&mut early).unwrap();
    assert_eq!(&early, b"EARLY");
    let mut echoed = [0u8; 5];
    c.r.read_exact(&mut echoed).unwrap();
    assert_eq!(&echoed, b"first");
    c.send(b"more");
    let mut more = [0u8; 4];
    c.r.read_exact(&mut more).unwrap();
    assert_eq!(&more, b"more");
    // half-close is passed on; the backend then closes; the tunnel ends
    c.w.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(c.is_closed());
    p.wait_counts("v1", (0, 0));
}

#[test]
fn tunnel_ends_promptly_when_upstream_dies() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        let mut ws = tungstenite::accept(s).unwrap();
        let m = ws.read().unwrap();
        ws.send(m).unwrap();
        // the app "crashes": the socket is dropped without a close frame
    });
    let p = Proxy::start();
    p.handle.set_active("v1", addr).unwrap();
    let mut ws = ws_connect(&p);
    echo(&mut ws, "x");
    server.join().unwrap();
    let t = Instant::now();
    assert!(ws.read().is_err() || ws.read().is_err());
    assert!(t.elapsed() < Duration::from_secs(3));
    p.wait_counts("v1", (0, 0));
}

#[test]
fn websocket_and_sse_survive_flip_until_force_close() {
    let echo_server = ws_echo_backend();
    let ws_addr = echo_server.addr;
    let (tx, rx) = crossbeam_channel::unbounded::<()>();
    let sse = Backend::start(std::sync::Arc::new(move |_r, s| {
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n");
        let _ = s.write_all(b"7\r\ndata: 1\r\n");
        let _ = rx.recv_timeout(T);
        let _ = s.write_all(b"7\r\ndata: 2\r\n");
        let _ = rx.recv_timeout(T); // hold the stream open until the test ends
        After::Close
    }));
    // The SSE stream is routed to release v1, the WebSocket to w1.
    let p = Proxy::start();
    p.handle.set_active("v1", sse.addr).unwrap();
    let mut stream = p.connect();
    stream.send(b"GET /events HTTP/1.1\r\nHost: a\r\n\r\n");
    read_head(&mut stream.r).unwrap();
    let mut ev = [0u8; 12];
    stream.r.read_exact(&mut ev).unwrap();
    p.handle.set_active("w1", ws_addr).unwrap();
    let mut ws = ws_connect(&p);
    echo(&mut ws, "before");

    // flip to v2 and retire both: nothing already routed is touched
    let v2 = Backend::named("v2");
    p.handle.set_active("v2", v2.addr).unwrap();
    p.handle.retire("v1").unwrap();
    p.handle.retire("w1").unwrap();
    assert_eq!(p.connect().get("/").text(), "v2");
    echo(&mut ws, "after flip");
    tx.send(()).unwrap();
    stream.r.read_exact(&mut ev).unwrap();
    assert_eq!(&ev, b"7\r\ndata: 2\r\n");
    p.wait_counts("v1", (1, 0));
    p.wait_counts("w1", (0, 1));

    // drain deadline: the tunnel is told "going away", then closed
    p.handle.force_close("w1").unwrap();
    p.wait_drained("w1");
    match ws.read() {
        Ok(Message::Close(Some(f))) => assert_eq!(u16::from(f.code), 1001),
        other => panic!("expected a close 1001, got {other:?}"),
    }
    assert!(ws.read().is_err());
    p.handle.force_close("v1").unwrap();
    p.wait_drained("v1");
    assert!(stream.is_closed());
    let _ = tx.send(());
}

#[test]
fn retired_release_drains_when_its_websocket_closes() {
    let p = Proxy::start();
    let echo_server = ws_echo_backend();
    p.handle.set_active("v1", echo_server.addr).unwrap();
    let mut ws = ws_connect(&p);
    echo(&mut ws, "hi");
    p.handle.clear_active().unwrap();
    p.handle.retire("v1").unwrap();
    echo(&mut ws, "still here");
    assert!(
        p.events.try_recv().is_err(),
        "drained while the tunnel is open"
    );
    ws.close(None).unwrap();
    let _ = ws.read();
    p.wait_drained("v1");
}
