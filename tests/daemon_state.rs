//! Persisted state and orphan reporting with the real binary.

mod daemon_support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use daemon_support::*;

fn config_with_state(dir: &std::path::Path, app: &str) -> std::path::PathBuf {
    let path = dir.join("rollbridge.json");
    std::fs::write(
        &path,
        format!(
            r#"{{"application":"{app}","control":{{"path":"{}"}},"statePath":"{}","proxy":{{"port":0}},"processes":[{{"id":"web","command":"sleep 1000","policy":"proxied","port":{{"from":0,"to":0}}}}]}}"#,
            dir.join("c.sock").display(),
            dir.join("state.json").display()
        ),
    )
    .unwrap();
    path
}

fn wait_file(path: &std::path::Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(t) = std::fs::read_to_string(path) {
            if !t.is_empty() {
                return t;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{} never written",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn state_is_written_once_serving_and_deleted_on_clean_shutdown() {
    let dir = temp_dir("state");
    let config = config_with_state(&dir, "state");
    let mut d = TestDaemon::start_with(dir.clone(), config, &[]);
    let text = wait_file(&dir.join("state.json"));
    assert!(text.starts_with("{\n  \"activeReleaseId\": null,\n  \"application\": \"state\","));
    assert!(text.ends_with("}\n"));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(v.get("status").is_none());
    assert!(v["persistedAt"].as_str().unwrap().ends_with('Z'));
    let messages: Vec<_> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert!(messages.contains(&"control socket listening"));
    assert_eq!(d.cli(&["shutdown"]).status.code(), Some(0));
    assert!(
        !dir.join("state.json").exists(),
        "cleared by clean shutdown"
    );
    assert_eq!(d.wait_exit(Duration::from_secs(5)), Some(0));
}

#[test]
fn live_pids_from_the_last_snapshot_are_reported_as_orphans() {
    let dir = temp_dir("orphans");
    let config = config_with_state(&dir, "orphans");
    let mut sleeper = Command::new("sleep")
        .arg("30")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let live = sleeper.id();
    // A dead pid: a process we started and reaped.
    let mut gone = Command::new("true").spawn().unwrap();
    let dead = gone.id();
    gone.wait().unwrap();
    std::fs::write(
        dir.join("state.json"),
        format!(
            r#"{{"activeReleaseId":"v1","releases":[{{"releaseId":"v1","processes":[{{"id":"web","pid":{live}}},{{"id":"worker","pid":{dead}}}]}}],"services":[],"singletons":[]}}"#
        ),
    )
    .unwrap();
    let mut d = TestDaemon::start_with(dir.clone(), config, &[]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&d.cli(&["status"]))).unwrap();
    assert_eq!(
        v["orphans"],
        serde_json::json!([{"id": "web", "pid": live, "releaseId": "v1"}])
    );
    let detected = d
        .stdout
        .wait_for("orphaned managed process detected", Duration::from_secs(1))
        .unwrap();
    assert!(detected.contains(&format!("\"pid\":{live}")));
    assert!(
        d.stdout
            .wait_for(
                "orphaned processes from a previous daemon",
                Duration::from_secs(1)
            )
            .is_some()
    );
    // Never signalled.
    assert!(sleeper.try_wait().unwrap().is_none());

    // Shutdown while the orphan lives: the state keeps only the orphans.
    assert_eq!(d.cli(&["shutdown"]).status.code(), Some(0));
    assert_eq!(d.wait_exit(Duration::from_secs(5)), Some(0));
    let kept: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("state.json")).unwrap()).unwrap();
    assert_eq!(
        kept,
        serde_json::json!({"activeReleaseId": null, "orphans": [{"id": "web", "pid": live, "releaseId": "v1"}], "releases": [], "services": [], "singletons": []})
    );
    assert!(sleeper.try_wait().unwrap().is_none(), "still untouched");

    // Once it dies, the next daemon's status drops it.
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
    let d2 = TestDaemon::start_with(dir.clone(), dir.join("rollbridge.json"), &[]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&d2.cli(&["status"]))).unwrap();
    assert_eq!(v["orphans"], serde_json::json!([]));
}
