//! Owner takeover through the real binary: a candidate deploys its release,
//! retires the running daemon and keeps serving on the very socket that
//! daemon listened on, under constant load, with no refused connection and
//! no failed request. Also: an owner that hands over no listener (the Node
//! tool) and a candidate that fails before retirement.

mod deploy_support;
use deploy_support::*;
mod load_support;
use load_support::{Load, spawn_load};

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const ATTESTATION: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn write_config(dir: &Path, app: &str, port: u16, web_env: &str, range: &str) -> PathBuf {
    let config = format!(
        r#"{{"application":"{app}","control":{{"path":"{sock}"}},"proxy":{{"host":"127.0.0.1","port":{port},"drainTimeoutMs":5000}},"processes":[{{"id":"web","policy":"proxied","command":"node {js} {{{{port}}}}","port":{range},"env":{{{web_env}}},"health":{{"path":"/ping","intervalMs":20,"timeoutMs":3000}}}}]}}"#,
        sock = dir.join("c.sock").display(),
        js = fixture("app.js"),
    );
    let path = dir.join("rollbridge.json");
    std::fs::write(&path, config).unwrap();
    path
}

fn release(dir: &Path, id: &str) -> String {
    let p = dir.join("releases").join(id);
    std::fs::create_dir_all(&p).unwrap();
    p.to_str().unwrap().to_owned()
}

fn candidate(dir: &Path, config: &Path, id: &str) -> TestDaemon {
    let rp = release(dir, id);
    let mut cmd = Command::new(BIN);
    cmd.arg("daemon")
        .arg("--config")
        .arg(config)
        .args(["--release-path", &rp, "--release-id", id, "--revision", id])
        .args(["--boot-attestation", ATTESTATION, "--takeover-owner"]);
    TestDaemon::spawn_command(dir.to_path_buf(), config.to_path_buf(), cmd)
}

fn deploy(config: &Path, dir: &Path, id: &str) {
    let rp = release(dir, id);
    let out = daemon_support::cli(
        config,
        &["deploy", "--release-path", &rp, "--release-id", id],
    );
    assert_eq!(out.status.code(), Some(0), "deploy {id}: {}", stderr(&out));
}

fn event(lines: &[String], message: &str) -> Option<serde_json::Value> {
    lines
        .iter()
        .find(|l| l.contains(&format!("\"message\":\"{message}\"")))
        .map(|l| serde_json::from_str(l).unwrap())
}

#[test]
fn takeover_under_load_refuses_no_connection_and_fails_no_request() {
    if !have_node() {
        eprintln!("skipped: node is not installed");
        return;
    }
    let dir = temp_dir("takeover");
    let port = free_port();
    let config = write_config(&dir, "takeover", port, "", &range(23300, 10));
    let mut old = TestDaemon::start_with(dir.clone(), config.clone(), &[]);
    deploy(&config, &dir, "v1");
    assert!(get(port, "/").unwrap().1.starts_with("release v1"));

    let load = Arc::new(Load::default());
    let stop = Arc::new(AtomicBool::new(false));
    let threads = spawn_load(
        port,
        &[true, true, false, false],
        stop.clone(),
        load.clone(),
    );
    std::thread::sleep(Duration::from_millis(200));

    let new = candidate(&dir, &config, "v2");
    new.wait_ready();
    // The candidate serves v2 on the same port; let the load run on it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !get(port, "/").unwrap().1.starts_with("release v2") {
        assert!(Instant::now() < deadline, "v2 never served");
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let (ok, failed) = (
        load.ok.load(Ordering::Relaxed),
        load.failed.load(Ordering::Relaxed),
    );
    eprintln!("{}", load.summary());
    assert_eq!(failed, 0, "failed: {:?}", load.errors.lock().unwrap());
    assert_eq!(load.refused.lock().unwrap().len(), 0, "connections refused");
    assert!(ok > 100, "too little load to mean anything: {ok}");

    let new_lines = new.stdout.all();
    let taken = event(&new_lines, "proxy port taken over").expect("no takeover event");
    assert_eq!(taken["data"]["gapMs"], 0);
    assert_eq!(taken["data"]["listener"], "handed over");
    assert!(event(&new_lines, "orphaned processes from a previous daemon").is_none());
    let out = new.cli(&["status"]);
    let s: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(s["activeReleaseId"], "v2");
    assert_eq!(s["bootstrap"]["releaseId"], "v2");
    assert_eq!(s["proxy"]["port"], port);

    // The old owner stops its processes and exits 0.
    assert_eq!(old.wait_exit(Duration::from_secs(30)), Some(0));
    let retired = event(&old.stdout.all(), "external owner retired").expect("no retire event");
    assert_eq!(
        retired["data"],
        serde_json::json!({"attestation": ATTESTATION, "status": "draining"})
    );
}

