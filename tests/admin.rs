//! The admin listener through the real binary: every path and its codes
//! before and after a deploy, a well-formed /metrics whose counters follow
//! the requests sent (the proxy's own 503 included), and the lame duck
//! (`/ready` 503 at once on SIGTERM while the proxy keeps serving for
//! `proxy.shutdownDelayMs`, then the stop).

mod deploy_support;
use deploy_support::*;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn node_web() -> String {
    format!(
        r#"[{{"id":"web","policy":"proxied","command":"node {} {{{{port}}}}","port":{{"from":0,"to":0}},"health":{{"intervalMs":20,"timeoutMs":10000}}}}]"#,
        fixture("app.js"),
    )
}

/// A deployment with `admin: {port: 0}` (the helper merges `proxy_extra`
/// into the proxy object, so the admin object is spliced in after it) and
/// the admin port it reported; `None` (skipped) without node.
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

fn code(port: u16, path: &str) -> u16 {
    call(port, "GET", path).0
}

/// Polls `path` until `cond(body)` holds (the daemon pushes its snapshot
/// about every second).
#[track_caller]
fn wait_body(port: u16, path: &str, cond: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, _, body) = call(port, "GET", path);
        if cond(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "{path} never matched: {body}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One sample: name, labels, value.
type Sample = (String, Vec<(String, String)>, f64);

/// A small parser for the text format 0.0.4 that fails on anything
/// malformed: every family has HELP and TYPE before its samples, label
/// values are quoted and escaped, values are numbers.
fn parse_metrics(text: &str) -> Vec<Sample> {
    let mut typed: HashMap<String, String> = HashMap::new();
    let mut helped: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap();
            helped.push(name.to_string());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split(' ');
            let (name, kind) = (it.next().unwrap(), it.next().unwrap());
            assert!(
                ["counter", "gauge", "histogram"].contains(&kind),
                "bad type: {line}"
            );
            assert!(helped.iter().any(|h| h == name), "TYPE before HELP: {line}");
            typed.insert(name.to_string(), kind.to_string());
            continue;
        }
        assert!(
            !line.starts_with('#') && !line.is_empty(),
            "stray line: {line:?}"
        );
        let (name, rest) = match line.find('{') {
            Some(i) => (&line[..i], &line[i..]),
            None => line.split_at(line.find(' ').unwrap()),
        };
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "bad name: {line}"
        );
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| typed.get(*f).is_some_and(|t| t == "histogram"))
            })
            .unwrap_or(name);
        assert!(typed.contains_key(family), "sample before TYPE: {line}");
        let mut labels = Vec::new();
        let mut rest = rest;
        if let Some(body) = rest.strip_prefix('{') {
            let mut chars = body.char_indices();
            let end: Option<usize>;
            loop {
                // name="value",
                let start = match chars.next() {
                    Some((_, '}')) => {
                        end = chars.next().map(|(i, _)| i);
                        break;
                    }
                    Some((i, _)) => i,
                    None => panic!("unterminated labels: {line}"),
                };
                let eq = body[start..].find('=').expect("label without =") + start;
                let lname = &body[start..eq];
                assert!(
                    lname.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                    "bad label name: {line}"
                );
                while chars.next().is_some_and(|(i, _)| i < eq) {}
                assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "unquoted: {line}");
                let mut value = String::new();
                loop {
                    match chars.next().map(|(_, c)| c) {
                        Some('\\') => match chars.next().map(|(_, c)| c) {
                            Some('n') => value.push('\n'),
                            Some(c @ ('\\' | '"')) => value.push(c),
                            _ => panic!("bad escape: {line}"),
                        },
                        Some('"') => break,
                        Some('\n') | None => panic!("unterminated value: {line}"),
                        Some(c) => value.push(c),
                    }
                }
                labels.push((lname.to_string(), value));
                match chars.next().map(|(_, c)| c) {
                    Some(',') => {}
                    Some('}') => {
                        end = chars.next().map(|(i, _)| i);
                        break;
                    }
                    _ => panic!("bad label list: {line}"),
                }
            }
            rest = &body[end.expect("no value")..];
        }
        let value = rest.trim();
        let v: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value: {line}")),
        };
        out.push((name.to_string(), labels, v));
    }
    out
}

fn label<'a>(s: &'a Sample, name: &str) -> Option<&'a str> {
    s.1.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// The value of `name` with exactly these label values (0 when absent).
fn value(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.0 == name && want.iter().all(|(k, v)| label(s, k) == Some(v)))
        .map(|s| s.2)
        .sum()
}

/// Histograms: buckets rise with `le`, `+Inf` equals `_count`.
fn check_histograms(samples: &[Sample]) {
    let name = "rollbridge_http_request_duration_seconds";
    let mut by_release: HashMap<String, Vec<(f64, f64)>> = HashMap::new();
    for s in samples.iter().filter(|s| s.0 == format!("{name}_bucket")) {
        let le = match label(s, "le").unwrap() {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap(),
        };
        let r = label(s, "release").unwrap().to_string();
        by_release.entry(r).or_default().push((le, s.2));
    }
    assert!(!by_release.is_empty(), "no histogram");
    for (release, buckets) in by_release {
        for w in buckets.windows(2) {
            assert!(
                w[0].0 < w[1].0 && w[0].1 <= w[1].1,
                "not monotone: {buckets:?}"
            );
        }
        let (le, inf) = *buckets.last().unwrap();
        assert!(le.is_infinite());
        let count = value(samples, &format!("{name}_count"), &[("release", &release)]);
        assert_eq!(inf, count, "+Inf != _count for {release:?}");
    }
}

