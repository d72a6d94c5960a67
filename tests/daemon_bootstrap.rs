//! Foreground bootstrap through the real binary: the release is activated
//! before the control socket is exposed, every option error exits 1 naming
//! its flag before anything binds, and a failed activation exits 1.

mod deploy_support;
use deploy_support::*;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const ATTESTATION: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn write_config(dir: &Path, app: &str, web_env: &str, range: &str) -> PathBuf {
    let config = format!(
        r#"{{"application":"{app}","control":{{"path":"{sock}"}},"proxy":{{"host":"127.0.0.1","port":0}},"processes":[{{"id":"web","policy":"proxied","command":"node {js} {{{{port}}}}","port":{range},"env":{{{web_env}}},"health":{{"path":"/ping","intervalMs":20,"timeoutMs":3000}}}}]}}"#,
        sock = dir.join("c.sock").display(),
        js = fixture("app.js"),
    );
    let path = dir.join("rollbridge.json");
    std::fs::write(&path, config).unwrap();
    path
}

fn release(dir: &Path, id: &str) -> PathBuf {
    let p = dir.join("releases").join(id);
    std::fs::create_dir_all(&p).unwrap();
    p
}

fn boot(dir: &Path, config: &Path, args: &[&str]) -> TestDaemon {
    let mut cmd = Command::new(BIN);
    cmd.arg("daemon").arg("--config").arg(config).args(args);
    TestDaemon::spawn_command(dir.to_path_buf(), config.to_path_buf(), cmd)
}

#[test]
fn bootstrap_activates_the_release_before_exposing_control() {
    if !have_node() {
        eprintln!("skipped: node is not installed");
        return;
    }
    let dir = temp_dir("boot-ok");
    let config = write_config(&dir, "boot-ok", "", &range(23200, 10));
    let rp = release(&dir, "v1");
    let d = boot(
        &dir,
        &config,
        &[
            "--release-path",
            rp.to_str().unwrap(),
            "--release-id",
            "v1",
            "--revision",
            "r1",
            "--boot-attestation",
            ATTESTATION,
        ],
    );
    d.wait_ready();
    let lines = d.stdout.all();
    let pos = |m: &str| {
        lines
            .iter()
            .position(|l| l.contains(&format!("\"message\":\"{m}\"")))
            .unwrap_or_else(|| panic!("no {m}: {lines:#?}"))
    };
    assert!(pos("proxy listening") < pos("deploy starting"));
    assert!(pos("traffic switched") < pos("control socket listening"));

    let out = d.cli(&["status"]);
    let s: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(s["activeReleaseId"], "v1");
    assert_eq!(
        s["bootstrap"],
        serde_json::json!({"attestation": ATTESTATION, "releaseId": "v1",
            "releasePath": rp.to_str().unwrap(), "revision": "r1"})
    );
    let keys: Vec<&String> = s["bootstrap"].as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["attestation", "releaseId", "releasePath", "revision"]
    );
    let port = s["proxy"]["port"].as_u64().unwrap() as u16;
    let (status, body) = get(port, "/").unwrap();
    assert_eq!(status, 200);
    assert!(body.starts_with("release v1"), "{body}");
}

