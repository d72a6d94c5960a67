//! HTTP/1.1 framing both ways through real sockets.
mod proxy_support;

use proxy_support::*;
use std::io::{BufReader, Read, Write};
use std::net::{Shutdown, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn echo_backend() -> Backend {
    Backend::start(Arc::new(|r, s| {
        let body = if r.header("transfer-encoding").is_some() {
            dechunk(&r.raw_body)
        } else {
            r.raw_body.clone()
        };
        respond(s, 200, &[("X-Path", &r.path)], &body);
        After::KeepAlive
    }))
}

fn proxy_to(b: &Backend) -> Proxy {
    let p = Proxy::start();
    p.handle.set_active("v1", b.addr).unwrap();
    p
}

#[test]
fn content_length_body_is_forwarded() {
    let b = echo_backend();
    let p = proxy_to(&b);
    let mut c = p.connect();
    c.send(b"POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world");
    assert_eq!(c.response().text(), "hello world");
    let req = b.next_request();
    assert_eq!(req.header("content-length"), Some("11"));
}

#[test]
fn request_trailers_are_dropped() {
    let b = echo_backend();
    let p = proxy_to(&b);
    let mut c = p.connect();
    c.send(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: Authorization\r\n\r\n\
          005;ext=1\r\nhello\r\n",
    );
    c.send(
        b"6\r\n world\r\n0\r\nContent-Length: 5\r\nTransfer-Encoding: gzip\r\nHost: evil\r\n\
          X-Forwarded-For: 6.6.6.6\r\nAuthorization: Basic eDp5\r\n\r\n",
    );
    assert_eq!(c.response().text(), "hello world");
    let req = b.next_request();
    assert_eq!(dechunk(&req.raw_body), b"hello world");
    assert!(
        req.raw_body.ends_with(b"d\r\n0\r\n\r\n"),
        "{:?}",
        req.raw_body
    );
    assert!(req.header("trailer").is_none());
    assert_eq!(c.get("/").text(), ""); // still in sync
}

#[test]
fn response_trailers_are_dropped() {
    let b = Backend::start(Arc::new(|_r, s| {
        let _ = s.write_all(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n\
              3\r\nabc\r\n2\r\nde\r\n0\r\nX-Sum: 5\r\nSet-Cookie: s=1\r\n\r\n",
        );
        After::KeepAlive
    }));
    let p = proxy_to(&b);
    let mut c = p.connect();
    let r = c.get("/");
    assert_eq!(r.text(), "abcde");
    assert!(r.raw_body.ends_with(b"de\r\n0\r\n\r\n"), "{:?}", r.raw_body);
    assert!(r.header("trailer").is_none());
    assert_eq!(c.get("/").text(), "abcde"); // still in sync
}

#[test]
fn close_delimited_response_is_forwarded_then_closed() {
    let b = Backend::start(Arc::new(|_r, s| {
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end");
        After::Close
    }));
    let p = proxy_to(&b);
    let mut c = p.connect();
    let r = c.get("/");
    assert_eq!(r.text(), "until the end");
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.is_closed());
}

#[test]
fn head_response_has_no_body() {
    let b = Backend::start(Arc::new(|r, s| {
        if r.method == "HEAD" {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n");
        } else {
            respond(s, 200, &[], b"after");
        }
        After::KeepAlive
    }));
    let p = proxy_to(&b);
    let mut c = p.connect();
    c.send(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n");
    let r = c.head_response();
    assert_eq!(r.header("content-length"), Some("100"));
    assert_eq!(c.get("/").text(), "after");
}

#[test]
fn status_204_and_304_end_without_body() {
    let b = Backend::start(Arc::new(|r, s| {
        match r.path.as_str() {
            "/204" => {
                let _ = s.write_all(b"HTTP/1.1 204 No Content\r\n\r\n");
            }
            "/304" => {
                let _ = s.write_all(b"HTTP/1.1 304 Not Modified\r\nETag: x\r\n\r\n");
            }
            _ => respond(s, 200, &[], b"next"),
        }
        After::KeepAlive
    }));
    let p = proxy_to(&b);
    let mut c = p.connect();
    assert_eq!(c.get("/204").status, 204);
    assert_eq!(c.get("/304").status, 304);
    assert_eq!(c.get("/").text(), "next");
}

#[test]
fn expect_100_continue_round_trip() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(T)).unwrap();
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        let head = read_head(&mut r).unwrap();
        assert!(head.to_ascii_lowercase().contains("expect: 100-continue"));
        w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").unwrap();
        let mut body = [0u8; 4];
        r.read_exact(&mut body).unwrap();
        respond(&mut w, 201, &[], &body);
    });
    let p = Proxy::start();
    p.handle.set_active("v1", addr).unwrap();
    let mut c = p.connect();
    c.send(b"PUT /f HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
    let interim = c.response();
    assert_eq!(interim.status, 100);
    c.send(b"data");
    let r = c.response();
    assert_eq!(r.status, 201);
    assert_eq!(r.text(), "data");
    server.join().unwrap();
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let b = echo_backend();
    let p = proxy_to(&b);
    let mut c = p.connect();
    let mut all = Vec::new();
    for i in 0..5 {
        all.extend_from_slice(
            format!("POST /{i} HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\n{i}").as_bytes(),
        );
    }
    c.send(&all);
    for i in 0..5 {
        let r = c.response();
        assert_eq!(r.header("x-path"), Some(format!("/{i}").as_str()));
        assert_eq!(r.text(), i.to_string());
    }
}

