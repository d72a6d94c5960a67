//! What the proxy normalizes before a request reaches the app: transfer
//! codings, chunk sizes, underscore header names, absolute-form targets and
//! the field limit. Requests it refuses never reach the app.
mod proxy_support;

use proxy_support::*;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;

fn echo_backend() -> Backend {
    Backend::start(Arc::new(|r, s| {
        let body = if r.header("transfer-encoding").is_some() {
            dechunk(&r.raw_body)
        } else {
            r.raw_body.clone()
        };
        respond(s, 200, &[], &body);
        After::KeepAlive
    }))
}

fn proxy_to(b: &Backend) -> Proxy {
    let p = Proxy::start();
    p.handle.set_active("v1", b.addr).unwrap();
    p
}

/// Sends `raw` on a fresh connection; the proxy's answer must be `status`,
/// then a close, and the app must never have been contacted.
fn refused(p: &Proxy, b: &Backend, raw: &[u8], status: u16) {
    let mut c = p.connect();
    c.send(raw);
    let r = c.response();
    assert_eq!(r.status, status, "{}", String::from_utf8_lossy(raw));
    assert!(c.is_closed());
    assert_eq!(
        b.connections.load(Ordering::SeqCst),
        0,
        "the app was contacted"
    );
}

#[test]
fn transfer_coding_before_chunked_gets_501() {
    let b = echo_backend();
    let p = proxy_to(&b);
    for te in [
        "Transfer-Encoding: identity, chunked\r\n",
        "Transfer-Encoding: gzip, chunked\r\n",
        "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
    ] {
        let raw = format!("POST / HTTP/1.1\r\nHost: a\r\n{te}\r\n5\r\nhello\r\n0\r\n\r\n");
        refused(&p, &b, raw.as_bytes(), 501);
    }
}

#[test]
fn final_coding_not_chunked_gets_400() {
    let b = echo_backend();
    let p = proxy_to(&b);
    for te in [
        "Transfer-Encoding: chunked, gzip\r\n",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
    ] {
        let raw = format!("POST / HTTP/1.1\r\nHost: a\r\n{te}\r\n5\r\nhello\r\n0\r\n\r\n");
        refused(&p, &b, raw.as_bytes(), 400);
    }
}

#[test]
fn app_sees_only_transfer_encoding_chunked() {
    let b = echo_backend();
    let p = proxy_to(&b);
    let mut c = p.connect();
    c.send(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked \r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    );
    assert_eq!(c.response().text(), "hello");
    let req = b.next_request();
    assert_eq!(req.all("transfer-encoding"), ["chunked"]);
}

#[test]
fn absurd_chunk_size_is_refused_before_the_app() {
    let b = echo_backend();
    let p = proxy_to(&b);
    refused(
        &p,
        &b,
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nhello",
        400,
    );
}

#[test]
fn client_chunk_sizes_are_not_echoed_upstream() {
    let b = echo_backend();
    let p = proxy_to(&b);
    let mut c = p.connect();
    let data: Vec<u8> = (0..1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let mut w = c.w.try_clone().unwrap();
    let body = data.clone();
    let writer = std::thread::spawn(move || {
        w.write_all(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n100000\r\n")
            .unwrap();
        for piece in body.chunks(64 * 1024) {
            w.write_all(piece).unwrap();
        }
        w.write_all(b"\r\n0\r\n\r\n").unwrap();
    });
    let r = c.response();
    writer.join().unwrap();
    assert!(r.body == data);
    let req = b.next_request();
    // Every size line upstream is the proxy's own, bounded by its buffer.
    let mut rest = &req.raw_body[..];
    let mut chunks = 0;
    loop {
        let eol = rest.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(&rest[..eol]).unwrap(), 16).unwrap();
        assert!(size <= 64 * 1024, "chunk of {size} bytes forwarded");
        if size == 0 {
            break;
        }
        chunks += 1;
        rest = &rest[eol + 2 + size + 2..];
    }
    assert!(chunks > 1);
}

#[test]
fn underscore_headers_are_dropped_by_default() {
    let b = echo_backend();
    let p = proxy_to(&b);
    let mut c = p.connect();
    c.send(b"GET / HTTP/1.1\r\nHost: a\r\nX_Forwarded_For: 6.6.6.6\r\nMy_Header: m\r\n\r\n");
    assert_eq!(c.response().status, 200);
    let req = b.next_request();
    assert!(
        req.headers.iter().all(|(n, _)| !n.contains('_')),
        "{}",
        req.head
    );
    assert_eq!(req.all("x-forwarded-for"), ["127.0.0.1"]);
}

#[test]
fn kept_underscore_headers_never_shadow_forwarding_headers() {
    let b = echo_backend();
    let p = Proxy::with(|o| o.underscores_in_headers = true);
    p.handle.set_active("v1", b.addr).unwrap();
    let mut c = p.connect();
    c.send(
        b"GET / HTTP/1.1\r\nHost: a\r\nX_Forwarded_For: 6.6.6.6\r\nX_Real_IP: 6.6.6.6\r\n\
          My_Header: m\r\n\r\n",
    );
    assert_eq!(c.response().status, 200);
    let req = b.next_request();
    assert_eq!(req.header("my_header"), Some("m"));
    assert!(!req.head.contains("6.6.6.6"), "{}", req.head);
}

#[test]
fn absolute_form_authority_replaces_host() {
    let b = echo_backend();
    let p = proxy_to(&b);
    let mut c = p.connect();
    c.send(b"GET http://evil.example/x?q=1 HTTP/1.1\r\nHost: good.example\r\n\r\n");
    assert_eq!(c.response().status, 200);
    let req = b.next_request();
    assert_eq!(req.path, "/x?q=1");
    assert_eq!(req.all("host"), ["evil.example"]);
    assert_eq!(req.header("x-forwarded-host"), Some("evil.example"));
    c.send(b"GET http://evil.example?q=1 HTTP/1.1\r\nHost: good.example\r\n\r\n");
    assert_eq!(c.response().status, 200);
    let req = b.next_request();
    assert_eq!(req.path, "/?q=1");
    assert_eq!(req.all("host"), ["evil.example"]);
}

#[test]
fn userinfo_in_target_gets_400() {
    let b = echo_backend();
    let p = proxy_to(&b);
    refused(
        &p,
        &b,
        b"GET http://u:p@good.example/ HTTP/1.1\r\nHost: good.example\r\n\r\n",
        400,
    );
}

#[test]
fn head_full_of_fields_gets_431_not_an_overfull_upstream_head() {
    let b = echo_backend();
    let p = proxy_to(&b);
    // 199 fields: within the limit, but not with the proxy's own four added.
    let mut raw = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    for i in 0..198 {
        raw.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    raw.extend_from_slice(b"\r\n");
    refused(&p, &b, &raw, 431);
}
