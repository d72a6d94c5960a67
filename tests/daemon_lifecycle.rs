//! The real binary: start, status, logs, shutdown, signals, start-up
//! diagnostics (second daemon, stale socket, foreign listener, busy proxy
//! port), socket permissions and sd_notify.

mod daemon_support;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::time::{Duration, Instant};

use daemon_support::*;

#[test]
fn start_status_logs_shutdown() {
    let mut d = TestDaemon::start("life");
    let out = d.cli(&["status"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(
        top_level_keys(&text),
        [
            "status",
            "activeReleaseId",
            "application",
            "control",
            "daemonRuntime",
            "orphans",
            "proxy",
            "releases",
            "services",
            "singletons",
            "maintenance",
            "paused",
            "canary",
            "lastAutoRollback"
        ]
    );
    assert!(text.starts_with("{\n  \"status\": \"success\",\n  \"activeReleaseId\": null,\n"));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["application"], "life");
    assert_eq!(v["control"]["path"], d.socket.to_str().unwrap());
    let port = v["proxy"]["port"].as_u64().unwrap();
    assert!(port > 0, "real bound port reported");
    assert_eq!(v["proxy"]["host"], "127.0.0.1");
    assert_eq!(v["proxy"]["upstreamHost"], "127.0.0.1");
    // The placeholder proxy really listens on that port.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port as u16)).is_ok());

    let logs = d.cli(&["logs"]);
    assert_eq!(logs.status.code(), Some(0));
    assert_eq!(stdout(&logs), "No managed processes.\n");
    let logs = d.cli(&["logs", "--json"]);
    assert_eq!(stdout(&logs), "[]\n");
    let logs = d.cli(&["logs", "--process", "web"]);
    assert_eq!(logs.status.code(), Some(0));

    let out = d.cli(&["shutdown"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "{\n  \"status\": \"success\",\n  \"message\": \"shutdown\"\n}\n"
    );
    // The reply guarantees the socket is gone.
    assert!(!d.socket.exists());
    assert_eq!(d.wait_exit(Duration::from_secs(5)), Some(0));
    // Proxy port closed.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port as u16)).is_err());
}

#[test]
fn daemon_log_is_json_lines_with_startup_events() {
    let d = TestDaemon::start("jsonl");
    let lines = d.stdout.all();
    assert!(lines.len() >= 2);
    let first: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(first["message"], "proxy listening");
    assert!(lines[0].starts_with("{\"at\":\""));
    let second: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
    assert_eq!(second["message"], "control socket listening");
    assert_eq!(second["data"]["path"], d.socket.to_str().unwrap());
}

#[test]
fn sigterm_and_sigint_shut_down_cleanly() {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let mut d = TestDaemon::start("sig");
        d.signal(sig);
        assert_eq!(d.wait_exit(Duration::from_secs(5)), Some(0));
        assert!(!d.socket.exists());
    }
}

#[test]
fn second_daemon_on_the_same_socket_is_refused_with_the_diagnostic() {
    let d = TestDaemon::start("twice");
    let out = d.cli(&["daemon"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "A Rollbridge daemon for application \"twice\" is already running on {} (no active release)",
            d.socket.display()
        )),
        "{err}"
    );
    assert!(err.contains("rollbridge status") && err.contains("rollbridge shutdown"));
    // The first one is untouched.
    assert_eq!(d.cli(&["status"]).status.code(), Some(0));
}

#[test]
fn stale_socket_file_is_cleaned_up() {
    let dir = temp_dir("stale");
    let config = write_config(&dir, "stale", "", 0);
    {
        let _l = UnixListener::bind(dir.join("c.sock")).unwrap();
    } // dropped: the file stays, nobody listens
    assert!(dir.join("c.sock").exists());
    let d = TestDaemon::start_with(dir, config, &[]);
    assert_eq!(d.cli(&["status"]).status.code(), Some(0));
}

