//! `rollbridge upgrade` through the real binary: the daemon replaces its
//! program (here: with a copy of itself, "installed" in a temp dir) under
//! keep-alive and connection-per-request load with an open WebSocket, and
//! nothing notices; a broken new binary is refused with the old program
//! serving on.

mod deploy_support;
use deploy_support::*;

use std::io::Write;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The proxied fixture app plus a companion that prints a numbered line
/// every 50 ms (output capture must carry on across the upgrade).
fn processes() -> String {
    format!(
        r#"[{{"id":"web","policy":"proxied","command":"node {} {{{{port}}}}","port":{{"from":0,"to":0}},"health":{{"intervalMs":20,"timeoutMs":10000}},"restartDelayMs":50}},
           {{"id":"ticker","policy":"companion","command":"i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.05; done"}}]"#,
        fixture("app.js")
    )
}

/// A copy of the binary under test, as if installed at a path of its own.
fn installed(dir: &Path) -> PathBuf {
    let path = dir.join("bin").join("rollbridge");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::copy(BIN, &path).unwrap();
    path
}

fn upgrade(d: &Deployment, binary: &Path) -> std::process::Output {
    d.daemon.cli(&[
        "upgrade",
        "--binary",
        binary.to_str().unwrap(),
        "--timeout-ms",
        "5000",
    ])
}

struct Load {
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    errors: Arc<std::sync::Mutex<Vec<String>>>,
}

