//! Zero-downtime replacement of the proxied process through the real
//! binary: on a memory breach, on `restart --process web` / `--policy
//! proxied`, and after failing live health checks (a SIGSTOPped process);
//! a replacement that fails its health check leaves the old instance
//! serving; a crash-looping release is rolled back by itself within the
//! `autoRollback` window.

mod deploy_support;
use deploy_support::load::Load;
use deploy_support::*;

use std::time::{Duration, Instant};

/// The node fixture app as `web`; `health` and `extra` are JSON members
/// added to its health object and to the process.
fn web(base: u16, health: &str, extra: &str) -> String {
    let sep = |s: &str| {
        if s.is_empty() {
            String::new()
        } else {
            format!(",{s}")
        }
    };
    format!(
        r#"[{{"id":"web","policy":"proxied","command":"node {} {{{{port}}}}","port":{},"health":{{"intervalMs":20,"timeoutMs":10000,"watchIntervalMs":0{}}}{}}}]"#,
        fixture("app.js"),
        range(base, 10),
        sep(health),
        sep(extra)
    )
}

/// Data of every event `message` printed so far.
fn events(d: &Deployment, message: &str) -> Vec<serde_json::Value> {
    d.daemon
        .stdout
        .all()
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["message"] == message)
        .map(|e| e["data"].clone())
        .collect()
}

/// Index of the first event `message` in the daemon's output.
fn position(d: &Deployment, message: &str) -> Option<usize> {
    d.daemon
        .stdout
        .all()
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .position(|e| e["message"] == message)
}

