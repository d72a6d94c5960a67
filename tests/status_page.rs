//! The admin status page (`GET /` on the admin listener) through the real
//! binary: served as one self-contained HTML file with its data paths, and
//! rendered by headless Chromium during a deploy under load (a row per
//! release with its state, the processes, a chart series per release),
//! with a screenshot saved under target/test-artifacts/.
//! The Chromium test skips when /usr/bin/chromium is missing.

mod deploy_support;
use deploy_support::*;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";

fn node_web() -> String {
    format!(
        r#"[{{"id":"web","policy":"proxied","command":"node {} {{{{port}}}}","port":{{"from":0,"to":0}},"health":{{"intervalMs":20,"timeoutMs":10000}}}}]"#,
        fixture("app.js"),
    )
}

/// A deployment with `admin: {port: 0}` and its admin port; `None`
/// (skipped) without node.
fn deployment(tag: &str, proxy_extra: &str) -> Option<(Deployment, u16)> {
    if !have_node() {
        eprintln!("node not installed: skipped");
        return None;
    }
    let extra = format!(r#"{proxy_extra}}},"admin":{{"host":"127.0.0.1","port":0"#);
    let d = Deployment::start(tag, &extra, &node_web());
    let line = d
        .daemon
        .stdout
        .wait_for("admin listening", Duration::from_secs(10))
        .expect("admin listening event");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let port = v["data"]["port"].as_u64().unwrap() as u16;
    Some((d, port))
}

/// One request on a fresh connection: (status, head, body).
fn call(port: u16, method: &str, path: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: admin\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

fn json(port: u16, path: &str) -> serde_json::Value {
    let (status, _, body) = call(port, "GET", path);
    assert_eq!(status, 200, "{path}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

/// Polls `/overview.json` until `cond` holds (the daemon pushes about
/// every second; the traffic is sampled every 5 s).
#[track_caller]
fn wait_overview(port: u16, secs: u64, cond: impl Fn(&serde_json::Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let v = json(port, "/overview.json");
        if cond(&v) {
            return;
        }
        assert!(Instant::now() < deadline, "overview never matched: {v:#}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Whether the traffic history has a series for `release` with requests.
fn has_traffic(overview: &serde_json::Value, release: &str) -> bool {
    overview["traffic"]["series"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|s| {
            s["releaseId"] == release
                && s["rps"]
                    .as_array()
                    .is_some_and(|r| r.iter().any(|v| v.as_f64().unwrap_or(0.0) > 0.0))
        })
}

#[test]
fn status_page_is_one_self_contained_html_file_with_its_data() {
    let Some((d, admin)) = deployment("page-served", r#""drainTimeoutMs":5000"#) else {
        return;
    };
    let (status, head, body) = call(admin, "GET", "/");
    assert_eq!(status, 200, "{head}");
    assert!(
        head.contains("Content-Type: text/html; charset=utf-8\r\n"),
        "{head}"
    );
    assert!(head.contains("Cache-Control: no-store\r\n"), "{head}");
    assert!(head.contains("Content-Security-Policy: default-src 'none'"));
    assert!(body.starts_with("<!doctype html>"));
    assert!(body.contains("<noscript>"));
    // Nothing loaded from elsewhere.
    let lower = body.to_ascii_lowercase();
    for external in ["<script src", "<link", "@import", "url(", "<img", "<iframe"] {
        assert!(!lower.contains(external), "page loads {external}");
    }
    // The only URL is the SVG namespace.
    assert_eq!(
        lower.matches("://").count(),
        lower.matches("\"http://www.w3.org/2000/svg\"").count(),
        "external reference in the page"
    );
    let (status, head, empty) = call(admin, "HEAD", "/");
    assert_eq!((status, empty.as_str()), (200, ""));
    assert!(head.contains(&format!("Content-Length: {}\r\n", body.len())));
    assert!(head.contains("Content-Type: text/html; charset=utf-8\r\n"));

    // The page's data, once the daemon pushed it; /status.json stays the
    // status object, key for key.
    let pid = d.daemon.pid();
    wait_overview(admin, 10, |v| v["daemon"]["pid"] == pid);
    let served = daemon_support::top_level_keys(&call(admin, "GET", "/status.json").2);
    let cli = d.daemon.cli(&["status", "--json"]);
    assert_eq!(served, daemon_support::top_level_keys(&stdout(&cli)));
    let v = json(admin, "/overview.json");
    assert_eq!(v["daemon"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(v["daemon"]["uptimeMs"].is_u64());
    let events = v["events"].as_array().unwrap();
    assert!(
        events.iter().any(|e| e["message"] == "admin listening"),
        "{events:?}"
    );
    assert_eq!(v["traffic"]["intervalMs"], 5000);
    assert!(v["traffic"]["series"].is_array());
    assert!(v["processes"].is_array());
}

/// A thread sending GETs through the proxy until stopped: (stop, sent, failed).
fn load(
    proxy: u16,
) -> (
    Arc<AtomicBool>,
    Arc<AtomicU64>,
    Arc<AtomicU64>,
    std::thread::JoinHandle<()>,
) {
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let (s, n, f) = (stop.clone(), sent.clone(), failed.clone());
    let t = std::thread::spawn(move || {
        while !s.load(Ordering::Relaxed) {
            n.fetch_add(1, Ordering::Relaxed);
            if !matches!(get(proxy, "/hello"), Ok((200, _))) {
                f.fetch_add(1, Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    (stop, sent, failed, t)
}

/// Runs headless Chromium on `url` with `args`, bounded; its stdout.
fn chromium(profile: &Path, url: &str, args: &[&str]) -> String {
    let out_path = profile.with_extension("stdout");
    let out = std::fs::File::create(&out_path).unwrap();
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("start chromium");
    let pgid = child.id() as i32;
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // Its helper processes too, whatever happened.
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
    let _ = child.wait();
    assert!(
        status.is_some_and(|s| s.success()),
        "chromium {args:?} failed or timed out: {status:?}"
    );
    std::fs::read_to_string(&out_path).unwrap()
}

/// The serialized element that starts with `start` (up to its `</tag>`).
fn element<'a>(dom: &'a str, start: &str, tag: &str) -> Option<&'a str> {
    let i = dom.find(start)?;
    let end = dom[i..].find(&format!("</{tag}>"))?;
    Some(&dom[i..i + end])
}

fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn status_page_in_chromium_shows_a_deploy_under_load() {
    if !Path::new(CHROMIUM).exists() {
        eprintln!("{CHROMIUM} not installed (apt-get install chromium): skipped");
        return;
    }
    let Some((d, admin)) = deployment("page-chromium", r#""drainTimeoutMs":60000"#) else {
        return;
    };
    let proxy = d.proxy_port();
    d.deploy_ok("r1");
    let (stop, sent, failed, loader) = load(proxy);
    wait_overview(admin, 20, |v| has_traffic(v, "r1"));

    // A slow request keeps r1 draining while the page is looked at.
    let mut slow = TcpStream::connect(("127.0.0.1", proxy)).unwrap();
    write!(
        slow,
        "GET /slow?ms=50000 HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    d.wait_status("the slow request on r1", 10, |s| {
        s["releases"][0]["connections"]["http"].as_u64() >= Some(1)
    });
    // A revision that would be markup if the page used innerHTML.
    let path = d.releases.join("r2");
    std::fs::create_dir_all(&path).unwrap();
    let revision = r#"<img src=x id="injected">r2"#;
    let out = d.daemon.cli(&[
        "deploy",
        "--release-path",
        path.to_str().unwrap(),
        "--release-id",
        "r2",
        "--revision",
        revision,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(d.release("r1")["state"], "draining");
    wait_overview(admin, 20, |v| has_traffic(v, "r2"));

    let work = temp_dir("page-chromium-profile");
    let url = format!("http://127.0.0.1:{admin}/");
    let dom = chromium(
        &work.join("dump"),
        &url,
        &["--virtual-time-budget=5000", "--dump-dom"],
    );
    let shot = artifacts().join("status_page.png");
    let _ = std::fs::remove_file(&shot);
    chromium(
        &work.join("shot"),
        &url,
        &[
            "--virtual-time-budget=5000",
            "--hide-scrollbars",
            "--window-size=1200,900",
            &format!("--screenshot={}", shot.display()),
        ],
    );
    stop.store(true, Ordering::Relaxed);
    loader.join().unwrap();
    drop(slow);
    assert!(sent.load(Ordering::Relaxed) > 0);
    assert_eq!(failed.load(Ordering::Relaxed), 0, "requests failed");
    std::fs::write(artifacts().join("status_page.html"), &dom).unwrap();

    // A row per release with its state.
    let r1 = element(&dom, r#"<tr data-release="r1">"#, "tr").expect("row of r1");
    assert!(r1.contains(">draining<"), "{r1}");
    let r2 = element(&dom, r#"<tr data-release="r2">"#, "tr").expect("row of r2");
    assert!(r2.contains(">active<"), "{r2}");
    // Escaped as text, never parsed.
    assert!(r2.contains("&lt;img src=x id=\"injected\"&gt;r2"), "{r2}");
    assert!(!dom.contains("<img"), "the revision became markup");
    // The processes of both releases.
    for r in ["r1", "r2"] {
        let row = element(
            &dom,
            &format!(r#"<tr data-process="web" data-source="release {r}">"#),
            "tr",
        )
        .unwrap_or_else(|| panic!("process row of {r}"));
        assert!(row.contains(">running<"), "{row}");
    }
    // The chart: an inline SVG with one series per release.
    let chart = element(&dom, r#"<div id="chart">"#, "svg").expect("chart");
    assert!(chart.contains("<svg"), "{chart}");
    for r in ["r1", "r2"] {
        assert!(
            chart.contains(&format!(r#"<polyline class="series" data-release="{r}""#)),
            "no series for {r}: {chart}"
        );
    }
    // Daemon, traffic control and events are there too.
    let pid = d.daemon.pid().to_string();
    let daemon = element(&dom, r#"<div id="daemon""#, "div").expect("daemon line");
    assert!(daemon.contains(&format!("<b>{pid}</b>")), "{daemon}");
    assert!(dom.contains(r#"data-control="maintenance""#));
    assert!(dom.contains(">traffic switched<"), "no events");
    assert!(
        std::fs::metadata(&shot).is_ok_and(|m| m.len() > 10_000),
        "no screenshot at {}",
        shot.display()
    );
    let _ = std::fs::remove_dir_all(&work);
}
