//! Proxy timers: request-head timeout from accept, client write progress,
//! upstream response head (504) and read-idle timeouts, and what none of
//! them may cut (a flowing SSE stream, an established WebSocket tunnel).
mod proxy_support;

use proxy_support::*;
use rollbridge::proxy::{ErrorKind, ProxyEvent, Side};
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SHORT: Duration = Duration::from_millis(500);

/// A backend that first writes `prefix` (maybe nothing), then sends
/// nothing more until the proxy closes the connection: a stopped process.
fn stuck_backend(prefix: &'static [u8]) -> Backend {
    Backend::start(Arc::new(move |_r, s| {
        let _ = s.write_all(prefix);
        let mut b = [0u8; 64];
        while matches!(s.read(&mut b), Ok(n) if n > 0) {}
        After::Close
    }))
}

fn wait_timeout_event(p: &Proxy, kind: ErrorKind, side: Side) -> String {
    match p.wait_event(
        |e| matches!(e, ProxyEvent::Error { kind: k, side: s, .. } if *k == kind && *s == side),
    ) {
        ProxyEvent::Error { message, .. } => message,
        other => unreachable!("{other:?}"),
    }
}

#[test]
fn header_timeout_counts_from_accept_not_first_byte() {
    let p = Proxy::with(|o| o.header_timeout = Duration::from_millis(600));
    let b = Backend::named("v1");
    p.handle.set_active("v1", b.addr).unwrap();
    let mut c = p.connect();
    let accepted = Instant::now();
    std::thread::sleep(Duration::from_millis(400));
    // Dribble a head that never completes, one byte every 50 ms.
    c.w.set_write_timeout(Some(T)).unwrap();
    let mut cut = None;
    for byte in b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ".iter().cycle() {
        if c.w.write_all(&[*byte]).is_err() {
            cut = Some(accepted.elapsed());
            break;
        }
        if accepted.elapsed() > Duration::from_secs(3) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let cut = cut.unwrap_or_else(|| {
        assert!(c.is_closed(), "connection still open after 3 s");
        accepted.elapsed()
    });
    assert!(
        cut >= Duration::from_millis(550) && cut < Duration::from_millis(900),
        "cut {cut:?} after accept, expected ~600 ms"
    );
}

#[test]
fn client_that_stops_reading_is_closed_and_uncounted() {
    let p = Proxy::with(|o| o.client_write_timeout = SHORT);
    // An endless response: the handler writes until the proxy lets go.
    let b = Backend::start(Arc::new(|_r, s| {
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n");
        let chunk = [b'x'; 64 * 1024];
        while s.write_all(&chunk).is_ok() {}
        After::Close
    }));
    p.handle.set_active("v1", b.addr).unwrap();
    let mut c = p.connect();
    c.send(b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n");
    p.wait_counts("v1", (1, 0));
    let t = Instant::now();
    // Never read: the proxy must give up on the client, close the
    // upstream (the app's handler sees its write fail) and uncount.
    let msg = wait_timeout_event(&p, ErrorKind::Timeout, Side::Client);
    assert!(msg.contains("read nothing"), "{msg}");
    p.wait_counts("v1", (0, 0));
    b.wait_closed(1);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    let got = c.read_all();
    assert!(got.len() < 1_000_000_000);
}

#[test]
fn hung_upstream_gets_504_after_response_timeout() {
    let p = Proxy::with(|o| o.upstream_response_timeout = SHORT);
    let b = stuck_backend(b"");
    p.handle.set_active("v1", b.addr).unwrap();
    let mut c = p.connect();
    let t = Instant::now();
    let r = c.get("/hang");
    let took = t.elapsed();
    assert_eq!(r.status, 504, "{}", r.text());
    assert_eq!(r.text(), "Gateway timeout\n");
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(2),
        "{took:?}"
    );
    let msg = wait_timeout_event(&p, ErrorKind::UpstreamTimeout, Side::Upstream);
    assert!(msg.contains("no response head"), "{msg}");
    assert_eq!(p.counts("v1"), (0, 0));
    // The app's connection was let go, and the client connection stays
    // usable (the 504 is keep-alive).
    b.wait_closed(1);
    assert_eq!(r.header("connection"), Some("keep-alive"));
}

#[test]
fn stalled_response_body_is_cut_after_read_timeout() {
    let p = Proxy::with(|o| o.upstream_read_timeout = SHORT);
    let b = stuck_backend(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
    p.handle.set_active("v1", b.addr).unwrap();
    let mut c = p.connect();
    c.send(b"GET /stall HTTP/1.1\r\nHost: a\r\n\r\n");
    let t = Instant::now();
    let head = read_head(&mut c.r).expect("response head");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let body = c.read_all(); // ends when the proxy cuts the connection
    let took = t.elapsed();
    assert_eq!(body, b"0123456789", "an incomplete body, then the cut");
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(2),
        "{took:?}"
    );
    let msg = wait_timeout_event(&p, ErrorKind::Timeout, Side::Upstream);
    assert!(msg.contains("response cut"), "{msg}");
    p.wait_counts("v1", (0, 0));
    b.wait_closed(1);
}

#[test]
fn flowing_sse_stream_is_not_cut_by_timeouts() {
    let p = Proxy::with(|o| {
        o.upstream_read_timeout = Duration::from_millis(400);
        o.upstream_response_timeout = Duration::from_millis(400);
        o.client_write_timeout = Duration::from_millis(400);
    });
    let b = Backend::start(Arc::new(|_r, s| {
        let _ = s.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\
              Transfer-Encoding: chunked\r\n\r\n",
        );
        // Ten events 200 ms apart: 2 s in all, five read timeouts long.
        for i in 0..10 {
            std::thread::sleep(Duration::from_millis(200));
            let ev = format!("data: {i}\n\n");
            let _ = s.write_all(format!("{:x}\r\n{ev}\r\n", ev.len()).as_bytes());
        }
        let _ = s.write_all(b"0\r\n\r\n");
        After::KeepAlive
    }));
    p.handle.set_active("v1", b.addr).unwrap();
    let mut c = p.connect();
    let r = c.get("/events");
    assert_eq!(r.status, 200);
    let want: String = (0..10).map(|i| format!("data: {i}\n\n")).collect();
    assert_eq!(r.text(), want);
    assert_eq!(c.get("/again").status, 200, "connection still usable");
}

#[test]
fn websocket_tunnel_outlives_stream_timeouts() {
    let p = Proxy::with(|o| {
        o.upstream_read_timeout = Duration::from_millis(300);
        o.upstream_response_timeout = Duration::from_millis(300);
        o.client_write_timeout = Duration::from_millis(300);
    });
    // A raw 101 then a byte echo (no framing needed: tunnels splice).
    let b = Backend::start(Arc::new(|_r, s| {
        let _ = s.write_all(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        );
        let mut buf = [0u8; 1024];
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 || s.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        After::Close
    }));
    p.handle.set_active("v1", b.addr).unwrap();
    let mut c = p.connect();
    c.send(
        b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    let head = read_head(&mut c.r).expect("101 head");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    p.wait_counts("v1", (0, 1));
    // Quiet for three times every timeout, then still alive both ways.
    std::thread::sleep(Duration::from_millis(1000));
    c.send(b"ping");
    let mut got = [0u8; 4];
    c.r.read_exact(&mut got).expect("echo through the tunnel");
    assert_eq!(&got, b"ping");
    assert_eq!(p.counts("v1"), (0, 1));
}
