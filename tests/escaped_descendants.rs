//! Descendants that leave their process group (`setsid` after a double
//! fork) through the real binary: listed in `children` while they run,
//! stopped with their release and at daemon shutdown.

mod deploy_support;
use deploy_support::*;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn config(range: &str, pidfile: &Path) -> String {
    format!(
        r#"[{{"id":"web","policy":"proxied","command":"{BIN} demo-app --port {{{{port}}}}","port":{range},"health":{{"intervalMs":20,"timeoutMs":5000}}}},{{"id":"escaper","command":"sh {} {}","memory":{{"limitBytes":1073741824,"checkIntervalMs":50}}}}]"#,
        fixture("escaper.sh"),
        pidfile.display()
    )
}

/// `(state, pgrp)` of a live process, `None` when gone or a zombie.
fn live(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_whitespace();
    let state = f.next()?;
    let _ppid = f.next()?;
    let pgrp = f.next()?.parse().ok()?;
    (state != "Z" && state != "X").then_some(pgrp)
}

/// Kills the escaped `sleep` if a test failed before the daemon did.
struct Escaped(i32);

impl Drop for Escaped {
    fn drop(&mut self) {
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", self.0)).unwrap_or_default();
        if live(self.0).is_some() && cmdline.starts_with(b"sleep\x001000") {
            unsafe {
                libc::kill(self.0, libc::SIGKILL);
            }
        }
    }
}

fn escaped_pid(pidfile: &PathBuf) -> Escaped {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(pid) = std::fs::read_to_string(pidfile)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            return Escaped(pid);
        }
        assert!(Instant::now() < deadline, "the fixture never escaped");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_gone(pid: i32, secs: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while live(pid).is_some() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

#[test]
fn setsid_descendant_is_listed_and_stopped_with_its_release() {
    let dir = temp_dir("escape-stop-pid");
    let pidfile = dir.join("escaped.pid");
    let d = Deployment::start("escape-stop", "", &config(&range(22400, 10), &pidfile));
    d.deploy_ok("v1");
    let escaped = escaped_pid(&pidfile);
    let leader = process(&d.release("v1"), "escaper")["pid"]
        .as_i64()
        .unwrap() as i32;
    let pgrp = live(escaped.0).expect("escaped process runs");
    assert_ne!(pgrp, leader, "the fixture left its process group");
    d.wait_status("the escaped process in children", 10, |s| {
        let v1 = s["releases"][0].clone();
        process(&v1, "escaper")["children"]
            .as_array()
            .is_some_and(|c| c.iter().any(|m| m["pid"] == escaped.0))
    });
    let out = d.daemon.cli(&["stop"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        live(escaped.0).is_none(),
        "the escaped process outlived its release's stop"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn setsid_descendant_is_stopped_at_shutdown() {
    let dir = temp_dir("escape-shutdown-pid");
    let pidfile = dir.join("escaped.pid");
    let mut d = Deployment::start("escape-shutdown", "", &config(&range(22420, 10), &pidfile));
    d.deploy_ok("v1");
    let escaped = escaped_pid(&pidfile);
    assert!(live(escaped.0).is_some());
    let out = d.daemon.cli(&["shutdown"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(d.daemon.wait_exit(Duration::from_secs(10)).is_some());
    assert!(
        wait_gone(escaped.0, 2),
        "the escaped process outlived the daemon"
    );
    let _ = std::fs::remove_dir_all(dir);
}
