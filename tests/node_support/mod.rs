//! The original Node tool (0.1.21) for side-by-side tests: one copy with
//! its production dependencies installed under the target dir (reused by
//! later runs while the reference's package files are unchanged), and its
//! daemon started in its own process group and stopped on drop. Needs
//! `mod deploy_support;` in the test crate.
#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::deploy_support::{BIN, stdout};

/// Where the reference sources live.
pub const REFERENCE: &str = "/work/shared/reference/rollbridge-node";

/// Files whose change means the cached install is stale.
const PACKAGE_FILES: [&str; 2] = ["package.json", "package-lock.json"];
/// The reference's package files as they were when the copy was installed
/// (npm rewrites the copy's lock file).
const STAMP: &str = ".rollbridge-test-stamp";

/// `bin/rollbridge` of an installed copy of the Node tool, or why there
/// is none (the caller skips).
pub fn node_tool() -> Result<PathBuf, String> {
    for tool in ["node", "npm"] {
        let ok = Command::new(tool)
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            return Err(format!("{tool} is not installed"));
        }
    }
    let src = Path::new(REFERENCE);
    if !src.is_dir() {
        return Err(format!("{REFERENCE} is missing"));
    }
    // target/debug/rollbridge -> target/node-ref
    let cache = Path::new(BIN)
        .parent()
        .and_then(Path::parent)
        .ok_or("no target dir")?
        .join("node-ref");
    let copy = cache.join("rollbridge-node");
    if is_current(src, &copy) {
        return Ok(copy.join("bin/rollbridge"));
    }
    // Install into a private dir, then move it in place: test binaries
    // running at the same time never see a half-done install.
    static N: AtomicU32 = AtomicU32::new(0);
    let tmp = cache.join(format!(
        "tmp-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
    let staged = tmp.join("rollbridge-node");
    let cp = Command::new("cp").arg("-r").arg(src).arg(&staged).status();
    // The reference may be read-only; the copy must not be.
    let chmod = Command::new("chmod")
        .arg("-R")
        .arg("u+w")
        .arg(&staged)
        .status();
    if !cp.is_ok_and(|s| s.success()) || !chmod.is_ok_and(|s| s.success()) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err("copying the Node tool failed".into());
    }
    let install = Command::new("npm")
        .args(["install", "--omit=dev", "--no-audit", "--no-fund"])
        .current_dir(&staged)
        .stdin(Stdio::null())
        .output();
    let failed = match install {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!(
            "npm install failed: {}",
            String::from_utf8_lossy(&o.stderr)
        )),
        Err(e) => Some(format!("npm install failed: {e}")),
    };
    if let Some(why) = failed {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(why);
    }
    if let Err(e) = std::fs::write(staged.join(STAMP), stamp(src)) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(format!("cannot write the install stamp: {e}"));
    }
    let _ = std::fs::remove_dir_all(&copy);
    // Another test binary may have won the race: either copy will do.
    let _ = std::fs::rename(&staged, &copy);
    let _ = std::fs::remove_dir_all(&tmp);
    if is_current(src, &copy) {
        Ok(copy.join("bin/rollbridge"))
    } else {
        Err(format!("the install in {} is incomplete", copy.display()))
    }
}

fn stamp(src: &Path) -> Vec<u8> {
    let mut v = Vec::new();
    for f in PACKAGE_FILES {
        v.extend(std::fs::read(src.join(f)).unwrap_or_default());
        v.push(0);
    }
    v
}

fn is_current(src: &Path, copy: &Path) -> bool {
    copy.join("node_modules").is_dir()
        && std::fs::read(copy.join(STAMP)).is_ok_and(|s| s == stamp(src))
}

/// Runs the Node tool's CLI (`node <bin> <args…>`).
pub fn node_cli(node_bin: &Path, args: &[&str]) -> Output {
    Command::new("node")
        .arg(node_bin)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run the Node CLI")
}

/// The Node daemon we started (own process group) on `config`.
pub struct NodeDaemon {
    child: Option<Child>,
    pub config: PathBuf,
}

impl NodeDaemon {
    /// Starts `node <bin> daemon --config <config>` with its output in
    /// `log`, and waits until it answers `status`.
    pub fn start(node_bin: &Path, config: &Path, log: &Path) -> NodeDaemon {
        let out = std::fs::File::create(log).unwrap();
        let err = out.try_clone().unwrap();
        let child = Command::new("node")
            .arg(node_bin)
            .arg("daemon")
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .expect("start the Node daemon");
        let d = NodeDaemon {
            child: Some(child),
            config: config.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while status(config).is_none() {
            assert!(
                Instant::now() < deadline,
                "the Node daemon did not come up: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        d
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(-1)
    }

    /// Waits for the daemon to exit; its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut()?;
        loop {
            if let Ok(Some(s)) = child.try_wait() {
                self.child = None;
                return s.code();
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for NodeDaemon {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new(BIN)
            .args(["shutdown", "--config"])
            .arg(&self.config)
            .stdin(Stdio::null())
            .output();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Only the group we started (shutdown above stopped its apps).
        unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
        let _ = child.wait();
    }
}

/// `status` through our CLI (it speaks the same control protocol), when
/// some daemon answers on the config's control socket.
pub fn status(config: &Path) -> Option<serde_json::Value> {
    let out = Command::new(BIN)
        .args(["status", "--config"])
        .arg(config)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    if out.status.code() != Some(0) {
        return None;
    }
    serde_json::from_str(&stdout(&out)).ok()
}
