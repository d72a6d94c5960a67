//! systemd notifications through the real binary: the test binds the
//! datagram socket systemd would (`NOTIFY_SOCKET`) and reads what arrives.

mod daemon_support;
use daemon_support::*;

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

fn recv(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 512];
    let n = sock.recv(&mut buf).expect("no notification arrived");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn ready_then_stopping(notify: UnixDatagram, target: &str, tag: &str) {
    notify
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let dir = temp_dir(tag);
    let config = write_config(&dir, tag, "", 0);
    let mut d = TestDaemon::start_with(dir, config, &[("NOTIFY_SOCKET", target)]);
    let ready = recv(&notify);
    assert_eq!(ready, format!("READY=1\nMAINPID={}", d.pid()));
    d.signal(libc::SIGTERM);
    assert_eq!(recv(&notify), "STOPPING=1");
    assert_eq!(d.wait_exit(Duration::from_secs(10)), Some(0));
}

#[test]
fn notify_socket_hears_ready_with_mainpid_and_stopping() {
    let dir = temp_dir("notify-sock");
    let path = dir.join("notify.sock");
    let notify = UnixDatagram::bind(&path).unwrap();
    ready_then_stopping(notify, path.to_str().unwrap(), "notify");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn abstract_notify_socket_is_reached() {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("rbt-notify-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let notify = UnixDatagram::bind_addr(&addr).unwrap();
    ready_then_stopping(notify, &format!("@{name}"), "notify-abs");
}

#[test]
fn notify_socket_is_not_passed_to_apps() {
    let dir = temp_dir("notify-env");
    let path = dir.join("notify.sock");
    let notify = UnixDatagram::bind(&path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let env_file = dir.join("env.txt");
    let config = dir.join("rollbridge.json");
    let text = serde_json::json!({
        "application": "notify-env",
        "control": {"path": dir.join("c.sock")},
        "proxy": {"port": 0},
        "processes": [
            {"id": "web", "policy": "proxied", "command": "sleep 1000", "port": {"from": 0, "to": 0}},
            {"id": "dump", "policy": "service", "command": format!("env > {}; exec sleep 1000", env_file.display())}
        ]
    });
    std::fs::write(&config, text.to_string()).unwrap();
    let d = TestDaemon::start_with(
        dir.clone(),
        config,
        &[("NOTIFY_SOCKET", path.to_str().unwrap())],
    );
    assert!(recv(&notify).starts_with("READY=1"));
    let release = dir.join("r1");
    std::fs::create_dir_all(&release).unwrap();
    // Services start first; the deploy itself is not awaited (sleep never
    // passes a health check), the daemon's cleanup ends it.
    let mut deploy = std::process::Command::new(BIN)
        .args([
            "deploy",
            "--release-path",
            release.to_str().unwrap(),
            "--config",
        ])
        .arg(&d.config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !env_file.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100));
    let env = std::fs::read_to_string(&env_file).expect("service did not start");
    assert!(env.contains("ROLLBRIDGE"), "{env}");
    assert!(!env.contains("NOTIFY_SOCKET"), "{env}");
    let _ = deploy.kill();
    let _ = deploy.wait();
}
