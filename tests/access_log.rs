//! The access log and request ids through the real binary: one JSON line
//! per finished request (an app 200 and 404, the proxy's own 503 in
//! maintenance, a WebSocket logged at its close with the bytes it sent),
//! the file followed across a logrotate-style rename with and without
//! SIGHUP (which never stops the daemon), and X-Request-ID kept from a
//! trusted peer, generated for an untrusted one.

mod deploy_support;
use deploy_support::*;

use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const KEYS: [&str; 10] = [
    "time",
    "remote",
    "method",
    "path",
    "status",
    "bytes",
    "durationMs",
    "releaseId",
    "requestId",
    "upgrade",
];

fn node_web() -> String {
    format!(
        r#"[{{"id":"web","policy":"proxied","command":"node {} {{{{port}}}}","port":{{"from":0,"to":0}},"health":{{"intervalMs":20,"timeoutMs":10000}}}}]"#,
        fixture("app.js"),
    )
}

/// The directory of a test's access log, removed at the end.
struct LogDir(PathBuf);

impl Drop for LogDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A deployment of release v1 with an access log (`proxy_extra` merged
/// into the proxy object): the daemon, the log's directory and file, the
/// proxy port; `None` (skipped) without node.
fn deployment(tag: &str, proxy_extra: &str) -> Option<(Deployment, LogDir, PathBuf, u16)> {
    if !have_node() {
        eprintln!("node not installed: skipped");
        return None;
    }
    let dir = LogDir(temp_dir(&format!("{tag}-log")));
    let log = dir.0.join("access.log");
    let extra = format!(r#""accessLog":"{}"{proxy_extra}"#, log.display());
    let d = Deployment::start(tag, &extra, &node_web());
    d.deploy_ok("v1");
    let port = d.proxy_port();
    Some((d, dir, log, port))
}

/// One request on a fresh connection with extra head lines: (status, body).
fn send(port: u16, path: &str, extra: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n{extra}\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    parse(&buf).unwrap()
}

/// Parsed lines of the log file (none if it does not exist).
fn lines(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
        .collect()
}

/// Waits until a line whose `path` is `path` is in `log`; returns it.
#[track_caller]
fn wait_line(log: &Path, path: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(l) = lines(log).into_iter().find(|l| l["path"] == path) {
            return l;
        }
        assert!(
            Instant::now() < deadline,
            "no line for {path} in {}: {:?}",
            log.display(),
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[track_caller]
fn assert_keys_in_order(line: &Value) {
    let keys: Vec<&str> = line
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, KEYS, "{line}");
    let time = line["time"].as_str().unwrap();
    assert!(
        time.len() == 24 && time.ends_with('Z') && time.as_bytes()[19] == b'.',
        "{time}"
    );
}

#[test]
fn requests_answers_and_websockets_are_logged_one_line_each() {
    let Some((d, _dir, log, port)) = deployment("alog-lines", "") else {
        return;
    };

    assert_eq!(send(port, "/hello?x=1", "").0, 200);
    let ok = wait_line(&log, "/hello?x=1");
    assert_keys_in_order(&ok);
    assert_eq!(ok["method"], "GET");
    assert_eq!(ok["status"], 200);
    assert_eq!(ok["remote"], "127.0.0.1");
    assert_eq!(ok["releaseId"], "v1");
    assert_eq!(ok["upgrade"], false);
    assert!(
        ok["bytes"].as_u64().unwrap() > "release v1 pid ".len() as u64,
        "{ok}"
    );
    assert!(ok["durationMs"].as_f64().unwrap() >= 0.0);
    assert_eq!(ok["requestId"].as_str().unwrap().len(), 16, "{ok}");

    let (code, body) = send(port, "/code?n=404", "");
    assert_eq!(code, 404);
    let missing = wait_line(&log, "/code?n=404");
    assert_eq!(missing["status"], 404);
    assert_eq!(missing["releaseId"], "v1");
    assert_eq!(missing["bytes"].as_u64().unwrap(), body.len() as u64);

    // A WebSocket: one line, at its close, with the bytes the client got
    // after the 101 (the echo frame "v1:hi" and the app's Close).
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (mut ws, _) =
        tungstenite::client::client(format!("ws://127.0.0.1:{port}/ws"), stream).unwrap();
    ws.send(tungstenite::Message::text("hi")).unwrap();
    let echo = ws.read().unwrap();
    assert_eq!(echo.to_text().unwrap(), "v1:hi");
    assert!(
        lines(&log).iter().all(|l| l["path"] != "/ws"),
        "logged before its close"
    );
    ws.close(None).unwrap();
    while ws.read().is_ok() {}
    drop(ws);
    let tunnel = wait_line(&log, "/ws");
    assert_keys_in_order(&tunnel);
    assert_eq!(tunnel["status"], 101);
    assert_eq!(tunnel["upgrade"], true);
    assert_eq!(tunnel["releaseId"], "v1");
    assert_eq!(tunnel["bytes"], 2 + 5 + 2, "{tunnel}");

    // The proxy's own answer: maintenance 503, no release.
    let out = d.daemon.cli(&["maintenance", "on"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(send(port, "/during-maintenance", "").0, 503);
    let own = wait_line(&log, "/during-maintenance");
    assert_keys_in_order(&own);
    assert_eq!(own["status"], 503);
    assert!(own["releaseId"].is_null(), "{own}");
    assert!(own["bytes"].as_u64().unwrap() > 0);

    // Exactly one line per request.
    let all = lines(&log);
    for path in ["/hello?x=1", "/code?n=404", "/ws", "/during-maintenance"] {
        assert_eq!(
            all.iter().filter(|l| l["path"] == path).count(),
            1,
            "{path}"
        );
    }
}

#[test]
fn log_follows_a_rename_with_and_without_sighup() {
    let Some((d, _dir, log, port)) = deployment("alog-rotate", "") else {
        return;
    };
    send(port, "/before", "");
    wait_line(&log, "/before");

    // logrotate's `create` mode: rename, then a new empty file; no signal.
    let rotated = log.with_extension("log.1");
    std::fs::rename(&log, &rotated).unwrap();
    std::fs::File::create(&log).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut n = 0;
    loop {
        n += 1;
        let path = format!("/after-create-{n}");
        send(port, &path, "");
        std::thread::sleep(Duration::from_millis(50));
        if lines(&log).iter().any(|l| l["path"] == path) {
            break;
        }
        assert!(Instant::now() < deadline, "never switched to the new file");
    }
    assert!(lines(&log).iter().all(|l| l["path"] != "/before"));
    assert!(lines(&rotated).iter().any(|l| l["path"] == "/before"));

    // Renamed with nothing created, then SIGHUP: the file is made again
    // at once, and the daemon keeps running.
    std::fs::rename(&log, log.with_extension("log.2")).unwrap();
    d.daemon.signal(libc::SIGHUP);
    d.daemon
        .stdout
        .wait_for("access log reopen requested", Duration::from_secs(10))
        .expect("reopen event");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !log.exists() {
        assert!(Instant::now() < deadline, "SIGHUP did not recreate the log");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(send(port, "/after-hup", "").0, 200);
    wait_line(&log, "/after-hup");
    assert_eq!(d.status()["releases"][0]["releaseId"], "v1");
}

#[test]
fn request_id_from_a_trusted_peer_is_kept_and_logged() {
    // Loopback is trusted by default.
    let Some((_d, _dir, log, port)) = deployment("alog-rid-kept", "") else {
        return;
    };
    let (_, seen) = send(port, "/request-id", "X-Request-ID: front-7f3a\r\n");
    assert_eq!(seen, "front-7f3a");
    assert_eq!(wait_line(&log, "/request-id")["requestId"], "front-7f3a");
    // Not printable ASCII: replaced by a generated one.
    let (_, seen) = send(port, "/request-id?bad", "X-Request-ID: two words\r\n");
    assert_eq!(seen.len(), 16, "{seen}");
    assert_eq!(wait_line(&log, "/request-id?bad")["requestId"], seen);
}

#[test]
fn request_id_from_an_untrusted_peer_is_replaced_by_a_generated_one() {
    let Some((_d, _dir, log, port)) =
        deployment("alog-rid-gen", r#","trustedProxies":["10.0.0.0/8"]"#)
    else {
        return;
    };
    let (_, first) = send(port, "/request-id", "X-Request-ID: spoofed\r\n");
    let (_, second) = send(port, "/request-id?2", "");
    for id in [&first, &second] {
        assert_eq!(id.len(), 16, "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    }
    assert_ne!(first, second);
    assert_eq!(wait_line(&log, "/request-id")["requestId"], first);
    assert_eq!(wait_line(&log, "/request-id?2")["requestId"], second);
}

#[test]
fn a_request_the_client_abandons_is_logged_as_499_and_a_cut_response_with_its_status() {
    let Some((_d, _dir, log, port)) = deployment("alog-cut", r#","upstreamReadTimeoutMs":400"#)
    else {
        return;
    };
    // The client hangs up halfway through its request body: nothing was
    // answered, so the line says 499 (the client closed the request).
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n\r\n0123456789")
        .unwrap();
    s.shutdown(std::net::Shutdown::Both).unwrap();
    drop(s);
    let gone = wait_line(&log, "/upload");
    assert_keys_in_order(&gone);
    assert_eq!(gone["status"], 499, "{gone}");
    assert_eq!(gone["method"], "POST", "{gone}");
    assert_eq!(gone["bytes"], 0, "{gone}");
    assert_eq!(gone["releaseId"], "v1", "{gone}");

    // A stream the app stops feeding: cut by the read timeout after its
    // first event, logged with the status the client got and the bytes it
    // got.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /sse?n=3&ms=1500 HTTP/1.1\r\nHost: test\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(!text.contains("event 2"), "not cut: {text}");
    let cut = wait_line(&log, "/sse?n=3&ms=1500");
    assert_keys_in_order(&cut);
    assert_eq!(cut["status"], 200, "{cut}");
    assert!(cut["bytes"].as_u64().unwrap() > 0, "{cut}");

    // Exactly one line each.
    let all = lines(&log);
    for path in ["/upload", "/sse?n=3&ms=1500"] {
        assert_eq!(
            all.iter().filter(|l| l["path"] == path).count(),
            1,
            "{path}"
        );
    }
}
