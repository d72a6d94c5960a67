//! Deploys through the real binary with real fixture processes: the switch,
//! every failure path leaving the previous release serving, each policy's
//! semantics, stop and rollback.

mod deploy_support;
use deploy_support::*;

use std::time::{Duration, Instant};

fn web(range: &str) -> String {
    format!(
        r#"{{"id":"web","policy":"proxied","command":"{BIN} demo-app --port {{{{port}}}}","port":{range},"health":{{"intervalMs":20,"timeoutMs":5000}}}}"#
    )
}

#[test]
fn first_deploy_serves_through_the_proxy() {
    let d = Deployment::start("first", "", &format!("[{}]", web(&range(21000, 20))));
    let out = d.deploy_ok("v1");
    assert_eq!(out["activeReleaseId"], "v1");
    assert_eq!(out["previousReleaseId"], serde_json::Value::Null);
    let (status, body) = get(d.proxy_port(), "/").unwrap();
    assert_eq!(status, 200);
    assert!(body.starts_with("hello from release v1"), "{body}");
    let s = d.status();
    assert_eq!(s["activeReleaseId"], "v1");
    let r = &s["releases"][0];
    assert_eq!(r["state"], "active");
    assert_eq!(r["ports"]["web"], 21000);
    assert!(r["activatedAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(process(r, "web")["lastStartReason"], "deploy");
}

#[test]
fn second_deploy_switches_traffic_and_drains_the_first() {
    let d = Deployment::start("second", "", &format!("[{}]", web(&range(21100, 20))));
    d.deploy_ok("v1");
    let port = d.proxy_port();
    let out = d.deploy_ok("v2");
    assert_eq!(out["previousReleaseId"], "v1");
    let (_, body) = get(port, "/").unwrap();
    assert!(body.starts_with("hello from release v2"), "{body}");
    d.wait_status("v1 stopped", 10, |s| {
        s["releases"][0]["state"] == "stopped" && s["releases"][0]["stoppedAt"].is_string()
    });
    let s = d.status();
    assert_eq!(
        s["releases"][1]["ports"]["web"], 21101,
        "draining ports are not reused"
    );
    assert!(s["releases"][0]["drainStartedAt"].is_string());
    let events = stdout(&d.daemon.cli(&["events", "--json"]));
    assert!(events.contains("\"traffic switched\""));
    assert!(events.contains("\"release drained\""));
}

#[test]
fn health_failure_leaves_the_previous_release_serving() {
    if !have_node() {
        return;
    }
    let app = fixture("app.js");
    let procs = |unhealthy: &str| {
        format!(
            r#"[{{"id":"web","policy":"proxied","command":"node {app} {{{{port}}}}","port":{},"env":{{"UNHEALTHY":"{unhealthy}"}},"health":{{"intervalMs":50,"timeoutMs":1500}}}}]"#,
            range(21200, 20)
        )
    };
    let d = Deployment::start("health", "", &procs("0"));
    d.deploy_ok("v1");
    let port = d.proxy_port();
    d.rewrite("health", "", &procs("1"));
    let out = d.deploy("v2");
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("Health check failed for http://127.0.0.1:21201/ping: HTTP 503"),
        "{err}"
    );
    let (_, body) = get(port, "/").unwrap();
    assert!(body.starts_with("release v1"), "{body}");
    let s = d.status();
    assert_eq!(s["activeReleaseId"], "v1");
    assert_eq!(
        s["releases"].as_array().unwrap().len(),
        1,
        "a failed start is not retained"
    );
    let events = stdout(&d.daemon.cli(&["events"]));
    for e in [
        "release startup failed",
        "release startup process status",
        "deploy failed",
        "\"phase\":\"after cleanup\"",
    ] {
        assert!(events.contains(e), "{e} missing in {events}");
    }
}

#[test]
fn proxied_process_exiting_during_its_health_check_fails_at_once() {
    let procs = |cmd: &str| {
        format!(
            r#"[{{"id":"web","policy":"proxied","command":"{cmd}","port":{},"restartDelayMs":60000,"health":{{"intervalMs":50,"timeoutMs":30000}}}}]"#,
            range(21300, 20)
        )
    };
    let d = Deployment::start(
        "exits",
        "",
        &procs(&format!("{BIN} demo-app --port {{{{port}}}}")),
    );
    d.deploy_ok("v1");
    d.rewrite("exits", "", &procs("echo boom; exit 3"));
    let started = Instant::now();
    let out = d.deploy("v2");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "waited out the timeout"
    );
    let err = stderr(&out);
    assert!(
        err.contains("Health check failed") && err.contains("exited (code 3)"),
        "{err}"
    );
    let (_, body) = get(d.proxy_port(), "/").unwrap();
    assert!(body.starts_with("hello from release v1"));
}

