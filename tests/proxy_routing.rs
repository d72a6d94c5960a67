//! Routing per request, own answers (503/502), pooling, safe retries,
//! connect-retry during a restart, and flips under load.
mod proxy_support;

use proxy_support::*;
use rollbridge::proxy::ProxyEvent;
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[test]
fn no_active_release_gets_503_and_stays_open() {
    let p = Proxy::start();
    let mut c = p.connect();
    let r = c.get("/");
    assert_eq!(r.status, 503);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.text(), "No active release\n");
    // keep-alive: the next request on the same connection works
    assert_eq!(c.get("/").status, 503);
}

#[test]
fn keep_alive_client_moves_to_new_release_on_next_request() {
    let p = Proxy::start();
    let (a, b) = (Backend::named("v1"), Backend::named("v2"));
    p.handle.set_active("v1", a.addr).unwrap();
    let mut c = p.connect();
    assert_eq!(c.get("/").text(), "v1");
    p.handle.set_active("v2", b.addr).unwrap();
    p.handle.retire("v1").unwrap();
    p.wait_drained("v1");
    assert_eq!(c.get("/").text(), "v2");
    assert_eq!(c.get("/").text(), "v2");
}

#[test]
fn clear_active_answers_503_again() {
    let p = Proxy::start();
    let a = Backend::named("v1");
    p.handle.set_active("v1", a.addr).unwrap();
    let mut c = p.connect();
    assert_eq!(c.get("/").status, 200);
    p.handle.clear_active().unwrap();
    assert_eq!(c.get("/").status, 503);
}

#[test]
fn upstream_connections_are_pooled() {
    let p = Proxy::start();
    let a = Backend::named("v1");
    p.handle.set_active("v1", a.addr).unwrap();
    for _ in 0..3 {
        let mut c = p.connect();
        for _ in 0..5 {
            assert_eq!(c.get("/").text(), "v1");
        }
    }
    assert_eq!(a.connections.load(Ordering::SeqCst), 1);
}

#[test]
fn refused_upstream_gets_502_and_error_event() {
    let p = Proxy::start();
    let port = free_port();
    p.handle
        .set_active("v1", SocketAddr::from(([127, 0, 0, 1], port)))
        .unwrap();
    let mut c = p.connect();
    let r = c.get("/");
    assert_eq!(r.status, 502);
    assert_eq!(r.text(), "Bad gateway\n");
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    let ev = p.wait_event(|e| matches!(e, ProxyEvent::Error { .. }));
    let ProxyEvent::Error {
        release_id,
        message,
        ..
    } = ev
    else {
        unreachable!()
    };
    assert_eq!(release_id.as_deref(), Some("v1"));
    assert!(
        message.contains(&format!("connect 127.0.0.1:{port}")),
        "{message}"
    );
    assert_eq!(p.counts("v1"), (0, 0));
    // the 502 kept the connection open
    assert_eq!(c.get("/").status, 502);
}

#[test]
fn connect_retry_turns_a_restart_into_success() {
    let p = Proxy::with(|o| o.connect_retry = Duration::from_millis(3000));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener); // the "crashed" app
    p.handle.set_active("v1", addr).unwrap();
    let started = Instant::now();
    let restarter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(400));
        Backend::bind(
            &addr.to_string(),
            Arc::new(|_r, s| {
                respond(s, 200, &[], b"back");
                After::KeepAlive
            }),
        )
    });
    let mut c = p.connect();
    let r = c.get("/");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "back");
    assert!(started.elapsed() >= Duration::from_millis(350));
    drop(restarter.join().unwrap());
}

#[test]
fn connect_retry_gives_up_with_502_after_window() {
    let p = Proxy::with(|o| o.connect_retry = Duration::from_millis(300));
    let port = free_port();
    p.handle
        .set_active("v1", SocketAddr::from(([127, 0, 0, 1], port)))
        .unwrap();
    let t = Instant::now();
    let r = p.connect().get("/");
    assert_eq!(r.status, 502);
    assert!(
        t.elapsed() >= Duration::from_millis(250),
        "{:?}",
        t.elapsed()
    );
    assert!(t.elapsed() < Duration::from_secs(3));
}

#[test]
fn connect_retry_moves_to_the_release_that_replaced_a_dead_one() {
    let p = Proxy::with(|o| o.connect_retry = Duration::from_millis(5000));
    let dead = SocketAddr::from(([127, 0, 0, 1], free_port()));
    p.handle.set_active("a", dead).unwrap();
    let mut c = p.connect();
    c.send(b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello");
    // The request waits in connect retry, counted against the dead one.
    p.wait_counts("a", (1, 0));
    std::thread::sleep(Duration::from_millis(300));
    let b = Backend::named("b");
    let t = Instant::now();
    p.handle.set_active("b", b.addr).unwrap();
    p.handle.retire("a").unwrap();
    let r = c.response();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "b");
    assert!(
        t.elapsed() < Duration::from_millis(1000),
        "answered {:?} after the switch",
        t.elapsed()
    );
    let req = b.next_request();
    assert_eq!(
        (req.method.as_str(), req.raw_body.as_slice()),
        ("POST", &b"hello"[..])
    );
    // Moved exactly once: the dead release drained, the new one is back to 0.
    p.wait_drained("a");
    p.wait_counts("b", (0, 0));
    assert_eq!(c.get("/next").text(), "b");
}

#[test]
fn stale_pooled_connection_is_retried_for_idempotent_request() {
    let p = Proxy::start();
    // Closes each connection right after its first answer, but without
    // saying so: the pooled connection goes stale.
    let a = Backend::start(Arc::new(|_r, s| {
        respond(s, 200, &[], b"ok");
        After::Close
    }));
    p.handle.set_active("v1", a.addr).unwrap();
    let mut c = p.connect();
    for _ in 0..5 {
        let r = c.get("/");
        assert_eq!(r.status, 200);
    }
    assert!(a.connections.load(Ordering::SeqCst) >= 5);
}

