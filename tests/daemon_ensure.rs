//! `ensure-daemon` with the real binary: detached start with log and pid
//! files, idempotent second call, timeout validation, fast failure.

mod daemon_support;

use std::time::{Duration, Instant};

use daemon_support::*;

struct Cleanup {
    pid: Option<i32>,
    dir: std::path::PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(pid) = self.pid {
            // The detached daemon leads its own session: its pid is its pgid.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline && unsafe { libc::kill(pid, 0) } == 0 {
                std::thread::sleep(Duration::from_millis(20));
            }
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn ensure_daemon_twice_starts_one_daemon() {
    let dir = temp_dir("ensure");
    let config = write_config(&dir, "ensure", "", 0);
    let log = dir.join("logs/d.log");
    let pid_file = dir.join("run/d.pid");
    let rt = dir.join("rt");
    let args = [
        "ensure-daemon",
        "--daemon-log-path",
        log.to_str().unwrap(),
        "--daemon-pid-path",
        pid_file.to_str().unwrap(),
        "--daemon-runtime-path",
        rt.to_str().unwrap(),
    ];
    let mut cleanup = Cleanup {
        pid: None,
        dir: dir.clone(),
    };
    let first = cli(&config, &args);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let pid_text = std::fs::read_to_string(&pid_file).unwrap();
    assert!(pid_text.ends_with('\n'));
    let pid: i32 = pid_text.trim().parse().unwrap();
    cleanup.pid = Some(pid);
    let v: serde_json::Value = serde_json::from_str(&stdout(&first)).unwrap();
    assert_eq!(v["status"], "success");
    assert_eq!(v["application"], "ensure");
    assert!(stdout(&first).starts_with("{\n  \"status\": \"success\","));
    // The pid is the daemon itself, alive, and its log has the ready line.
    assert_eq!(unsafe { libc::kill(pid, 0) }, 0);
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(log_text.contains("control socket listening"));

    let second = cli(&config, &args);
    assert_eq!(second.status.code(), Some(0));
    assert_eq!(std::fs::read_to_string(&pid_file).unwrap(), pid_text);
    let ready_lines = std::fs::read_to_string(&log)
        .unwrap()
        .matches("control socket listening")
        .count();
    assert_eq!(ready_lines, 1, "no second daemon was started");

    let out = cli(&config, &["shutdown"]);
    assert_eq!(out.status.code(), Some(0));
    let deadline = Instant::now() + Duration::from_secs(5);
    while unsafe { libc::kill(pid, 0) } == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_ne!(unsafe { libc::kill(pid, 0) }, 0, "daemon exited");
    cleanup.pid = None;
}

#[test]
fn ensure_daemon_rejects_a_bad_timeout() {
    let dir = temp_dir("ensuretimeout");
    let config = write_config(&dir, "ensuretimeout", "", 0);
    let _cleanup = Cleanup {
        pid: None,
        dir: dir.clone(),
    };
    for bad in ["0", "abc", "-5"] {
        let out = cli(
            &config,
            &["ensure-daemon", "--daemon-start-timeout-ms", bad],
        );
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(
            stderr(&out).trim(),
            "--daemon-start-timeout-ms must be a positive number"
        );
    }
}

#[test]
fn ensure_daemon_fails_fast_when_the_daemon_dies_at_once() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let dir = temp_dir("ensuredies");
    let config = write_config(&dir, "ensuredies", "", port);
    let _cleanup = Cleanup {
        pid: None,
        dir: dir.clone(),
    };
    let log = dir.join("d.log");
    let started = Instant::now();
    let out = cli(
        &config,
        &[
            "ensure-daemon",
            "--daemon-runtime-path",
            dir.join("rt").to_str().unwrap(),
            "--daemon-log-path",
            log.to_str().unwrap(),
            "--daemon-pid-path",
            dir.join("d.pid").to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "did not wait out 10 s"
    );
    let err = stderr(&out);
    assert!(err.contains("exited before becoming ready"), "{err}");
    assert!(err.contains("EADDRINUSE"), "log tail shown: {err}");
}

#[test]
fn ensure_daemon_times_out_with_the_contract_message() {
    let dir = temp_dir("ensureslow");
    let config = write_config(&dir, "ensureslow", "", 0);
    let _cleanup = Cleanup {
        pid: None,
        dir: dir.clone(),
    };
    // A 1 ms budget is shorter than any daemon start: see the message shape.
    let out = cli(
        &config,
        &[
            "ensure-daemon",
            "--daemon-start-timeout-ms",
            "1",
            "--daemon-runtime-path",
            dir.join("rt").to_str().unwrap(),
            "--daemon-log-path",
            dir.join("d.log").to_str().unwrap(),
            "--daemon-pid-path",
            dir.join("d.pid").to_str().unwrap(),
        ],
    );
    // Either it won the race within 1 ms (unlikely) or it timed out.
    if out.status.code() == Some(1) {
        let err = stderr(&out);
        assert!(
            err.starts_with("Rollbridge daemon did not become ready within 1ms."),
            "{err}"
        );
    }
    // Whatever started, stop it.
    let _ = cli(&config, &["shutdown"]);
    if let Ok(pid) = std::fs::read_to_string(dir.join("d.pid")) {
        if let Ok(pid) = pid.trim().parse::<i32>() {
            let deadline = Instant::now() + Duration::from_secs(5);
            while unsafe { libc::kill(pid, 0) } == 0 && Instant::now() < deadline {
                let _ = cli(&config, &["shutdown"]);
                std::thread::sleep(Duration::from_millis(50));
            }
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
    }
}

#[test]
fn ensure_daemon_launches_from_a_verified_runtime_snapshot() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("snapshot");
    let config = write_config(&dir, "snapshot", "", 0);
    let rt = dir.join("rt");
    let mut cleanup = Cleanup {
        pid: None,
        dir: dir.clone(),
    };
    let (log, pid_file) = (dir.join("d.log"), dir.join("d.pid"));
    let args = [
        "ensure-daemon",
        "--daemon-runtime-path",
        rt.to_str().unwrap(),
        "--daemon-log-path",
        log.to_str().unwrap(),
        "--daemon-pid-path",
        pid_file.to_str().unwrap(),
    ];
    let out = cli(&config, &args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    cleanup.pid = std::fs::read_to_string(dir.join("d.pid"))
        .ok()
        .and_then(|p| p.trim().parse().ok());
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let runtime = &v["daemonRuntime"];
    let digest = runtime["digest"].as_str().unwrap();
    assert_eq!(digest.len(), 64);
    assert_eq!(runtime["format"], 1);
    assert_eq!(runtime["version"], env!("CARGO_PKG_VERSION"));
    let snap = rt.join(digest);
    assert_eq!(runtime["path"], snap.to_str().unwrap());
    assert!(snap.join("rollbridge").is_file());
    let manifest_mode = std::fs::metadata(snap.join("runtime.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(manifest_mode & 0o777, 0o600);
    let base_mode = std::fs::metadata(&rt).unwrap().permissions().mode();
    assert_eq!(base_mode & 0o777, 0o700);
    assert!(
        top_level_keys(&stdout(&out)).contains(&"daemonRuntime".to_string()),
        "daemonRuntime between control and orphans"
    );

    // A daemon started straight from the installation reports the same digest.
    let d = TestDaemon::start("plainruntime");
    let plain: serde_json::Value = serde_json::from_str(&stdout(&d.cli(&["status"]))).unwrap();
    assert_eq!(plain["daemonRuntime"]["digest"], digest);

    // Second call: same snapshot reused, compatible daemon, same pid.
    let again = cli(&config, &args);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    let _ = cli(&config, &["shutdown"]);
}

/// A daemon running a valid snapshot of a different runtime (the binary
/// plus one more file) on `config`.
fn daemon_with_another_runtime(dir: &std::path::Path, config: &std::path::Path) -> TestDaemon {
    let other = dir.join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::copy(BIN, other.join("rollbridge")).unwrap();
    std::fs::write(other.join("extra"), b"makes the digest differ").unwrap();
    let digest = rollbridge::runtime::digest_dir(&other).unwrap();
    std::fs::write(
        other.join("runtime.json"),
        serde_json::json!({"digest": digest, "format": 1, "path": other.to_str().unwrap(), "version": env!("CARGO_PKG_VERSION")}).to_string(),
    )
    .unwrap();
    let manifest = other.join("runtime.json");
    TestDaemon::start_with(
        dir.to_path_buf(),
        config.to_path_buf(),
        &[(
            "ROLLBRIDGE_DAEMON_RUNTIME_MANIFEST",
            manifest.to_str().unwrap(),
        )],
    )
}

#[test]
fn ensure_daemon_uses_a_same_application_daemon_with_another_runtime_and_says_how_to_switch() {
    let dir = temp_dir("mismatch");
    let config = write_config(&dir, "mismatch", "", 0);
    let d = daemon_with_another_runtime(&dir, &config);
    let out = cli(
        &config,
        &[
            "ensure-daemon",
            "--daemon-runtime-path",
            dir.join("rt").to_str().unwrap(),
        ],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["application"], "mismatch");
    assert!(err.contains("runs another Rollbridge runtime"), "{err}");
    assert!(err.contains("rollbridge shutdown"), "{err}");
    assert!(err.contains("gap"), "{err}");
    drop(d);
}

#[test]
fn ensure_daemon_refuses_another_applications_daemon_with_another_runtime() {
    let dir = temp_dir("mismatchapp");
    let config = write_config(&dir, "mismatchapp", "", 0);
    let d = daemon_with_another_runtime(&dir, &config);
    // Another application's config pointing at the same socket.
    let text = std::fs::read_to_string(&config).unwrap();
    let other_config = dir.join("other.json");
    std::fs::write(
        &other_config,
        text.replace("\"mismatchapp\"", "\"intruder\""),
    )
    .unwrap();
    let out = cli(
        &other_config,
        &[
            "ensure-daemon",
            "--daemon-runtime-path",
            dir.join("rt").to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("legacy or mismatched runtime"), "{err}");
    assert!(err.contains("deploy was not sent"), "{err}");
    assert!(err.contains("\"mismatchapp\""), "{err}");
    drop(d);
}

#[test]
fn daemon_with_a_manifest_that_does_not_verify_refuses_to_start() {
    let dir = temp_dir("badmanifest");
    let config = write_config(&dir, "badmanifest", "", 0);
    let snap = dir.join("snap");
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::write(snap.join("rollbridge"), b"not the binary").unwrap();
    std::fs::write(
        snap.join("runtime.json"),
        serde_json::json!({"digest": "0".repeat(64), "format": 1, "path": snap.to_str().unwrap(), "version": env!("CARGO_PKG_VERSION")}).to_string(),
    )
    .unwrap();
    let out = std::process::Command::new(BIN)
        .args(["daemon", "--config", config.to_str().unwrap()])
        .env(
            "ROLLBRIDGE_DAEMON_RUNTIME_MANIFEST",
            snap.join("runtime.json"),
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("runtime validation failed at"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.join("c.sock").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn corrupted_snapshot_is_reported_not_used() {
    let dir = temp_dir("corrupt");
    let config = write_config(&dir, "corrupt", "", 0);
    let rt = dir.join("rt");
    let _cleanup = Cleanup {
        pid: None,
        dir: dir.clone(),
    };
    // Plant a corrupt snapshot where this binary's snapshot would go.
    let prepared =
        rollbridge::runtime::digest_files(&[("rollbridge".into(), std::path::PathBuf::from(BIN))])
            .unwrap();
    let snap = rt.join(&prepared);
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::write(snap.join("rollbridge"), b"tampered").unwrap();
    std::fs::write(snap.join("runtime.json"), b"{}").unwrap();
    let out = cli(
        &config,
        &[
            "ensure-daemon",
            "--daemon-runtime-path",
            rt.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!("runtime validation failed at {}", snap.display())),
        "{}",
        stderr(&out)
    );
    assert!(!dir.join("c.sock").exists(), "nothing started");
}

#[test]
fn pid_file_is_removed_after_clean_shutdown() {
    let dir = temp_dir("pidfile");
    let config = write_config(&dir, "pidfile", "", 0);
    let pid_file = dir.join("d.pid");
    let (log, rt) = (dir.join("d.log"), dir.join("rt"));
    let mut cleanup = Cleanup {
        pid: None,
        dir: dir.clone(),
    };
    let out = cli(
        &config,
        &[
            "ensure-daemon",
            "--daemon-log-path",
            log.to_str().unwrap(),
            "--daemon-pid-path",
            pid_file.to_str().unwrap(),
            "--daemon-runtime-path",
            rt.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    cleanup.pid = Some(pid);
    let out = cli(&config, &["shutdown"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let deadline = Instant::now() + Duration::from_secs(10);
    while unsafe { libc::kill(pid, 0) } == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_ne!(unsafe { libc::kill(pid, 0) }, 0, "daemon exited");
    cleanup.pid = None;
    assert!(!pid_file.exists(), "pid file left after a clean shutdown");
}

#[test]
fn ensure_daemon_bounds_a_listener_that_never_answers() {
    let dir = temp_dir("foreign");
    let config = write_config(&dir, "foreign", "", 0);
    let _cleanup = Cleanup {
        pid: None,
        dir: dir.clone(),
    };
    // Accepts every connection and never says a word.
    let listener = std::os::unix::net::UnixListener::bind(dir.join("c.sock")).unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().take(4) {
            held.push(conn);
        }
        std::thread::sleep(Duration::from_secs(60));
    });
    let started = Instant::now();
    let rt = dir.join("rt");
    let out = cli(
        &config,
        &[
            "ensure-daemon",
            "--daemon-start-timeout-ms",
            "500",
            "--daemon-runtime-path",
            rt.to_str().unwrap(),
        ],
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("something that is not a working Rollbridge daemon holds the control socket"),
        "{err}"
    );
    assert!(err.contains("control.path"), "{err}");
}