/// Bounded loopback load: one client at a time per thread, keep-alive or
/// a fresh connection per request.
fn spawn_load(
    port: u16,
    keep_alive: bool,
    stop: Arc<AtomicBool>,
    load: &Load,
) -> std::thread::JoinHandle<()> {
    let (ok, failed, errors) = (load.ok.clone(), load.failed.clone(), load.errors.clone());
    std::thread::spawn(move || {
        let fail = |e: String| {
            failed.fetch_add(1, Ordering::Relaxed);
            errors.lock().unwrap().push(e);
        };
        let mut conn: Option<TcpStream> = None;
        let mut buf = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            if !keep_alive {
                match get(port, "/") {
                    Ok((200, _)) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok((s, b)) => fail(format!("status {s}: {b}")),
                    Err(e) => fail(format!("conn-per-request: {e}")),
                }
                continue;
            }
            if conn.is_none() {
                match TcpStream::connect(("127.0.0.1", port)) {
                    Ok(s) => {
                        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                        conn = Some(s);
                        buf.clear();
                    }
                    Err(e) => {
                        fail(format!("connect: {e}"));
                        continue;
                    }
                }
            }
            let Some(s) = conn.as_mut() else { continue };
            let result = s
                .write_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
                .and_then(|_| read_response(s, &mut buf).map(|(status, _)| status));
            match result {
                Ok(200) => {
                    ok.fetch_add(1, Ordering::Relaxed);
                }
                Ok(status) => fail(format!("keep-alive status {status}")),
                Err(e) => {
                    fail(format!("keep-alive: {e}"));
                    conn = None;
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    })
}

fn open_ws(port: u16) -> tungstenite::WebSocket<TcpStream> {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (ws, response) =
        tungstenite::client::client(format!("ws://127.0.0.1:{port}/ws"), stream).unwrap();
    assert_eq!(response.status(), 101);
    ws
}

fn echo(ws: &mut tungstenite::WebSocket<TcpStream>, text: &str) -> String {
    ws.send(tungstenite::Message::text(text)).unwrap();
    loop {
        match ws.read().unwrap() {
            tungstenite::Message::Text(t) => return t.to_string(),
            _ => continue,
        }
    }
}

fn pid_of(status: &serde_json::Value, release: &str, id: &str) -> u64 {
    let r = status["releases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["releaseId"] == release)
        .unwrap();
    process(r, id)["pid"].as_u64().unwrap_or(0)
}

/// The highest `tick N` in the captured output of the ticker (as `logs`
/// and `status` show it).
fn last_tick(d: &Deployment) -> u64 {
    let s = d.status();
    process(&s["releases"][0], "ticker")["logs"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|v| {
            v["line"]
                .as_str()
                .and_then(|t| t.strip_prefix("tick "))
                .and_then(|n| n.parse().ok())
        })
        .max()
        .unwrap_or(0)
}

#[test]
fn upgrade_under_load_keeps_connections_processes_and_state() {
    if !have_node() {
        eprintln!("skipped: node is not installed");
        return;
    }
    let d = Deployment::start("upgrade", "", &processes());
    d.deploy_ok("v1");
    let port = d.proxy_port();
    let binary = installed(d.dir());
    let before = d.status();
    let web_pid = pid_of(&before, "v1", "web");
    let ticker_pid = pid_of(&before, "v1", "ticker");
    assert!(web_pid > 0 && ticker_pid > 0, "{before:#}");

    let mut ws = open_ws(port);
    assert_eq!(echo(&mut ws, "before"), "v1:before");
    // An idle keep-alive connection that must survive.
    let mut idle = TcpStream::connect(("127.0.0.1", port)).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut idle_buf = Vec::new();
    idle.write_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut idle, &mut idle_buf).unwrap().0, 200);

    let load = Load {
        ok: Arc::new(AtomicU64::new(0)),
        failed: Arc::new(AtomicU64::new(0)),
        errors: Arc::new(std::sync::Mutex::new(Vec::new())),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = [true, true, false, false]
        .into_iter()
        .map(|ka| spawn_load(port, ka, stop.clone(), &load))
        .collect();
    std::thread::sleep(Duration::from_millis(300));

    let out = upgrade(&d, &binary);
    assert_eq!(out.status.code(), Some(0), "upgrade: {}", stderr(&out));
    let reply: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let keys: Vec<&str> = reply
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        ["status", "message", "previousVersion", "version", "pid"]
    );
    assert_eq!(reply["message"], "upgraded");
    assert_eq!(reply["pid"], d.daemon.pid());

    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let errors = load.errors.lock().unwrap().clone();
    assert_eq!(
        load.failed.load(Ordering::Relaxed),
        0,
        "failed requests: {errors:?}"
    );
    assert!(load.ok.load(Ordering::Relaxed) > 0);

    // The tunnel and the idle keep-alive connection flow on.
    assert_eq!(echo(&mut ws, "after"), "v1:after");
    idle.write_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut idle, &mut idle_buf).unwrap().0, 200);

    // Same daemon pid, same app pids, same world.
    let after = d.status();
    assert_eq!(pid_of(&after, "v1", "web"), web_pid);
    assert_eq!(pid_of(&after, "v1", "ticker"), ticker_pid);
    assert_eq!(after["activeReleaseId"], "v1");
    let events = stdout(&d.daemon.cli(&["events", "--json"]));
    assert!(events.contains("daemon upgraded"), "{events}");
    assert!(
        events.contains("traffic switched"),
        "events carried over: {events}"
    );

    // Output capture goes on through the handed-over pipes.
    let tick = last_tick(&d);
    let deadline = Instant::now() + Duration::from_secs(5);
    while last_tick(&d) <= tick + 2 {
        assert!(
            Instant::now() < deadline,
            "no output captured after the upgrade"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // The new program supervises: a killed app is restarted.
    unsafe { libc::kill(web_pid as i32, libc::SIGKILL) };
    d.wait_status("web restarted", 10, |s| {
        let pid = pid_of(s, "v1", "web");
        pid != 0 && pid != web_pid
    });
    let s = d.status();
    let r = &s["releases"][0];
    assert_eq!(process(r, "web")["restarts"], 1, "{s:#}");
    assert_eq!(process(r, "web")["lastStartReason"], "crash", "{s:#}");

    // Maintenance survives a second upgrade (default binary: the one the
    // daemon now runs from).
    let on = d
        .daemon
        .cli(&["maintenance", "on", "--message", "back soon"]);
    assert_eq!(on.status.code(), Some(0), "{}", stderr(&on));
    let again = d.daemon.cli(&["upgrade", "--timeout-ms", "5000"]);
    assert_eq!(
        again.status.code(),
        Some(0),
        "second upgrade: {}",
        stderr(&again)
    );
    let s = d.status();
    assert_eq!(s["maintenance"]["message"], "back soon", "{s:#}");
    let (code, _) = get(port, "/").unwrap();
    assert_eq!(code, 503);
}

#[test]
fn upgrade_to_a_broken_binary_is_refused_and_the_daemon_serves_on() {
    let d = TestDaemon::start("upgrade-broken");
    let pid = d.pid();
    let dir = d.dir.clone();
    let failing = dir.join("failing.sh");
    std::fs::write(&failing, "#!/bin/sh\necho boom >&2\nexit 1\n").unwrap();
    std::fs::set_permissions(&failing, std::fs::Permissions::from_mode(0o755)).unwrap();
    let plain = dir.join("plain-file");
    std::fs::write(&plain, "not a program").unwrap();
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
    let missing = dir.join("missing");
    for (binary, cause) in [
        (&failing, "exited with code 1"),
        (&plain, "is not executable"),
        (&missing, "does not exist"),
    ] {
        let out = d.cli(&[
            "upgrade",
            "--binary",
            binary.to_str().unwrap(),
            "--timeout-ms",
            "3000",
        ]);
        assert_eq!(out.status.code(), Some(1), "{binary:?}: {}", stdout(&out));
        let err = stderr(&out);
        assert!(
            err.contains("Upgrade failed") && err.contains(cause),
            "{binary:?}: {err}"
        );
        let status = d.cli(&["status"]);
        assert_eq!(status.status.code(), Some(0), "{}", stderr(&status));
        let info = d.request(r#"{"command":"daemon-info"}"#);
        assert!(info.contains(&format!("\"pid\":{pid}")), "{info}");
    }
}
