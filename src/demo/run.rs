//! `rollbridge demo`: the main job on built-in defaults. Starts a daemon
//! on free local ports with the built-in app, deploys release one, then
//! release two while clients send requests through the proxy, and reports
//! what happened: requests, failures, the switch, the drain.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::config::raw::Raw;
use crate::control::client;

/// Requests seen by the load threads, per answering release.
#[derive(Default)]
struct Tally {
    one: AtomicU64,
    two: AtomicU64,
    failed: AtomicU64,
}

struct Demo {
    dir: PathBuf,
    socket: String,
    daemon: Child,
}

impl Drop for Demo {
    fn drop(&mut self) {
        // Ask for a clean shutdown; never leave the daemon behind.
        let _ = client::request(
            &self.socket,
            r#"{"command":"shutdown"}"#,
            Some(Duration::from_secs(20)),
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.daemon.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if let Ok(None) = self.daemon.try_wait() {
            let _ = self.daemon.kill();
            let _ = self.daemon.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn run() -> Result<bool, String> {
    let exe = std::env::current_exe()
        .map_err(|e| format!("Cannot find the rollbridge executable: {e}"))?;
    let dir = std::env::temp_dir().join(format!("rollbridge-demo-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("releases/one"))
        .map_err(|e| format!("Cannot create {}: {e}", dir.display()))?;
    std::fs::create_dir_all(dir.join("releases/two"))
        .map_err(|e| format!("Cannot create {}: {e}", dir.display()))?;
    let socket = dir.join("control.sock").to_string_lossy().into_owned();
    let config = dir.join("rollbridge.json");
    let web = format!(
        "{} demo-app --port {{{{port}}}}",
        shell_quote(&exe.to_string_lossy())
    );
    let text = serde_json::json!({
        "application": "rollbridge-demo",
        "control": {"path": socket},
        "proxy": {"host": "127.0.0.1", "port": 0, "drainTimeoutMs": 10000},
        "processes": [{
            "id": "web", "policy": "proxied", "command": web,
            "port": {"from": 0, "to": 0},
            "health": {"path": "/ping", "intervalMs": 20, "timeoutMs": 10000}
        }]
    });
    std::fs::write(&config, format!("{text:#}\n"))
        .map_err(|e| format!("Cannot write {}: {e}", config.display()))?;

    crate::outln!("Rollbridge demo: a real daemon, two deploys, live traffic.\n");
    let log = std::fs::File::create(dir.join("daemon.log")).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let daemon = Command::new(&exe)
        .arg("daemon")
        .arg("--config")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("Cannot start the daemon: {e}"))?;
    let demo = Demo {
        dir: dir.clone(),
        socket: socket.clone(),
        daemon,
    };
    let status = wait_ready(&demo)?;
    let proxy_port = status
        .get("proxy")
        .and_then(|p| p.get("port"))
        .and_then(num)
        .unwrap_or(0.0) as u16;
    crate::outln!(
        "  daemon       pid {}, ready in {} ms; proxy on 127.0.0.1:{proxy_port}, control socket {socket}",
        demo.daemon.id(),
        started.elapsed().as_millis()
    );

    let t = Instant::now();
    deploy(&demo, &dir.join("releases/one"), "one")?;
    crate::outln!(
        "  release one  deployed in {} ms (started, health-checked, serving)",
        t.elapsed().as_millis()
    );

    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|i| {
            let (tally, stop) = (tally.clone(), stop.clone());
            std::thread::spawn(move || load(proxy_port, i % 2 == 0, &tally, &stop))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(400));

    let t = Instant::now();
    let reply = deploy(&demo, &dir.join("releases/two"), "two")?;
    let switched = t.elapsed();
    let previous = reply
        .get("previousReleaseId")
        .and_then(Raw::as_str)
        .unwrap_or("none")
        .to_owned();
    crate::outln!(
        "  release two  deployed in {} ms under load; traffic switched from release {previous}",
        switched.as_millis()
    );

    let drain_start = Instant::now();
    let drained = loop {
        let s = status_of(&demo)?;
        let one_stopped = match s.get("releases") {
            Some(Raw::Array(list)) => list.iter().any(|r| {
                r.get("releaseId").and_then(Raw::as_str) == Some("one")
                    && r.get("state").and_then(Raw::as_str) == Some("stopped")
            }),
            _ => false,
        };
        if one_stopped {
            break Some(drain_start.elapsed());
        }
        if drain_start.elapsed() > Duration::from_secs(15) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    std::thread::sleep(Duration::from_millis(400));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    match drained {
        Some(d) => crate::outln!(
            "  drain        release one finished its requests and was stopped {} ms after the deploy returned",
            d.as_millis()
        ),
        None => crate::outln!("  drain        release one did not finish draining within 15 s"),
    }
    let (one, two, failed) = (
        tally.one.load(Ordering::Relaxed),
        tally.two.load(Ordering::Relaxed),
        tally.failed.load(Ordering::Relaxed),
    );
    crate::outln!(
        "  traffic      {} requests through the proxy: {one} answered by release one, {two} by release two, {failed} failed",
        one + two + failed
    );
    crate::outln!(
        "\n{}",
        if failed == 0 && drained.is_some() && two > 0 {
            "Zero-downtime deploy: no request failed."
        } else {
            "Some requests failed; see the daemon log above."
        }
    );
    Ok(failed == 0 && drained.is_some() && two > 0)
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn num(r: &Raw) -> Option<f64> {
    match r {
        Raw::Number(n) => Some(*n),
        _ => None,
    }
}

fn wait_ready(demo: &Demo) -> Result<Raw, String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match status_of(demo) {
            Ok(s) => return Ok(s),
            Err(e) if Instant::now() > deadline => {
                return Err(format!("The daemon did not become ready: {e}"));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

fn status_of(demo: &Demo) -> Result<Raw, String> {
    let line = client::request(
        &demo.socket,
        r#"{"command":"status"}"#,
        Some(Duration::from_secs(5)),
    )
    .map_err(|e| e.message().to_owned())?;
    Raw::from_json(&line).map_err(|e| e.to_string())
}

fn deploy(demo: &Demo, path: &Path, id: &str) -> Result<Raw, String> {
    let request = serde_json::json!({
        "command": "deploy", "releaseId": id, "releasePath": path.to_string_lossy()
    })
    .to_string();
    let line = client::request(&demo.socket, &request, Some(Duration::from_secs(30)))
        .map_err(|e| format!("Deploy of release {id} failed: {}", e.message()))?;
    Raw::from_json(&line).map_err(|e| e.to_string())
}

/// Sends requests until `stop`: keep-alive or a connection per request.
fn load(port: u16, keep_alive: bool, tally: &Tally, stop: &AtomicBool) {
    let mut conn: Option<TcpStream> = None;
    while !stop.load(Ordering::Relaxed) {
        if conn.is_none() {
            conn = TcpStream::connect(("127.0.0.1", port)).ok();
            if let Some(c) = &conn {
                let _ = c.set_read_timeout(Some(Duration::from_secs(10)));
            }
        }
        let Some(stream) = conn.as_mut() else {
            tally.failed.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let header = if keep_alive { "keep-alive" } else { "close" };
        let result = write!(
            stream,
            "GET / HTTP/1.1\r\nHost: demo\r\nConnection: {header}\r\n\r\n"
        )
        .and_then(|_| read_one(stream));
        match result {
            Ok(body) if body.contains("release one") => tally.one.fetch_add(1, Ordering::Relaxed),
            Ok(body) if body.contains("release two") => tally.two.fetch_add(1, Ordering::Relaxed),
            _ => tally.failed.fetch_add(1, Ordering::Relaxed),
        };
        if !keep_alive {
            conn = None;
        }
    }
}

/// Reads one response with a Content-Length body; returns head + body.
fn read_one(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf);
        if let Some(end) = text.find("\r\n\r\n") {
            let len: usize = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_owned())
                })
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                if !text.starts_with("HTTP/1.1 200") {
                    return Err(std::io::Error::other(
                        text.lines().next().unwrap_or("").to_owned(),
                    ));
                }
                return Ok(text.into_owned());
            }
        }
    }
}
