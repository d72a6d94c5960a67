//! What an operator sees when something is off, through the real binary:
//! connect errors with their meaning and next step, a non-socket file at
//! control.path, base ids in `logs --process`, and a deploy that waits in
//! the queue saying what it waits for.

mod deploy_support;
use deploy_support::*;

use std::time::Duration;

fn web(range: &str, health: &str) -> String {
    format!(
        r#"{{"id":"web","policy":"proxied","command":"{BIN} demo-app --port {{{{port}}}}","port":{range},"health":{{"intervalMs":20,"timeoutMs":5000{health}}}}}"#
    )
}

#[test]
fn status_without_a_socket_file_keeps_the_os_error_and_says_how_to_start() {
    let dir = temp_dir("enoent");
    let config = daemon_support::write_config(&dir, "enoent", "", 0);
    let sock = dir.join("c.sock");
    let out = daemon_support::cli(&config, &["status"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    let mut lines = err.lines();
    assert_eq!(
        lines.next(),
        Some(format!("connect ENOENT {}", sock.display()).as_str())
    );
    let hint = lines.next().unwrap_or_default();
    assert!(
        hint.starts_with(&format!(
            "No Rollbridge daemon is listening at {} (no socket file).",
            sock.display()
        )),
        "{err}"
    );
    assert!(hint.contains("--ensure-daemon") && hint.contains(&config.display().to_string()));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn status_on_a_stale_socket_says_the_daemon_is_not_running() {
    let dir = temp_dir("refused");
    let config = daemon_support::write_config(&dir, "refused", "", 0);
    let sock = dir.join("c.sock");
    // A socket file nobody listens on any more.
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    let out = daemon_support::cli(&config, &["status"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!("connect ECONNREFUSED {}\n", sock.display())),
        "{err}"
    );
    assert!(
        err.contains("crash")
            && err.contains("rollbridge recover")
            && err.contains("rollbridge doctor"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn regular_file_at_control_path_is_kept_and_named() {
    let dir = temp_dir("regfile");
    let config = daemon_support::write_config(&dir, "regfile", "", 0);
    let sock = dir.join("c.sock");
    std::fs::write(&sock, "operator notes").unwrap();
    let mut d = TestDaemon::spawn(dir.clone(), config, &[]);
    assert_eq!(
        d.wait_exit(Duration::from_secs(10)),
        Some(1),
        "daemon must refuse to start"
    );
    assert_eq!(std::fs::read_to_string(&sock).unwrap(), "operator notes");
    let err = d.stderr.all().join("\n");
    assert!(
        err.contains(&format!(
            "control.path {} is a regular file",
            sock.display()
        )),
        "{err}"
    );
    assert!(err.contains("Choose another control.path"), "{err}");
}

#[test]
fn logs_base_id_selects_every_instance() {
    let worker =
        r#"{"id":"worker","policy":"companion","replicas":2,"command":"echo started; sleep 1000"}"#;
    let d = Deployment::start(
        "logsbase",
        "",
        &format!("[{},{worker}]", web(&range(21700, 20), "")),
    );
    d.deploy_ok("v1");
    let out = d.daemon.cli(&["logs", "--process", "worker", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let ids: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(ids, ["worker#0", "worker#1"]);
    let human = stdout(&d.daemon.cli(&["logs", "--process", "worker"]));
    assert!(
        human.contains("== worker#0 [release v1 (active)] =="),
        "{human}"
    );
    assert!(!human.contains("No process found"), "{human}");
}

#[test]
fn queued_deploy_says_what_it_waits_for() {
    // v1's health check starts late, so v1 stays "starting" for a while.
    let slow = web(&range(21750, 20), r#","startDelayMs":3000"#);
    let d = Deployment::start("queued", "", &format!("[{slow}]"));
    std::thread::scope(|s| {
        let first = s.spawn(|| d.deploy("v1"));
        wait_for_event(&d, "deploy starting");
        let second = d.deploy("v2");
        assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
        assert!(
            stderr(&second).contains("Waiting for the running deploy of v1 to finish…"),
            "{}",
            stderr(&second)
        );
        let out: serde_json::Value = serde_json::from_str(&stdout(&second)).unwrap();
        assert_eq!(out["activeReleaseId"], "v2");
        assert_eq!(first.join().unwrap().status.code(), Some(0));
    });
}

/// Polls `events --json` until an event with `message` is there.
fn wait_for_event(d: &Deployment, message: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        let out = stdout(&d.daemon.cli(&["events", "--json"]));
        if out.contains(&format!("\"message\": \"{message}\"")) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no {message:?} event within 10 s");
}