#[test]
fn half_closed_client_still_gets_its_response() {
    let b = echo_backend();
    let p = proxy_to(&b);
    let mut c = p.connect();
    c.send(b"POST /h HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nhalf");
    c.w.shutdown(Shutdown::Write).unwrap();
    assert_eq!(c.response().text(), "half");
    assert!(c.is_closed());
}

#[test]
fn large_bodies_stream_both_ways() {
    let b = echo_backend();
    let p = proxy_to(&b);
    let body: Vec<u8> = (0..8 * 1024 * 1024u32)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    let mut c = p.connect();
    let head = format!(
        "POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let mut w = c.w.try_clone().unwrap();
    let b2 = body.clone();
    let writer = std::thread::spawn(move || {
        w.write_all(head.as_bytes()).unwrap();
        w.write_all(&b2).unwrap();
    });
    let r = c.response();
    writer.join().unwrap();
    assert_eq!(r.body.len(), body.len());
    assert!(r.body == body);
}

#[test]
fn streamed_response_arrives_event_by_event() {
    let (tx, rx) = crossbeam_channel::unbounded::<()>();
    let b = Backend::start(Arc::new(move |_r, s| {
        let _ = s.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        let _ = s.write_all(b"b\r\ndata: one\n\n\r\n");
        let _ = rx.recv_timeout(T);
        let _ = s.write_all(b"b\r\ndata: two\n\n\r\n0\r\n\r\n");
        After::KeepAlive
    }));
    let p = proxy_to(&b);
    let mut c = p.connect();
    c.send(b"GET /events HTTP/1.1\r\nHost: a\r\n\r\n");
    let head = read_head(&mut c.r).unwrap();
    assert!(head.contains("text/event-stream"));
    let mut first = [0u8; 16];
    c.r.read_exact(&mut first).unwrap(); // before the backend sends event two
    assert_eq!(&first, b"b\r\ndata: one\n\n\r\n");
    tx.send(()).unwrap();
    let mut rest = [0u8; 21];
    c.r.read_exact(&mut rest).unwrap();
    assert_eq!(&rest, b"b\r\ndata: two\n\n\r\n0\r\n\r\n");
}

#[test]
fn http10_client_gets_unchunked_response_and_close() {
    let b = Backend::start(Arc::new(|_r, s| {
        let _ = s.write_all(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        );
        After::KeepAlive
    }));
    let p = proxy_to(&b);
    let mut c = p.connect();
    c.send(b"GET / HTTP/1.0\r\n\r\n");
    let raw = c.read_all();
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(!text.to_ascii_lowercase().contains("transfer-encoding"));
    assert!(text.ends_with("\r\n\r\nok"), "{text}");
}

#[test]
fn upstream_death_mid_body_cuts_client_promptly() {
    let b = Backend::start(Arc::new(|_r, s| {
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial");
        After::Close
    }));
    let p = proxy_to(&b);
    let mut c = p.connect();
    c.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    let t = Instant::now();
    let raw = c.read_all();
    assert!(t.elapsed() < Duration::from_secs(3));
    assert!(raw.ends_with(b"partial"));
    p.wait_counts("v1", (0, 0));
}

#[test]
fn early_response_before_request_body_closes_client() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        let _ = read_head(&mut r).unwrap();
        respond(&mut w, 413, &[], b"too big");
        std::thread::sleep(Duration::from_millis(100));
    });
    let p = Proxy::start();
    p.handle.set_active("v1", addr).unwrap();
    let mut c = p.connect();
    c.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\nxx");
    let r = c.response();
    assert_eq!(r.status, 413);
    assert_eq!(r.header("connection"), Some("close"));
    server.join().unwrap();
}