#[test]
fn spawn_failure_leaves_the_previous_release_serving() {
    let procs = |cwd: &str| {
        format!(
            r#"[{},{{"id":"worker","command":"sleep 1000","cwd":"{cwd}"}}]"#,
            web(&range(21400, 20))
        )
    };
    let d = Deployment::start("spawn", "", &procs("{{releasePath}}"));
    d.deploy_ok("v1");
    d.rewrite("spawn", "", &procs("/nonexistent/dir"));
    let out = d.deploy("v2");
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("worker") && err.contains("/nonexistent/dir"),
        "{err}"
    );
    let (_, body) = get(d.proxy_port(), "/").unwrap();
    assert!(body.starts_with("hello from release v1"));
    assert_eq!(d.status()["activeReleaseId"], "v1");
}

#[test]
fn template_error_fails_the_deploy_naming_the_placeholder() {
    let d = Deployment::start("tmpl", "", &format!("[{}]", web(&range(21450, 10))));
    d.deploy_ok("v1");
    d.rewrite(
        "tmpl",
        "",
        &format!(
            "[{}]",
            // Validation catches unknown placeholders; an unset variable
            // still fails only when the daemon renders it.
            web(&range(21450, 10))
                .replace("--port", "--nope {{env.ROLLBRIDGE_TEST_UNSET_NOPE}} --port")
        ),
    );
    let out = d.deploy("v2");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("Missing template value for {{env.ROLLBRIDGE_TEST_UNSET_NOPE}}"),
        "{}",
        stderr(&out)
    );
    assert_eq!(d.status()["activeReleaseId"], "v1");
}

#[test]
fn port_exhaustion_leaves_the_previous_release_serving() {
    // One port: v1 holds it while active, so v2 cannot get one.
    let d = Deployment::start("ports", "", &format!("[{}]", web(&range(21500, 1))));
    d.deploy_ok("v1");
    let out = d.deploy("v2");
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("No available ports in range 21500-21500 (1 port on 127.0.0.1): 0 reserved by this deploy, 1 already in use"),
        "{err}"
    );
    let (_, body) = get(d.proxy_port(), "/").unwrap();
    assert!(body.starts_with("hello from release v1"));
}

#[test]
fn config_change_needing_a_restart_is_refused() {
    let d = Deployment::start("compat", "", &format!("[{}]", web(&range(21550, 10))));
    d.deploy_ok("v1");
    d.rewrite(
        "compat",
        r#""host":"127.0.0.1","upstreamHost":"localhost""#,
        &format!("[{}]", web(&range(21560, 10))),
    );
    let out = d.deploy("v2");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("Config changes to proxy.upstreamHost, processes cannot be applied live; restart the Rollbridge daemon before deploying."),
        "{}",
        stderr(&out)
    );
}

#[test]
fn companions_belong_to_their_release() {
    let d = Deployment::start(
        "companion",
        "",
        &format!(
            r#"[{},{{"id":"worker","command":"sleep 1000","replicas":2}}]"#,
            web(&range(21600, 20))
        ),
    );
    d.deploy_ok("v1");
    let v1 = d.release("v1");
    let ids: Vec<_> = v1["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["worker#0", "worker#1", "web"]);
    d.deploy_ok("v2");
    d.wait_status("v1 stopped", 10, |s| s["releases"][0]["state"] == "stopped");
    let v1 = d.release("v1");
    assert_eq!(process(&v1, "worker#0")["state"], "stopped");
    let v2 = d.release("v2");
    assert_eq!(process(&v2, "worker#1")["state"], "running");
}

fn lines(path: &std::path::Path) -> Vec<(String, String, u128)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut it = l.split(' ');
            Some((
                it.next()?.to_owned(),
                it.next()?.to_owned(),
                it.next()?.parse().ok()?,
            ))
        })
        .collect()
}

