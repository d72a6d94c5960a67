//! `adoptOrphans` through the real binary: a daemon killed with SIGKILL
//! (only the daemon pid this test started), a new daemon that adopts the
//! app processes it left, supervision of the adopted ones, pids that are
//! gone or recycled, validation and the `recover` report. Every app
//! process is killed by its group id on drop, never by name.

mod deploy_support;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use deploy_support::daemon_support::cli;
use deploy_support::*;
use serde_json::Value;

/// Process groups this test is responsible for, SIGKILLed on drop.
#[derive(Default)]
struct Groups(Vec<i32>);

impl Drop for Groups {
    fn drop(&mut self) {
        for g in &self.0 {
            if *g > 1 {
                unsafe {
                    libc::kill(-*g, libc::SIGKILL);
                }
            }
        }
    }
}

fn alive(pid: i64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 1..];
            rest.split_whitespace()
                .next()
                .map(|st| st != "Z" && st != "X")
        })
        .unwrap_or(false)
}

fn start_time(pid: i64) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &s[s.rfind(')').unwrap() + 1..];
    rest.split_whitespace().nth(19).unwrap().parse().unwrap()
}

#[track_caller]
fn wait_until(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Config of the crash tests: a node web app and a companion that prints a
/// numbered line every 20 ms.
fn processes() -> String {
    format!(
        r#"[{{"id":"web","policy":"proxied","command":"node {} {{{{port}}}}","port":{{"from":0,"to":0}},"health":{{"intervalMs":20,"timeoutMs":10000}}}},
            {{"id":"ticker","policy":"companion","command":"i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.02; done","restartDelayMs":100,"outputLines":1000,"memory":{{"limitBytes":1000000000,"checkIntervalMs":50}}}}]"#,
        fixture("app.js")
    )
}

fn process<'a>(status: &'a Value, id: &str) -> &'a Value {
    let active = status["activeReleaseId"].as_str().unwrap_or("");
    status["releases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["releaseId"] == active)
        .and_then(|r| r["processes"].as_array())
        .and_then(|ps| ps.iter().find(|p| p["id"] == id))
        .unwrap_or_else(|| panic!("no {id} in {status:#}"))
}

