//! Canary deploys through the real binary and real fixture apps that say
//! which release served: the split of new clients, the sticky cookie for
//! HTTP and WebSocket, promote and abort under load with no failed
//! request, refusals while a canary runs, and the canary in status, events
//! and the state file.

mod deploy_support;
use deploy_support::*;

use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The fixture app on ports `base..base+20` (a range no other test uses).
fn node_web(base: u16) -> String {
    format!(
        r#"[{{"id":"web","policy":"proxied","command":"node {} {{{{port}}}}","port":{},"health":{{"intervalMs":20,"timeoutMs":10000}}}}]"#,
        fixture("app.js"),
        range(base, 20)
    )
}

/// A daemon serving v1, with v2 started as the canary taking `percent` %
/// (app ports from `base`).
fn with_canary(tag: &str, base: u16, percent: u8) -> Option<Deployment> {
    if !have_node() {
        eprintln!("skipped: node is not installed");
        return None;
    }
    let d = Deployment::start(tag, r#""drainTimeoutMs":20000"#, &node_web(base));
    d.deploy_ok("v1");
    let out = deploy_canary(&d, "v2", &percent.to_string());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let answer: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(answer["activeReleaseId"], "v1");
    assert_eq!(answer["canaryReleaseId"], "v2");
    Some(d)
}

fn deploy_canary(d: &Deployment, id: &str, percent: &str) -> std::process::Output {
    let path = d.releases.join(id);
    std::fs::create_dir_all(&path).unwrap();
    d.daemon.cli(&[
        "deploy",
        "--release-path",
        path.to_str().unwrap(),
        "--release-id",
        id,
        "--canary",
        percent,
    ])
}

/// The release named by `release <id> pid <pid>`.
fn served_by(body: &str) -> String {
    body.split(' ').nth(1).unwrap_or_default().to_owned()
}

/// The `Set-Cookie` field values of a response head.
fn set_cookies(head: &str) -> Vec<String> {
    head.lines()
        .filter_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("set-cookie")
                .then(|| value.trim().to_owned())
        })
        .collect()
}

fn assignment(id: &str) -> String {
    format!("rollbridge_release={id}; Path=/; HttpOnly; SameSite=Lax")
}