fn web_status(d: &Deployment) -> serde_json::Value {
    let active = d.status()["activeReleaseId"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    process(&d.release(&active), "web").clone()
}

fn web_pid(d: &Deployment) -> u64 {
    web_status(d)["pid"].as_u64().unwrap_or(0)
}

/// Who answers through the proxy: `release <id> pid <node pid>`.
fn answer(d: &Deployment) -> String {
    let (status, body) = get(d.proxy_port(), "/").unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

fn alive(pid: u64) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
}

#[track_caller]
fn wait_event(d: &Deployment, message: &str, secs: u64) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(e) = events(d, message).pop() {
            return e;
        }
        if Instant::now() > deadline {
            panic!(
                "no {message:?} event:\n{}",
                d.daemon.stdout.all().join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for some traffic, runs `act`, waits until the replaced instance
/// stopped and a little more traffic went to the new one; returns the
/// load's outcome.
fn under_load(d: &Deployment, act: impl FnOnce()) -> (u64, u64, Vec<String>) {
    let load = Load::start(d.proxy_port(), 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    while load.ok() < 50 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    act();
    wait_event(d, "replaced process stopped", 30);
    let after = load.ok();
    while load.ok() < after + 50 && Instant::now() < deadline + Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(10));
    }
    load.finish()
}

#[test]
fn memory_breach_under_load_replaces_web_without_a_failed_request() {
    let d = Deployment::start(
        "replace-mem",
        r#""drainTimeoutMs":5000"#,
        &web(
            22600,
            "",
            r#""memory":{"limitBytes":200000000,"checkIntervalMs":100}"#,
        ),
    );
    d.deploy_ok("v1");
    let old = web_pid(&d);
    let old_port = d.release("v1")["ports"]["web"].as_u64().unwrap() as u16;
    let (ok, failed, errors) = under_load(&d, || {
        // Straight to the app: it keeps 300 MiB, over the limit.
        let (status, _) = get(old_port, "/grow?mb=300").unwrap();
        assert_eq!(status, 200);
    });
    assert_eq!(failed, 0, "{ok} ok, failed: {errors:?}");
    let w = web_status(&d);
    assert_ne!(w["pid"].as_u64().unwrap(), old, "{w:#}");
    assert_eq!(w["state"], "running");
    assert_eq!(w["memoryRestarts"], 1, "{w:#}");
    assert_eq!(w["lastStartReason"], "memory");
    assert!(w["lastMemoryRestartAt"].is_string());
    assert_ne!(d.release("v1")["ports"]["web"], old_port);
    assert!(!alive(old), "the old instance {old} still runs");
    let replaced = &events(&d, "process replaced")[0];
    assert_eq!(replaced["reason"], "memory");
    assert_eq!(replaced["previousPort"], old_port);
    assert!(!events(&d, "memory limit exceeded").is_empty());
    // Traffic moved first, the old instance stopped after its drain.
    assert!(position(&d, "process replaced") < position(&d, "replaced process stopped"));
}

#[test]
fn restart_of_the_proxied_process_under_load_replaces_it_without_a_failed_request() {
    let d = Deployment::start("replace-manual", "", &web(22620, "", ""));
    d.deploy_ok("v1");
    let first = web_pid(&d);
    let before = answer(&d);
    let (ok, failed, errors) = under_load(&d, || {
        let out = d.daemon.cli(&["restart", "--process", "web"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let reply: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        assert_eq!(reply["restarted"], serde_json::json!(["web"]));
    });
    assert_eq!(failed, 0, "{ok} ok, failed: {errors:?}");
    let second = web_pid(&d);
    assert_ne!(second, first);
    assert!(!alive(first));
    let w = web_status(&d);
    assert_eq!(w["lastStartReason"], "manual");
    assert_eq!(w["memoryRestarts"], 0);
    // `--policy proxied` does the same.
    let out = d.daemon.cli(&["restart", "--policy", "proxied"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_ne!(web_pid(&d), second);
    let after = answer(&d);
    assert_ne!(after, before);
    assert!(after.starts_with("release v1 pid "), "{after}");
}

#[test]
fn a_replacement_that_fails_its_health_check_leaves_the_old_instance_serving() {
    let d = Deployment::start(
        "replace-unhealthy",
        "",
        &web(
            22640,
            r#""timeoutMs":800"#,
            r#""env":{"UNHEALTHY_IF":"{{releasePath}}/unhealthy"}"#,
        ),
    );
    d.deploy_ok("v1");
    let old = web_pid(&d);
    let before = answer(&d);
    // From now on a new instance starts unhealthy; the old one stays fine.
    std::fs::write(d.releases.join("v1").join("unhealthy"), "").unwrap();
    let out = d.daemon.cli(&["restart", "--process", "web"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("Health check failed"),
        "{}",
        stderr(&out)
    );
    let failed = wait_event(&d, "process replacement failed", 5);
    assert_eq!(failed["id"], "web");
    assert_eq!(failed["reason"], "manual");
    let w = web_status(&d);
    assert_eq!(w["pid"].as_u64().unwrap(), old, "{w:#}");
    assert_eq!(w["state"], "running");
    assert_eq!(answer(&d), before);
    assert!(events(&d, "process replaced").is_empty());
}

#[test]
fn a_stopped_web_process_is_replaced_by_the_live_checks() {
    let d = Deployment::start(
        "replace-watch",
        r#""drainTimeoutMs":1000"#,
        &web(
            22660,
            r#""watchIntervalMs":200,"watchTimeoutMs":200,"watchFailures":3"#,
            r#""gracefulStopMs":500"#,
        ),
    );
    d.deploy_ok("v1");
    let old = web_pid(&d) as i32;
    let before = answer(&d);
    // The whole group: the shell and node alike.
    unsafe { libc::kill(-old, libc::SIGSTOP) };
    let failing = wait_event(&d, "health check failing", 10);
    unsafe { libc::kill(-old, libc::SIGCONT) };
    assert_eq!(failing["id"], "web");
    assert_eq!(failing["releaseId"], "v1");
    assert_eq!(failing["failures"], 3);
    assert!(
        failing["lastResult"]
            .as_str()
            .unwrap()
            .contains("timed out"),
        "{failing}"
    );
    wait_event(&d, "replaced process stopped", 10);
    let new = web_pid(&d);
    assert_ne!(new, old as u64);
    let after = answer(&d);
    assert_ne!(after, before);
    assert!(after.starts_with("release v1 pid "), "{after}");
    assert!(!alive(old as u64));
}

#[test]
fn a_crash_looping_release_is_rolled_back_within_the_window() {
    let d = Deployment::start_with(
        "replace-rollback",
        r#""autoRollback":{"windowMs":60000}"#,
        "",
        &web(
            22680,
            "",
            r#""restartDelayMs":100,"restart":{"maxRestarts":2}"#,
        ),
    );
    d.deploy_ok("v1");
    assert_eq!(d.status()["lastAutoRollback"], serde_json::Value::Null);
    // v2 passes its health check, then exits shortly after every start.
    std::fs::create_dir_all(d.releases.join("v2")).unwrap();
    std::fs::write(d.releases.join("v2").join("exit-after-ms"), "400").unwrap();
    d.deploy_ok("v2");
    d.wait_status("the automatic rollback to v1", 20, |s| {
        s["activeReleaseId"] == "v1" && s["lastAutoRollback"].is_object()
    });
    let rollback = wait_event(&d, "auto rollback", 5);
    assert_eq!(rollback["fromReleaseId"], "v2");
    assert_eq!(rollback["toReleaseId"], "v1");
    assert_eq!(rollback["reason"], "process failed");
    let last = &d.status()["lastAutoRollback"];
    assert_eq!(last["fromReleaseId"], "v2");
    assert_eq!(last["toReleaseId"], "v1");
    assert_eq!(last["reason"], "process failed");
    assert!(last["at"].is_string());
    d.wait_status("v1 serving", 10, |_| {
        get(d.proxy_port(), "/").is_ok_and(|(s, b)| s == 200 && b.starts_with("release v1"))
    });
}

#[test]
fn a_websocket_on_a_replaced_instance_gets_close_1001_at_the_drain_deadline() {
    use tungstenite::Message;
    use tungstenite::protocol::frame::coding::CloseCode;
    if !have_node() {
        return;
    }
    let drain = Duration::from_millis(2000);
    let d = Deployment::start(
        "replace-ws-close",
        r#""drainTimeoutMs":2000,"websocketCloseSpreadMs":0"#,
        &web(22700, "", ""),
    );
    d.deploy_ok("v1");
    let port = d.proxy_port();
    let stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (mut ws, resp) =
        tungstenite::client::client(format!("ws://127.0.0.1:{port}/ws"), stream).unwrap();
    assert_eq!(resp.status(), 101);
    let echo = |ws: &mut tungstenite::WebSocket<std::net::TcpStream>| loop {
        match ws.read().unwrap() {
            Message::Text(t) => break t.to_string(),
            Message::Close(c) => panic!("closed early: {c:?}"),
            _ => {}
        }
    };
    ws.send(Message::text("before")).unwrap();
    assert_eq!(echo(&mut ws), "v1:before");
    let old = web_pid(&d);

    let out = d.daemon.cli(&["restart", "--process", "web"]);
    // The switch happened just before the reply: the deadline runs from it
    // (the reply can take a moment to get here on a busy machine).
    let switched = Instant::now();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_ne!(web_pid(&d), old, "a new instance serves");
    // New clients reach the new instance; the open tunnel still reaches
    // the old one, and nothing closes it before the deadline.
    assert!(answer(&d).starts_with("release v1 pid "));
    ws.send(Message::text("during")).unwrap();
    assert_eq!(echo(&mut ws), "v1:during");
    ws.get_ref()
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let close = loop {
        match ws.read() {
            Ok(Message::Close(frame)) => break (frame, switched.elapsed()),
            Ok(other) => panic!("unexpected {other:?}"),
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                assert!(
                    switched.elapsed() < drain + Duration::from_secs(3),
                    "no Close frame by the deadline"
                );
            }
            Err(e) => panic!("tunnel broken without a Close frame: {e}"),
        }
    };
    let (frame, at) = close;
    let frame = frame.expect("a Close frame with a code");
    assert_eq!(frame.code, CloseCode::Away, "{frame:?}");
    assert!(
        at >= drain - Duration::from_millis(400),
        "closed at {at:?}, before the {drain:?} deadline"
    );
    assert!(
        at < drain + Duration::from_secs(2),
        "closed late, at {at:?}"
    );
    // The client answers; then the old instance stops.
    let _ = ws.flush();
    wait_event(&d, "replaced process stopped", 10);
    assert!(!alive(old), "the replaced instance is stopped");
}
