//! systemd socket activation through the real binary: the test plays
//! systemd — it holds a bound TCP listener and starts the daemon with it at
//! fd 3 and `LISTEN_FDS`/`LISTEN_PID` set (a `sh` wrapper puts its own pid,
//! which `exec` keeps, in `LISTEN_PID`).

mod deploy_support;
use deploy_support::*;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A config whose proxy listens on `port`, with one node web process that
/// first records its environment and open descriptors in the temp dir.
fn write_config(dir: &Path, app: &str, port: u16, range: &str) -> PathBuf {
    let web = format!(
        "env > {d}/env.txt; ls -l /proc/$$/fd > {d}/fds.txt; exec node {app_js} {{{{port}}}}",
        d = dir.display(),
        app_js = fixture("app.js")
    );
    let processes = serde_json::json!([{
        "id": "web", "policy": "proxied", "command": web,
        "port": serde_json::from_str::<serde_json::Value>(range).unwrap(),
        "health": {"intervalMs": 20, "timeoutMs": 10000}
    }]);
    let config = serde_json::json!({
        "application": app,
        "control": {"path": dir.join("c.sock")},
        "proxy": {"host": "127.0.0.1", "port": port},
        "processes": processes,
    });
    let path = dir.join("rollbridge.json");
    std::fs::write(&path, config.to_string()).unwrap();
    path
}

/// Starts the daemon with `fd` passed as the first activation descriptor.
fn activated(dir: &Path, config: &Path, fd: RawFd, env: &[(&str, &str)]) -> TestDaemon {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"LISTEN_PID=$$ exec "$0" daemon --config "$1""#)
        .arg(BIN)
        .arg(config)
        .env("LISTEN_FDS", "1")
        .env("LISTEN_FDNAMES", "proxy");
    for (k, v) in env {
        cmd.env(k, v);
    }
    // SAFETY: dup2/fcntl are async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            if fd == 3 {
                let flags = libc::fcntl(3, libc::F_GETFD);
                libc::fcntl(3, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
            } else if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    TestDaemon::spawn_command(dir.to_path_buf(), config.to_path_buf(), cmd)
}

fn deploy(config: &Path, dir: &Path, id: &str) -> serde_json::Value {
    let path = dir.join("releases").join(id);
    std::fs::create_dir_all(&path).unwrap();
    let out = daemon_support::cli(
        config,
        &[
            "deploy",
            "--release-path",
            path.to_str().unwrap(),
            "--release-id",
            id,
        ],
    );
    assert_eq!(out.status.code(), Some(0), "deploy {id}: {}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

fn web_pid(config: &Path) -> i32 {
    let out = daemon_support::cli(config, &["status"]);
    let s: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    s["releases"][0]["processes"][0]["pid"].as_i64().unwrap() as i32
}

/// Kills the process group of an app the killed daemon left behind.
struct Leftover(i32);
impl Drop for Leftover {
    fn drop(&mut self) {
        // SAFETY: plain kill of the group this test's daemon created.
        unsafe {
            libc::kill(-self.0, libc::SIGKILL);
        }
    }
}

#[test]
fn inherited_listener_serves_and_a_crash_refuses_no_connection() {
    if !have_node() {
        eprintln!("skipped: node is not installed");
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = temp_dir("sockact");
    let config = write_config(&dir, "sockact", port, &range(23100, 20));

    let mut first = activated(&dir, &config, listener.as_raw_fd(), &[]);
    first.wait_ready();
    let line = first
        .stdout
        .wait_for("proxy listening", Duration::from_secs(1))
        .unwrap();
    assert!(line.contains(&format!("\"port\":{port}")), "{line}");
    deploy(&config, &dir, "v1");
    let (status, body) = get(port, "/").unwrap();
    assert_eq!(status, 200);
    assert!(body.starts_with("release v1"), "{body}");

    // Neither systemd's variables nor the listener reach the app.
    let env = std::fs::read_to_string(dir.join("env.txt")).unwrap();
    assert!(!env.contains("LISTEN_FDS"), "{env}");
    assert!(!env.contains("LISTEN_PID"), "{env}");
    let fds = std::fs::read_to_string(dir.join("fds.txt")).unwrap();
    assert!(!fds.contains("socket:"), "app inherited a socket:\n{fds}");

    let _v1 = Leftover(web_pid(&config));
    let pid = first.pid();
    first.signal(libc::SIGKILL);
    let _ = first.wait_exit(Duration::from_secs(5));
    // SAFETY: probing a pid.
    assert_eq!(unsafe { libc::kill(pid, 0) }, -1, "daemon survived SIGKILL");

    // No daemon runs: the connection waits in the backlog, not refused.
    let mut waiting = TcpStream::connect(("127.0.0.1", port)).expect("refused while down");
    waiting
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    waiting
        .write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();

    // The crashed daemon's app still runs: the operator (or a unit's
    // ExecStartPre) stops it, as a new daemon refuses to start beside it.
    let recovered = std::process::Command::new(env!("CARGO_BIN_EXE_rollbridge"))
        .args(["recover", "--force", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        recovered.status.success(),
        "{}",
        String::from_utf8_lossy(&recovered.stderr)
    );
    let second = activated(&dir, &config, listener.as_raw_fd(), &[]);
    second.wait_ready();
    let mut buf = Vec::new();
    waiting.read_to_end(&mut buf).unwrap();
    let (status, _) = parse(&buf).unwrap();
    // Answered by the new daemon (no release is active there yet).
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&buf));

    deploy(&config, &dir, "v2");
    let (status, body) = get(port, "/").unwrap();
    assert_eq!(status, 200);
    assert!(body.starts_with("release v2"), "{body}");
}

#[test]
fn activation_without_a_matching_listener_fails_clearly() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let other = TcpListener::bind("127.0.0.1:0").unwrap();
    let wanted = other.local_addr().unwrap().port();
    drop(other);
    let dir = temp_dir("sockact-miss");
    let config = write_config(&dir, "sockact-miss", wanted, &range(23130, 2));
    let mut d = activated(&dir, &config, listener.as_raw_fd(), &[]);
    assert_eq!(d.wait_exit(Duration::from_secs(10)), Some(1));
    let err = d.stderr.all().join("\n");
    assert!(err.contains("socket activation"), "{err}");
    assert!(!d.socket.exists(), "control socket exposed");
}

#[test]
fn activation_variables_for_another_process_are_ignored() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let held = listener.local_addr().unwrap().port();
    let dir = temp_dir("sockact-pid");
    let config = write_config(&dir, "sockact-pid", 0, &range(23140, 2));
    let fd = listener.as_raw_fd();
    let mut cmd = Command::new(BIN);
    cmd.arg("daemon")
        .arg("--config")
        .arg(&config)
        .env("LISTEN_FDS", "1")
        .env("LISTEN_PID", "1");
    // SAFETY: dup2 is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            if fd != 3 && libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let d = TestDaemon::spawn_command(dir.clone(), config.clone(), cmd);
    d.wait_ready();
    let out = daemon_support::cli(&config, &["status"]);
    let s: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let port = s["proxy"]["port"].as_u64().unwrap() as u16;
    assert_ne!(port, held, "took a listener meant for another process");
    assert_ne!(port, 0);
}