fn metrics(port: u16) -> Vec<Sample> {
    let (status, head, body) = call(port, "GET", "/metrics");
    assert_eq!(status, 200);
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    let samples = parse_metrics(&body);
    check_histograms_if_any(&samples);
    samples
}

fn check_histograms_if_any(samples: &[Sample]) {
    if samples.iter().any(|s| s.0.ends_with("_bucket")) {
        check_histograms(samples);
    }
}

fn requests(samples: &[Sample], release: &str, code: &str) -> f64 {
    value(
        samples,
        "rollbridge_http_requests_total",
        &[("release", release), ("code", code)],
    )
}

#[test]
fn admin_paths_answer_before_and_after_a_deploy() {
    let Some((d, admin)) = deployment("admin-paths", r#""shutdownDelayMs":0"#) else {
        return;
    };
    let proxy = d.proxy_port();
    assert_eq!(call(admin, "GET", "/healthz").2, "ok");
    assert_eq!(code(admin, "/healthz"), 200);
    assert_eq!(code(admin, "/ready"), 503, "no release yet");
    let version: serde_json::Value = serde_json::from_str(&wait_body(admin, "/version", |b| {
        b.contains("\"admin-paths\"")
    }))
    .unwrap();
    assert_eq!(version["activeReleaseId"], serde_json::Value::Null);
    assert_eq!(version["revision"], serde_json::Value::Null);
    assert!(version["version"].is_string());
    let status: serde_json::Value =
        serde_json::from_str(&call(admin, "GET", "/status.json").2).unwrap();
    assert_eq!(status["status"], "success");
    assert_eq!(status["application"], "admin-paths");
    assert_eq!(code(admin, "/"), 200);
    assert_eq!(code(admin, "/nope"), 404);
    let (s, head, _) = call(admin, "POST", "/healthz");
    assert_eq!(s, 405);
    assert!(head.contains("Allow: GET, HEAD"), "{head}");
    assert_eq!(call(admin, "DELETE", "/metrics").0, 405);
    let (s, head, body) = call(admin, "HEAD", "/healthz");
    assert_eq!((s, body.as_str()), (200, ""));
    assert!(head.contains("Content-Length: 2"), "{head}");

    // The proxy's own 503 (no release) is counted under release="".
    let before = metrics(admin);
    assert_eq!(value(&before, "rollbridge_info", &[]), 1.0);
    let own = requests(&before, "", "503");
    assert_eq!(get(proxy, "/").unwrap().0, 503);
    assert_eq!(requests(&metrics(admin), "", "503"), own + 1.0);

    d.deploy_ok("r1");
    assert_eq!(code(admin, "/ready"), 200);
    let version: serde_json::Value =
        serde_json::from_str(&wait_body(admin, "/version", |b| b.contains("\"r1\""))).unwrap();
    assert_eq!(version["activeReleaseId"], "r1");
    assert_eq!(version["revision"], "r1");
    assert_eq!(version["application"], "admin-paths");

    let n = 7;
    let start = requests(&metrics(admin), "r1", "200");
    for _ in 0..n {
        assert_eq!(get(proxy, "/hello").unwrap().0, 200);
    }
    let after = metrics(admin);
    assert_eq!(requests(&after, "r1", "200"), start + n as f64);
    let count = value(
        &after,
        "rollbridge_http_request_duration_seconds_count",
        &[("release", "r1")],
    );
    assert!(count >= n as f64, "{count}");
    check_histograms(&after);
    for kind in ["http", "websocket"] {
        assert!(
            after.iter().any(|s| s.0 == "rollbridge_open_connections"
                && label(s, "release") == Some("r1")
                && label(s, "kind") == Some(kind)),
            "open connections {kind}"
        );
    }
    // The daemon's families arrive with its next snapshot.
    let body = wait_body(admin, "/metrics", |b| {
        b.contains("rollbridge_deploys_total{result=\"success\"} 1")
            && b.contains("rollbridge_process_resident_memory_bytes{process=\"web\"")
    });
    let samples = parse_metrics(&body);
    assert_eq!(
        value(
            &samples,
            "rollbridge_process_restarts_total",
            &[("process", "web"), ("release", "r1")]
        ),
        0.0
    );
    assert_eq!(
        value(
            &samples,
            "rollbridge_deploys_total",
            &[("result", "failure")]
        ),
        0.0
    );
}

#[test]
fn lame_duck_answers_not_ready_while_the_proxy_still_serves() {
    let delay_ms = 1500;
    let Some((mut d, admin)) = deployment(
        "admin-lame",
        &format!(r#""shutdownDelayMs":{delay_ms},"drainTimeoutMs":2000"#),
    ) else {
        return;
    };
    let proxy = d.proxy_port();
    d.deploy_ok("r1");
    assert_eq!(code(admin, "/ready"), 200);

    let t0 = Instant::now();
    d.daemon.signal(libc::SIGTERM);
    let deadline = t0 + Duration::from_millis(500);
    while code(admin, "/ready") != 503 {
        assert!(Instant::now() < deadline, "/ready did not turn 503 at once");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(code(admin, "/healthz"), 200);
    // Still serving normally during the delay.
    let mut served = 0;
    while t0.elapsed() < Duration::from_millis(delay_ms - 400) {
        assert_eq!(get(proxy, "/during").unwrap().0, 200);
        served += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(served > 0);
    // Then the stop: the proxy port closes, not before the delay.
    let deadline = t0 + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", proxy)).is_ok() {
        assert!(Instant::now() < deadline, "proxy never stopped accepting");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        t0.elapsed() >= Duration::from_millis(delay_ms - 100),
        "stopped after {:?}",
        t0.elapsed()
    );
    assert_eq!(d.daemon.wait_exit(Duration::from_secs(15)), Some(0));
}
