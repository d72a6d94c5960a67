//! The headline guarantee: no failed request across back-to-back deploys
//! under concurrent keep-alive and connection-per-request load, and an open
//! WebSocket on an old release kept until it closes or the drain deadline.

mod deploy_support;
use deploy_support::*;

use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn node_web(range: &str) -> String {
    format!(
        r#"[{{"id":"web","policy":"proxied","command":"node {} {{{{port}}}}","port":{range},"health":{{"intervalMs":20,"timeoutMs":10000}}}}]"#,
        fixture("app.js")
    )
}

struct Load {
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    errors: Arc<std::sync::Mutex<Vec<String>>>,
}

fn spawn_load(
    port: u16,
    keep_alive: bool,
    stop: Arc<AtomicBool>,
    load: &Load,
) -> std::thread::JoinHandle<()> {
    let (ok, failed, errors) = (load.ok.clone(), load.failed.clone(), load.errors.clone());
    std::thread::spawn(move || {
        let fail = |e: String| {
            failed.fetch_add(1, Ordering::Relaxed);
            errors.lock().unwrap().push(e);
        };
        let mut conn: Option<TcpStream> = None;
        let mut buf = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            if !keep_alive {
                match get(port, "/") {
                    Ok((200, _)) => ok.fetch_add(1, Ordering::Relaxed),
                    Ok((s, b)) => {
                        fail(format!("status {s}: {b}"));
                        continue;
                    }
                    Err(e) => {
                        fail(format!("conn-per-request: {e}"));
                        continue;
                    }
                };
                continue;
            }
            if conn.is_none() {
                let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                conn = Some(s);
                buf.clear();
            }
            let s = conn.as_mut().unwrap();
            let result = s
                .write_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
                .and_then(|_| read_response(s, &mut buf).map(|(status, _)| status));
            match result {
                Ok(200) => {
                    ok.fetch_add(1, Ordering::Relaxed);
                }
                Ok(status) => fail(format!("keep-alive status {status}")),
                Err(e) => {
                    fail(format!("keep-alive: {e}"));
                    conn = None;
                }
            }
        }
    })
}

#[test]
fn twenty_back_to_back_deploys_under_load_fail_no_request() {
    if !have_node() {
        eprintln!("skipped: node is not installed");
        return;
    }
    let d = Deployment::start(
        "zero",
        r#""drainTimeoutMs":30000"#,
        &node_web(&range(22100, 60)),
    );
    d.deploy_ok("v1");
    let port = d.proxy_port();
    let mut ws = open_ws(port);
    assert_eq!(ws_echo(&mut ws, "hello"), "v1:hello");

    let load = Load {
        ok: Arc::new(AtomicU64::new(0)),
        failed: Arc::new(AtomicU64::new(0)),
        errors: Arc::new(std::sync::Mutex::new(Vec::new())),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = [true, true, false, false]
        .into_iter()
        .map(|ka| spawn_load(port, ka, stop.clone(), &load))
        .collect();
    for i in 2..=21 {
        d.deploy_ok(&format!("v{i}"));
    }
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let (ok, failed) = (
        load.ok.load(Ordering::Relaxed),
        load.failed.load(Ordering::Relaxed),
    );
    eprintln!("requests ok: {ok}, failed: {failed}");
    assert_eq!(
        failed,
        0,
        "failed requests: {:?}",
        load.errors.lock().unwrap()
    );
    assert!(ok > 100, "too little load to mean anything: {ok}");

    // The WebSocket still talks to v1, which keeps draining for it.
    assert_eq!(ws_echo(&mut ws, "still there"), "v1:still there");
    let v1 = d.release("v1");
    assert_eq!(v1["state"], "draining");
    assert_eq!(v1["connections"]["websocket"], 1);
    let (_, body) = get(port, "/").unwrap();
    assert!(body.starts_with("release v21"), "{body}");
    // Closing it lets v1 finish its drain at once.
    ws.close(None).unwrap();
    let _ = ws.read();
    d.wait_status("v1 drained", 10, |s| {
        s["releases"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["releaseId"] == "v1" && r["state"] == "stopped")
    });
}

#[test]
fn websocket_is_closed_at_the_drain_deadline() {
    if !have_node() {
        return;
    }
    let d = Deployment::start(
        "deadline",
        r#""drainTimeoutMs":800"#,
        &node_web(&range(22200, 20)),
    );
    d.deploy_ok("v1");
    let port = d.proxy_port();
    let mut ws = open_ws(port);
    assert_eq!(ws_echo(&mut ws, "a"), "v1:a");
    let switched = Instant::now();
    d.deploy_ok("v2");
    assert_eq!(
        ws_echo(&mut ws, "b"),
        "v1:b",
        "the tunnel survives the switch"
    );
    // At the deadline the proxy says "going away" (1001), then tears the
    // tunnel down and v1 stops.
    let mut going_away = None;
    let closed = loop {
        match ws.read() {
            Ok(tungstenite::Message::Close(f)) => {
                going_away = Some((f.map(|f| u16::from(f.code)), switched.elapsed()));
            }
            Ok(_) => continue,
            Err(_) => break switched.elapsed(),
        }
    };
    let (code, at) = going_away.expect("a close frame before the end");
    assert_eq!(code, Some(1001));
    assert!(at >= Duration::from_millis(700), "told too early: {at:?}");
    assert!(
        closed >= Duration::from_millis(700),
        "closed too early: {closed:?}"
    );
    assert!(
        closed < Duration::from_secs(8),
        "closed too late: {closed:?}"
    );
    d.wait_status("v1 stopped", 10, |s| s["releases"][0]["state"] == "stopped");
    let mut fresh = open_ws(port);
    assert_eq!(ws_echo(&mut fresh, "c"), "v2:c");
}

#[test]
fn rollback_to_a_draining_release_keeps_it_active() {
    if !have_node() {
        return;
    }
    let d = Deployment::start(
        "rbdrain",
        r#""drainTimeoutMs":30000"#,
        &node_web(&range(22400, 20)),
    );
    d.deploy_ok("v1");
    let port = d.proxy_port();
    let mut ws = open_ws(port);
    assert_eq!(ws_echo(&mut ws, "x"), "v1:x");
    d.deploy_ok("v2");
    assert_eq!(d.release("v1")["state"], "draining");
    // v1 is still draining (the tunnel holds it): rollback stops it first,
    // cutting the tunnel, then starts it afresh.
    let out = d.daemon.cli(&["rollback"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        ws.read().is_err() || ws.read().is_err(),
        "old tunnel was cut"
    );
    // The stale retirement of the old v1 must not touch the new one.
    std::thread::sleep(Duration::from_millis(500));
    let v1 = d.release("v1");
    assert_eq!(v1["state"], "active", "{v1:#}");
    assert_eq!(d.status()["activeReleaseId"], "v1");
    let (_, body) = get(port, "/").unwrap();
    assert!(body.starts_with("release v1"), "{body}");
    let mut fresh = open_ws(port);
    assert_eq!(ws_echo(&mut fresh, "y"), "v1:y");
    d.wait_status("v2 drained", 10, |s| {
        s["releases"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["releaseId"] == "v2" && r["state"] == "stopped")
    });
}
