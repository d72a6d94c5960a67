//! The `admin listening` event (with the bound port) however the daemon got
//! its proxy listener: taken over from a running owner, or inherited by
//! systemd socket activation. The admin listener answers on that port.

mod deploy_support;
use deploy_support::*;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const ATTESTATION: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// A config on proxy port `port` with an admin listener on any port and
/// one node web process.
fn write_config(dir: &Path, app: &str, port: u16) -> PathBuf {
    let config = serde_json::json!({
        "application": app,
        "control": {"path": dir.join("c.sock")},
        "proxy": {"host": "127.0.0.1", "port": port},
        "admin": {"host": "127.0.0.1", "port": 0},
        "processes": [{
            "id": "web", "policy": "proxied",
            "command": format!("node {} {{{{port}}}}", fixture("app.js")),
            "port": {"from": 0, "to": 0},
            "health": {"intervalMs": 20, "timeoutMs": 10000}
        }],
    });
    let path = dir.join("rollbridge.json");
    std::fs::write(&path, config.to_string()).unwrap();
    path
}

/// The `admin listening` event's port, and `/healthz` answered there.
#[track_caller]
fn admin_listening(d: &TestDaemon) -> u16 {
    let line = d
        .stdout
        .wait_for("\"admin listening\"", Duration::from_secs(10))
        .unwrap_or_else(|| panic!("no admin listening event: {:?}", d.stdout.all()));
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["data"]["host"], "127.0.0.1");
    let port = v["data"]["port"].as_u64().unwrap() as u16;
    assert_ne!(port, 0);
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: admin\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    port
}

/// Plays an owner that answers `retire-owner` without passing its listener
/// and closes its port soon after replying.
fn fake_owner(socket: &Path, port: u16) -> std::thread::JoinHandle<()> {
    let held = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let control = UnixListener::bind(socket).unwrap();
    let socket = socket.to_path_buf();
    std::thread::spawn(move || {
        let (stream, _) = control.accept().unwrap();
        let mut line = String::new();
        BufReader::new(stream.try_clone().unwrap())
            .read_line(&mut line)
            .unwrap();
        drop(control);
        std::fs::remove_file(&socket).unwrap();
        (&stream)
            .write_all(b"{\"status\":\"success\",\"message\":\"owner retired\"}\n")
            .unwrap();
        drop(stream);
        std::thread::sleep(Duration::from_millis(50));
        drop(held);
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn takeover_records_admin_listening() {
    if !have_node() {
        eprintln!("node not installed: skipped");
        return;
    }
    let dir = temp_dir("admin-takeover");
    let port = free_port();
    let config = write_config(&dir, "admin-takeover", port);
    let owner = fake_owner(&dir.join("c.sock"), port);
    let release = dir.join("releases").join("v2");
    std::fs::create_dir_all(&release).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.arg("daemon")
        .arg("--config")
        .arg(&config)
        .arg("--release-path")
        .arg(&release)
        .args(["--release-id", "v2", "--revision", "v2"])
        .args(["--boot-attestation", ATTESTATION, "--takeover-owner"]);
    let new = TestDaemon::spawn_command(dir.clone(), config, cmd);
    new.wait_ready();
    owner.join().unwrap();
    admin_listening(&new);
}

/// Starts the daemon with `fd` as the first socket-activation descriptor
/// (a `sh` wrapper puts its own pid, which `exec` keeps, in `LISTEN_PID`).
fn activated(dir: &Path, config: &Path, fd: RawFd) -> TestDaemon {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"LISTEN_PID=$$ exec "$0" daemon --config "$1""#)
        .arg(BIN)
        .arg(config)
        .env("LISTEN_FDS", "1")
        .env("LISTEN_FDNAMES", "proxy");
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

#[test]
fn socket_activation_records_admin_listening() {
    let dir = temp_dir("admin-activation");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let config = write_config(&dir, "admin-activation", port);
    let d = activated(&dir, &config, listener.as_raw_fd());
    d.wait_ready();
    admin_listening(&d);
}
