//! Long bodies of known length, which the proxy splices socket to socket:
//! whole and in order under backpressure, cut cleanly when the upstream
//! dies mid-body, and the connection reusable afterwards.
mod proxy_support;

use proxy_support::*;
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn pattern(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(31).wrapping_add(seed) % 251) as u8)
        .collect()
}

/// `/big/<bytes>` answers that many pattern bytes; anything else "small".
fn sized_backend() -> Backend {
    Backend::start(Arc::new(|r, s| {
        let body = match r.path.strip_prefix("/big/") {
            Some(n) => pattern(n.parse().unwrap_or(0), 7),
            None => b"small".to_vec(),
        };
        respond(s, 200, &[], &body);
        After::KeepAlive
    }))
}

fn lower(s: &str) -> String {
    s.to_ascii_lowercase()
}

fn proxy_to(b: &Backend) -> Proxy {
    let p = Proxy::start();
    p.handle.set_active("v1", b.addr).unwrap();
    p
}

#[test]
fn long_body_to_a_slow_reader_arrives_whole_and_keep_alive_continues() {
    let b = sized_backend();
    let p = proxy_to(&b);
    let mut c = p.connect();
    let len = 3 * 1024 * 1024;
    c.send(b"GET /big/3145728 HTTP/1.1\r\nHost: a\r\n\r\n");
    let head = read_head(&mut c.r).unwrap();
    assert!(lower(&head).contains("content-length: 3145728"), "{head}");
    // Read slowly at first so the proxy's pipe and the socket fill up.
    let mut body = vec![0u8; len];
    let mut got = 0;
    for _ in 0..8 {
        std::thread::sleep(Duration::from_millis(20));
        got += c.r.read(&mut body[got..got + 4096]).unwrap();
    }
    c.r.read_exact(&mut body[got..]).unwrap();
    assert!(body == pattern(len, 7), "body differs");
    // The same connection serves the next request, in order.
    assert_eq!(c.get("/small").text(), "small");
    p.wait_counts("v1", (0, 0));
}

#[test]
fn pipelined_request_behind_a_long_body_is_answered_after_it() {
    let b = sized_backend();
    let p = proxy_to(&b);
    let mut c = p.connect();
    c.send(
        b"GET /big/300000 HTTP/1.1\r\nHost: a\r\n\r\nGET /big/20000 HTTP/1.1\r\nHost: a\r\n\r\n\
          GET /small HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    assert!(c.response().body == pattern(300_000, 7));
    assert!(c.response().body == pattern(20_000, 7));
    assert_eq!(c.response().text(), "small");
}

#[test]
fn upstream_death_mid_long_body_cuts_the_client_promptly() {
    let sent = pattern(200_000, 3);
    let b = Backend::start(Arc::new(move |_r, s| {
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n");
        let _ = s.write_all(&sent);
        After::Close
    }));
    let p = proxy_to(&b);
    let mut c = p.connect();
    c.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    let t = Instant::now();
    let head = read_head(&mut c.r).unwrap();
    assert!(lower(&head).contains("content-length: 1000000"), "{head}");
    let rest = c.read_all();
    assert!(t.elapsed() < Duration::from_secs(3));
    assert!(rest == pattern(200_000, 3), "got {} bytes", rest.len());
    p.wait_counts("v1", (0, 0));
}

#[test]
fn client_gone_mid_long_body_frees_the_exchange() {
    let b = sized_backend();
    let p = proxy_to(&b);
    let mut c = p.connect();
    c.send(b"GET /big/8000000 HTTP/1.1\r\nHost: a\r\n\r\n");
    let _ = read_head(&mut c.r).unwrap();
    let mut some = [0u8; 1000];
    c.r.read_exact(&mut some).unwrap();
    drop(c);
    p.wait_counts("v1", (0, 0));
    // The proxy still serves long bodies on new connections.
    let mut c2 = p.connect();
    assert!(c2.get("/big/100000").body == pattern(100_000, 7));
}