/// Highest `tick N` line in a process's logs.
fn last_tick(p: &Value) -> u64 {
    p["logs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["line"].as_str()?.strip_prefix("tick ")?.parse().ok())
        .max()
        .unwrap_or(0)
}

fn ticks(p: &Value) -> Vec<u64> {
    p["logs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["line"].as_str()?.strip_prefix("tick ")?.parse().ok())
        .collect()
}

fn status_of(config: &Path) -> Value {
    let out = cli(config, &["status", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

fn events_of(config: &Path) -> String {
    stdout(&cli(config, &["events"]))
}

#[test]
fn a_new_daemon_adopts_the_processes_of_a_killed_one_and_supervises_them() {
    if !have_node() {
        return;
    }
    let mut groups = Groups::default();
    let dir = temp_dir("adopt");
    let config = dir.join("rollbridge.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"application":"adopt","statePath":"{}","adoptOrphans":true,"control":{{"path":"{}"}},"proxy":{{"port":0}},"processes":{}}}"#,
            dir.join("state.json").display(),
            dir.join("c.sock").display(),
            processes()
        ),
    )
    .unwrap();
    let releases = dir.join("releases");
    let mut d1 = Deployment {
        daemon: TestDaemon::start_with(dir.clone(), config.clone(), &[]),
        releases,
    };
    d1.deploy_ok("v1");
    let before = d1.status();
    let web_pid = process(&before, "web")["pid"].as_i64().unwrap();
    let tick_pid = process(&before, "ticker")["pid"].as_i64().unwrap();
    groups.0.extend([web_pid as i32, tick_pid as i32]);
    let port = d1.proxy_port();
    // The answering pid (the shell's child when sh does not exec).
    let (code, served_by) = get(port, "/").unwrap();
    assert_eq!(code, 200);
    assert!(served_by.starts_with("release v1 pid "), "{served_by}");

    // Crash: SIGKILL of the daemon pid only.
    d1.daemon.signal(libc::SIGKILL);
    d1.daemon.wait_exit(Duration::from_secs(5));
    assert_eq!(d1.daemon.pid(), -1, "the killed daemon was reaped");
    let dead_tick = last_tick(process(&before, "ticker"));
    std::thread::sleep(Duration::from_secs(2));
    assert!(alive(web_pid) && alive(tick_pid), "apps outlive the daemon");

    let d2 = TestDaemon::start_with(dir.clone(), config.clone(), &[]);
    // Traffic resumes on the same process: nothing was started.
    let new_port = status_of(&config)["proxy"]["port"].as_u64().unwrap() as u16;
    wait_until("traffic on the adopted web", 15, || {
        get(new_port, "/").is_ok_and(|(c, _)| c == 200)
    });
    assert_eq!(get(new_port, "/").unwrap(), (200, served_by));
    let s = status_of(&config);
    for (id, pid) in [("web", web_pid), ("ticker", tick_pid)] {
        let p = process(&s, id);
        assert_eq!(p["pid"].as_i64(), Some(pid), "{id} keeps its pid");
        assert_eq!(p["adopted"], true, "{id}");
        assert_eq!(p["restarts"], 0, "{id}");
        assert_eq!(p["state"], "running", "{id}");
        let keys: Vec<&String> = p.as_object().unwrap().keys().collect();
        let at = keys.iter().position(|k| *k == "pid").unwrap();
        assert_eq!(keys[at + 1], "adopted", "adopted right after pid");
    }
    assert_eq!(s["activeReleaseId"], "v1");
    let events = events_of(&config);
    assert_eq!(events.matches("process adopted").count(), 2, "{events}");
    assert!(!events.contains("process started"), "{events}");

    // The ticker neither died nor stalled while no daemon read its pipe:
    // the lines it printed meanwhile show up here, and it keeps going.
    // (The old daemon read a few more lines after `before` was taken.)
    let mut t = Vec::new();
    wait_until("ticker lines printed while the daemon was dead", 10, || {
        t = ticks(process(&status_of(&config), "ticker"));
        t.iter().any(|n| *n > dead_tick + 60)
    });
    let first = t[0];
    assert!(
        first <= dead_tick + 25,
        "first line {first}, crash at {dead_tick}"
    );
    assert!(
        t.windows(2).all(|w| w[1] == w[0] + 1),
        "no line lost: {t:?}"
    );
    let logs = stdout(&cli(&config, &["logs", "--process", "ticker"]));
    assert!(logs.contains(&format!("tick {first}")), "{logs}");

    // Memory supervision covers the adopted group too.
    wait_until("a memory sample of the adopted ticker", 5, || {
        let s = status_of(&config);
        let p = process(&s, "ticker");
        p["pid"].as_i64() == Some(tick_pid)
            && p["rssBytes"].as_u64().is_some_and(|b| b > 0)
            && p["children"].as_array().is_some_and(|c| !c.is_empty())
    });

    // An adopted process that dies is noticed quickly and restarted by
    // the policy (restartDelayMs 100).
    let killed_at = Instant::now();
    unsafe {
        libc::kill(tick_pid as i32, libc::SIGKILL);
        libc::kill(-(tick_pid as i32), libc::SIGKILL);
    }
    let mut new_tick = 0;
    wait_until("ticker restarted", 10, || {
        let s = status_of(&config);
        let p = process(&s, "ticker");
        new_tick = p["pid"].as_i64().unwrap_or(0);
        new_tick != 0 && new_tick != tick_pid && p["restarts"] == 1
    });
    groups.0.push(new_tick as i32);
    let took = killed_at.elapsed();
    assert!(took < Duration::from_millis(1800), "restart took {took:?}");
    let s = status_of(&config);
    assert!(
        process(&s, "ticker").get("adopted").is_none(),
        "a new run is our own child"
    );
    let events = events_of(&config);
    assert!(events.contains("exitStatus"), "{events}");

    // A deploy retires the adopted release: its web is stopped like an
    // own child (drain, then its process group signalled).
    let d2 = Deployment {
        daemon: d2,
        releases: dir.join("releases"),
    };
    d2.deploy_ok("v2");
    wait_until("adopted web stopped by the deploy", 10, || !alive(web_pid));
    for p in d2.status()["releases"][1]["processes"].as_array().unwrap() {
        groups.0.push(p["pid"].as_i64().unwrap_or(0) as i32);
    }
    drop(d2);
}

/// A process group of this test: `sleep 1000`.
fn sleeper() -> (i64, std::process::Child) {
    let child = Command::new("sleep")
        .arg("1000")
        .stdin(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    (child.id() as i64, child)
}

fn plain_config(dir: &Path, adopt: bool, state: bool) -> std::path::PathBuf {
    let mut extra = String::new();
    if state {
        extra.push_str(&format!(
            r#","statePath":"{}""#,
            dir.join("state.json").display()
        ));
    }
    if adopt {
        extra.push_str(r#","adoptOrphans":true"#);
    }
    let path = dir.join("rollbridge.json");
    std::fs::write(
        &path,
        format!(
            r#"{{"application":"adp","control":{{"path":"{}"}}{extra},"proxy":{{"port":0}},"processes":[{{"id":"web","command":"sleep 1000","policy":"proxied","port":{{"from":0,"to":0}},"restartDelayMs":50}},{{"id":"db","command":"sleep 1000","policy":"service"}}]}}"#,
            dir.join("c.sock").display()
        ),
    )
    .unwrap();
    path
}

/// A snapshot naming `web` (release v1) with `web_start` as its start time
/// and the `db` service with `db_pid`.
fn snapshot(dir: &Path, web: i64, web_start: u64, db_pid: i64, db_start: u64) {
    let release = dir.join("releases/v1");
    std::fs::create_dir_all(&release).unwrap();
    std::fs::write(
        dir.join("state.json"),
        format!(
            r#"{{"activeReleaseId":"v1","releases":[{{"releaseId":"v1","releasePath":"{}","revision":"v1","state":"active","ports":{{"web":1}},"processes":[{{"id":"web","pid":{web},"pgid":{web},"startTime":{web_start},"restarts":0,"state":"running"}}]}}],"services":[{{"id":"db","process":{{"id":"db","pid":{db_pid},"pgid":{db_pid},"startTime":{db_start},"restarts":0,"state":"running"}}}}],"singletons":[]}}"#,
            release.display()
        ),
    )
    .unwrap();
}

/// A pid that is certainly gone: a process we started and reaped.
fn dead_pid() -> i64 {
    let mut c = Command::new("true").spawn().unwrap();
    let pid = c.id() as i64;
    c.wait().unwrap();
    pid
}

#[test]
fn a_recycled_or_gone_pid_is_never_signalled_and_is_dropped() {
    let dir = temp_dir("adopt-reuse");
    let config = plain_config(&dir, true, true);
    let (victim, mut child) = sleeper();
    let _groups = Groups(vec![victim as i32]);
    // The recorded start time is not the victim's: a recycled pid.
    snapshot(&dir, victim, start_time(victim) + 1, dead_pid(), 12345);
    let d = TestDaemon::start_with(dir.clone(), config.clone(), &[]);
    let mut s = Value::Null;
    wait_until("web and db started again by the restart policy", 10, || {
        s = status_of(&config);
        s["services"][0]["process"]["pid"].as_i64().is_some()
            && process(&s, "web")["pid"].as_i64().is_some()
    });
    assert_ne!(process(&s, "web")["pid"].as_i64(), Some(victim));
    assert!(process(&s, "web").get("adopted").is_none());
    let events = events_of(&config);
    assert!(events.contains("recorded process dropped"), "{events}");
    assert!(events.contains("pid reused by another process"), "{events}");
    assert!(events.contains("gone"), "{events}");
    assert!(!events.contains("process adopted"), "{events}");
    assert!(
        child.try_wait().unwrap().is_none() && alive(victim),
        "the process behind a recycled pid was never signalled"
    );
    drop(d);
    assert!(alive(victim), "not even by the shutdown");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn adopt_orphans_without_state_path_fails_validation() {
    let dir = temp_dir("adopt-nostate");
    let config = plain_config(&dir, true, false);
    let out = cli(&config, &["validate"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out) + &stderr(&out);
    assert!(text.contains("adoptOrphans needs statePath"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn recover_reports_what_a_start_would_adopt() {
    let dir = temp_dir("adopt-recover");
    let config = plain_config(&dir, true, true);
    let (web, mut w) = sleeper();
    let (other, mut o) = sleeper();
    let _groups = Groups(vec![web as i32, other as i32]);
    snapshot(&dir, web, start_time(web), other, start_time(other) + 1);
    let out = cli(&config, &["recover", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["adoptOrphans"], true);
    assert_eq!(
        report["wouldAdopt"],
        serde_json::json!([{"id": "web", "pid": web, "releaseId": "v1"}])
    );
    assert_eq!(
        report["wouldDrop"],
        serde_json::json!([{"id": "db", "pid": other, "reason": "pid reused by another process", "releaseId": null}])
    );
    let text = stdout(&cli(&config, &["recover"]));
    assert!(
        text.contains("adoptOrphans") && text.contains(&format!("web (pid {web}, release v1)")),
        "{text}"
    );
    assert!(w.try_wait().unwrap().is_none() && o.try_wait().unwrap().is_none());
    let _ = std::fs::remove_dir_all(&dir);
}

fn has_set_cookie(head: &str) -> bool {
    head.lines()
        .any(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
}

fn release_of<'a>(status: &'a Value, id: &str) -> &'a Value {
    status["releases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["releaseId"] == id)
        .unwrap_or_else(|| panic!("no release {id} in {status:#}"))
}

fn web_pid_of(status: &Value, release: &str) -> i64 {
    release_of(status, release)["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "web")
        .and_then(|p| p["pid"].as_i64())
        .unwrap_or_else(|| panic!("no web pid in {release}: {status:#}"))
}

#[test]
fn a_canary_survives_a_daemon_kill_and_adoption_then_promote_works() {
    if !have_node() {
        return;
    }
    let mut groups = Groups::default();
    let dir = temp_dir("adopt-canary");
    let config = dir.join("rollbridge.json");
    let state = dir.join("state.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"application":"adopt-canary","statePath":"{}","adoptOrphans":true,"control":{{"path":"{}"}},"proxy":{{"port":0,"drainTimeoutMs":2000}},"processes":[{{"id":"web","policy":"proxied","command":"node {} {{{{port}}}}","port":{{"from":0,"to":0}},"health":{{"intervalMs":20,"timeoutMs":10000}}}}]}}"#,
            state.display(),
            dir.join("c.sock").display(),
            fixture("app.js")
        ),
    )
    .unwrap();
    let d1 = Deployment {
        daemon: TestDaemon::start_with(dir.clone(), config.clone(), &[]),
        releases: dir.join("releases"),
    };
    d1.deploy_ok("v1");
    let v2 = d1.releases.join("v2");
    std::fs::create_dir_all(&v2).unwrap();
    let out = d1.daemon.cli(&[
        "deploy",
        "--release-path",
        v2.to_str().unwrap(),
        "--release-id",
        "v2",
        "--canary",
        "50",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let before = d1.status();
    let (v1_pid, v2_pid) = (web_pid_of(&before, "v1"), web_pid_of(&before, "v2"));
    groups.0.extend([v1_pid as i32, v2_pid as i32]);
    let since = before["canary"]["since"].clone();
    assert!(since.is_string(), "{before:#}");
    // What each release answers (the pid is the app's, maybe under sh).
    let port = d1.proxy_port();
    let mut answers = Vec::new();
    for release in ["v1", "v2"] {
        let cookie = format!("rollbridge_release={release}");
        let (code, _, body) = get_with_cookie(port, Some(&cookie)).unwrap();
        assert_eq!(code, 200);
        assert!(
            body.starts_with(&format!("release {release} pid ")),
            "{body}"
        );
        answers.push((cookie, body));
    }
    // The canary is on disk before the crash.
    wait_until("the canary in the state file", 10, || {
        std::fs::read_to_string(&state)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .is_some_and(|v| v["canary"]["releaseId"] == "v2")
    });

    let mut d1 = d1;
    d1.daemon.signal(libc::SIGKILL);
    d1.daemon.wait_exit(Duration::from_secs(5));
    assert!(
        alive(v1_pid) && alive(v2_pid),
        "both releases outlive the daemon"
    );

    let d2 = Deployment {
        daemon: TestDaemon::start_with(dir.clone(), config.clone(), &[]),
        releases: dir.join("releases"),
    };
    wait_until("the canary's share resumed", 20, || {
        events_of(&config).contains("canary resumed")
    });
    let s = d2.status();
    assert_eq!(s["activeReleaseId"], "v1");
    assert_eq!(
        s["canary"],
        serde_json::json!({"releaseId": "v2", "percent": 50, "since": since}),
        "{s:#}"
    );
    assert_eq!(release_of(&s, "v2")["state"], "canary");
    assert_eq!(release_of(&s, "v1")["state"], "active");
    assert_eq!(web_pid_of(&s, "v1"), v1_pid, "nothing was started");
    assert_eq!(web_pid_of(&s, "v2"), v2_pid, "nothing was started");
    let events = events_of(&config);
    assert!(!events.contains("process started"), "{events}");
    assert!(!events.contains("canary aborted"), "{events}");

    // Cookie clients stay on their release, and are not reassigned.
    let port = d2.proxy_port();
    for (cookie, answer) in &answers {
        for _ in 0..10 {
            let (code, head, body) = get_with_cookie(port, Some(cookie)).unwrap();
            assert_eq!(code, 200, "{head}");
            assert_eq!(&body, answer, "{cookie}: the same process answers");
            assert!(!has_set_cookie(&head), "{head}");
        }
    }
    // New clients are split again, each told its release.
    let mut seen = std::collections::HashSet::new();
    for _ in 0..40 {
        let (code, head, body) = get_with_cookie(port, None).unwrap();
        assert_eq!(code, 200, "{head}");
        assert!(has_set_cookie(&head), "{head}");
        seen.insert(body.split(' ').nth(1).unwrap_or_default().to_owned());
    }
    assert_eq!(seen.len(), 2, "both releases take new clients: {seen:?}");

    // A plain deploy is still refused; promote works.
    let out = d2.deploy("v3");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("\"v2\""), "{}", stderr(&out));
    let out = d2.daemon.cli(&["promote"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let s = d2.status();
    assert_eq!(s["activeReleaseId"], "v2");
    assert_eq!(s["canary"], Value::Null);
    for cookie in [None, Some("rollbridge_release=v2")] {
        let (code, _, body) = get_with_cookie(port, cookie).unwrap();
        assert_eq!(code, 200);
        assert_eq!(body, answers[1].1);
    }
    wait_until("the old active release stopped", 15, || !alive(v1_pid));
    drop(d2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_crash_during_a_replacement_keeps_the_named_instance_and_stops_the_other() {
    if !have_node() {
        return;
    }
    let mut groups = Groups::default();
    let dir = temp_dir("adopt-replace");
    let config = dir.join("rollbridge.json");
    let state = dir.join("state.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"application":"adopt-replace","statePath":"{}","adoptOrphans":true,"control":{{"path":"{}"}},"proxy":{{"port":0,"drainTimeoutMs":60000}},"processes":[{{"id":"web","policy":"proxied","command":"node {} {{{{port}}}}","port":{{"from":0,"to":0}},"health":{{"intervalMs":20,"timeoutMs":10000}}}}]}}"#,
            state.display(),
            dir.join("c.sock").display(),
            fixture("app.js")
        ),
    )
    .unwrap();
    let mut d1 = Deployment {
        daemon: TestDaemon::start_with(dir.clone(), config.clone(), &[]),
        releases: dir.join("releases"),
    };
    d1.deploy_ok("v1");
    let old = web_pid_of(&d1.status(), "v1");
    groups.0.push(old as i32);
    // An open tunnel keeps the old instance draining after the switch.
    let port = d1.proxy_port();
    let stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (mut ws, _) =
        tungstenite::client::client(format!("ws://127.0.0.1:{port}/ws"), stream).unwrap();
    ws.send(tungstenite::Message::text("hi")).unwrap();
    let out = d1.daemon.cli(&["restart", "--process", "web"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let new = web_pid_of(&d1.status(), "v1");
    groups.0.push(new as i32);
    assert_ne!(new, old);
    wait_until("the draining instance in the state file", 10, || {
        std::fs::read_to_string(&state)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .is_some_and(|v| v["replacing"][0]["pid"].as_i64() == Some(old))
    });

    d1.daemon.signal(libc::SIGKILL);
    d1.daemon.wait_exit(Duration::from_secs(5));
    drop(ws);
    assert!(
        alive(old) && alive(new),
        "both instances outlive the daemon"
    );

    let d2 = TestDaemon::start_with(dir.clone(), config.clone(), &[]);
    let new_port = status_of(&config)["proxy"]["port"].as_u64().unwrap() as u16;
    wait_until("traffic on the named instance", 15, || {
        get(new_port, "/").is_ok_and(|(c, _)| c == 200)
    });
    let s = status_of(&config);
    let web = process(&s, "web");
    assert_eq!(web["pid"].as_i64(), Some(new), "the named instance serves");
    assert_eq!(web["adopted"], true);
    wait_until("the other instance stopped", 15, || !alive(old));
    let events = events_of(&config);
    assert!(events.contains("adopted process stopped"), "{events}");
    assert!(!events.contains("process started"), "{events}");
    drop(d2);
    let _ = std::fs::remove_dir_all(&dir);
}
