//! Memory after a flood: thousands of clients that send a partial request
//! head and nothing more cost little while they are open (a small buffer
//! each, not 16 KiB), and the daemon's resident memory returns near its
//! idle level once they are gone. Measured through the real daemon.

mod daemon_support;
use daemon_support::*;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Partial heads held open at once.
const FLOOD: usize = 9000;
const MIB: u64 = 1024 * 1024;

fn rss(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn proxy_status(d: &TestDaemon) -> serde_json::Value {
    let out = d.cli(&["status"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    v["proxy"].clone()
}

#[track_caller]
fn wait_open(d: &TestDaemon, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let p = proxy_status(d);
        if p["openConnections"] == want {
            return;
        }
        assert!(Instant::now() < deadline, "open connections: {p}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn memory_returns_near_idle_after_a_flood_of_partial_heads() {
    let dir = temp_dir("flood");
    let config = dir.join("rollbridge.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"application":"flood","control":{{"path":"{}"}},"proxy":{{"port":0,"headerTimeoutMs":120000}},"processes":[{{"id":"web","command":"sleep 1000","policy":"proxied","port":{{"from":0,"to":0}}}}]}}"#,
            dir.join("c.sock").display()
        ),
    )
    .unwrap();
    let d = TestDaemon::start_with(dir, config, &[]);
    let p = proxy_status(&d);
    let port = p["port"].as_u64().unwrap() as u16;
    let cap = p["maxConnections"].as_u64().unwrap() as usize;
    let flood = FLOOD.min(cap);
    // Warm up the paths the flood takes (one full cycle) before measuring.
    {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\n").unwrap();
        wait_open(&d, 1);
    }
    wait_open(&d, 0);
    let before = rss(d.pid());

    let mut clients = Vec::with_capacity(flood);
    for _ in 0..flood {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\n").unwrap();
        clients.push(s);
    }
    wait_open(&d, flood as u64);
    let during = rss(d.pid());

    drop(clients);
    wait_open(&d, 0);
    // The loop hands memory back on its next sweep.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut after = rss(d.pid());
    while after > before + 16 * MIB && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        after = rss(d.pid());
    }
    eprintln!(
        "daemon RSS with {flood} partial heads: before {} KiB, during {} KiB, after {} KiB",
        before / 1024,
        during / 1024,
        after / 1024
    );
    // 16 KiB per connection would be ~140 MiB for the flood alone.
    let per_conn = during.saturating_sub(before) / flood as u64;
    assert!(per_conn < 6 * 1024, "{per_conn} bytes per partial head");
    assert!(
        after <= before + 16 * MIB,
        "RSS stayed at {} KiB after the flood (idle {} KiB)",
        after / 1024,
        before / 1024
    );
}

/// Fewer connections than a flood (the trim after 1,024 closed never
/// triggers): memory still goes back once the last one is gone, so idle
/// RSS after a busy spell is idle RSS again.
#[test]
fn memory_returns_to_idle_after_a_busy_spell() {
    let dir = temp_dir("spell");
    let config = dir.join("rollbridge.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"application":"spell","control":{{"path":"{}"}},"proxy":{{"port":0,"headerTimeoutMs":120000}},"processes":[{{"id":"web","command":"sleep 1000","policy":"proxied","port":{{"from":0,"to":0}}}}]}}"#,
            dir.join("c.sock").display()
        ),
    )
    .unwrap();
    let d = TestDaemon::start_with(dir, config, &[]);
    let port = proxy_status(&d)["port"].as_u64().unwrap() as u16;
    // Each client leaves 3 KiB of a head: a small buffer plus its growth
    // to a full one.
    let part = format!("GET / HTTP/1.1\r\nX-Pad: {}", "p".repeat(3000));
    // The highest RSS seen while `n` clients are open, sampled until it
    // exceeds `expect` (the proxy may count a connection open before it
    // has read its head) or for at most 5 s.
    let spell = |n: usize, expect: u64| {
        let mut clients = Vec::with_capacity(n);
        for _ in 0..n {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(part.as_bytes()).unwrap();
            clients.push(s);
        }
        wait_open(&d, n as u64);
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut during = rss(d.pid());
        while during <= expect && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            during = during.max(rss(d.pid()));
        }
        drop(clients);
        wait_open(&d, 0);
        during
    };
    spell(8, 0); // warm up the paths
    std::thread::sleep(Duration::from_millis(300));
    let before = rss(d.pid());
    let during = spell(800, before + 4 * MIB);
    let grown = during.saturating_sub(before);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut after = rss(d.pid());
    while after > before + grown / 4 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        after = rss(d.pid());
    }
    eprintln!(
        "daemon RSS, 800 partial heads: before {} KiB, during {} KiB, after {} KiB",
        before / 1024,
        during / 1024,
        after / 1024
    );
    assert!(
        grown > 4 * MIB,
        "the spell grew RSS by {} KiB only",
        grown / 1024
    );
    assert!(
        after <= before + grown / 4,
        "RSS stayed at {} KiB after the spell (idle {} KiB)",
        after / 1024,
        before / 1024
    );
}
