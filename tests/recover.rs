//! `rollbridge recover` through the real binary (cli.md §2.13). Orphans are
//! process groups this test starts itself and names in a snapshot it
//! writes; every group is SIGKILLed by its id on drop, never by name.

mod daemon_support;

use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use daemon_support::*;

/// A process group started with `sh -c <script>`; the leader is reaped by a
/// thread so it never lingers as a zombie of this test.
struct Group {
    pgid: u32,
}

impl Group {
    /// `script` must create `<dir>/<tag>.ready` once its traps are set.
    fn start(dir: &Path, tag: &str, script: &str) -> Group {
        let ready = dir.join(format!("{tag}.ready"));
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script.replace("READY", &ready.display().to_string()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("spawn sh");
        let group = Group { pgid: child.id() };
        std::thread::spawn(move || {
            let _ = child.wait();
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        while !ready.exists() {
            assert!(Instant::now() < deadline, "{tag} never became ready");
            std::thread::sleep(Duration::from_millis(10));
        }
        group
    }

    /// A group that exits on SIGTERM.
    fn polite(dir: &Path, tag: &str) -> Group {
        Group::start(dir, tag, "sleep 1000 & touch READY; wait")
    }

    /// A group whose every member ignores SIGTERM.
    fn stubborn(dir: &Path, tag: &str) -> Group {
        Group::start(dir, tag, "trap '' TERM; sleep 1000 & touch READY; wait")
    }

    /// Any member not a zombie, read from /proc.
    fn alive(&self) -> bool {
        std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
                return false;
            };
            let Some(close) = stat.rfind(')') else {
                return false;
            };
            let f: Vec<&str> = stat[close + 1..].split_whitespace().collect();
            f.len() > 2 && f[2] == self.pgid.to_string() && f[0] != "Z" && f[0] != "X"
        })
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if self.alive() {
            unsafe {
                libc::kill(-(self.pgid as i32), libc::SIGKILL);
            }
        }
    }
}

