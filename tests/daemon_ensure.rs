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
    let args = [
        "ensure-daemon",
        "--daemon-log-path",
        log.to_str().unwrap(),
        "--daemon-pid-path",
        pid_file.to_str().unwrap(),
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