fn events(d: &Deployment) -> Vec<serde_json::Value> {
    let out = d.daemon.cli(&["events", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    v.as_array()
        .or_else(|| v["events"].as_array())
        .cloned()
        .unwrap_or_default()
}

fn has_event(d: &Deployment, message: &str, release: &str) -> bool {
    events(d)
        .iter()
        .any(|e| e["message"] == message && e["data"]["releaseId"] == release)
}

#[test]
fn new_clients_split_about_the_percent_and_get_the_cookie() {
    let Some(d) = with_canary("canary-split", 25000, 30) else {
        return;
    };
    let status = d.status();
    assert_eq!(status["activeReleaseId"], "v1");
    assert_eq!(status["canary"]["releaseId"], "v2");
    assert_eq!(status["canary"]["percent"], 30);
    assert!(status["canary"]["since"].is_string(), "{status:#}");
    assert_eq!(d.release("v2")["state"], "canary");
    assert_eq!(d.release("v1")["state"], "active");
    let keys = daemon_support::top_level_keys(&serde_json::to_string(&status).unwrap());
    assert_eq!(
        keys[keys.len() - 4..],
        ["maintenance", "paused", "canary", "lastAutoRollback"]
    );
    assert!(has_event(&d, "canary started", "v2"));

    let port = d.proxy_port();
    let n = 400;
    let mut canary = 0;
    for _ in 0..n {
        let (status, head, body) = get_with_cookie(port, None).unwrap();
        assert_eq!(status, 200, "{head}");
        let by = served_by(&body);
        assert!(by == "v1" || by == "v2", "{body}");
        // The cookie names the release that served.
        assert_eq!(set_cookies(&head), [assignment(&by)], "{head}");
        canary += usize::from(by == "v2");
    }
    let share = canary * 100 / n;
    assert!((15..=45).contains(&share), "canary share {share}% for 30%");
}

#[test]
fn cookie_keeps_a_client_on_its_release_for_http_and_websocket() {
    let Some(d) = with_canary("canary-sticky", 25020, 50) else {
        return;
    };
    let port = d.proxy_port();
    for (cookie, release) in [
        ("rollbridge_release=v2", "v2"),
        ("rollbridge_release=v1", "v1"),
        ("sid=abc; rollbridge_release=v2; theme=dark", "v2"),
    ] {
        for _ in 0..20 {
            let (status, head, body) = get_with_cookie(port, Some(cookie)).unwrap();
            assert_eq!(status, 200);
            assert_eq!(served_by(&body), release, "{cookie}");
            assert!(set_cookies(&head).is_empty(), "{head}");
        }
    }

    // WebSocket: the cookie picks the release of the tunnel.
    for release in ["v1", "v2"] {
        for _ in 0..5 {
            let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut req = tungstenite::client::IntoClientRequest::into_client_request(format!(
                "ws://127.0.0.1:{port}/ws"
            ))
            .unwrap();
            req.headers_mut().insert(
                "Cookie",
                format!("rollbridge_release={release}").parse().unwrap(),
            );
            let (mut ws, resp) = tungstenite::client::client(req, stream).unwrap();
            assert_eq!(resp.status(), 101);
            assert!(resp.headers().get("set-cookie").is_none());
            ws.send(tungstenite::Message::text("hi")).unwrap();
            let reply = loop {
                if let tungstenite::Message::Text(t) = ws.read().unwrap() {
                    break t.to_string();
                }
            };
            assert_eq!(reply, format!("{release}:hi"));
            let _ = ws.close(None);
        }
    }
    // A new WebSocket client gets its assignment on the 101.
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (mut ws, resp) =
        tungstenite::client::client(format!("ws://127.0.0.1:{port}/ws"), stream).unwrap();
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    ws.send(tungstenite::Message::text("hi")).unwrap();
    let reply = loop {
        if let tungstenite::Message::Text(t) = ws.read().unwrap() {
            break t.to_string();
        }
    };
    let release = reply.split(':').next().unwrap();
    assert_eq!(cookie, assignment(release));
    let _ = ws.close(None);
}

#[test]
fn cookie_naming_a_gone_release_is_reassigned() {
    let Some(d) = with_canary("canary-gone", 25040, 50) else {
        return;
    };
    let port = d.proxy_port();
    for _ in 0..10 {
        let (_, head, body) = get_with_cookie(port, Some("rollbridge_release=v0")).unwrap();
        assert_eq!(set_cookies(&head), [assignment(&served_by(&body))]);
    }
    let out = d.daemon.cli(&["abort"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // v2 is gone: its clients go back to v1, and with no canary no cookie.
    for _ in 0..10 {
        let (_, head, body) = get_with_cookie(port, Some("rollbridge_release=v2")).unwrap();
        assert_eq!(served_by(&body), "v1");
        assert!(set_cookies(&head).is_empty(), "{head}");
    }
}

#[test]
fn deploy_and_rollback_are_refused_while_a_canary_runs() {
    let Some(d) = with_canary("canary-refuse", 25060, 10) else {
        return;
    };
    let out = d.deploy("v3");
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(
        e.contains("\"v2\"") && e.contains("promote") && e.contains("abort"),
        "{e}"
    );
    let out = d.daemon.cli(&["rollback"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("\"v2\""), "{}", stderr(&out));
    let out = deploy_canary(&d, "v3", "20");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(d.status()["canary"]["releaseId"], "v2");
    assert_eq!(d.release("v3"), serde_json::Value::Null);

    // The percent is checked before anything is sent.
    for bad in ["0", "100", "abc", "12.5"] {
        let out = deploy_canary(&d, "v4", bad);
        assert_eq!(out.status.code(), Some(1), "{bad}");
        assert!(stderr(&out).contains("1 to 99"), "{}", stderr(&out));
    }

    // After abort: no canary, so promote and abort say so.
    let out = d.daemon.cli(&["abort"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let answer: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(answer["abortedReleaseId"], "v2");
    assert_eq!(answer["activeReleaseId"], "v1");
    for cmd in ["promote", "abort"] {
        let out = d.daemon.cli(&[cmd]);
        assert_eq!(out.status.code(), Some(1), "{cmd}");
        assert!(stderr(&out).contains("No canary"), "{}", stderr(&out));
    }
    assert!(has_event(&d, "canary aborted", "v2"));
    d.wait_status("v2 stopped", 20, |s| {
        s["canary"].is_null()
            && s["releases"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["releaseId"] == "v2" && r["state"] == "stopped")
    });
    // A plain deploy works again.
    d.deploy_ok("v3");
}

/// Connection-per-request clients, some keeping the cookie they were
/// given; counts failures and who served.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    errors: Arc<Mutex<Vec<String>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(port: u16, clients: &[Option<&str>]) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let threads = clients
            .iter()
            .map(|c| {
                let (stop, ok, errors) = (stop.clone(), ok.clone(), errors.clone());
                let cookie = c.map(str::to_owned);
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        match get_with_cookie(port, cookie.as_deref()) {
                            Ok((200, _, _)) => {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok((s, _, b)) => errors.lock().unwrap().push(format!("{s}: {b}")),
                            Err(e) => errors.lock().unwrap().push(e.to_string()),
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            ok,
            errors,
            threads,
        }
    }

    /// Stops the clients; panics on any failed request.
    fn finish(self) {
        std::thread::sleep(Duration::from_millis(200));
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        let ok = self.ok.load(Ordering::Relaxed);
        let errors = self.errors.lock().unwrap();
        eprintln!("requests ok: {ok}, failed: {}", errors.len());
        assert!(errors.is_empty(), "failed requests: {errors:?}");
        assert!(ok > 50, "too little load to mean anything: {ok}");
    }
}

const MIXED: [Option<&str>; 4] = [
    None,
    None,
    Some("rollbridge_release=v1"),
    Some("rollbridge_release=v2"),
];

#[test]
fn promote_under_load_fails_no_request() {
    let Some(d) = with_canary("canary-promote", 25080, 50) else {
        return;
    };
    let port = d.proxy_port();
    let load = Load::start(port, &MIXED);
    std::thread::sleep(Duration::from_millis(300));
    let out = d.daemon.cli(&["promote"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let answer: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(answer["activeReleaseId"], "v2");
    assert_eq!(answer["previousReleaseId"], "v1");
    std::thread::sleep(Duration::from_millis(300));
    load.finish();

    let status = d.status();
    assert_eq!(status["activeReleaseId"], "v2");
    assert!(status["canary"].is_null(), "{status:#}");
    assert!(has_event(&d, "canary promoted", "v2"));
    d.wait_status("v1 stopped", 20, |s| {
        s["releases"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["releaseId"] == "v1" && r["state"] == "stopped")
    });
    // Everyone is on v2 now, old v1 cookies included, and no cookie is set.
    for cookie in [None, Some("rollbridge_release=v1")] {
        let (_, head, body) = get_with_cookie(port, cookie).unwrap();
        assert_eq!(served_by(&body), "v2");
        assert!(set_cookies(&head).is_empty(), "{head}");
    }
    // A plain deploy works again.
    d.deploy_ok("v3");
}

#[test]
fn abort_under_load_fails_no_request() {
    let Some(d) = with_canary("canary-abort", 25100, 50) else {
        return;
    };
    let port = d.proxy_port();
    let load = Load::start(port, &MIXED);
    std::thread::sleep(Duration::from_millis(300));
    let out = d.daemon.cli(&["abort"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    std::thread::sleep(Duration::from_millis(300));
    load.finish();
    let status = d.status();
    assert_eq!(status["activeReleaseId"], "v1");
    assert!(status["canary"].is_null());
    d.wait_status("v2 stopped", 20, |s| {
        s["releases"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["releaseId"] == "v2" && r["state"] == "stopped")
    });
    let (_, _, body) = get_with_cookie(port, Some("rollbridge_release=v2")).unwrap();
    assert_eq!(served_by(&body), "v1");
}

#[test]
fn canary_is_recorded_in_the_state_file() {
    if !have_node() {
        eprintln!("skipped: node is not installed");
        return;
    }
    let dir = temp_dir("canary-state");
    let config = dir.join("rollbridge.json");
    let state = dir.join("state.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"application":"canary-state","control":{{"path":"{}"}},"statePath":"{}","proxy":{{"port":0}},"processes":{}}}"#,
            dir.join("c.sock").display(),
            state.display(),
            node_web(25120)
        ),
    )
    .unwrap();
    let releases = dir.join("releases");
    let d = Deployment {
        daemon: TestDaemon::start_with(dir, config, &[]),
        releases,
    };
    d.deploy_ok("v1");
    let out = deploy_canary(&d, "v2", "25");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // The deploy answers once its state write is on disk.
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(saved["canary"]["releaseId"], "v2");
    assert_eq!(saved["canary"]["percent"], 25);
    let v2 = saved["releases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["releaseId"] == "v2")
        .cloned()
        .unwrap();
    assert_eq!(v2["state"], "canary");
}

#[test]
fn companions_of_the_canary_run_and_singletons_swap_on_promote() {
    if !have_node() {
        eprintln!("skipped: node is not installed");
        return;
    }
    let rec = fixture("recorder.sh");
    let log = temp_dir("canary-singleton-log").join("records.log");
    let web = node_web(25140);
    let procs = format!(
        r#"[{},{{"id":"side","policy":"companion","command":"{rec} {log} side-{{{{releaseId}}}}"}},{{"id":"cron","policy":"singleton","command":"{rec} {log} cron-{{{{releaseId}}}}"}}]"#,
        &web[1..web.len() - 1],
        log = log.display()
    );
    let d = Deployment::start("canary-singleton", "", &procs);
    d.deploy_ok("v1");
    let out = deploy_canary(&d, "v2", "50");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let singleton = |s: &serde_json::Value| {
        s["singletons"][0]["process"]["command"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let s = d.status();
    assert!(singleton(&s).ends_with("cron-v1"), "{s:#}");
    assert_eq!(process(&d.release("v2"), "side")["state"], "running");

    let out = d.daemon.cli(&["promote"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(singleton(&d.status()).ends_with("cron-v2"));
    // From the processes' own records (a start is written just after spawn).
    let cron = || -> Vec<String> {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .map(|l| l.split(' ').take(2).collect::<Vec<_>>().join(" "))
            .filter(|l| l.contains("cron"))
            .collect()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while cron().len() < 3 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(cron(), ["start cron-v1", "stop cron-v1", "start cron-v2"]);
}
