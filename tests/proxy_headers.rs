//! What the app sees of the request head, and what the client sees of the
//! response head.
mod proxy_support;

use proxy_support::*;
use std::io::Write;
use std::sync::Arc;

fn recording_backend() -> Backend {
    Backend::start(Arc::new(|_r, s| {
        let _ = s.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nKeep-Alive: timeout=5\r\n\
              Connection: keep-alive, X-Hop\r\nX-Hop: secret\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\nok",
        );
        After::KeepAlive
    }))
}

fn through(p: &Proxy, b: &Backend, raw: &[u8]) -> (Resp, Req) {
    let mut c = p.connect();
    c.send(raw);
    let r = c.response();
    (r, b.next_request())
}

#[test]
fn xff_is_appended_and_trusted_forwarding_headers_kept() {
    let b = recording_backend();
    let p = Proxy::start();
    p.handle.set_active("v1", b.addr).unwrap();
    let (_, req) = through(
        &p,
        &b,
        b"GET / HTTP/1.1\r\nHost: example.com\r\nX-Forwarded-For: 203.0.113.9\r\n\
          X-Forwarded-Proto: https\r\nX-Forwarded-Host: example.com\r\nX-Forwarded-Port: 443\r\n\r\n",
    );
    assert_eq!(
        req.header("x-forwarded-for"),
        Some("203.0.113.9, 127.0.0.1")
    );
    assert_eq!(req.all("x-forwarded-proto"), vec!["https"]);
    assert_eq!(req.header("x-forwarded-host"), Some("example.com"));
    assert_eq!(req.header("x-forwarded-port"), Some("443"));
    assert_eq!(req.header("host"), Some("example.com"));
}

#[test]
fn untrusted_peer_forwarding_headers_are_replaced() {
    let b = recording_backend();
    let p = Proxy::with(|o| o.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap()]);
    p.handle.set_active("v1", b.addr).unwrap();
    let (_, req) = through(
        &p,
        &b,
        b"GET / HTTP/1.1\r\nHost: site:8080\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil\r\n\r\n",
    );
    assert_eq!(req.all("x-forwarded-proto"), vec!["http"]);
    assert_eq!(req.header("x-forwarded-host"), Some("site:8080"));
    assert_eq!(req.header("x-forwarded-port"), Some("8080"));
    assert_eq!(req.header("x-forwarded-for"), Some("127.0.0.1"));
}

#[test]
fn hop_by_hop_headers_are_not_forwarded() {
    let b = recording_backend();
    let p = Proxy::start();
    p.handle.set_active("v1", b.addr).unwrap();
    let (resp, req) = through(
        &p,
        &b,
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Private, X-Forwarded-For\r\n\
          Keep-Alive: 300\r\nTE: trailers\r\nProxy-Connection: keep-alive\r\nX-Private: p\r\n\
          X-Forwarded-For: 1.1.1.1\r\nX-End: e\r\n\r\n",
    );
    for h in [
        "connection",
        "keep-alive",
        "te",
        "proxy-connection",
        "x-private",
    ] {
        assert!(req.header(h).is_none(), "{h} reached the app");
    }
    assert_eq!(req.header("x-end"), Some("e"));
    // our forwarding header survives the client naming it in Connection
    assert_eq!(req.header("x-forwarded-for"), Some("127.0.0.1"));
    // response side: hop-by-hop and Connection-named removed, cookies kept apart
    assert!(resp.header("keep-alive").is_none());
    assert!(resp.header("x-hop").is_none());
    let cookies: Vec<_> = resp
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .collect();
    assert_eq!(cookies.len(), 2);
}

#[test]
fn path_is_forwarded_byte_for_byte() {
    let b = recording_backend();
    let p = Proxy::start();
    p.handle.set_active("v1", b.addr).unwrap();
    let (_, req) = through(
        &p,
        &b,
        b"GET //a///b/../c?x=1//2&y=%2F%20 HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    assert_eq!(req.path, "//a///b/../c?x=1//2&y=%2F%20");
}

#[test]
fn app_status_and_headers_reach_client_unchanged() {
    let b = Backend::start(Arc::new(|_r, s| {
        respond(
            s,
            404,
            &[("X-App", "1"), ("Content-Type", "text/html")],
            b"nope",
        );
        After::KeepAlive
    }));
    let p = Proxy::start();
    p.handle.set_active("v1", b.addr).unwrap();
    let r = p.connect().get("/missing");
    assert_eq!(r.status, 404);
    assert_eq!(r.header("x-app"), Some("1"));
    assert_eq!(r.header("content-type"), Some("text/html"));
    assert_eq!(r.text(), "nope");
}

#[test]
fn upstream_request_is_http11_with_normalized_head() {
    let b = recording_backend();
    let p = Proxy::start();
    p.handle.set_active("v1", b.addr).unwrap();
    let (_, req) = through(
        &p,
        &b,
        b"GET /x HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\n\r\n",
    );
    assert!(req.head.starts_with("GET /x HTTP/1.1\r\n"));
    assert!(req.header("connection").is_none());
}

#[test]
fn ipv6_listener_reports_ipv6_peer_and_trusts_it() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback here; skipping");
        return;
    }
    let b = recording_backend();
    let p = Proxy::with(|o| o.host = "::1".into());
    assert!(p.addr.is_ipv6());
    p.handle.set_active("v1", b.addr).unwrap();
    let (_, req) = through(
        &p,
        &b,
        b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\nX-Forwarded-Proto: https\r\n\r\n",
    );
    assert_eq!(req.header("x-forwarded-for"), Some("::1"));
    assert_eq!(req.header("x-forwarded-proto"), Some("https"));
    assert_eq!(req.header("x-forwarded-port"), Some("8080"));
}
