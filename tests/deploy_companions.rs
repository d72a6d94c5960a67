//! The companion check before the switch, through the real binary: a new
//! release whose companion crash-loops fails its deploy, and the previous
//! release keeps serving with its own companion.

mod deploy_support;
use deploy_support::*;

fn config(range: &str, worker: &str) -> String {
    format!(
        r#"[{{"id":"worker","command":"{worker}","restartDelayMs":100}},{{"id":"web","policy":"proxied","command":"{BIN} demo-app --port {{{{port}}}}","port":{range},"health":{{"intervalMs":20,"timeoutMs":5000}}}}]"#
    )
}

#[test]
fn crash_looping_companion_fails_the_deploy_and_the_old_release_keeps_serving() {
    let ports = range(22480, 10);
    let d = Deployment::start("companion-loop", "", &config(&ports, "sleep 1000"));
    d.deploy_ok("v1");
    let port = d.proxy_port();
    d.rewrite(
        "companion-loop",
        "",
        &config(
            &ports,
            "echo worker up; sleep 0.3; echo worker dying >&2; exit 3",
        ),
    );
    let out = d.deploy("v2");
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("Companion \"worker\" exited (code 3)") && err.contains("worker dying"),
        "{err}"
    );
    let (status, body) = get(port, "/").unwrap();
    assert_eq!(status, 200);
    assert!(body.starts_with("hello from release v1"), "{body}");
    let s = d.status();
    assert_eq!(s["activeReleaseId"], "v1");
    let v1 = d.release("v1");
    assert_eq!(v1["state"], "active");
    assert_eq!(process(&v1, "worker")["state"], "running");
    assert_eq!(d.release("v2"), serde_json::Value::Null, "{s:#}");
}

#[test]
fn companion_that_stays_up_passes_the_check() {
    let d = Deployment::start(
        "companion-ok",
        "",
        &config(&range(22490, 10), "exec sleep 1000"),
    );
    let started = std::time::Instant::now();
    d.deploy_ok("v1");
    // The settle window is one second at most.
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let v1 = d.release("v1");
    assert_eq!(process(&v1, "worker")["restarts"], 0);
    assert_eq!(process(&v1, "worker")["state"], "running");
}
