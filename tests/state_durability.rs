//! The state file never loses track of a live process: write-ahead records
//! of a deploy in flight, failed writes reported and retried, corrupt files
//! kept aside with a fallback, a daemon lock that outlives the control
//! socket, and no start over living orphans. Real binary, `sleep` workers.

mod daemon_support;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use daemon_support::{BIN, TestDaemon, cli, stderr, stdout, temp_dir};

/// Kills the process groups of every worker pid it was told about.
#[derive(Default)]
struct Workers(Vec<u32>);

impl Workers {
    fn alive(pid: u32) -> bool {
        // A zombie is dead for our purpose.
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                !s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
            .unwrap_or(false)
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for &pid in &self.0 {
            unsafe {
                libc::kill(-(pid as i32), libc::SIGKILL);
                libc::kill(pid as i32, libc::SIGKILL);
            }
        }
    }
}

/// `web` on a port range: with `hang`, `sleep 1000` under a health check
/// that never passes (nothing listens) within 30 s, so the deploy stays in
/// it; else the bundled demo app.
fn config(dir: &Path, state: Option<&Path>, health: bool, base: u16) -> PathBuf {
    let state = state
        .map(|p| format!(r#","statePath":"{}""#, p.display()))
        .unwrap_or_default();
    let (command, health) = if health {
        (
            "sleep 1000".to_owned(),
            r#","health":{"intervalMs":50,"timeoutMs":30000}"#,
        )
    } else {
        (format!("{BIN} demo-app --port {{{{port}}}}"), "")
    };
    let path = dir.join("rollbridge.json");
    std::fs::write(
        &path,
        format!(
            r#"{{"application":"dur","control":{{"path":"{}"}}{state},"proxy":{{"port":0,"forceStopTimeoutMs":300}},"processes":[{{"id":"web","command":"{command}","policy":"proxied","port":{{"from":{base},"to":{}}}{health}}}]}}"#,
            dir.join("c.sock").display(),
            base + 19
        ),
    )
    .unwrap();
    path
}

fn deploy_bg(config: &Path, dir: &Path, id: &str) -> Child {
    let release = dir.join("releases").join(id);
    std::fs::create_dir_all(&release).unwrap();
    Command::new(BIN)
        .args([
            "deploy",
            "--release-path",
            release.to_str().unwrap(),
            "--release-id",
            id,
        ])
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_default())
        .unwrap_or(serde_json::Value::Null)
}

/// Waits until the state file records a starting release; its worker pid.
fn wait_starting(state: &Path) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = read_json(state);
        if let Some(pid) = v["starting"]["processes"][0]["pid"].as_u64() {
            assert_eq!(v["starting"]["releaseId"], "r1");
            assert!(v["starting"]["processes"][0]["startTime"].is_u64(), "{v:#}");
            assert!(
                v["releases"].as_array().is_some_and(|r| r.is_empty()),
                "a starting release is not a release: {v:#}"
            );
            return pid as u32;
        }
        assert!(Instant::now() < deadline, "no write-ahead record: {v:#}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn crash(d: &mut TestDaemon) {
    let pid = d.pid();
    d.signal(libc::SIGKILL);
    let _ = d.wait_exit(Duration::from_secs(5));
    assert_ne!(unsafe { libc::kill(pid, 0) }, 0, "the daemon is gone");
}

#[test]
fn kill9_during_the_health_check_leaves_a_recoverable_starting_release() {
    let dir = temp_dir("dur-wal");
    let state = dir.join("state.json");
    let cfg = config(&dir, Some(&state), true, 23400);
    let mut workers = Workers::default();
    let mut d = TestDaemon::start_with(dir.clone(), cfg.clone(), &[]);
    let mut deploy = deploy_bg(&cfg, &dir, "r1");
    let pid = wait_starting(&state);
    workers.0.push(pid);
    crash(&mut d);
    let _ = deploy.wait();
    assert!(Workers::alive(pid), "the worker outlives the daemon");

    let out = cli(&cfg, &["recover"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("web (pid {pid}, release r1)")),
        "{}",
        stdout(&out)
    );
    let out = cli(&cfg, &["recover", "--force"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("Stopped 1 orphaned process:"),
        "{}",
        stdout(&out)
    );
    assert!(
        !Workers::alive(pid),
        "recover --force stopped the starting worker"
    );
}

#[test]
fn without_state_path_a_daemon_refuses_to_start_over_living_orphans() {
    let dir = temp_dir("dur-refuse");
    let cfg = config(&dir, None, true, 23430);
    let record = dir.join("c.sock.state.json");
    let mut workers = Workers::default();
    let mut d = TestDaemon::start_with(dir.clone(), cfg.clone(), &[]);
    let mut deploy = deploy_bg(&cfg, &dir, "r1");
    let pid = wait_starting(&record);
    workers.0.push(pid);
    crash(&mut d);
    let _ = deploy.wait();

    // Not even ensure-daemon starts a second set beside it.
    let out = cli(
        &cfg,
        &[
            "ensure-daemon",
            "--daemon-log-path",
            dir.join("d.log").to_str().unwrap(),
            "--daemon-pid-path",
            dir.join("d.pid").to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("web pid {pid} (release r1)")),
        "{err}"
    );
    assert!(err.contains("rollbridge recover --force"), "{err}");
    assert!(!err.contains("adoptOrphans"), "{err}");
    assert!(
        !dir.join("c.sock").exists() || {
            let o = cli(&cfg, &["status"]);
            o.status.code() != Some(0)
        },
        "nothing was left serving"
    );

    // recover works from the default runtime record.
    let out = cli(&cfg, &["recover", "--force"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!Workers::alive(pid));
    // Now the daemon starts.
    let d2 = TestDaemon::start_with(dir.clone(), cfg.clone(), &[]);
    drop(d2);
    drop(d);
}

#[test]
fn an_unreadable_state_file_is_reported_kept_aside_and_prev_is_used() {
    let dir = temp_dir("dur-corrupt");
    let state = dir.join("state.json");
    let cfg = config(&dir, Some(&state), false, 23460);
    let mut sleeper = Command::new("sleep")
        .arg("1000")
        .process_group(0)
        .spawn()
        .unwrap();
    let live = sleeper.id();
    let _guard = Workers(vec![live]);
    std::fs::write(&state, "{\"activeReleaseId\":\"v1\",\"rel").unwrap();

    // No previous version: recover says so, exit non-zero.
    let out = cli(&cfg, &["recover"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&state.display().to_string()) && err.contains("unreadable"),
        "{err}"
    );

    // With a previous version: it is used, and recover says so.
    std::fs::write(
        dir.join("state.json.prev"),
        format!(r#"{{"activeReleaseId":"v1","releases":[{{"releaseId":"v1","processes":[{{"id":"web","pid":{live}}}]}}]}}"#),
    )
    .unwrap();
    let out = cli(&cfg, &["recover"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("web (pid {live}, release v1)")),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("using its previous version"),
        "{}",
        stderr(&out)
    );

    // The daemon warns, keeps the bad file aside and keeps the good state.
    let d = TestDaemon::start_with(dir.clone(), cfg.clone(), &[]);
    assert!(
        d.stdout
            .wait_for("state file unreadable", Duration::from_secs(5))
            .is_some()
    );
    assert!(
        d.stderr
            .wait_for("state file unreadable", Duration::from_secs(5))
            .is_some()
    );
    let aside: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("state.json.corrupt-")
        })
        .collect();
    assert_eq!(aside.len(), 1);
    assert_eq!(
        std::fs::read_to_string(aside[0].path()).unwrap(),
        "{\"activeReleaseId\":\"v1\",\"rel"
    );
    let status: serde_json::Value = serde_json::from_str(&stdout(&d.cli(&["status"]))).unwrap();
    assert_eq!(status["orphans"][0]["pid"], live);
    drop(d);
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
}

#[test]
fn a_failed_state_write_is_reported_and_retried() {
    let dir = temp_dir("dur-enotdir");
    let sub = dir.join("st");
    std::fs::create_dir_all(&sub).unwrap();
    let state = sub.join("state.json");
    let cfg = config(&dir, Some(&state), false, 23490);
    let _workers = Workers::default();
    let d = TestDaemon::start_with(dir.clone(), cfg.clone(), &[]);
    let deploy = |id: &str| {
        let release = dir.join("releases").join(id);
        std::fs::create_dir_all(&release).unwrap();
        d.cli(&[
            "deploy",
            "--release-path",
            release.to_str().unwrap(),
            "--release-id",
            id,
        ])
    };
    assert_eq!(deploy("r1").status.code(), Some(0));
    // The state folder becomes a regular file: every write fails (ENOTDIR).
    std::fs::rename(&sub, dir.join("st.away")).unwrap();
    std::fs::write(&sub, "not a folder").unwrap();
    let out = deploy("r2");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("could not write its state file"),
        "{}",
        stderr(&out)
    );
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(v["stateError"].is_string(), "{v}");
    let status: serde_json::Value = serde_json::from_str(&stdout(&d.cli(&["status"]))).unwrap();
    assert!(
        status["stateError"]
            .as_str()
            .is_some_and(|e| e.contains("state.json")),
        "{status}"
    );
    assert!(
        d.stdout
            .wait_for("state persist failed", Duration::from_secs(5))
            .is_some()
    );

    // Restored: the retry succeeds, stateError goes, the file says r2.
    std::fs::remove_file(&sub).unwrap();
    std::fs::rename(dir.join("st.away"), &sub).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status: serde_json::Value = serde_json::from_str(&stdout(&d.cli(&["status"]))).unwrap();
        if status.get("stateError").is_none() && read_json(&state)["activeReleaseId"] == "r2" {
            break;
        }
        assert!(Instant::now() < deadline, "never retried: {status}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_live_daemon_without_its_socket_is_not_recovered_and_gets_its_socket_back() {
    let dir = temp_dir("dur-lock");
    let state = dir.join("state.json");
    let cfg = config(&dir, Some(&state), false, 23520);
    let mut workers = Workers::default();
    let d = TestDaemon::start_with(dir.clone(), cfg.clone(), &[]);
    let release = dir.join("releases").join("r1");
    std::fs::create_dir_all(&release).unwrap();
    let out = d.cli(&[
        "deploy",
        "--release-path",
        release.to_str().unwrap(),
        "--release-id",
        "r1",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let status: serde_json::Value = serde_json::from_str(&stdout(&d.cli(&["status"]))).unwrap();
    let pid = status["releases"][0]["processes"][0]["pid"]
        .as_u64()
        .unwrap() as u32;
    workers.0.push(pid);
    let deadline = Instant::now() + Duration::from_secs(10);
    while read_json(&state)["activeReleaseId"] != "r1" {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }

    std::fs::remove_file(&d.socket).unwrap();
    let out = cli(&cfg, &["recover", "--force"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stderr(&out).contains("is running"), "{}", stderr(&out));
    assert!(
        Workers::alive(pid),
        "a live daemon's worker is never killed"
    );
    assert!(state.exists(), "nor its state file deleted");

    // The daemon re-creates its socket.
    assert!(
        d.stdout
            .wait_for("control socket re-created", Duration::from_secs(5))
            .is_some()
    );
    let out = d.cli(&["status"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}
