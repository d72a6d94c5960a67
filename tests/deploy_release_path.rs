//! Release paths over the control socket, with the real binary: the CLI
//! sends them absolute (resolved against its own cwd), and the daemon,
//! whose cwd differs, refuses relative ones.

mod deploy_support;
use deploy_support::*;

use std::process::{Command, Stdio};

fn web() -> String {
    format!(
        r#"[{{"id":"web","policy":"proxied","command":"{BIN} demo-app --port {{{{port}}}}","port":{{"from":0,"to":0}},"health":{{"intervalMs":20,"timeoutMs":5000}}}}]"#
    )
}

#[test]
fn relative_release_path_is_resolved_against_the_cli_cwd() {
    let d = Deployment::start("relpath", "", &web());
    std::fs::create_dir_all(d.releases.join("v1")).unwrap();
    // Run from the deployment dir: `releases/./v1` only exists from there.
    let out = Command::new(BIN)
        .args(["deploy", "--release-path", "releases/./v1", "--config"])
        .arg(&d.daemon.config)
        .current_dir(d.dir())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "deploy failed: {}",
        stderr(&out)
    );
    let release = &d.status()["releases"][0];
    let expected = d.releases.join("v1");
    assert_eq!(release["releasePath"], expected.to_str().unwrap());
}

#[test]
fn daemon_refuses_a_relative_release_path() {
    let d = Deployment::start("relraw", "", &web());
    let line = d
        .daemon
        .request(r#"{"command":"deploy","releasePath":"releases/v1"}"#);
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["status"], "error", "{line}");
    assert_eq!(
        v["error"],
        r#"releasePath must be an absolute path, got "releases/v1""#
    );
    assert_eq!(
        line,
        r#"{"error":"releasePath must be an absolute path, got \"releases/v1\"","status":"error"}"#
    );
    assert!(d.status()["releases"].as_array().unwrap().is_empty());
}