#[test]
fn singletons_never_overlap() {
    let rec = fixture("recorder.sh");
    let logs = temp_dir("singleton-log");
    let log = logs.join("singleton.log");
    let procs = format!(
        r#"[{},{{"id":"cron","policy":"singleton","command":"{rec} {} cron-{{{{releaseId}}}}"}}]"#,
        web(&range(21700, 20)),
        log.display()
    );
    let d = Deployment::start("singleton", "", &procs);
    for v in ["v1", "v2", "v3"] {
        d.deploy_ok(v);
    }
    let s = d.status();
    assert_eq!(s["singletons"].as_array().unwrap().len(), 1);
    assert!(
        s["singletons"][0]["process"]["command"]
            .as_str()
            .unwrap()
            .ends_with("cron-v3")
    );
    // From the processes' own records: each start follows the previous stop.
    let deadline = Instant::now() + Duration::from_secs(5);
    while lines(&log).len() < 5 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let l = lines(&log);
    let kinds: Vec<_> = l.iter().map(|(k, n, _)| format!("{k} {n}")).collect();
    assert_eq!(
        kinds,
        [
            "start cron-v1",
            "stop cron-v1",
            "start cron-v2",
            "stop cron-v2",
            "start cron-v3"
        ]
    );
    for w in l.windows(2) {
        assert!(w[0].2 <= w[1].2, "records out of order: {l:?}");
    }
}

#[test]
fn services_survive_deploys_on_a_stable_port_and_restart_from_the_newest_template() {
    let rec = fixture("recorder.sh");
    let logs = temp_dir("service-log");
    let log = logs.join("service.log");
    let procs = format!(
        r#"[{},{{"id":"broker","policy":"service","command":"{rec} {} broker-{{{{releaseId}}}}-{{{{port}}}}","port":{},"restartDelayMs":10}}]"#,
        web(&range(21800, 20)),
        log.display(),
        range(21850, 10)
    );
    let d = Deployment::start("service", "", &procs);
    d.deploy_ok("v1");
    let pid1 = d.status()["services"][0]["process"]["pid"]
        .as_u64()
        .unwrap();
    d.deploy_ok("v2");
    let s = d.status();
    assert_eq!(
        s["services"][0]["process"]["pid"].as_u64().unwrap(),
        pid1,
        "service was bounced"
    );
    assert_eq!(s["releases"][1]["ports"]["broker"], 21850);
    assert_eq!(s["releases"][0]["ports"]["broker"], 21850);
    // Crash it: the restart uses the definition rendered from v2.
    unsafe { libc::kill(-(pid1 as i32), libc::SIGKILL) };
    d.wait_status("broker restarted", 10, |s| {
        s["services"][0]["process"]["pid"]
            .as_u64()
            .is_some_and(|p| p != pid1)
            && s["services"][0]["process"]["state"] == "running"
    });
    let s = d.status();
    assert_eq!(s["services"][0]["process"]["lastStartReason"], "crash");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !lines(&log)
        .iter()
        .any(|(k, n, _)| k == "start" && n == "broker-v2-21850")
    {
        assert!(Instant::now() < deadline, "{:?}", lines(&log));
        std::thread::sleep(Duration::from_millis(20));
    }
    let starts: Vec<_> = lines(&log)
        .into_iter()
        .filter(|(k, _, _)| k == "start")
        .map(|(_, n, _)| n)
        .collect();
    assert_eq!(starts, ["broker-v1-21850", "broker-v2-21850"]);
}

