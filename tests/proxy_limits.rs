//! The proxy's own answers (400/431), timeouts, and request-smuggling
//! defences: nothing ambiguous ever reaches the app.
mod proxy_support;

use proxy_support::*;
use std::time::{Duration, Instant};

fn setup() -> (Proxy, Backend) {
    let b = Backend::named("app");
    let p = Proxy::with(|o| {
        o.header_timeout = Duration::from_millis(300);
        o.client_idle_timeout = Duration::from_millis(300);
    });
    p.handle.set_active("v1", b.addr).unwrap();
    (p, b)
}

fn rejected(p: &Proxy, raw: &[u8]) -> Resp {
    let mut c = p.connect();
    c.send(raw);
    let r = c.response();
    assert!(c.is_closed(), "connection stays open after {}", r.status);
    r
}

#[test]
fn malformed_request_gets_400_and_close() {
    let (p, b) = setup();
    let r = rejected(&p, b"NOT HTTP AT ALL\r\n\r\n");
    assert_eq!(r.status, 400);
    assert!(b.requests.try_recv().is_err());
}

#[test]
fn oversized_head_gets_431() {
    let (p, b) = setup();
    let mut raw = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: ".to_vec();
    raw.extend(std::iter::repeat_n(b'x', 70 * 1024));
    raw.extend_from_slice(b"\r\n\r\n");
    let mut c = p.connect();
    let mut w = c.w.try_clone().unwrap();
    let t = std::thread::spawn(move || {
        let _ = std::io::Write::write_all(&mut w, &raw);
    });
    let r = c.response();
    assert_eq!(r.status, 431);
    let _ = t.join();
    assert!(b.requests.try_recv().is_err());
}

#[test]
fn head_just_under_limit_is_accepted() {
    let (p, _b) = setup();
    let mut raw = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: ".to_vec();
    raw.extend(std::iter::repeat_n(b'x', 60 * 1024));
    raw.extend_from_slice(b"\r\n\r\n");
    let mut c = p.connect();
    c.send(&raw);
    assert_eq!(c.response().status, 200);
}

#[test]
fn slowloris_head_is_cut_by_header_timeout() {
    let (p, _b) = setup();
    let mut c = p.connect();
    c.send(b"GET / HTTP/1.1\r\nHost: a\r\n");
    let t = Instant::now();
    assert!(c.is_closed());
    assert!(t.elapsed() >= Duration::from_millis(200));
    assert!(t.elapsed() < Duration::from_secs(3));
}

#[test]
fn idle_keep_alive_connection_is_closed() {
    let (p, _b) = setup();
    let mut c = p.connect();
    assert_eq!(c.get("/").status, 200);
    let t = Instant::now();
    assert!(c.is_closed());
    assert!(t.elapsed() >= Duration::from_millis(200));
}

#[test]
fn a_bad_client_does_not_disturb_others() {
    let (p, _b) = setup();
    let mut slow = p.connect();
    slow.send(b"GET / HTTP/1.1\r\nHo");
    let mut garbage = p.connect();
    garbage.send(b"\x00\x01\x02\r\n\r\n");
    let mut good = p.connect();
    assert_eq!(good.get("/").text(), "app");
    assert_eq!(garbage.response().status, 400);
}

#[test]
fn smuggling_attempts_are_rejected() {
    let (p, b) = setup();
    let cases: &[&[u8]] = &[
        // CL + TE
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        // differing duplicate CL
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
        // TE whose final coding is not chunked
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
        // obs-fold
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n\tTransfer-Encoding: chunked\r\n\r\n",
        // bare LF / bare CR in the head
        b"GET / HTTP/1.1\nHost: a\n\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",
        // Host missing / doubled
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        // CONNECT
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
        // space before colon
        b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n",
        // bad CL
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n",
    ];
    for raw in cases {
        let r = rejected(&p, raw);
        assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(raw));
    }
    assert!(
        b.requests.try_recv().is_err(),
        "a rejected request reached the app"
    );
}

#[test]
fn bad_chunk_size_is_rejected() {
    let (p, _b) = setup();
    let mut c = p.connect();
    c.send(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    );
    assert_eq!(c.response().status, 400);
    assert!(c.is_closed());
    p.wait_counts("v1", (0, 0));
}

#[test]
fn smuggled_second_request_is_not_hidden_in_a_body() {
    // With TE:chunked the body ends at 0\r\n\r\n; what follows is a separate
    // request that gets its own, visible, routing and response.
    let (p, b) = setup();
    let mut c = p.connect();
    c.send(
        b"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n\
          GET /b HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    assert_eq!(c.response().status, 200);
    assert_eq!(c.response().status, 200);
    assert_eq!(b.next_request().path, "/a");
    assert_eq!(b.next_request().path, "/b");
}

/// Socket-level mini fuzz: mutated requests on many connections never take
/// the proxy down or leave anything counted.
#[test]
fn random_garbage_never_hurts_the_proxy() {
    let (p, _b) = setup();
    let seeds: &[&[u8]] = &[
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
        b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    ];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..300 {
        let mut msg = seeds[i % seeds.len()].to_vec();
        for _ in 0..(rnd() % 6) {
            let pos = (rnd() as usize) % msg.len();
            match rnd() % 3 {
                0 => msg[pos] = rnd() as u8,
                1 => {
                    msg.remove(pos);
                }
                _ => msg.insert(pos, rnd() as u8),
            }
        }
        let mut c = p.connect();
        c.send(&msg);
        let _ = c.w.shutdown(std::net::Shutdown::Write);
        let _ = c.read_all();
    }
    let mut c = p.connect();
    assert_eq!(c.get("/").text(), "app");
    p.wait_counts("v1", (0, 0));
}
