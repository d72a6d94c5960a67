//! Traffic control through the real binary: maintenance answers every new
//! request itself (HTTP and WebSocket, HTML or text, Retry-After) and
//! survives a restart with statePath; pause holds requests and resume
//! forwards them in order, with timeouts, a cap, and deploys in between.

mod deploy_support;
use deploy_support::*;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The fixture app on a free port, logging every request to `requests`.
fn node_web(requests: &Path) -> String {
    format!(
        r#"[{{"id":"web","policy":"proxied","command":"node {} {{{{port}}}}","port":{{"from":0,"to":0}},"env":{{"REQUESTS_FILE":"{}"}},"health":{{"intervalMs":20,"timeoutMs":10000}}}}]"#,
        fixture("app.js"),
        requests.display()
    )
}

/// Starts a deployment of the fixture app, logging its requests in the
/// daemon's directory; `None` (test skipped) without node.
fn deployment(tag: &str, proxy_extra: &str) -> Option<(Deployment, PathBuf)> {
    if !have_node() {
        eprintln!("node not installed: skipped");
        return None;
    }
    let d = Deployment::start(tag, proxy_extra, &node_web(Path::new("/dev/null")));
    let requests = d.dir().join("requests.log");
    // The daemon reloads its config before each deploy.
    d.rewrite(tag, proxy_extra, &node_web(&requests));
    Some((d, requests))
}