#[test]
fn non_idempotent_request_is_not_replayed() {
    let p = Proxy::start();
    let seen = Arc::new(AtomicUsize::new(0));
    let s2 = seen.clone();
    // Answers GET, swallows POST and closes (the app died on it).
    let a = Backend::start(Arc::new(move |r, s| {
        if r.method == "POST" {
            s2.fetch_add(1, Ordering::SeqCst);
            return After::Close;
        }
        respond(s, 200, &[], b"ok");
        After::KeepAlive
    }));
    p.handle.set_active("v1", a.addr).unwrap();
    let mut c = p.connect();
    assert_eq!(c.get("/").status, 200);
    c.send(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi");
    assert_eq!(c.response().status, 502);
    assert_eq!(seen.load(Ordering::SeqCst), 1);
}

#[test]
fn ipv6_upstream_works() {
    let Ok(l) = TcpListener::bind("[::1]:0") else {
        eprintln!("no IPv6 loopback here; skipping");
        return;
    };
    let a = Backend::on(
        l,
        Arc::new(|r, s| {
            let host = r.header("host").unwrap_or("").to_string();
            respond(s, 200, &[], host.as_bytes());
            After::KeepAlive
        }),
    );
    let p = Proxy::with(|o| o.upstream_host = "::1".into());
    p.handle.set_active_port("v6", a.addr.port()).unwrap();
    let r = p.connect().get("/");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "test"); // Host is passed through as sent
}

#[test]
fn counts_track_in_flight_requests() {
    let p = Proxy::start();
    let (go_tx, go_rx) = crossbeam_channel::unbounded::<()>();
    let a = Backend::start(Arc::new(move |_r, s| {
        let _ = go_rx.recv_timeout(T);
        respond(s, 200, &[], b"slow");
        After::KeepAlive
    }));
    p.handle.set_active("v1", a.addr).unwrap();
    let mut c = p.connect();
    c.send(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n");
    p.wait_counts("v1", (1, 0));
    go_tx.send(()).unwrap();
    assert_eq!(c.response().text(), "slow");
    p.wait_counts("v1", (0, 0));
}

/// Zero failed requests while the active release flips 100 times under
/// concurrent keep-alive and connection-per-request load.
#[test]
fn hundred_flips_under_load_fail_nothing() {
    let p = Proxy::start();
    let backends: Vec<Backend> = (0..4).map(|i| Backend::named(&format!("b{i}"))).collect();
    let addrs: Vec<SocketAddr> = backends.iter().map(|b| b.addr).collect();
    p.handle.set_active("r0", addrs[0]).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for w in 0..4 {
        let (stop, ok, addr) = (stop.clone(), ok.clone(), p.addr);
        workers.push(std::thread::spawn(move || {
            let mut c = Client::connect(addr);
            let mut n = 0u32;
            while !stop.load(Ordering::SeqCst) {
                if w % 2 == 1 {
                    // connection per request
                    let mut c1 = Client::connect(addr);
                    c1.send(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
                    let r = c1.response();
                    assert_eq!(r.status, 200, "{}", r.text());
                } else if n % 3 == 0 {
                    c.send(b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc");
                    let r = c.response();
                    assert_eq!(r.status, 200, "{}", r.text());
                } else {
                    let r = c.get("/");
                    assert_eq!(r.status, 200, "{}", r.text());
                }
                n += 1;
                ok.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    for i in 1..=100usize {
        let prev = format!("r{}", i - 1);
        p.handle.set_active(format!("r{i}"), addrs[i % 4]).unwrap();
        p.handle.retire(prev).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.join().expect("a worker saw a failed request");
    }
    assert!(ok.load(Ordering::SeqCst) > 100);
    // every retired release drained
    let mut drained = 0;
    while let Ok(ev) = p.events.recv_timeout(Duration::from_secs(2)) {
        match ev {
            ProxyEvent::Drained { .. } => drained += 1,
            ProxyEvent::Error { message, .. } => panic!("proxy error: {message}"),
            other => panic!("unexpected proxy event: {other:?}"),
        }
        if drained == 100 {
            break;
        }
    }
    assert_eq!(drained, 100);
}

#[test]
fn bind_error_is_reported_with_os_text() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let opts = rollbridge::proxy::ProxyOptions {
        port,
        ..Default::default()
    };
    let err = rollbridge::proxy::start(opts)
        .err()
        .expect("bind must fail");
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    let _ = std::io::stderr().flush();
}

#[test]
fn error_events_are_rate_limited_with_a_summary() {
    let p = Proxy::start();
    let port = free_port();
    p.handle
        .set_active("v1", SocketAddr::from(([127, 0, 0, 1], port)))
        .unwrap();
    let mut c = p.connect();
    let t = Instant::now();
    for _ in 0..30 {
        assert_eq!(c.get("/").status, 502);
    }
    let within_one_window = t.elapsed() < Duration::from_millis(900);
    // Every failure is either reported or counted in a summary.
    let (mut errors, mut suppressed) = (0u64, 0u64);
    while let Ok(ev) = p.events.recv_timeout(Duration::from_millis(2500)) {
        match ev {
            ProxyEvent::Error { message, .. } if message.contains("not reported") => {
                suppressed += message
                    .split_whitespace()
                    .next()
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap();
            }
            ProxyEvent::Error { .. } => errors += 1,
            other => panic!("unexpected {other:?}"),
        }
        if errors + suppressed == 30 {
            break;
        }
    }
    assert_eq!(errors + suppressed, 30);
    if within_one_window {
        assert_eq!((errors, suppressed), (20, 10));
    }
}