/// Plays a Node daemon that answers `retire-owner` without passing its
/// listener and closes its port `delay` after replying.
fn fake_owner(socket: &Path, port: u16, delay: Duration) -> std::thread::JoinHandle<String> {
    let held = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let control = UnixListener::bind(socket).unwrap();
    let socket = socket.to_path_buf();
    std::thread::spawn(move || {
        let (stream, _) = control.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        // Like the real thing: the control socket goes before the reply.
        drop(control);
        std::fs::remove_file(&socket).unwrap();
        (&stream)
            .write_all(b"{\"status\":\"success\",\"message\":\"owner retired\"}\n")
            .unwrap();
        drop(stream);
        std::thread::sleep(delay);
        drop(held);
        line
    })
}

#[test]
fn takeover_from_an_owner_without_handover_binds_when_the_port_frees() {
    if !have_node() {
        return;
    }
    let dir = temp_dir("takeover-bind");
    let port = free_port();
    let config = write_config(&dir, "takeover-bind", port, "", &range(23320, 5));
    let owner = fake_owner(&dir.join("c.sock"), port, Duration::from_millis(150));
    let new = candidate(&dir, &config, "v2");
    new.wait_ready();
    let request: serde_json::Value = serde_json::from_str(&owner.join().unwrap()).unwrap();
    assert_eq!(
        request,
        serde_json::json!({"command": "retire-owner", "attestation": ATTESTATION})
    );
    let taken = event(&new.stdout.all(), "proxy port taken over").expect("no takeover event");
    assert_eq!(taken["data"]["listener"], "bound");
    // The owner held the port 150 ms past its answer; the candidate polled
    // it meanwhile and bound it within a few polls of its closing.
    let gap_us = taken["data"]["gapUs"].as_u64().expect("gapUs");
    assert!(gap_us < 100_000, "gapUs {gap_us}");
    assert_eq!(taken["data"]["gapMs"], gap_us / 1000);
    assert!(get(port, "/").unwrap().1.starts_with("release v2"));
}

#[test]
fn failed_candidate_leaves_the_current_owner_serving() {
    if !have_node() {
        return;
    }
    let dir = temp_dir("takeover-fail");
    let port = free_port();
    let config = write_config(&dir, "takeover-fail", port, "", &range(23330, 5));
    let old = TestDaemon::start_with(dir.clone(), config.clone(), &[]);
    deploy(&config, &dir, "v1");
    let bad = dir.join("bad.json");
    std::fs::write(
        &bad,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace(r#""env":{}"#, r#""env":{"UNHEALTHY":"1"}"#),
    )
    .unwrap();
    let mut new = candidate(&dir, &bad, "v2");
    assert_eq!(new.wait_exit(Duration::from_secs(20)), Some(1));
    let failed = event(&new.stdout.all(), "bootstrap activation failed").expect("no event");
    assert_eq!(failed["data"]["releaseId"], "v2");
    assert!(event(&old.stdout.all(), "external owner retired").is_none());
    assert!(get(port, "/").unwrap().1.starts_with("release v1"));
    let out = old.cli(&["status"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}
