//! Memory restarts through the real binary: a process over its limit right
//! after every start is restarted on the crash-restart backoff (with an
//! event saying the delay each time) and gives up at `maxRestarts`.

mod deploy_support;
use deploy_support::*;

use std::time::{Duration, Instant};

fn config(range: &str, restart: &str) -> String {
    format!(
        r#"[{{"id":"web","policy":"proxied","command":"{BIN} demo-app --port {{{{port}}}}","port":{range},"health":{{"intervalMs":20,"timeoutMs":5000}}}},{{"id":"hog","policy":"singleton","command":"sh {} 30000000","restartDelayMs":100,"restart":{restart},"memory":{{"limitBytes":10000000,"checkIntervalMs":50}}}}]"#,
        fixture("hog.sh"),
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

fn hog(d: &Deployment) -> serde_json::Value {
    d.status()["singletons"]
        .as_array()
        .and_then(|s| s.iter().find(|p| p["id"] == "hog"))
        .map(|p| p["process"].clone())
        .unwrap_or_default()
}

#[test]
fn memory_restarts_back_off_like_crash_restarts() {
    let d = Deployment::start(
        "mem-backoff",
        "",
        &config(&range(22440, 10), r#"{"backoffFactor":2}"#),
    );
    d.deploy_ok("v1");
    let t0 = Instant::now();
    d.wait_status("three delayed memory restarts", 10, |_| {
        events(&d, "memory restart delayed").len() >= 3
    });
    let delays: Vec<u64> = events(&d, "memory restart delayed")
        .iter()
        .take(3)
        .map(|e| e["delayMs"].as_u64().unwrap())
        .collect();
    assert_eq!(delays, [100, 200, 400]);
    let first = &events(&d, "memory restart delayed")[0];
    assert_eq!(first["id"], "hog");
    assert_eq!(first["processId"], "hog");
    // 100 + 200 ms of backoff before the third: never a tight loop.
    assert!(t0.elapsed() >= Duration::from_millis(300));
    let exceeded = events(&d, "memory limit exceeded").len();
    let restarts = hog(&d)["memoryRestarts"].as_u64().unwrap() as usize;
    assert!(
        restarts <= exceeded && exceeded <= restarts + 1,
        "{restarts} memory restarts for {exceeded} limits exceeded"
    );
}

#[test]
fn memory_restarts_stop_at_max_restarts() {
    let d = Deployment::start(
        "mem-limit",
        "",
        &config(&range(22460, 10), r#"{"maxRestarts":1}"#),
    );
    d.deploy_ok("v1");
    d.wait_status("the restart limit", 10, |_| {
        !events(&d, "restart limit reached").is_empty()
    });
    let limit = &events(&d, "restart limit reached")[0];
    assert_eq!(limit["id"], "hog");
    assert_eq!(limit["maxRestarts"], 1);
    std::thread::sleep(Duration::from_millis(500));
    let h = hog(&d);
    assert_eq!(h["memoryRestarts"], 1, "{h:#}");
    assert_eq!(h["lastStartReason"], "memory");
    assert!(h["lastMemoryRestartAt"].is_string());
    assert_eq!(h["state"], "failed");
    assert_eq!(events(&d, "memory limit exceeded").len(), 2);
}
