//! Retire/drain semantics, force-close and graceful shutdown.
mod proxy_support;

use proxy_support::*;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn slow_backend(name: &'static str) -> (Backend, crossbeam_channel::Sender<()>) {
    let (tx, rx) = crossbeam_channel::unbounded::<()>();
    let b = Backend::start(Arc::new(move |r, s| {
        if r.path == "/slow" {
            let _ = rx.recv_timeout(T);
        }
        respond(s, 200, &[], name.as_bytes());
        After::KeepAlive
    }));
    (b, tx)
}

#[test]
fn retire_with_nothing_in_flight_drains_at_once() {
    let p = Proxy::start();
    let b = Backend::named("v1");
    p.handle.set_active("v1", b.addr).unwrap();
    assert_eq!(p.connect().get("/").status, 200);
    p.handle.set_active("v2", b.addr).unwrap();
    p.handle.retire("v1").unwrap();
    p.wait_drained("v1");
    // an unknown id drains at once too
    p.handle.retire("never-seen").unwrap();
    p.wait_drained("never-seen");
}

#[test]
fn request_started_before_retire_completes() {
    let p = Proxy::start();
    let (b1, go) = slow_backend("v1");
    let b2 = Backend::named("v2");
    p.handle.set_active("v1", b1.addr).unwrap();
    let mut slow = p.connect();
    slow.send(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n");
    p.wait_counts("v1", (1, 0));
    p.handle.set_active("v2", b2.addr).unwrap();
    p.handle.retire("v1").unwrap();
    let v1 = p
        .handle
        .counts()
        .unwrap()
        .into_iter()
        .find(|c| c.release_id == "v1")
        .unwrap();
    assert!(v1.draining && v1.http == 1 && v1.websocket == 0);
    // new traffic goes to v2 meanwhile, the idle keep-alive does not pin v1
    assert_eq!(p.connect().get("/").text(), "v2");
    assert!(p.events.try_recv().is_err(), "drained too early");
    go.send(()).unwrap();
    assert_eq!(slow.response().text(), "v1");
    p.wait_drained("v1");
    // the same keep-alive connection now reaches v2
    assert_eq!(slow.get("/").text(), "v2");
}

#[test]
fn idle_keep_alive_connection_does_not_hold_drain() {
    let p = Proxy::start();
    let b = Backend::named("v1");
    p.handle.set_active("v1", b.addr).unwrap();
    let mut c = p.connect();
    assert_eq!(c.get("/").status, 200);
    p.handle.retire("v1").unwrap();
    p.wait_drained("v1");
    assert_eq!(c.get("/").status, 503);
}

#[test]
fn force_close_cuts_in_flight_request() {
    let p = Proxy::start();
    let (b, _go) = slow_backend("v1");
    p.handle.set_active("v1", b.addr).unwrap();
    let mut c = p.connect();
    c.send(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n");
    p.wait_counts("v1", (1, 0));
    p.handle.retire("v1").unwrap();
    p.handle.force_close("v1").unwrap();
    p.wait_drained("v1");
    assert!(c.is_closed());
}

#[test]
fn graceful_shutdown_finishes_in_flight_then_closes_port() {
    let p = Proxy::start();
    let (b, go) = slow_backend("v1");
    p.handle.set_active("v1", b.addr).unwrap();
    let mut slow = p.connect();
    slow.send(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n");
    p.wait_counts("v1", (1, 0));
    let mut idle = p.connect();
    assert_eq!(idle.get("/").status, 200);
    let h = p.handle.clone();
    let stopper = std::thread::spawn(move || h.shutdown_within(Duration::from_secs(5)));
    // idle keep-alive connections are closed at once
    assert!(idle.is_closed());
    // the listener is gone
    let t = Instant::now();
    while TcpStream::connect(p.addr).is_ok() {
        assert!(t.elapsed() < T, "port still open");
        std::thread::sleep(Duration::from_millis(5));
    }
    go.send(()).unwrap();
    let r = slow.response();
    assert_eq!(r.text(), "v1");
    assert_eq!(r.header("connection"), Some("close"));
    stopper.join().unwrap().unwrap();
}

#[test]
fn shutdown_is_bounded_by_its_deadline() {
    let p = Proxy::start();
    let (b, _go) = slow_backend("v1");
    p.handle.set_active("v1", b.addr).unwrap();
    let mut slow = p.connect();
    slow.send(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n");
    p.wait_counts("v1", (1, 0));
    let t = Instant::now();
    p.handle
        .shutdown_within(Duration::from_millis(300))
        .unwrap();
    assert!(t.elapsed() < Duration::from_secs(3));
    assert!(slow.is_closed());
    // commands after shutdown fail cleanly
    assert!(p.handle.counts().is_err());
}

#[test]
fn dropping_every_handle_stops_the_proxy() {
    let opts = rollbridge::proxy::ProxyOptions {
        port: 0,
        drain_timeout: Duration::from_millis(200),
        ..Default::default()
    };
    let (handle, events) = rollbridge::proxy::start(opts).unwrap();
    let addr = handle.local_addr();
    drop(handle);
    let t = Instant::now();
    while TcpStream::connect(addr).is_ok() {
        assert!(t.elapsed() < T, "port still open");
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(events);
}

#[test]
fn port_can_be_rebound_right_after_shutdown() {
    let p = Proxy::start();
    let b = rollbridge::proxy::ProxyOptions::default();
    let port = p.addr.port();
    let backend = Backend::named("v1");
    p.handle.set_active("v1", backend.addr).unwrap();
    // a connection the proxy closes first leaves TIME_WAIT on its side
    let mut c = p.connect();
    c.send(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    assert_eq!(c.response().status, 200);
    assert!(c.is_closed());
    p.handle.shutdown_within(Duration::from_secs(1)).unwrap();
    let again = rollbridge::proxy::start(rollbridge::proxy::ProxyOptions { port, ..b })
        .expect("SO_REUSEADDR lets the successor bind");
    assert_eq!(again.0.local_addr().port(), port);
    again.0.shutdown_within(Duration::from_millis(100)).unwrap();
}

#[test]
fn shutdown_serves_request_pipelined_behind_keep_alive_response() {
    use std::io::{BufRead, Write};
    let p = Proxy::start();
    let (go_tx, go_rx) = crossbeam_channel::unbounded::<()>();
    let b = Backend::start(Arc::new(move |r, s| {
        if r.path == "/slow-body" {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab");
            let _ = go_rx.recv_timeout(T);
            let _ = s.write_all(b"cd");
        } else {
            respond(s, 200, &[], b"next");
        }
        After::KeepAlive
    }));
    p.handle.set_active("v1", b.addr).unwrap();
    let mut c = p.connect();
    c.send(b"GET /slow-body HTTP/1.1\r\nHost: a\r\n\r\nGET /next HTTP/1.1\r\nHost: a\r\n\r\n");
    // The first response's head (keep-alive) is out before the stop.
    assert!(!c.r.fill_buf().unwrap().is_empty());
    let h = p.handle.clone();
    let stopper = std::thread::spawn(move || h.shutdown_within(Duration::from_secs(5)));
    let t = Instant::now();
    while TcpStream::connect(p.addr).is_ok() {
        assert!(t.elapsed() < T, "port still open");
        std::thread::sleep(Duration::from_millis(5));
    }
    go_tx.send(()).unwrap();
    let first = c.response();
    assert_eq!(first.text(), "abcd");
    assert_eq!(first.header("connection"), None);
    // The request already buffered behind it is served, then the close.
    let second = c
        .try_response(false)
        .expect("pipelined request was dropped");
    assert_eq!(second.text(), "next");
    assert_eq!(second.header("connection"), Some("close"));
    assert!(c.is_closed());
    stopper.join().unwrap().unwrap();
    let _ = c.w.flush();
}

#[test]
fn shutdown_serves_requests_already_sent_on_idle_connections() {
    let p = Proxy::start();
    // The second requests are answered only once the stop has begun, so
    // none of their responses can go out (with keep-alive) before it.
    let (go_tx, go_rx) = crossbeam_channel::unbounded::<()>();
    let b = Backend::start(Arc::new(move |r, s| {
        if r.path == "/second" {
            let _ = go_rx.recv_timeout(T);
        }
        respond(s, 200, &[], b"v1");
        After::KeepAlive
    }));
    p.handle.set_active("v1", b.addr).unwrap();
    let mut clients: Vec<Client> = (0..20).map(|_| p.connect()).collect();
    for c in &mut clients {
        assert_eq!(c.get("/").status, 200);
    }
    // Each idle keep-alive client sends its next request, and the stop
    // begins right behind it: none of them may be lost.
    for c in &mut clients {
        c.send(b"GET /second HTTP/1.1\r\nHost: a\r\n\r\n");
    }
    let h = p.handle.clone();
    let stopper = std::thread::spawn(move || h.shutdown_within(Duration::from_secs(5)));
    let t = Instant::now();
    while TcpStream::connect(p.addr).is_ok() {
        assert!(t.elapsed() < T, "port still open");
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(go_tx);
    let mut lost = 0;
    for c in &mut clients {
        match c.try_response(false) {
            Some(r) => {
                assert_eq!(r.text(), "v1");
                // Served before the stop began (keep-alive) or during it
                // (`Connection: close`); either way it is answered.
                assert!(
                    matches!(r.header("connection"), None | Some("close")),
                    "{:?}",
                    r.header("connection")
                );
            }
            None => lost += 1,
        }
        assert!(c.is_closed());
    }
    assert_eq!(lost, 0, "requests lost at shutdown");
    stopper.join().unwrap().unwrap();
}
