//! Upstream keep-alive pool lifetime, interim responses, HTTP/1.0
//! keep-alive, oversize upstream heads, and retire during connect-retry.
mod proxy_support;

use proxy_support::*;
use std::io::Write;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

#[test]
fn pooled_connections_close_when_release_is_retired() {
    let p = Proxy::start();
    let b = Backend::named("v1");
    p.handle.set_active("v1", b.addr).unwrap();
    assert_eq!(p.connect().get("/").status, 200);
    assert_eq!(b.closed.load(std::sync::atomic::Ordering::SeqCst), 0);
    p.handle.retire("v1").unwrap();
    p.wait_drained("v1");
    b.wait_closed(1);
}

#[test]
fn pooled_connections_idle_out() {
    let p = Proxy::with(|o| o.upstream_idle_timeout = Duration::from_millis(200));
    let b = Backend::named("v1");
    p.handle.set_active("v1", b.addr).unwrap();
    let mut c = p.connect();
    assert_eq!(c.get("/").status, 200);
    b.wait_closed(1);
    // the next request simply opens a new one
    assert_eq!(c.get("/").status, 200);
    assert_eq!(b.connections.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[test]
fn early_hints_are_forwarded_before_final_response() {
    let b = Backend::start(Arc::new(|_r, s| {
        let _ = s.write_all(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n");
        respond(s, 200, &[], b"final");
        After::KeepAlive
    }));
    let p = Proxy::start();
    p.handle.set_active("v1", b.addr).unwrap();
    let mut c = p.connect();
    c.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    let hints = c.response();
    assert_eq!(hints.status, 103);
    assert_eq!(hints.header("link"), Some("</a.css>; rel=preload"));
    assert_eq!(c.response().text(), "final");
}

#[test]
fn http10_keep_alive_client_is_kept() {
    let b = Backend::named("v1");
    let p = Proxy::start();
    p.handle.set_active("v1", b.addr).unwrap();
    let mut c = p.connect();
    for _ in 0..2 {
        c.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        let r = c.response();
        assert_eq!(r.text(), "v1");
        assert_eq!(r.header("connection"), Some("keep-alive"));
    }
    let req = b.next_request();
    assert_eq!(req.header("host"), Some(p.addr.to_string().as_str()));
}

#[test]
fn oversized_upstream_head_is_502() {
    let b = Backend::start(Arc::new(|_r, s| {
        let big = "x".repeat(70 * 1024);
        let _ = s.write_all(
            format!("HTTP/1.1 200 OK\r\nX-Big: {big}\r\nContent-Length: 0\r\n\r\n").as_bytes(),
        );
        After::KeepAlive
    }));
    let p = Proxy::start();
    p.handle.set_active("v1", b.addr).unwrap();
    let r = p.connect().get("/");
    assert_eq!(r.status, 502);
    p.wait_counts("v1", (0, 0));
}

#[test]
fn request_waiting_for_connect_retry_follows_the_new_release() {
    let p = Proxy::with(|o| o.connect_retry = Duration::from_secs(5));
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    p.handle.set_active("v1", addr).unwrap();
    let mut c = p.connect();
    c.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    p.wait_counts("v1", (1, 0));
    let v2 = Backend::named("v2");
    p.handle.set_active("v2", v2.addr).unwrap();
    p.handle.retire("v1").unwrap();
    // The waiting request survives the retire: its next attempt goes to
    // the release active now, and v1 drains as its count moves with it.
    assert_eq!(c.response().text(), "v2");
    p.wait_drained("v1");
    p.wait_counts("v2", (0, 0));
    assert_eq!(c.get("/").text(), "v2");
}

#[test]
fn non_http_upstream_answer_is_502() {
    let b = Backend::start(Arc::new(|_r, s| {
        let _ = s.write_all(b"SSH-2.0-OpenSSH\r\n\r\n");
        After::KeepAlive
    }));
    let p = Proxy::start();
    p.handle.set_active("v1", b.addr).unwrap();
    let mut c = p.connect();
    assert_eq!(c.get("/").status, 502);
    let ev = p.wait_event(|e| matches!(e, rollbridge::proxy::ProxyEvent::Error { .. }));
    assert!(format!("{ev:?}").contains("invalid response head"));
}
