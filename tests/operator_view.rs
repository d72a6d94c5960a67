//! The operator's view through the real binary: `logs`/`events --follow`,
//! deploy progress and health-check diagnostics, the readable `status`.

mod deploy_support;
use deploy_support::*;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn web(range: &str) -> String {
    format!(
        r#"{{"id":"web","policy":"proxied","command":"{BIN} demo-app --port {{{{port}}}}","port":{range},"health":{{"intervalMs":20,"timeoutMs":5000}}}}"#
    )
}

/// A companion printing `tick <n>` every 100 ms.
const TICKER: &str = r#"{"id":"ticker","policy":"companion","command":"i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.1; done"}"#;

/// A running `--follow` CLI whose stdout lines arrive on a channel.
struct Follower {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Follower {
    fn start(d: &Deployment, args: &[&str]) -> Follower {
        let mut child = Command::new(BIN)
            .args(args)
            .arg("--config")
            .arg(&d.daemon.config)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Follower { child, lines }
    }

    /// Waits for a line for which `pred` holds.
    #[track_caller]
    fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if pred(&l) => return l,
                Ok(_) => {}
                Err(_) => panic!("no follow line with {what}"),
            }
        }
    }

    /// SIGINT, then the exit code.
    fn interrupt(mut self) -> Option<i32> {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The newest captured `at` of `id` in the status.
fn last_at(d: &Deployment, id: &str) -> String {
    let s = d.status();
    let p = process(&s["releases"][0], id);
    p["logs"]
        .as_array()
        .and_then(|l| l.last())
        .map(|l| l["at"].as_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[test]
fn logs_follow_prints_new_lines_of_the_chosen_process_and_exits_0_on_sigint() {
    let d = Deployment::start(
        "follow-logs",
        "",
        &format!("[{TICKER},{}]", web(&range(24100, 20))),
    );
    d.deploy_ok("v1");
    d.wait_status("a tick", 10, |s| {
        !process(&s["releases"][0], "ticker")["logs"]
            .as_array()
            .unwrap()
            .is_empty()
    });
    let before = last_at(&d, "ticker");
    let f = Follower::start(&d, &["logs", "--follow", "--json", "--process", "ticker"]);
    let fresh = f.wait_for("a new tick", |l| {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["id"], "ticker", "{l}");
        assert_eq!(v["source"], "release v1 (active)", "{l}");
        v["logs"][0]["at"].as_str().unwrap() > before.as_str()
    });
    assert!(fresh.contains("tick"), "{fresh}");
    assert_eq!(f.interrupt(), Some(0));

    // Human form: the section, then new lines.
    let f = Follower::start(&d, &["logs", "--follow", "--process", "ticker"]);
    f.wait_for("the section header", |l| {
        l.starts_with("== ticker [release v1 (active)] ==")
    });
    let before = last_at(&d, "ticker");
    f.wait_for("a new human tick", |l| {
        l.starts_with("  ") && l.contains("[stdout] tick") && l.trim() > before.as_str()
    });
    assert_eq!(f.interrupt(), Some(0));
}

#[test]
fn events_follow_prints_a_deploy_as_it_happens() {
    let d = Deployment::start(
        "follow-events",
        "",
        &format!("[{}]", web(&range(24130, 20))),
    );
    d.deploy_ok("v1");
    let f = Follower::start(&d, &["events", "--follow", "--json"]);
    f.wait_for("the existing deploy", |l| l.contains("traffic switched"));
    d.deploy_ok("v2");
    let line = f.wait_for("the new switch", |l| {
        l.contains("traffic switched") && l.contains(r#""releaseId":"v2""#)
    });
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["data"]["previousReleaseId"], "v1");
    assert_eq!(f.interrupt(), Some(0));
}

#[test]
fn follow_ends_with_1_when_the_daemon_goes_away() {
    let d = Deployment::start("follow-gone", "", &format!("[{}]", web(&range(24160, 20))));
    let mut f = Follower::start(&d, &["events", "--follow"]);
    f.wait_for("the startup events", |l| {
        l.contains("control socket listening")
    });
    let out = d.daemon.cli(&["shutdown"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let status = f.child.wait().unwrap();
    assert_eq!(status.code(), Some(1));
    let mut err = String::new();
    f.child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(err.contains("went away"), "{err}");
}

#[test]
fn a_follower_that_never_reads_does_not_stall_the_daemon() {
    // A burst of output far larger than a follower's queue and socket.
    let flood = r#"{"id":"flood","policy":"companion","command":"seq 1 200000; sleep 600"}"#;
    let d = Deployment::start(
        "follow-stall",
        "",
        &format!("[{flood},{}]", web(&range(24190, 20))),
    );
    let mut stalled = Vec::new();
    for request in [
        r#"{"command":"logs","follow":true}"#,
        r#"{"command":"events","follow":true}"#,
    ] {
        let mut s = UnixStream::connect(&d.daemon.socket).unwrap();
        s.write_all(format!("{request}\n").as_bytes()).unwrap();
        stalled.push(s);
    }
    let started = Instant::now();
    d.deploy_ok("v1");
    d.deploy_ok("v2");
    let status_at = Instant::now();
    d.status();
    assert!(status_at.elapsed() < Duration::from_secs(2));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "deploys took {:?}",
        started.elapsed()
    );
    // The logs follower lost lines and is told so once it reads again.
    let logs = stalled.remove(0);
    logs.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut saw_dropped = false;
    for line in BufReader::new(logs).lines() {
        let Ok(line) = line else { break };
        if line.starts_with(r#"{"dropped":"#) {
            saw_dropped = true;
            break;
        }
    }
    assert!(saw_dropped, "no dropped notice");
}

fn failed_deploy_message(tag: &str, proxied: &str) -> String {
    let d = Deployment::start(tag, "", &format!("[{proxied}]"));
    let out = d.deploy("v1");
    assert_eq!(out.status.code(), Some(1));
    stderr(&out)
}

#[test]
fn failed_health_check_names_the_503_and_the_apps_last_lines() {
    let app = fixture("unhealthy.py");
    let proxied = format!(
        r#"{{"id":"web","policy":"proxied","command":"python3 {app} {{{{port}}}}","port":{},"health":{{"intervalMs":50,"timeoutMs":1500}}}}"#,
        range(24220, 20)
    );
    let err = failed_deploy_message("diag-503", &proxied);
    assert!(
        err.contains("Health check failed for http://127.0.0.1:"),
        "{err}"
    );
    assert!(err.contains("HTTP 503"), "{err}");
    assert!(err.contains("waited "), "{err}");
    assert!(err.contains("database unreachable"), "{err}");
    assert!(err.contains("boot line 25"), "{err}");
    // At most 20 lines are quoted: the earliest ones are not.
    assert!(!err.contains("boot line 5\n"), "{err}");
}

#[test]
fn failed_health_check_of_an_app_that_never_listens_names_the_connect_error() {
    let proxied = format!(
        r#"{{"id":"web","policy":"proxied","command":"echo waiting for nothing; sleep 600","port":{},"health":{{"intervalMs":50,"timeoutMs":800}}}}"#,
        range(24250, 20)
    );
    let err = failed_deploy_message("diag-connect", &proxied);
    assert!(err.contains("connect ECONNREFUSED"), "{err}");
    assert!(err.contains("waiting for nothing"), "{err}");
}

#[test]
fn failed_health_check_names_the_exit_code_of_a_process_that_exited() {
    let proxied = format!(
        r#"{{"id":"web","policy":"proxied","command":"echo cannot open config >&2; exit 3","port":{},"health":{{"intervalMs":50,"timeoutMs":5000}}}}"#,
        range(24280, 20)
    );
    let err = failed_deploy_message("diag-exit", &proxied);
    assert!(err.contains("Health check failed"), "{err}");
    assert!(err.contains("exited (code 3)"), "{err}");
    assert!(err.contains("cannot open config"), "{err}");
}

#[test]
fn deploy_progress_goes_to_stderr_and_stdout_keeps_the_json() {
    let d = Deployment::start("progress", "", &format!("[{}]", web(&range(24310, 20))));
    d.deploy_ok("v1");
    let path = d.releases.join("v2");
    std::fs::create_dir_all(&path).unwrap();
    let out = d.daemon.cli(&[
        "deploy",
        "--release-path",
        path.to_str().unwrap(),
        "--release-id",
        "v2",
        "--progress",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json["activeReleaseId"], "v2");
    assert_eq!(json["previousReleaseId"], "v1");
    let err = stderr(&out);
    for want in [
        "started web (pid ",
        "health check attempt 1",
        "traffic switched to v2 (from v1)",
        "draining v1: 0 http, 0 websocket",
        "done",
    ] {
        assert!(err.contains(want), "missing {want:?} in {err}");
    }
    // Without --progress (stderr is not a terminal here): nothing.
    let out = d.deploy("v3");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stderr(&out), "");
}

#[test]
fn status_is_a_readable_view_on_a_terminal_and_json_when_piped() {
    let d = Deployment::start("status-view", "", &format!("[{}]", web(&range(24340, 20))));
    d.deploy_ok("v1");
    let have_script = Command::new("script").arg("--version").output().is_ok();
    if have_script {
        let cmd = format!(
            "{BIN} status --config {}",
            d.daemon.config.to_str().unwrap()
        );
        let out = Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Daemon       pid "), "{text}");
        assert!(text.contains(&format!("pid {}", d.daemon.pid())), "{text}");
        assert!(text.contains("* v1"), "{text}");
        assert!(text.contains("active"), "{text}");
        assert!(text.contains("web"), "{text}");
        assert!(!text.contains("\"status\""), "{text}");
    }
    // Piped: the status object, pretty-printed, as before.
    let out = d.daemon.cli(&["status"]);
    let text = stdout(&out);
    assert!(
        text.starts_with("{\n  \"status\": \"success\",\n  \"activeReleaseId\": \"v1\""),
        "{text}"
    );
    let piped: serde_json::Value = serde_json::from_str(&text).unwrap();
    let raw: serde_json::Value =
        serde_json::from_str(&d.daemon.request(r#"{"command":"status"}"#)).unwrap();
    let keys = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&piped), keys(&raw));
    assert_eq!(
        piped["releases"][0]["releaseId"],
        raw["releases"][0]["releaseId"]
    );
}