#[test]
fn stop_leaves_no_active_release_and_the_proxy_answers_503() {
    let d = Deployment::start("stop", "", &format!("[{}]", web(&range(21900, 10))));
    d.deploy_ok("v1");
    let port = d.proxy_port();
    let out = d.daemon.cli(&["stop"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let s: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(s["activeReleaseId"], serde_json::Value::Null);
    assert_eq!(s["releases"][0]["state"], "stopped");
    assert_eq!(
        get(port, "/").unwrap(),
        (503, "No active release\n".to_owned())
    );
    let out = d.daemon.cli(&["stop"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("Release not found: active"));
    // The next deploy serves again.
    d.deploy_ok("v2");
    assert_eq!(get(port, "/").unwrap().0, 200);
}

#[test]
fn rollback_reactivates_the_previous_release() {
    let d = Deployment::start("rollback", "", &format!("[{}]", web(&range(21950, 20))));
    d.deploy_ok("v1");
    d.deploy_ok("v2");
    let out = d.daemon.cli(&["rollback"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["activeReleaseId"], "v1");
    assert_eq!(v["previousReleaseId"], "v2");
    let (_, body) = get(d.proxy_port(), "/").unwrap();
    assert!(body.starts_with("hello from release v1"), "{body}");
    let ids: Vec<_> = d.status()["releases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["releaseId"].clone())
        .collect();
    assert_eq!(ids, ["v1", "v2"], "rollback keeps the map position");
    let out = d.daemon.cli(&["rollback", "--release-id", "v1"]);
    assert!(stderr(&out).contains("Release \"v1\" is already active."));
}

#[test]
fn status_answers_while_a_deploy_waits_on_its_health_check() {
    if !have_node() {
        return;
    }
    let app = fixture("app.js");
    let procs = format!(
        r#"[{{"id":"web","policy":"proxied","command":"node {app} {{{{port}}}}","port":{},"env":{{"UNHEALTHY":"1"}},"health":{{"intervalMs":50,"timeoutMs":3000}}}}]"#,
        range(22000, 10)
    );
    let d = Deployment::start("busy", "", &procs);
    let config = d.daemon.config.clone();
    let release = d.releases.join("v1");
    std::fs::create_dir_all(&release).unwrap();
    let deploying = std::thread::spawn(move || {
        deploy_support::daemon_support::cli(
            &config,
            &["deploy", "--release-path", release.to_str().unwrap()],
        )
    });
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let s = d.status();
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(s["activeReleaseId"], serde_json::Value::Null);
    // A second mutating command waits its turn and then gets its answer.
    let out = d.daemon.cli(&["stop"]);
    assert!(stderr(&out).contains("Release not found: active"));
    assert_eq!(deploying.join().unwrap().status.code(), Some(1));
}

#[test]
fn deploy_with_ensure_daemon_starts_one_and_reuses_it() {
    let dir = temp_dir("ensure");
    let config = dir.join("rollbridge.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"application":"ensure-deploy","control":{{"path":"{}"}},"proxy":{{"port":0}},"processes":[{}]}}"#,
            dir.join("c.sock").display(),
            web(&range(22300, 10))
        ),
    )
    .unwrap();
    let release = dir.join("r1");
    std::fs::create_dir_all(&release).unwrap();
    let run = |id: &str| {
        deploy_support::daemon_support::cli(
            &config,
            &[
                "deploy",
                "--ensure-daemon",
                "--release-path",
                release.to_str().unwrap(),
                "--release-id",
                id,
                "--daemon-log-path",
                dir.join("d.log").to_str().unwrap(),
                "--daemon-pid-path",
                dir.join("d.pid").to_str().unwrap(),
                "--daemon-runtime-path",
                dir.join("rt").to_str().unwrap(),
            ],
        )
    };
    let out = run("v1");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let pid = std::fs::read_to_string(dir.join("d.pid")).unwrap();
    let out = run("v2");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(dir.join("d.pid")).unwrap(),
        pid,
        "one daemon"
    );
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["previousReleaseId"], "v1");
    let out = deploy_support::daemon_support::cli(&config, &["shutdown"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_config_that_needs_node_reloads_inside_the_daemon() {
    // The daemon reaps every child with waitpid(-1); the node loader must
    // not depend on waiting for its own child there.
    if !have_node() {
        return;
    }
    let dir = temp_dir("nodecfg");
    let config = dir.join("rollbridge.js");
    std::fs::write(
        &config,
        format!(
            "const web = {};\nexport default {{application: 'nodecfg', control: {{path: '{}'}}, proxy: {{port: 0}}, processes: [{{...web}}]}};\n",
            web(&range(22500, 10)),
            dir.join("c.sock").display()
        ),
    )
    .unwrap();
    let daemon = TestDaemon::start_with(dir.clone(), config, &[]);
    for id in ["v1", "v2"] {
        let release = dir.join(id);
        std::fs::create_dir_all(&release).unwrap();
        let out = daemon.cli(&[
            "deploy",
            "--release-path",
            release.to_str().unwrap(),
            "--release-id",
            id,
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
}
