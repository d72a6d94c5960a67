//! `rollbridge upgrade` through the real binary: the daemon replaces its
//! program (here: with a copy of itself, "installed" in a temp dir) under
//! keep-alive and connection-per-request load with an open WebSocket, and
//! nothing notices; a broken new binary is refused with the old program
//! serving on.

mod deploy_support;
use deploy_support::load::Load;
use deploy_support::*;

use std::io::Write;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The proxied fixture app plus a companion that prints a numbered line
/// every 50 ms (output capture must carry on across the upgrade).
fn processes() -> String {
    format!(
        r#"[{{"id":"web","policy":"proxied","command":"node {} {{{{port}}}}","port":{{"from":0,"to":0}},"health":{{"intervalMs":20,"timeoutMs":10000}},"restartDelayMs":50}},
           {{"id":"ticker","policy":"companion","command":"i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.05; done"}}]"#,
        fixture("app.js")
    )
}

/// A copy of the binary under test, as if installed at a path of its own.
fn installed(dir: &Path) -> PathBuf {
    let path = dir.join("bin").join("rollbridge");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::copy(BIN, &path).unwrap();
    path
}

fn upgrade(d: &Deployment, binary: &Path) -> std::process::Output {
    d.daemon.cli(&[
        "upgrade",
        "--binary",
        binary.to_str().unwrap(),
        "--timeout-ms",
        "5000",
    ])
}

