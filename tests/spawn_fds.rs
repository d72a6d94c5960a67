//! What app processes inherit from the daemon, with the real binary: only
//! stdin/stdout/stderr, never a descriptor the daemon itself inherited.

mod deploy_support;
use deploy_support::daemon_support::cli;
use deploy_support::*;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The daemon started by a shell that opened fd 7 first; its group is
/// killed on drop.
struct ShellDaemon {
    child: Child,
    dir: std::path::PathBuf,
}

impl Drop for ShellDaemon {
    fn drop(&mut self) {
        let pgid = self.child.id() as i32;
        unsafe { libc::kill(pgid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn fds(pid: i32) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// `pid` and its descendants (through /proc/<pid>/task/*/children).
fn tree(pid: i32) -> Vec<i32> {
    let mut all = vec![pid];
    let mut i = 0;
    while i < all.len() {
        let p = all[i];
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) {
            for t in tasks.filter_map(|e| e.ok()) {
                let kids = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
                all.extend(
                    kids.split_whitespace()
                        .filter_map(|k| k.parse::<i32>().ok()),
                );
            }
        }
        i += 1;
    }
    all
}

#[test]
fn app_processes_do_not_inherit_the_daemons_extra_descriptors() {
    let dir = temp_dir("fd7");
    let config = dir.join("rollbridge.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"application":"fd7","control":{{"path":"{}"}},"proxy":{{"port":0}},"processes":[{{"id":"web","policy":"proxied","command":"{BIN} demo-app --port {{{{port}}}}","port":{{"from":0,"to":0}},"health":{{"intervalMs":20,"timeoutMs":5000}}}}]}}"#,
            dir.join("c.sock").display()
        ),
    )
    .unwrap();
    let leak = dir.join("leak.txt");
    let script = format!(
        "exec 7>'{}'; exec '{BIN}' daemon --config '{}'",
        leak.display(),
        config.display()
    );
    let child = Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let daemon = ShellDaemon {
        child,
        dir: dir.clone(),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while cli(&config, &["status"]).status.code() != Some(0) {
        assert!(Instant::now() < deadline, "daemon did not become ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    let daemon_pid = daemon.child.id() as i32;
    assert!(
        fds(daemon_pid).contains(&"7".to_string()),
        "the daemon itself should hold fd 7: {:?}",
        fds(daemon_pid)
    );

    let release = dir.join("r1");
    std::fs::create_dir_all(&release).unwrap();
    let out = cli(
        &config,
        &["deploy", "--release-path", release.to_str().unwrap()],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "deploy failed: {}",
        stderr(&out)
    );
    let status: serde_json::Value =
        serde_json::from_str(&stdout(&cli(&config, &["status"]))).unwrap();
    let pid = status["releases"][0]["processes"][0]["pid"]
        .as_i64()
        .expect("app pid") as i32;
    // The app opens its own listener; nothing else may be there, least of
    // all fd 7 or anything pointing at the daemon's file.
    for p in tree(pid) {
        let open = fds(p);
        assert!(!open.is_empty(), "no fds listed for {p}");
        let targets: Vec<_> = open
            .iter()
            .map(|fd| std::fs::read_link(format!("/proc/{p}/fd/{fd}")).ok())
            .collect();
        assert!(
            !open.contains(&"7".to_string()) && !targets.contains(&Some(leak.clone())),
            "app process {p} inherited the daemon's fd 7: {open:?} {targets:?}"
        );
        for (fd, target) in open.iter().zip(&targets) {
            let stdio = ["0", "1", "2"].contains(&fd.as_str());
            let own_socket = target
                .as_ref()
                .is_some_and(|t| t.to_string_lossy().starts_with("socket:"));
            assert!(
                stdio || own_socket,
                "app process {p} holds fd {fd} -> {target:?}"
            );
        }
    }
    assert!(Path::new(&leak).exists());
    drop(daemon);
}
