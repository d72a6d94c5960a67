//! Drop-in switch from the Node tool: `rollbridge deploy --ensure-daemon`
//! against a running Node daemon of the same application uses it as it is
//! (with a notice on how to switch), instead of failing. Skips when node or
//! npm is missing or the npm install fails.

mod deploy_support;
use deploy_support::*;

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The Node daemon we started (own process group) and its temp dir.
struct NodeDaemon {
    child: Child,
    config: PathBuf,
    dir: PathBuf,
}

impl Drop for NodeDaemon {
    fn drop(&mut self) {
        let _ = Command::new(BIN)
            .args(["shutdown", "--config"])
            .arg(&self.config)
            .stdin(Stdio::null())
            .output();
        let pgid = self.child.id() as i32;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Only the group we started (shutdown above stopped its apps).
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A copy of the Node tool with its production dependencies, or why not.
fn node_tool(dir: &Path) -> Result<PathBuf, String> {
    for tool in ["node", "npm"] {
        let ok = Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            return Err(format!("{tool} is not installed"));
        }
    }
    let src = Path::new("/work/shared/reference/rollbridge-node");
    if !src.is_dir() {
        return Err(format!("{} is missing", src.display()));
    }
    let copy = dir.join("rollbridge-node");
    let cp = Command::new("cp").arg("-r").arg(src).arg(&copy).status();
    if !cp.is_ok_and(|s| s.success()) {
        return Err("copying the Node tool failed".into());
    }
    let install = Command::new("npm")
        .args(["install", "--omit=dev", "--no-audit", "--no-fund"])
        .current_dir(&copy)
        .stdin(Stdio::null())
        .output();
    match install {
        Ok(o) if o.status.success() => Ok(copy.join("bin/rollbridge")),
        Ok(o) => Err(format!(
            "npm install failed: {}",
            String::from_utf8_lossy(&o.stderr)
        )),
        Err(e) => Err(format!("npm install failed: {e}")),
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn deploy_ensure_daemon_uses_a_running_node_daemon_and_says_how_to_switch() {
    let dir = temp_dir("nodedrop");
    let node_bin = match node_tool(&dir) {
        Ok(bin) => bin,
        Err(why) => {
            eprintln!("SKIPPED deploy_ensure_daemon_uses_a_running_node_daemon: {why}");
            let _ = std::fs::remove_dir_all(&dir);
            return;
        }
    };
    let base = free_port();
    // The Node tool imports its config as a module: an .mjs one both read.
    let config = dir.join("rollbridge.config.mjs");
    std::fs::write(
        &config,
        format!(
            r#"export default {{"application":"nodedrop","control":{{"path":"{}"}},"proxy":{{"port":0}},"processes":[{{"id":"web","policy":"proxied","command":"{BIN} demo-app --port {{{{port}}}}","port":{},"health":{{"intervalMs":50,"timeoutMs":10000}}}}]}};"#,
            dir.join("c.sock").display(),
            range(base, 2)
        ),
    )
    .unwrap();
    let child = Command::new("node")
        .arg(&node_bin)
        .arg("daemon")
        .arg("--config")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let node = NodeDaemon {
        child,
        config: config.clone(),
        dir: dir.clone(),
    };
    let status = |cfg: &Path| {
        Command::new(BIN)
            .args(["status", "--config"])
            .arg(cfg)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let first = loop {
        let out = status(&config);
        if out.status.code() == Some(0) {
            break serde_json::from_str::<serde_json::Value>(&stdout(&out)).unwrap();
        }
        assert!(Instant::now() < deadline, "node daemon did not come up");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(first["application"], "nodedrop");
    let node_version = first["daemonRuntime"]["version"].clone();
    assert_ne!(node_version, env!("CARGO_PKG_VERSION"), "{first}");

    let release = dir.join("v2");
    std::fs::create_dir_all(&release).unwrap();
    let out = Command::new(BIN)
        .args(["deploy", "--ensure-daemon", "--release-id", "v2"])
        .arg("--release-path")
        .arg(&release)
        .arg("--daemon-runtime-path")
        .arg(dir.join("rt"))
        .arg("--config")
        .arg(&config)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "deploy failed: {err}");
    assert!(err.contains("runs another Rollbridge runtime"), "{err}");
    assert!(
        err.contains(&format!("version {}", node_version.as_str().unwrap())),
        "{err}"
    );
    assert!(err.contains("rollbridge shutdown"), "{err}");
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["activeReleaseId"], "v2");

    // Still the Node daemon (no Rust daemon was started), serving v2.
    let after: serde_json::Value = serde_json::from_str(&stdout(&status(&config))).unwrap();
    assert_eq!(after["activeReleaseId"], "v2");
    assert_eq!(after["daemonRuntime"]["version"], node_version, "{after}");
    let port = after["proxy"]["port"].as_u64().unwrap() as u16;
    let (code, body) = get(port, "/").unwrap();
    assert_eq!(code, 200);
    assert!(body.starts_with("hello from release v2"), "{body}");
    drop(node);
}