fn pid_of(status: &serde_json::Value, release: &str, id: &str) -> u64 {
    let r = status["releases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["releaseId"] == release)
        .unwrap();
    process(r, id)["pid"].as_u64().unwrap_or(0)
}

/// The highest `tick N` in the captured output of the ticker (as `logs`
/// and `status` show it).
fn last_tick(d: &Deployment) -> u64 {
    let s = d.status();
    process(&s["releases"][0], "ticker")["logs"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|v| {
            v["line"]
                .as_str()
                .and_then(|t| t.strip_prefix("tick "))
                .and_then(|n| n.parse().ok())
        })
        .max()
        .unwrap_or(0)
}

#[test]
fn upgrade_under_load_keeps_connections_processes_and_state() {
    if !have_node() {
        eprintln!("skipped: node is not installed");
        return;
    }
    let d = Deployment::start("upgrade", "", &processes());
    d.deploy_ok("v1");
    let port = d.proxy_port();
    let binary = installed(d.dir());
    let before = d.status();
    let web_pid = pid_of(&before, "v1", "web");
    let ticker_pid = pid_of(&before, "v1", "ticker");
    assert!(web_pid > 0 && ticker_pid > 0, "{before:#}");

    let mut ws = open_ws(port);
    assert_eq!(ws_echo(&mut ws, "before"), "v1:before");
    // An idle keep-alive connection that must survive.
    let mut idle = TcpStream::connect(("127.0.0.1", port)).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut idle_buf = Vec::new();
    idle.write_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut idle, &mut idle_buf).unwrap().0, 200);

    // Two keep-alive and two connection-per-request clients.
    let load = Load::start(port, 2);
    std::thread::sleep(Duration::from_millis(300));

    let out = upgrade(&d, &binary);
    assert_eq!(out.status.code(), Some(0), "upgrade: {}", stderr(&out));
    let reply: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let keys: Vec<&str> = reply
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        ["status", "message", "previousVersion", "version", "pid"]
    );
    assert_eq!(reply["message"], "upgraded");
    assert_eq!(reply["pid"], d.daemon.pid());

    std::thread::sleep(Duration::from_millis(300));
    let (ok, failed, errors) = load.finish();
    assert_eq!(failed, 0, "failed requests: {errors:?}");
    assert!(ok > 0);

    // The tunnel and the idle keep-alive connection flow on.
    assert_eq!(ws_echo(&mut ws, "after"), "v1:after");
    idle.write_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut idle, &mut idle_buf).unwrap().0, 200);

    // Same daemon pid, same app pids, same world.
    let after = d.status();
    assert_eq!(pid_of(&after, "v1", "web"), web_pid);
    assert_eq!(pid_of(&after, "v1", "ticker"), ticker_pid);
    assert_eq!(after["activeReleaseId"], "v1");
    let events = stdout(&d.daemon.cli(&["events", "--json"]));
    assert!(events.contains("daemon upgraded"), "{events}");
    assert!(
        events.contains("traffic switched"),
        "events carried over: {events}"
    );

    // Output capture goes on through the handed-over pipes.
    let tick = last_tick(&d);
    let deadline = Instant::now() + Duration::from_secs(5);
    while last_tick(&d) <= tick + 2 {
        assert!(
            Instant::now() < deadline,
            "no output captured after the upgrade"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // The new program supervises: a killed app is restarted.
    unsafe { libc::kill(web_pid as i32, libc::SIGKILL) };
    d.wait_status("web restarted", 10, |s| {
        let pid = pid_of(s, "v1", "web");
        pid != 0 && pid != web_pid
    });
    let s = d.status();
    let r = &s["releases"][0];
    assert_eq!(process(r, "web")["restarts"], 1, "{s:#}");
    assert_eq!(process(r, "web")["lastStartReason"], "crash", "{s:#}");

    // Maintenance survives a second upgrade (default binary: the one the
    // daemon now runs from).
    let on = d
        .daemon
        .cli(&["maintenance", "on", "--message", "back soon"]);
    assert_eq!(on.status.code(), Some(0), "{}", stderr(&on));
    let again = d.daemon.cli(&["upgrade", "--timeout-ms", "5000"]);
    assert_eq!(
        again.status.code(),
        Some(0),
        "second upgrade: {}",
        stderr(&again)
    );
    let s = d.status();
    assert_eq!(s["maintenance"]["message"], "back soon", "{s:#}");
    let (code, _) = get(port, "/").unwrap();
    assert_eq!(code, 503);
}

#[test]
fn upgrade_to_a_broken_binary_is_refused_and_the_daemon_serves_on() {
    let d = TestDaemon::start("upgrade-broken");
    let pid = d.pid();
    let dir = d.dir.clone();
    let failing = dir.join("failing.sh");
    std::fs::write(&failing, "#!/bin/sh\necho boom >&2\nexit 1\n").unwrap();
    std::fs::set_permissions(&failing, std::fs::Permissions::from_mode(0o755)).unwrap();
    let plain = dir.join("plain-file");
    std::fs::write(&plain, "not a program").unwrap();
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
    let missing = dir.join("missing");
    for (binary, cause) in [
        (&failing, "exited with code 1"),
        (&plain, "is not executable"),
        (&missing, "does not exist"),
    ] {
        let out = d.cli(&[
            "upgrade",
            "--binary",
            binary.to_str().unwrap(),
            "--timeout-ms",
            "3000",
        ]);
        assert_eq!(out.status.code(), Some(1), "{binary:?}: {}", stdout(&out));
        let err = stderr(&out);
        assert!(
            err.contains("Upgrade failed") && err.contains(cause),
            "{binary:?}: {err}"
        );
        let status = d.cli(&["status"]);
        assert_eq!(status.status.code(), Some(0), "{}", stderr(&status));
        let info = d.request(r#"{"command":"daemon-info"}"#);
        assert!(info.contains(&format!("\"pid\":{pid}")), "{info}");
    }
}

#[test]
fn upgrade_carries_the_canary_and_its_cookies() {
    if !have_node() {
        eprintln!("skipped: node is not installed");
        return;
    }
    let d = Deployment::start("upgrade-canary", r#""drainTimeoutMs":20000"#, &processes());
    d.deploy_ok("v1");
    let path = d.releases.join("v2");
    std::fs::create_dir_all(&path).unwrap();
    let out = d.daemon.cli(&[
        "deploy",
        "--release-path",
        path.to_str().unwrap(),
        "--release-id",
        "v2",
        "--canary",
        "50",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let port = d.proxy_port();
    let before = d.status();
    assert_eq!(before["canary"]["releaseId"], "v2", "{before:#}");

    let out = upgrade(&d, &installed(d.dir()));
    assert_eq!(out.status.code(), Some(0), "upgrade: {}", stderr(&out));

    let after = d.status();
    assert_eq!(after["canary"], before["canary"], "{after:#}");
    assert_eq!(d.release("v2")["state"], "canary");
    assert_eq!(after["activeReleaseId"], "v1");
    // A client's assignment holds: no new cookie, the same release.
    for release in ["v1", "v2", "v2", "v1"] {
        let (status, head, body) =
            get_with_cookie(port, Some(&format!("rollbridge_release={release}"))).unwrap();
        assert_eq!(status, 200, "{head}");
        assert!(body.starts_with(&format!("release {release} ")), "{body}");
        assert!(!head.to_ascii_lowercase().contains("set-cookie"), "{head}");
    }
    // The canary can still be promoted by the new program.
    let out = d.daemon.cli(&["promote"]);
    assert_eq!(out.status.code(), Some(0), "promote: {}", stderr(&out));
    d.wait_status("v2 active", 10, |s| {
        s["activeReleaseId"] == "v2" && s["canary"].is_null()
    });
}

#[test]
fn upgrade_carries_the_auto_rollback_window_and_last_auto_rollback() {
    if !have_node() {
        eprintln!("skipped: node is not installed");
        return;
    }
    let web = format!(
        r#"[{{"id":"web","policy":"proxied","command":"node {} {{{{port}}}}","port":{{"from":0,"to":0}},"health":{{"intervalMs":20,"timeoutMs":10000,"watchIntervalMs":0}},"restartDelayMs":100,"restart":{{"maxRestarts":0}}}}]"#,
        fixture("app.js")
    );
    let d = Deployment::start_with(
        "upgrade-rollback",
        r#""autoRollback":{"windowMs":60000}"#,
        "",
        &web,
    );
    d.deploy_ok("v1");
    // v2 passes its health check, then exits once the upgrade is done:
    // only the carried window can roll it back.
    std::fs::create_dir_all(d.releases.join("v2")).unwrap();
    std::fs::write(d.releases.join("v2").join("exit-after-ms"), "2500").unwrap();
    d.deploy_ok("v2");
    let binary = installed(d.dir());
    let out = upgrade(&d, &binary);
    assert_eq!(out.status.code(), Some(0), "upgrade: {}", stderr(&out));
    assert_eq!(d.status()["activeReleaseId"], "v2");
    d.wait_status("the automatic rollback to v1", 20, |s| {
        s["activeReleaseId"] == "v1" && s["lastAutoRollback"].is_object()
    });
    let last = d.status()["lastAutoRollback"].clone();
    assert_eq!(last["fromReleaseId"], "v2", "{last:#}");
    // And the record itself survives the next upgrade (once the rollback
    // operation has finished and v2 has drained).
    let deadline = Instant::now() + Duration::from_secs(20);
    let out = loop {
        let out = upgrade(&d, &binary);
        if out.status.code() == Some(0) || Instant::now() > deadline {
            break out;
        }
        assert!(
            stderr(&out).contains("Cannot upgrade while"),
            "{}",
            stderr(&out)
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(out.status.code(), Some(0), "upgrade: {}", stderr(&out));
    assert_eq!(d.status()["lastAutoRollback"], last);
}

/// `sleep 1000` in a process group of its own (a child of this test, so
/// never of the daemon).
fn sleeper() -> (i64, std::process::Child) {
    use std::os::unix::process::CommandExt;
    let child = std::process::Command::new("sleep")
        .arg("1000")
        .stdin(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    (child.id() as i64, child)
}

fn start_time(pid: i64) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &s[s.rfind(')').unwrap() + 1..];
    rest.split_whitespace().nth(19).unwrap().parse().unwrap()
}

/// Kills the test's process groups on drop.
struct Groups(Vec<i64>);

impl Drop for Groups {
    fn drop(&mut self) {
        for g in &self.0 {
            if *g > 1 {
                unsafe { libc::kill(-(*g as i32), libc::SIGKILL) };
            }
        }
    }
}

#[test]
fn upgrade_keeps_adopted_processes_adopted_and_watched() {
    let dir = temp_dir("upgrade-adopted");
    let config = dir.join("rollbridge.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"application":"upa","control":{{"path":"{}"}},"statePath":"{}","adoptOrphans":true,"proxy":{{"port":0}},"processes":[{{"id":"web","command":"sleep 1000","policy":"proxied","port":{{"from":0,"to":0}},"health":{{"intervalMs":20,"timeoutMs":200}},"restartDelayMs":50}},{{"id":"db","command":"sleep 1000","policy":"service","restartDelayMs":50}}]}}"#,
            dir.join("c.sock").display(),
            dir.join("state.json").display()
        ),
    )
    .unwrap();
    let (web, mut web_child) = sleeper();
    let (db, mut db_child) = sleeper();
    let mut groups = Groups(vec![web, db]);
    let release = dir.join("releases/v1");
    std::fs::create_dir_all(&release).unwrap();
    std::fs::write(
        dir.join("state.json"),
        format!(
            r#"{{"activeReleaseId":"v1","releases":[{{"releaseId":"v1","releasePath":"{}","revision":"v1","state":"active","ports":{{"web":1}},"processes":[{{"id":"web","pid":{web},"pgid":{web},"startTime":{},"restarts":0,"state":"running"}}]}}],"services":[{{"id":"db","process":{{"id":"db","pid":{db},"pgid":{db},"startTime":{},"restarts":0,"state":"running"}}}}],"singletons":[]}}"#,
            release.display(),
            start_time(web),
            start_time(db)
        ),
    )
    .unwrap();
    let d = Deployment {
        daemon: TestDaemon::start_with(dir.clone(), config.clone(), &[]),
        releases: dir.join("releases"),
    };
    let adopted = |s: &serde_json::Value| {
        let web_p = process(&s["releases"][0], "web");
        let db_p = &s["services"][0]["process"];
        web_p["pid"].as_i64() == Some(web)
            && web_p["adopted"] == true
            && db_p["pid"].as_i64() == Some(db)
            && db_p["adopted"] == true
    };
    d.wait_status("both adopted", 10, adopted);
    // The adopted release's traffic check (a sleeper never answers it)
    // holds the op slot first.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !stdout(&d.daemon.cli(&["events"])).contains("adopted release not routed") {
        assert!(
            Instant::now() < deadline,
            "traffic never resumed: {}",
            stdout(&d.daemon.cli(&["events"]))
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = upgrade(&d, &installed(&dir));
    assert_eq!(out.status.code(), Some(0), "upgrade: {}", stderr(&out));
    let s = d.status();
    assert!(adopted(&s), "still adopted after the upgrade: {s:#}");

    // Still watched by pidfd: an exit is noticed and restarted.
    unsafe { libc::kill(db as i32, libc::SIGKILL) };
    let _ = db_child.wait();
    d.wait_status("db restarted", 10, |s| {
        let p = &s["services"][0]["process"];
        p["pid"].as_i64().is_some_and(|p| p != db) && p["restarts"] == 1
    });
    let s = d.status();
    let p = &s["services"][0]["process"];
    groups.0.push(p["pid"].as_i64().unwrap_or(0));
    assert!(p.get("adopted").is_none(), "a new run is our own child");
    assert!(web_child.try_wait().unwrap().is_none());
    drop(d);
}

/// A new "binary" that answers the probe like the real one, then runs the
/// real one with `corrupt` (an environment assignment) breaking its import.
fn failing_import(dir: &Path, name: &str, corrupt: &str) -> PathBuf {
    let real = installed(dir);
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\nif [ \"$1\" = __handover-probe ]; then exec \"{real}\" \"$@\"; fi\n{corrupt} exec \"{real}\" \"$@\"\n",
            real = real.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn a_new_program_that_fails_its_import_goes_back_to_the_old_one() {
    if !have_node() {
        eprintln!("skipped: node is not installed");
        return;
    }
    let d = Deployment::start("upgrade-back", "", &processes());
    d.deploy_ok("v1");
    let port = d.proxy_port();
    let web_pid = pid_of(&d.status(), "v1", "web");
    let mut ws = open_ws(port);
    let mut idle = TcpStream::connect(("127.0.0.1", port)).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut idle_buf = Vec::new();
    let cases = [
        (
            failing_import(d.dir(), "unreadable", "ROLLBRIDGE_HANDOVER_FD=junk"),
            "is not a descriptor: junk",
        ),
        (
            failing_import(d.dir(), "panicking", "ROLLBRIDGE_TEST_PANIC_IN_IMPORT=1"),
            "the new program panicked",
        ),
    ];
    for (binary, cause) in &cases {
        let out = upgrade(&d, binary);
        assert_eq!(out.status.code(), Some(1), "{binary:?}: {}", stdout(&out));
        let err = stderr(&out);
        assert!(
            err.contains("Upgrade failed: the new program could not take over")
                && err.contains(cause),
            "{binary:?}: {err}"
        );
        // The old program serves on with everything it had.
        let info = d.daemon.request(r#"{"command":"daemon-info"}"#);
        assert!(
            info.contains(&format!("\"pid\":{}", d.daemon.pid())),
            "{info}"
        );
        assert_eq!(pid_of(&d.status(), "v1", "web"), web_pid);
        assert_eq!(ws_echo(&mut ws, "still"), "v1:still");
        idle.write_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
            .unwrap();
        assert_eq!(read_response(&mut idle, &mut idle_buf).unwrap().0, 200);
        assert_eq!(get(port, "/").unwrap().0, 200);
    }
    let events = stdout(&d.daemon.cli(&["events", "--json"]));
    assert!(!events.contains("daemon upgraded"), "{events}");
    // And a good binary still upgrades it afterwards.
    let out = upgrade(&d, &installed(d.dir()));
    assert_eq!(out.status.code(), Some(0), "upgrade: {}", stderr(&out));
    assert_eq!(ws_echo(&mut ws, "after"), "v1:after");
}

#[test]
fn a_server_sent_events_stream_flows_on_through_an_upgrade() {
    use std::io::Read;
    if !have_node() {
        eprintln!("skipped: node is not installed");
        return;
    }
    let d = Deployment::start("upgrade-sse", "", &processes());
    d.deploy_ok("v1");
    let port = d.proxy_port();
    let binary = installed(d.dir());
    let events = 40;
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /sse?n={events}&ms=100 HTTP/1.1\r\nHost: test\r\n\r\n"
    )
    .unwrap();
    let reader = std::thread::spawn(move || {
        // (arrival, event number) for every `data:` line, until the body's
        // last chunk; then the same connection serves another request.
        let mut text = Vec::new();
        let mut seen: Vec<(Instant, u64)> = Vec::new();
        let mut buf = [0u8; 4096];
        while !text.ends_with(b"0\r\n\r\n") {
            let n = s.read(&mut buf).expect("stream cut");
            assert!(n > 0, "stream closed: {}", String::from_utf8_lossy(&text));
            text.extend_from_slice(&buf[..n]);
            let count = String::from_utf8_lossy(&text)
                .matches("data: event ")
                .count();
            while seen.len() < count {
                seen.push((Instant::now(), seen.len() as u64 + 1));
            }
        }
        let body = String::from_utf8_lossy(&text).into_owned();
        let numbers: Vec<u64> = body
            .lines()
            .filter_map(|l| l.strip_prefix("data: event ")?.trim().parse().ok())
            .collect();
        s.write_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
            .unwrap();
        let mut rest = Vec::new();
        let after = read_response(&mut s, &mut rest).map(|(status, _)| status);
        (body, numbers, seen, after)
    });
    std::thread::sleep(Duration::from_millis(800));
    let out = upgrade(&d, &binary);
    assert_eq!(out.status.code(), Some(0), "upgrade: {}", stderr(&out));
    let (body, numbers, seen, after) = reader.join().unwrap();
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert_eq!(numbers, (1..=events).collect::<Vec<_>>(), "{body}");
    let gap = seen
        .windows(2)
        .map(|w| w[1].0 - w[0].0)
        .max()
        .unwrap_or_default();
    assert!(gap < Duration::from_millis(1500), "largest gap {gap:?}");
    assert_eq!(after.ok(), Some(200), "keep-alive after the stream");
    let log: serde_json::Value =
        serde_json::from_str(&stdout(&d.daemon.cli(&["events", "--json"]))).unwrap();
    let upgraded = log
        .as_array()
        .or_else(|| log["events"].as_array())
        .and_then(|es| es.iter().find(|e| e["message"] == "daemon upgraded"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(upgraded["data"]["connectionsLost"], 0, "{log:#}");
    assert_eq!(upgraded["data"]["connections"], 1, "{log:#}");
}

#[test]
fn upgrade_is_refused_naming_a_replacement_of_the_proxied_process() {
    if !have_node() {
        eprintln!("skipped: node is not installed");
        return;
    }
    let web = format!(
        r#"[{{"id":"web","policy":"proxied","command":"node {} {{{{port}}}}","port":{{"from":0,"to":0}},"health":{{"intervalMs":20,"timeoutMs":3000,"watchIntervalMs":0}},"env":{{"UNHEALTHY_IF":"{{{{releasePath}}}}/unhealthy"}}}}]"#,
        fixture("app.js")
    );
    let d = Deployment::start("upgrade-replacing", "", &web);
    d.deploy_ok("v1");
    // The replacement instance starts unhealthy: its check runs 3 s.
    std::fs::write(d.releases.join("v1").join("unhealthy"), "").unwrap();
    let config = d.daemon.config.clone();
    let restart = std::thread::spawn(move || {
        deploy_support::daemon_support::cli(&config, &["restart", "--process", "web"])
    });
    // Recorded as the replacement takes the op slot.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !stdout(&d.daemon.cli(&["events"])).contains("process restart requested") {
        assert!(Instant::now() < deadline, "the restart never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = upgrade(&d, &installed(d.dir()));
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains(r#"Cannot upgrade while a replacement of process "web" is running"#),
        "{err}"
    );
    let out = restart.join().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}