#[test]
fn failed_bootstrap_exits_1_and_never_exposes_control() {
    if !have_node() {
        return;
    }
    let dir = temp_dir("boot-fail");
    let config = write_config(&dir, "boot-fail", r#""UNHEALTHY":"1""#, &range(23215, 5));
    let rp = release(&dir, "v1");
    let mut d = boot(
        &dir,
        &config,
        &[
            "--release-path",
            rp.to_str().unwrap(),
            "--release-id",
            "v1",
            "--revision",
            "r1",
        ],
    );
    assert_eq!(d.wait_exit(Duration::from_secs(20)), Some(1));
    let lines = d.stdout.all().join("\n");
    let failed = lines
        .lines()
        .find(|l| l.contains("bootstrap activation failed"))
        .unwrap_or_else(|| panic!("no failure event: {lines}"));
    let v: serde_json::Value = serde_json::from_str(failed).unwrap();
    assert_eq!(
        v["data"],
        serde_json::json!({"releaseId": "v1", "status": "error"})
    );
    assert!(!lines.contains("control socket listening"), "{lines}");
    assert!(!d.socket.exists());
}

#[test]
fn sigterm_during_bootstrap_exits_0() {
    if !have_node() {
        return;
    }
    let dir = temp_dir("boot-term");
    let config = write_config(&dir, "boot-term", r#""UNHEALTHY":"1""#, &range(23220, 5));
    let rp = release(&dir, "v1");
    let mut d = boot(
        &dir,
        &config,
        &[
            "--release-path",
            rp.to_str().unwrap(),
            "--release-id",
            "v1",
            "--revision",
            "r1",
        ],
    );
    assert!(
        d.stdout
            .wait_for("process started", Duration::from_secs(10))
            .is_some(),
        "{:?}",
        d.stdout.all()
    );
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit(Duration::from_secs(20)), Some(0));
    let lines = d.stdout.all().join("\n");
    assert!(!lines.contains("bootstrap activation failed"), "{lines}");
    assert!(!d.socket.exists());
}

#[test]
fn bootstrap_option_errors_exit_1_naming_the_flag() {
    let dir = temp_dir("boot-args");
    let config = write_config(&dir, "boot-args", "", &range(23230, 2));
    let c = config.to_str().unwrap().to_owned();
    let rp = release(&dir, "v1");
    let r = rp.to_str().unwrap().to_owned();
    let file = dir.join("rollbridge.json");
    let f = file.to_str().unwrap().to_owned();
    let dotted = format!("{}/../releases/v1", dir.join("releases").display());
    let missing = format!("{}/nope", dir.display());
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--config", &c, "--boot-attestation", ATTESTATION],
            "--boot-attestation is only accepted together with --config, --release-path, --release-id and --revision",
        ),
        (
            vec!["--config", &c, "--release-id", "v1"],
            "must be provided together",
        ),
        (
            vec![
                "--release-path",
                &r,
                "--release-id",
                "v1",
                "--revision",
                "r1",
            ],
            "must be provided together",
        ),
        (
            vec![
                "--config",
                "rollbridge.json",
                "--release-path",
                &r,
                "--release-id",
                "v1",
                "--revision",
                "r1",
            ],
            "--config must be an absolute path",
        ),
        (
            vec![
                "--config",
                &c,
                "--release-path",
                &dotted,
                "--release-id",
                "v1",
                "--revision",
                "r1",
            ],
            "--release-path must be normalized",
        ),
        (
            vec![
                "--config",
                &c,
                "--release-path",
                &r,
                "--release-id",
                "../v1",
                "--revision",
                "r1",
            ],
            "--release-id must be a non-empty safe identifier",
        ),
        (
            vec![
                "--config",
                &c,
                "--release-path",
                &r,
                "--release-id",
                "v1",
                "--revision",
                "r 1",
            ],
            "--revision must be a non-empty safe identifier",
        ),
        (
            vec![
                "--config",
                &c,
                "--release-path",
                &r,
                "--release-id",
                "v1",
                "--revision",
                "r1",
                "--boot-attestation",
                "sha256:ABC",
            ],
            "--boot-attestation must use the canonical sha256:<64 lowercase hex> form",
        ),
        (
            vec![
                "--config",
                &c,
                "--release-path",
                &missing,
                "--release-id",
                "v1",
                "--revision",
                "r1",
            ],
            "--release-path is not accessible: ",
        ),
        (
            vec![
                "--config",
                &c,
                "--release-path",
                &f,
                "--release-id",
                "v1",
                "--revision",
                "r1",
            ],
            "--release-path must name a directory",
        ),
        (
            vec!["--config", &c, "--takeover-owner"],
            "--takeover-owner needs",
        ),
        (
            vec![
                "--config",
                &c,
                "--release-path",
                &r,
                "--release-id",
                "v1",
                "--revision",
                "r1",
                "--takeover-owner",
            ],
            "--takeover-owner needs",
        ),
    ];
    for (args, want) in cases {
        let out = Command::new(BIN)
            .arg("daemon")
            .args(&args)
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: want {want:?}, got {err}");
        assert!(
            stdout(&out).is_empty(),
            "{args:?} started: {}",
            stdout(&out)
        );
        assert!(
            !dir.join("c.sock").exists(),
            "{args:?} bound the control socket"
        );
    }
}