#[test]
fn foreign_listener_is_reported_as_in_use() {
    let dir = temp_dir("foreign");
    let config = write_config(&dir, "foreign", "", 0);
    let listener = UnixListener::bind(dir.join("c.sock")).unwrap();
    // Accepts but never answers: the probe gives up after 1 s.
    let t = std::thread::spawn(move || {
        let c = listener.accept();
        std::thread::sleep(Duration::from_millis(1500));
        drop(c);
    });
    let started = Instant::now();
    let out = cli(&config, &["daemon"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(started.elapsed() < Duration::from_secs(5));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "{} is already in use by another process",
            dir.join("c.sock").display()
        )),
        "{err}"
    );
    t.join().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn busy_proxy_port_fails_start_with_the_os_error() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let dir = temp_dir("busy");
    let config = write_config(&dir, "busy", "", port);
    let out = cli(&config, &["daemon"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("EADDRINUSE"), "{}", stderr(&out));
    assert!(!dir.join("c.sock").exists(), "nothing left bound");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn cli_without_daemon_reports_connect_enoent() {
    let dir = temp_dir("nodaemon");
    let config = write_config(&dir, "nodaemon", "", 0);
    for cmd in ["status", "logs", "shutdown"] {
        let out = cli(&config, &[cmd]);
        assert_eq!(out.status.code(), Some(1), "{cmd}");
        // The original's line first, then what it means and what to do.
        let err = stderr(&out);
        let mut lines = err.lines();
        assert_eq!(
            lines.next().unwrap_or_default(),
            format!("connect ENOENT {}", dir.join("c.sock").display())
        );
        assert!(
            lines
                .next()
                .unwrap_or_default()
                .starts_with("No Rollbridge daemon is listening at"),
            "{err}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn invalid_config_exits_one_before_binding() {
    let dir = temp_dir("badcfg");
    let path = dir.join("rollbridge.json");
    std::fs::write(&path, r#"{"application":"x"}"#).unwrap();
    let out = cli(&path, &["daemon"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!stderr(&out).is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn control_mode_is_applied_and_reported_as_decimal() {
    let dir = temp_dir("mode");
    let config = write_config(&dir, "mode", r#","mode":"600""#, 0);
    let d = TestDaemon::start_with(dir, config, &[]);
    let mode = std::fs::metadata(&d.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let v: serde_json::Value = serde_json::from_str(&stdout(&d.cli(&["status"]))).unwrap();
    assert_eq!(v["control"]["mode"], 384);
}

#[test]
fn unknown_owner_name_aborts_start_and_leaves_no_socket() {
    let dir = temp_dir("owner");
    let config = write_config(&dir, "owner", r#","owner":"no-such-user-rb""#, 0);
    let out = cli(&config, &["daemon"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("Unknown user \"no-such-user-rb\""),
        "{}",
        stderr(&out)
    );
    assert!(!dir.join("c.sock").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn numeric_owner_and_group_are_applied() {
    let dir = temp_dir("chown");
    let uid = unsafe { libc::getuid() };
    let gid = unsafe { libc::getgid() };
    let config = write_config(
        &dir,
        "chown",
        &format!(r#","owner":{uid},"group":"{gid}""#),
        0,
    );
    let d = TestDaemon::start_with(dir, config, &[]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&d.cli(&["status"]))).unwrap();
    assert_eq!(v["control"]["owner"], uid);
    // A numeric string may be normalized to the number by config loading.
    let group = &v["control"]["group"];
    assert!(group == &serde_json::json!(gid) || group == &serde_json::json!(gid.to_string()));
}

#[test]
fn sd_notify_ready_then_stopping() {
    let dir = temp_dir("notify");
    let config = write_config(&dir, "notify", "", 0);
    let notify_path = dir.join("n.sock");
    let rx = UnixDatagram::bind(&notify_path).unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut d = TestDaemon::start_with(
        dir,
        config,
        &[("NOTIFY_SOCKET", notify_path.to_str().unwrap())],
    );
    let mut buf = [0u8; 64];
    let n = rx.recv(&mut buf).unwrap();
    let ready = format!("READY=1\nMAINPID={}", d.pid());
    assert_eq!(&buf[..n], ready.as_bytes());
    d.signal(libc::SIGTERM);
    let n = rx.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"STOPPING=1");
    assert_eq!(d.wait_exit(Duration::from_secs(5)), Some(0));
}

#[test]
fn new_daemon_can_start_right_after_shutdown_reply() {
    let mut d = TestDaemon::start("restart");
    let out = d.cli(&["shutdown"]);
    assert_eq!(out.status.code(), Some(0));
    let d2 = TestDaemon::spawn(d.dir.clone(), d.config.clone(), &[]);
    assert!(
        d2.stdout
            .wait_for("control socket listening", Duration::from_secs(10))
            .is_some(),
        "{:?}",
        d2.stderr.all()
    );
    assert_eq!(d.wait_exit(Duration::from_secs(5)), Some(0));
    assert_eq!(d2.cli(&["status"]).status.code(), Some(0));
}