/// Config with `statePath` (unless `state` is false) and a small
/// forceStopTimeoutMs; returns its path.
fn config(dir: &Path, state: bool) -> PathBuf {
    let state_path = if state {
        format!(r#","statePath":"{}""#, dir.join("state.json").display())
    } else {
        String::new()
    };
    let path = dir.join("rollbridge.json");
    std::fs::write(
        &path,
        format!(
            r#"{{"application":"rec","control":{{"path":"{}"}}{state_path},"proxy":{{"port":0,"forceStopTimeoutMs":200}},"processes":[{{"id":"web","command":"sleep 1000","policy":"proxied","port":{{"from":0,"to":0}}}}]}}"#,
            dir.join("c.sock").display()
        ),
    )
    .unwrap();
    path
}

/// A snapshot naming `web` (release v1) and the `db` service.
fn snapshot(dir: &Path, web: u32, db: u32) {
    std::fs::write(
        dir.join("state.json"),
        format!(
            r#"{{"activeReleaseId":"v1","releases":[{{"releaseId":"v1","processes":[{{"id":"web","pid":{web}}}]}}],"services":[{{"id":"db","process":{{"id":"db","pid":{db}}}}}],"singletons":[]}}"#
        ),
    )
    .unwrap();
}

/// A pid that is certainly dead: a process we started and reaped.
fn dead_pid() -> u32 {
    let mut c = Command::new("true").spawn().unwrap();
    let pid = c.id();
    c.wait().unwrap();
    pid
}

fn outputs(o: &std::process::Output) -> (Option<i32>, String, String) {
    (o.status.code(), stdout(o), stderr(o))
}

#[test]
fn without_state_path_it_is_an_error() {
    let dir = temp_dir("rec-nostate");
    let cfg = config(&dir, false);
    let (code, out, err) = outputs(&cli(&cfg, &["recover"]));
    assert_eq!((code, out.as_str()), (Some(1), ""));
    assert!(
        err.contains("statePath") && err.contains("recovery"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn dry_run_lists_orphans_and_keeps_everything() {
    let dir = temp_dir("rec-dry");
    let cfg = config(&dir, true);
    let web = Group::polite(&dir, "web");
    let db = Group::polite(&dir, "db");
    snapshot(&dir, web.pgid, db.pgid);
    let (code, out, err) = outputs(&cli(&cfg, &["recover"]));
    assert_eq!((code, err.as_str()), (Some(0), ""));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert_eq!(
        lines[..3],
        [
            "Found 2 orphaned processes (run with --force to stop):".to_owned(),
            format!("  web (pid {}, release v1)", web.pgid),
            format!("  db (pid {})", db.pgid),
        ]
    );
    assert!(lines[3].contains("recycled"), "{out}");
    assert!(web.alive() && db.alive(), "nothing signalled");
    assert!(dir.join("state.json").exists(), "file kept");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn nothing_found_dry_run_keeps_the_file_and_force_clears_it() {
    let dir = temp_dir("rec-none");
    let cfg = config(&dir, true);
    snapshot(&dir, dead_pid(), dead_pid());
    let (code, out, err) = outputs(&cli(&cfg, &["recover"]));
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (Some(0), "No orphaned processes found.\n", "")
    );
    assert!(dir.join("state.json").exists());
    let (code, out, err) = outputs(&cli(&cfg, &["recover", "--force"]));
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (
            Some(0),
            "No orphaned processes found; cleared the state file.\n",
            ""
        )
    );
    assert!(!dir.join("state.json").exists());
    // No file at all is "nothing found" too.
    let (code, out, _) = outputs(&cli(&cfg, &["recover"]));
    assert_eq!(
        (code, out.as_str()),
        (Some(0), "No orphaned processes found.\n")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn force_stops_whole_groups_including_sigterm_ignorers_and_clears_the_file() {
    let dir = temp_dir("rec-force");
    let cfg = config(&dir, true);
    let web = Group::stubborn(&dir, "web");
    // The leader dies on SIGTERM but one member ignores it: waiting for
    // the leader only would call this group stopped too early.
    let db = Group::start(
        &dir,
        "db",
        "(trap '' TERM; exec sleep 1000) & touch READY; wait",
    );
    snapshot(&dir, web.pgid, db.pgid);
    let started = Instant::now();
    let (code, out, err) = outputs(&cli(&cfg, &["recover", "--force"]));
    assert_eq!((code, err.as_str()), (Some(0), ""));
    assert_eq!(
        out,
        format!(
            "Stopped 2 orphaned processes:\n  web (pid {}, release v1)\n  db (pid {})\n",
            web.pgid, db.pgid
        )
    );
    assert!(!web.alive() && !db.alive(), "whole groups gone");
    assert!(!dir.join("state.json").exists(), "state file deleted");
    assert!(started.elapsed() < Duration::from_secs(5));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn force_with_one_orphan_says_process_in_the_singular() {
    let dir = temp_dir("rec-one");
    let cfg = config(&dir, true);
    let web = Group::polite(&dir, "web");
    snapshot(&dir, web.pgid, dead_pid());
    let (code, out, _) = outputs(&cli(&cfg, &["recover", "--force"]));
    assert_eq!(code, Some(0));
    assert_eq!(
        out,
        format!(
            "Stopped 1 orphaned process:\n  web (pid {}, release v1)\n",
            web.pgid
        )
    );
    assert!(!web.alive());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn refuses_while_a_daemon_holds_the_control_socket() {
    let dir = temp_dir("rec-live");
    let cfg = config(&dir, true);
    let web = Group::polite(&dir, "web");
    snapshot(&dir, web.pgid, dead_pid());
    let d = TestDaemon::start_with(dir.clone(), cfg.clone(), &[]);
    let (code, out, err) = outputs(&cli(&cfg, &["recover", "--force"]));
    assert_eq!((code, out.as_str()), (Some(1), ""));
    assert!(
        err.contains(&d.socket.display().to_string()) && err.contains("stop it first"),
        "{err}"
    );
    assert!(web.alive(), "nothing signalled");
}

#[test]
fn refuses_when_another_process_listens_on_the_control_path() {
    let dir = temp_dir("rec-foreign");
    let cfg = config(&dir, true);
    let socket = dir.join("c.sock");
    let _listener = UnixListener::bind(&socket).unwrap();
    let (code, _, err) = outputs(&cli(&cfg, &["recover"]));
    assert_eq!(code, Some(1));
    assert!(err.contains(&socket.display().to_string()), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn recovers_what_a_sigkilled_daemon_recorded() {
    let dir = temp_dir("rec-e2e");
    let cfg = config(&dir, true);
    let web = Group::stubborn(&dir, "web");
    snapshot(&dir, web.pgid, dead_pid());
    let mut d = TestDaemon::start_with(dir.clone(), cfg.clone(), &[]);
    // The daemon reports the orphan and rewrites the snapshot with it.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(dir.join("state.json")).unwrap_or_default();
        if text.contains("persistedAt") && text.contains("\"orphans\"") {
            break;
        }
        assert!(Instant::now() < deadline, "daemon never persisted: {text}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = d.pid();
    d.signal(libc::SIGKILL);
    let _ = d.wait_exit(Duration::from_secs(5));
    assert_ne!(unsafe { libc::kill(pid, 0) }, 0, "daemon is gone");
    assert!(d.socket.exists(), "a crash leaves the socket file behind");
    let (code, out, err) = outputs(&cli(&cfg, &["recover", "--force"]));
    assert_eq!((code, err.as_str()), (Some(0), ""), "{out}");
    assert_eq!(
        out,
        format!(
            "Stopped 1 orphaned process:\n  web (pid {}, release v1)\n",
            web.pgid
        )
    );
    assert!(!web.alive());
}

/// predeploy-cleanup with a daemon config plus `legacyTakeover` matching
/// `marker`.
fn predeploy_config(dir: &Path, marker: &str) -> PathBuf {
    let path = dir.join("rollbridge.json");
    std::fs::write(
        &path,
        format!(
            r#"{{"application":"rec","control":{{"path":"{}"}},"statePath":"{}","legacyTakeover":{{"processes":[{{"includes":["{marker}"]}}],"forceStopTimeoutMs":100}},"proxy":{{"port":0,"forceStopTimeoutMs":200}},"processes":[{{"id":"web","command":"sleep 1000","policy":"proxied","port":{{"from":0,"to":0}}}}]}}"#,
            dir.join("c.sock").display(),
            dir.join("state.json").display()
        ),
    )
    .unwrap();
    path
}

#[test]
fn predeploy_cleanup_stops_daemon_orphans_and_legacy_processes() {
    let dir = temp_dir("rec-pre");
    let marker = format!("rb-legacy-{}", std::process::id());
    let cfg = predeploy_config(&dir, &marker);
    let orphan = Group::polite(&dir, "web");
    snapshot(&dir, orphan.pgid, dead_pid());
    let legacy = Group::start(
        &dir,
        "legacy",
        &format!("sleep 1000 & touch READY; wait; : {marker}"),
    );
    let mut d = TestDaemon::start_with(dir.clone(), cfg.clone(), &[]);
    let (code, out, err) = outputs(&cli(&cfg, &["predeploy-cleanup"]));
    assert_eq!((code, err.as_str()), (Some(0), ""), "{out}");
    assert_eq!(
        out,
        "Stopped existing Rollbridge daemon before deploy.\nRecovered 1 Rollbridge orphaned process.\nStopped 2 legacy processes.\n"
    );
    assert!(
        d.wait_exit(Duration::from_secs(5)).is_some(),
        "daemon exited"
    );
    assert!(!orphan.alive() && !legacy.alive());

    let (code, out, _) = outputs(&cli(&cfg, &["predeploy-cleanup"]));
    assert_eq!(code, Some(0));
    assert_eq!(
        out,
        "No active Rollbridge daemon found.\nRecovered 0 Rollbridge orphaned processes.\nStopped 0 legacy processes.\n"
    );
}

#[test]
fn predeploy_cleanup_refuses_a_foreign_socket() {
    let dir = temp_dir("rec-pre-foreign");
    let cfg = predeploy_config(&dir, "rb-never-matches-anything");
    let socket = dir.join("c.sock");
    let _listener = UnixListener::bind(&socket).unwrap();
    let (code, _, err) = outputs(&cli(&cfg, &["predeploy-cleanup"]));
    assert_eq!(code, Some(1));
    assert!(
        err.contains("non-Rollbridge") && err.contains(&socket.display().to_string()),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
