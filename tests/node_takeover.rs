//! Switching from a running Node daemon (the original tool, 0.1.21) to
//! ours with `daemon --takeover-owner`, under constant load. The Node
//! daemon closes its proxy listener instead of handing it over, so the
//! port is closed for a moment: the candidate measures that window and
//! reports it, and the only failures load may see are connection refusals
//! inside it. Skips when node or npm is missing or the npm install fails.

mod deploy_support;
use deploy_support::*;
mod load_support;
use load_support::{Load, spawn_load};
mod node_support;
use node_support::{NodeDaemon, node_cli, node_tool};

use std::net::TcpListener;
use std::path::Path;
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

fn release(dir: &Path, id: &str) -> String {
    let p = dir.join("releases").join(id);
    std::fs::create_dir_all(&p).unwrap();
    p.to_str().unwrap().to_owned()
}

fn event(lines: &[String], message: &str) -> Option<serde_json::Value> {
    lines
        .iter()
        .find(|l| l.contains(&format!("\"message\":\"{message}\"")))
        .map(|l| serde_json::from_str(l).unwrap())
}

/// Running (not gone, not a zombie waiting to be reaped).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|r| !r.trim_start().starts_with('Z'))
    })
}

#[test]
fn takeover_from_the_node_daemon_under_load_refuses_only_inside_the_reported_gap() {
    let node_bin = match node_tool() {
        Ok(bin) => bin,
        Err(why) => {
            eprintln!("SKIPPED takeover_from_the_node_daemon: {why}");
            return;
        }
    };
    let dir = temp_dir("nodeswitch");
    let port = free_port();
    // One config for both tools: the Node tool imports it as a module.
    let config = dir.join("rollbridge.config.mjs");
    std::fs::write(
        &config,
        format!(
            r#"export default {{"application":"nodeswitch","control":{{"path":"{sock}"}},"proxy":{{"host":"127.0.0.1","port":{port}}},"processes":[{{"id":"web","policy":"proxied","command":"node {js} {{{{port}}}}","port":{range},"health":{{"path":"/ping","intervalMs":20,"timeoutMs":5000}}}}]}};"#,
            sock = dir.join("c.sock").display(),
            js = fixture("app.js"),
            range = range(23360, 10),
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();

    let mut node = NodeDaemon::start(&node_bin, &config, &dir.join("node.log"));
    let out = node_cli(
        &node_bin,
        &[
            "deploy",
            "--config",
            cfg,
            "--release-path",
            &release(&dir, "v1"),
            "--release-id",
            "v1",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "node deploy: {}", stderr(&out));
    let (code, body) = get(port, "/").unwrap();
    assert_eq!(code, 200);
    assert!(body.starts_with("release v1 pid "), "{body}");
    let node_app: i32 = body.rsplit(' ').next().unwrap().parse().unwrap();
    let before = node_support::status(&config).expect("node status");
    assert_eq!(before["daemonRuntime"]["version"], "0.1.21", "{before}");

    let load = Arc::new(Load::default());
    let stop = Arc::new(AtomicBool::new(false));
    let threads = spawn_load(
        port,
        &[true, true, false, false],
        stop.clone(),
        load.clone(),
    );
    std::thread::sleep(Duration::from_millis(300));

    let mut cmd = Command::new(BIN);
    cmd.arg("daemon")
        .arg("--config")
        .arg(&config)
        .args(["--release-path", &release(&dir, "v2")])
        .args(["--release-id", "v2", "--revision", "v2"])
        .args(["--boot-attestation", ATTESTATION, "--takeover-owner"]);
    let new = TestDaemon::spawn_command(dir.clone(), config.clone(), cmd);
    new.wait_ready();
    // The Node listener is closed by now: every connection opened from
    // here on is the candidate's.
    let ready_at = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !get(port, "/").is_ok_and(|(_, b)| b.starts_with("release v2")) {
        assert!(Instant::now() < deadline, "v2 never served");
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }

    let lines = new.stdout.all();
    let taken = event(&lines, "proxy port taken over").expect("no takeover event");
    assert_eq!(taken["data"]["listener"], "bound", "{taken}");
    let gap_us = taken["data"]["gapUs"].as_u64().expect("gapUs");
    let attempts = load.refused.lock().unwrap().clone();
    // The refusals' spread, robust to a load thread descheduled around
    // its connect: the latest start of a refused attempt after the
    // earliest refusal seen (never more than the true spread).
    let spread = match (
        attempts.iter().map(|(opened, _)| *opened).max(),
        attempts.iter().map(|(_, seen)| *seen).min(),
    ) {
        (Some(last_start), Some(first_seen)) => last_start.saturating_duration_since(first_seen),
        _ => Duration::ZERO,
    };
    let refused: Vec<Instant> = attempts.iter().map(|(opened, _)| *opened).collect();
    let seen: Vec<Instant> = attempts.iter().map(|(_, seen)| *seen).collect();
    eprintln!(
        "node takeover: port closed for at most {gap_us} µs (candidate); {}; refusals spread over {} µs",
        load.summary(),
        spread.as_micros()
    );
    if let Some(first) = refused.first() {
        let at: Vec<u128> = refused
            .iter()
            .map(|t| t.duration_since(*first).as_micros())
            .collect();
        eprintln!("refusals at (µs after the first): {at:?}");
    }
    assert!(load.ok.load(Ordering::Relaxed) > 100, "too little load");
    // The candidate fails nothing and refuses nothing.
    let errors = load.errors.lock().unwrap().clone();
    let (ours, old_owner): (Vec<_>, Vec<_>) = errors.iter().partition(|(t, _)| *t >= ready_at);
    assert!(ours.is_empty(), "the candidate failed requests: {ours:?}");
    // Seen before the candidate was ready: the refusal itself came earlier.
    assert!(seen.iter().all(|t| *t < ready_at), "refused after takeover");
    // The Node daemon's own retirement costs requests on the connections
    // it still holds: it resets the ones waiting in its listener's queue
    // when it closes it, and answers 502 (chunked, its own page) on open
    // keep-alive connections once it has stopped its app. Nothing else.
    for (_, e) in &old_owner {
        eprintln!("failed on a connection of the Node daemon: {e:?}");
        let known = e.contains("Connection reset by peer")
            || e.contains("keep-alive status 502")
            || e.starts_with("status 502: c\r\nBad gateway");
        assert!(known, "unexpected failure: {e}");
    }
    // Every refusal falls inside the window the candidate reports (slack
    // for the load threads' own scheduling).
    assert!(
        spread <= Duration::from_micros(gap_us) + Duration::from_millis(5),
        "refusals spread over {spread:?}, reported gap {gap_us} µs"
    );
    assert!(gap_us < 1_000_000, "port closed for {gap_us} µs");

    // The candidate runs its own release; no orphan report.
    let s = node_support::status(&config).expect("status");
    assert_eq!(s["activeReleaseId"], "v2");
    assert_eq!(s["bootstrap"]["releaseId"], "v2");
    assert_eq!(s["bootstrap"]["attestation"], ATTESTATION);
    assert_ne!(s["daemonRuntime"]["version"], "0.1.21");
    assert!(event(&lines, "orphaned processes from a previous daemon").is_none());

    // The Node daemon stops its own app (normal stop) and exits 0.
    assert_eq!(node.wait_exit(Duration::from_secs(30)), Some(0));
    assert!(
        !alive(node_app),
        "the Node daemon's app {node_app} still runs"
    );
    let log = std::fs::read_to_string(dir.join("node.log")).unwrap();
    assert!(
        log.contains("\"message\":\"external owner retired\""),
        "{log}"
    );
    assert!(get(port, "/").unwrap().1.starts_with("release v2"));
}