/// Requests the app saw, as "<release> <method> <path>".
fn seen(requests: &Path) -> Vec<String> {
    std::fs::read_to_string(requests)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Sends `head` on a fresh connection and reads the whole answer.
fn exchange(port: u16, head: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

fn get_with(port: u16, path: &str, extra: &str) -> String {
    exchange(
        port,
        &format!("GET {path} HTTP/1.1\r\nHost: test\r\n{extra}Connection: close\r\n\r\n"),
    )
}

const WS_UPGRADE: &str = "GET /ws HTTP/1.1\r\nHost: test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

fn status_line(answer: &str) -> &str {
    answer.lines().next().unwrap_or("")
}

#[track_caller]
fn cli_ok(d: &Deployment, args: &[&str]) -> serde_json::Value {
    let out = d.daemon.cli(args);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

fn held(s: &serde_json::Value) -> u64 {
    s["paused"]["held"].as_u64().unwrap_or(0)
}

/// A GET on its own thread (it will be held): its full answer.
fn spawn_get(port: u16, path: &str) -> std::thread::JoinHandle<String> {
    let path = path.to_owned();
    std::thread::spawn(move || get_with(port, &path, ""))
}

#[test]
fn maintenance_blocks_http_and_websocket_without_reaching_the_app() {
    let Some((d, requests)) = deployment("tc-maint", "") else {
        return;
    };
    d.deploy_ok("v1");
    let port = d.proxy_port();
    assert!(status_line(&get_with(port, "/before", "")).contains(" 200 "));
    assert_eq!(seen(&requests), ["v1 GET /before"]);

    let on = cli_ok(
        &d,
        &[
            "maintenance",
            "on",
            "--message",
            "Back at <noon>",
            "--retry-after",
            "120",
        ],
    );
    assert_eq!(on["status"], "success");
    assert_eq!(on["maintenance"]["message"], "Back at <noon>");

    let html = get_with(port, "/page", "Accept: text/html,*/*;q=0.8\r\n");
    assert_eq!(status_line(&html), "HTTP/1.1 503 Service Unavailable");
    assert!(html.contains("Retry-After: 120\r\n"), "{html}");
    assert!(html.contains("Cache-Control: no-store\r\n"), "{html}");
    assert!(
        html.contains("Content-Type: text/html; charset=utf-8\r\n"),
        "{html}"
    );
    assert!(html.contains("Back at &lt;noon&gt;"), "{html}");

    let text = get_with(port, "/api", "Accept: application/json\r\n");
    assert_eq!(status_line(&text), "HTTP/1.1 503 Service Unavailable");
    assert!(
        text.contains("Content-Type: text/plain; charset=utf-8\r\n"),
        "{text}"
    );
    assert!(text.ends_with("\r\n\r\nBack at <noon>\n"), "{text}");

    let ws = exchange(port, WS_UPGRADE);
    assert_eq!(status_line(&ws), "HTTP/1.1 503 Service Unavailable", "{ws}");
    assert!(ws.contains("Retry-After: 120\r\n"), "{ws}");

    let s = d.status();
    assert_eq!(s["maintenance"]["message"], "Back at <noon>");
    assert_eq!(s["maintenance"]["retryAfter"], 120);
    assert!(s["maintenance"]["since"].is_string());
    let keys = daemon_support::top_level_keys(&serde_json::to_string(&s).unwrap());
    assert_eq!(
        keys[keys.len() - 4..],
        ["maintenance", "paused", "canary", "lastAutoRollback"]
    );
    assert_eq!(
        seen(&requests),
        ["v1 GET /before"],
        "nothing reached the app"
    );

    let off = cli_ok(&d, &["maintenance", "off"]);
    assert_eq!(off["maintenance"], serde_json::Value::Null);
    assert!(status_line(&get_with(port, "/after", "")).contains(" 200 "));
    assert_eq!(seen(&requests), ["v1 GET /before", "v1 GET /after"]);
    assert_eq!(d.status()["maintenance"], serde_json::Value::Null);
    let events = stdout(&d.daemon.cli(&["events", "--json"]));
    assert!(events.contains("maintenance on") && events.contains("maintenance off"));
}

#[test]
fn maintenance_without_a_message_uses_the_default_page() {
    let dir = temp_dir("tc-default");
    let config = daemon_support::write_config(&dir, "tc-default", "", 0);
    let d = TestDaemon::start_with(dir, config, &[]);
    let out = d.cli(&["maintenance", "on"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let status: serde_json::Value = serde_json::from_str(&stdout(&d.cli(&["status"]))).unwrap();
    assert!(status["maintenance"].get("retryAfter").is_none());
    let port = status["proxy"]["port"].as_u64().unwrap() as u16;
    let text = get_with(port, "/", "");
    assert!(
        text.ends_with("\r\n\r\nService temporarily unavailable for maintenance\n"),
        "{text}"
    );
    assert!(!text.contains("Retry-After"));
    let bad = d.cli(&["maintenance", "maybe"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("on or off"));
}

#[test]
fn maintenance_survives_a_daemon_restart_with_state_path() {
    // Config and state outlive the first daemon (its directory goes with it).
    let shared = temp_dir("tc-persist");
    let config = shared.join("rollbridge.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"application":"tc-persist","control":{{"path":"{}"}},"statePath":"{}","proxy":{{"port":0}},"processes":[{{"id":"web","command":"sleep 1000","policy":"proxied","port":{{"from":0,"to":0}}}}]}}"#,
            shared.join("c.sock").display(),
            shared.join("state.json").display()
        ),
    )
    .unwrap();
    let mut d = TestDaemon::start_with(temp_dir("tc-persist-a"), config.clone(), &[]);
    let out = d.cli(&[
        "maintenance",
        "on",
        "--message",
        "upgrading",
        "--retry-after",
        "30",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(d.cli(&["shutdown"]).status.code(), Some(0));
    assert_eq!(d.wait_exit(Duration::from_secs(20)), Some(0));
    drop(d);

    let d = TestDaemon::start_with(temp_dir("tc-persist-b"), config, &[]);
    let status: serde_json::Value = serde_json::from_str(&stdout(&d.cli(&["status"]))).unwrap();
    assert_eq!(status["maintenance"]["message"], "upgrading");
    assert_eq!(status["maintenance"]["retryAfter"], 30);
    let port = status["proxy"]["port"].as_u64().unwrap() as u16;
    let text = get_with(port, "/", "");
    assert_eq!(status_line(&text), "HTTP/1.1 503 Service Unavailable");
    assert!(text.ends_with("\r\n\r\nupgrading\n"), "{text}");
    assert!(text.contains("Retry-After: 30\r\n"));
    drop(d);
    let _ = std::fs::remove_dir_all(&shared);
}

#[test]
fn pause_holds_and_resume_forwards_in_arrival_order() {
    let Some((d, requests)) = deployment("tc-pause", "") else {
        return;
    };
    d.deploy_ok("v1");
    let port = d.proxy_port();
    let paused = cli_ok(&d, &["pause"]);
    assert_eq!(paused["paused"]["timeoutMs"], 30000);
    let mut clients = Vec::new();
    for (i, path) in ["/one", "/two", "/three"].into_iter().enumerate() {
        clients.push(spawn_get(port, path));
        d.wait_status("request held", 10, |s| held(s) == i as u64 + 1);
    }
    assert!(seen(&requests).is_empty(), "held requests reached the app");
    let resumed = cli_ok(&d, &["resume"]);
    assert_eq!(resumed["resumed"], 3);
    for c in clients {
        let answer = c.join().unwrap();
        assert!(status_line(&answer).contains(" 200 "), "{answer}");
    }
    assert_eq!(
        seen(&requests),
        ["v1 GET /one", "v1 GET /two", "v1 GET /three"]
    );
    assert_eq!(d.status()["paused"], serde_json::Value::Null);
    let events = stdout(&d.daemon.cli(&["events", "--json"]));
    assert!(events.contains("\"paused\"") && events.contains("\"resumed\""));
}

#[test]
fn held_request_times_out_with_503() {
    let Some((d, requests)) = deployment("tc-timeout", "") else {
        return;
    };
    d.deploy_ok("v1");
    let port = d.proxy_port();
    cli_ok(&d, &["pause", "--timeout-ms", "300"]);
    let started = Instant::now();
    let answer = get_with(port, "/late", "");
    assert_eq!(
        status_line(&answer),
        "HTTP/1.1 503 Service Unavailable",
        "{answer}"
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(started.elapsed() < Duration::from_secs(5));
    cli_ok(&d, &["resume"]);
    assert!(
        seen(&requests).is_empty(),
        "a timed-out request reached the app"
    );
}

#[test]
fn requests_beyond_max_held_requests_get_503_at_once() {
    let Some((d, requests)) = deployment("tc-cap", r#""maxHeldRequests":1"#) else {
        return;
    };
    d.deploy_ok("v1");
    let port = d.proxy_port();
    cli_ok(&d, &["pause"]);
    let first = spawn_get(port, "/first");
    d.wait_status("request held", 10, |s| held(s) == 1);
    let started = Instant::now();
    let over = get_with(port, "/second", "");
    assert_eq!(
        status_line(&over),
        "HTTP/1.1 503 Service Unavailable",
        "{over}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    cli_ok(&d, &["resume"]);
    assert!(status_line(&first.join().unwrap()).contains(" 200 "));
    assert_eq!(seen(&requests), ["v1 GET /first"]);
}

#[test]
fn deploy_while_paused_sends_nothing_to_the_old_release() {
    let Some((d, requests)) = deployment("tc-deploy", "") else {
        return;
    };
    d.deploy_ok("v1");
    let port = d.proxy_port();
    assert!(status_line(&get_with(port, "/warm", "")).contains(" 200 "));
    cli_ok(&d, &["pause"]);
    let before = seen(&requests).len();
    let held_req = spawn_get(port, "/held");
    d.wait_status("request held", 10, |s| held(s) == 1);
    let out = d.deploy_ok("v2");
    assert_eq!(out["activeReleaseId"], "v2");
    cli_ok(&d, &["resume"]);
    let answer = held_req.join().unwrap();
    assert!(
        answer.ends_with(&format!("release v2 pid {}", pid_in(&answer))),
        "{answer}"
    );
    assert!(status_line(&get_with(port, "/after", "")).contains(" 200 "));
    let after_pause = seen(&requests)[before..].to_vec();
    assert_eq!(after_pause, ["v2 GET /held", "v2 GET /after"]);
}

/// The pid the fixture app names in its body.
fn pid_in(answer: &str) -> String {
    answer.rsplit(' ').next().unwrap_or("").to_owned()
}

#[test]
fn held_request_keeps_its_body_for_the_app() {
    let Some((d, requests)) = deployment("tc-body", "") else {
        return;
    };
    d.deploy_ok("v1");
    let port = d.proxy_port();
    cli_ok(&d, &["pause"]);
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let (sent_tx, sent_rx) = std::sync::mpsc::channel::<()>();
    let client = std::thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(b"POST /form HTTP/1.1\r\nHost: test\r\nContent-Length: 10\r\nConnection: close\r\n\r\nhello")
            .unwrap();
        // The rest of the body arrives while the request is held.
        go_rx.recv().unwrap();
        s.write_all(b"world").unwrap();
        sent_tx.send(()).unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    });
    d.wait_status("request held", 10, |s| held(s) == 1);
    go_tx.send(()).unwrap();
    sent_rx.recv().unwrap();
    cli_ok(&d, &["resume"]);
    let answer = client.join().unwrap();
    assert!(status_line(&answer).contains(" 200 "), "{answer}");
    assert_eq!(seen(&requests), ["v1 POST /form"]);
}
