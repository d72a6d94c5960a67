//! The control socket of the real binary: validation errors answered while
//! the daemon keeps serving, line limits, concurrency, slow clients,
//! events, commands not in this build.

mod daemon_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use daemon_support::*;

fn conn(d: &TestDaemon) -> (UnixStream, BufReader<UnixStream>) {
    let s = UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let r = BufReader::new(s.try_clone().unwrap());
    (s, r)
}

fn read_line(r: &mut BufReader<UnixStream>) -> String {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    line.trim_end().to_owned()
}

#[test]
fn malformed_and_unknown_messages_are_answered_and_the_daemon_keeps_serving() {
    let d = TestDaemon::start("malformed");
    let cases: &[(&str, &str)] = &[
        ("{nope", "JSON"),
        ("", "JSON"),
        ("null", "Control command must be an object"),
        ("0", "Control command must be an object"),
        ("\"x\"", "Control command must be an object"),
        ("true", "Control command must be an object"),
        ("[]", "Unknown command: undefined"),
        ("{}", "Unknown command: undefined"),
        (r#"{"command":"fly"}"#, "Unknown command: fly"),
        (r#"{"command":7}"#, "Unknown command: 7"),
        (r#"{"command":"deploy"}"#, "releasePath is required"),
        (
            r#"{"command":"deploy","releasePath":""}"#,
            "releasePath is required",
        ),
        (
            r#"{"command":"deploy","releasePath":"/x","releaseId":1}"#,
            "Expected string value",
        ),
        (
            r#"{"command":"stop","releaseId":{}}"#,
            "Expected string value",
        ),
        (r#"{"command":"retire-owner"}"#, "attestation is required"),
    ];
    for (line, want) in cases {
        let got = d.request(line);
        let v: serde_json::Value = serde_json::from_str(&got).unwrap();
        assert_eq!(v["status"], "error", "{line}");
        let msg = v["error"].as_str().unwrap();
        if *want == "JSON" {
            assert!(msg.contains("JSON"), "{line}: {msg}");
        } else {
            assert_eq!(msg, *want, "{line}");
        }
        assert!(got.starts_with("{\"error\":"), "error first: {got}");
    }
    // Still serving.
    assert_eq!(d.cli(&["status"]).status.code(), Some(0));
    // Every failure was recorded.
    let events = d.request(r#"{"command":"events"}"#);
    let v: serde_json::Value = serde_json::from_str(&events).unwrap();
    let failed = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["message"] == "command failed")
        .count();
    assert_eq!(failed, cases.len());
}

#[test]
fn several_requests_on_one_connection_each_get_a_reply() {
    let d = TestDaemon::start("pipeline");
    let (mut s, mut r) = conn(&d);
    s.write_all(b"{\"command\":\"status\"}\r\n{bad\n{\"command\":\"events\",\"limit\":1}\n")
        .unwrap();
    let mut replies: Vec<String> = (0..3).map(|_| read_line(&mut r)).collect();
    replies.sort();
    assert!(
        replies
            .iter()
            .any(|l| l.contains("\"application\":\"pipeline\""))
    );
    assert!(replies.iter().any(|l| l.contains("JSON")));
    assert!(replies.iter().any(|l| l.contains("\"events\":[")));
}

#[test]
fn partial_lines_are_buffered_until_the_newline() {
    let d = TestDaemon::start("partial");
    let (mut s, mut r) = conn(&d);
    s.write_all(b"{\"command\":").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    s.write_all(b"\"status\"}\n").unwrap();
    assert!(read_line(&mut r).starts_with("{\"status\":\"success\""));
}

#[test]
fn over_long_line_is_rejected_and_the_connection_keeps_working() {
    let d = TestDaemon::start("huge");
    let (mut s, mut r) = conn(&d);
    let big = vec![b'x'; 2 * 1024 * 1024];
    s.write_all(&big).unwrap();
    s.write_all(b"\n{\"command\":\"status\"}\n").unwrap();
    let first = read_line(&mut r);
    assert!(first.contains("exceeds"), "{first}");
    let second = read_line(&mut r);
    assert!(second.starts_with("{\"status\":\"success\""), "{second}");
}

#[test]
fn silent_and_slow_clients_do_not_block_others() {
    let d = TestDaemon::start("slow");
    // A client that sends half a line and goes quiet, and one that never
    // reads its replies.
    let (mut silent, _) = conn(&d);
    silent.write_all(b"{\"command\":\"sta").unwrap();
    let (mut greedy, _greedy_r) = conn(&d);
    for _ in 0..200 {
        greedy.write_all(b"{\"command\":\"status\"}\n").unwrap();
    }
    let started = Instant::now();
    let out = d.cli(&["status"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn many_concurrent_clients_all_get_answers() {
    let d = TestDaemon::start("concurrent");
    let socket = d.socket.clone();
    let threads: Vec<_> = (0..32)
        .map(|_| {
            let socket = socket.clone();
            std::thread::spawn(move || {
                for _ in 0..10 {
                    let mut s = UnixStream::connect(&socket).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    s.write_all(b"{\"command\":\"status\"}\n").unwrap();
                    let mut r = BufReader::new(s);
                    let mut line = String::new();
                    r.read_line(&mut line).unwrap();
                    assert!(line.starts_with("{\"status\":\"success\""));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn client_closing_mid_line_is_not_an_event() {
    let d = TestDaemon::start("midline");
    {
        let (mut s, _) = conn(&d);
        s.write_all(b"{\"command\":").unwrap();
    }
    std::thread::sleep(Duration::from_millis(50));
    let v: serde_json::Value = serde_json::from_str(&d.request(r#"{"command":"events"}"#)).unwrap();
    let messages: Vec<_> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(messages, ["proxy listening", "control socket listening"]);
}

#[test]
fn events_limit_rules() {
    let d = TestDaemon::start("events");
    let count = |line: &str| -> usize {
        let v: serde_json::Value = serde_json::from_str(&d.request(line)).unwrap();
        v["events"].as_array().unwrap().len()
    };
    assert_eq!(count(r#"{"command":"events"}"#), 2);
    assert_eq!(count(r#"{"command":"events","limit":1}"#), 1);
    assert_eq!(count(r#"{"command":"events","limit":0}"#), 2);
    assert_eq!(count(r#"{"command":"events","limit":-3}"#), 2);
    assert_eq!(count(r#"{"command":"events","limit":"1"}"#), 2);
    assert_eq!(count(r#"{"command":"events","limit":0.5}"#), 1);
    let v: serde_json::Value =
        serde_json::from_str(&d.request(r#"{"command":"events","limit":1}"#)).unwrap();
    assert_eq!(v["events"][0]["message"], "control socket listening");
    assert_eq!(
        top_level_keys(&serde_json::to_string(&v["events"][0]).unwrap()),
        ["at", "data", "message"]
    );
}

#[test]
fn deploy_without_a_release_path_is_refused() {
    let d = TestDaemon::start("later");
    for line in [
        r#"{"command":"deploy"}"#,
        r#"{"command":"deploy","releasePath":""}"#,
    ] {
        let v: serde_json::Value = serde_json::from_str(&d.request(line)).unwrap();
        assert_eq!(v["error"], "releasePath is required");
        assert_eq!(v["status"], "error");
    }
}

#[test]
fn stop_rollback_and_restart_on_an_empty_daemon_follow_the_contract() {
    let d = TestDaemon::start("empty");
    let cases = [
        (r#"{"command":"stop"}"#, "Release not found: active"),
        (
            r#"{"command":"stop","releaseId":"v9"}"#,
            "Release not found: v9",
        ),
        (
            r#"{"command":"rollback"}"#,
            "No previous release to roll back to.",
        ),
        (
            r#"{"command":"rollback","releaseId":"v1"}"#,
            "No retained release \"v1\" to roll back to.",
        ),
        (
            r#"{"command":"restart","processId":"ghost"}"#,
            "No managed process with id \"ghost\" to restart.",
        ),
    ];
    for (line, want) in cases {
        let v: serde_json::Value = serde_json::from_str(&d.request(line)).unwrap();
        assert_eq!(v["error"], want, "{line}");
    }
    // The proxied process is replaced without downtime, once it runs.
    let v: serde_json::Value =
        serde_json::from_str(&d.request(r#"{"command":"restart","processId":"web"}"#)).unwrap();
    assert_eq!(v["error"], "No managed process with id \"web\" to restart.");
    assert_eq!(
        d.request(r#"{"command":"restart"}"#),
        r#"{"status":"success","restarted":[]}"#
    );
    assert_eq!(
        d.request(r#"{"command":"restart","policy":"companion"}"#),
        r#"{"status":"success","restarted":[]}"#
    );
}

#[test]
fn shutdown_reply_then_connection_closed() {
    let mut d = TestDaemon::start("shutclose");
    let (mut s, mut r) = conn(&d);
    s.write_all(b"{\"command\":\"shutdown\"}\n").unwrap();
    assert_eq!(
        read_line(&mut r),
        r#"{"status":"success","message":"shutdown"}"#
    );
    let mut rest = Vec::new();
    assert_eq!(
        r.read_to_end(&mut rest).unwrap(),
        0,
        "closed after the reply"
    );
    assert_eq!(d.wait_exit(Duration::from_secs(5)), Some(0));
}

#[test]
fn concurrent_shutdowns_share_one_run() {
    let mut d = TestDaemon::start("shuttwice");
    let (mut a, mut ra) = conn(&d);
    let (mut b, mut rb) = conn(&d);
    // Whichever request reaches the core first starts the shutdown, which
    // closes every other connection unless its request already arrived
    // (then it shares the run and gets the same reply). A closed one may
    // even refuse the write.
    let _ = a.write_all(b"{\"command\":\"shutdown\"}\n");
    let _ = b.write_all(b"{\"command\":\"shutdown\"}\n");
    let read = |r: &mut BufReader<UnixStream>| {
        let mut line = String::new();
        let _ = r.read_line(&mut line);
        line.trim_end().to_owned()
    };
    let replies = [read(&mut ra), read(&mut rb)];
    let success = r#"{"status":"success","message":"shutdown"}"#;
    assert!(replies.iter().any(|l| l == success), "{replies:?}");
    assert!(
        replies.iter().all(|l| l.is_empty() || l == success),
        "{replies:?}"
    );
    assert_eq!(d.wait_exit(Duration::from_secs(5)), Some(0));
}

#[test]
fn events_payload_keeps_data_key_order() {
    let d = TestDaemon::start("evorder");
    let line = d.request(r#"{"command":"events"}"#);
    assert!(
        line.contains(r#""data":{"host":"127.0.0.1","port":"#),
        "host before port as emitted: {line}"
    );
    assert!(line.starts_with(r#"{"status":"success","events":[{"at":"#));
}

#[test]
fn binary_garbage_never_stops_the_daemon() {
    let d = TestDaemon::start("garbage");
    let (mut s, mut r) = conn(&d);
    // Deterministic pseudo-random bytes, newline-separated lines.
    let mut x: u32 = 0x1234_5678;
    let mut sent_lines = 0;
    for _ in 0..50 {
        let mut line = Vec::new();
        for _ in 0..(x % 300) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let b = (x & 0xff) as u8;
            if b != b'\n' {
                line.push(b);
            }
        }
        line.push(b'\n');
        s.write_all(&line).unwrap();
        sent_lines += 1;
    }
    for _ in 0..sent_lines {
        let reply = read_line(&mut r);
        let v: serde_json::Value = serde_json::from_str(&reply).unwrap();
        assert_eq!(v["status"], "error", "{reply}");
    }
    assert_eq!(d.cli(&["status"]).status.code(), Some(0));
}

#[test]
fn a_stdout_nobody_reads_never_blocks_the_daemon() {
    use std::process::{Command, Stdio};
    let dir = temp_dir("stuckout");
    let config = write_config(&dir, "stuckout", "", 0);
    // stdout is a pipe we never read: 64 KiB fill it.
    let mut child = Command::new(BIN)
        .args(["daemon", "--config", config.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let socket = dir.join("c.sock");
    let deadline = Instant::now() + Duration::from_secs(10);
    while UnixStream::connect(&socket).is_err() {
        assert!(Instant::now() < deadline, "daemon did not come up");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Every bad request is a `command failed` line on stdout: ~5 MB.
    let s = UnixStream::connect(&socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let writer = {
        let mut w = s.try_clone().unwrap();
        std::thread::spawn(move || {
            for _ in 0..40_000 {
                if w.write_all(b"{\"command\":\"nope\"}\n").is_err() {
                    break;
                }
            }
        })
    };
    let mut r = BufReader::new(s);
    for _ in 0..40_000 {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        assert!(line.contains("Unknown command: nope"));
    }
    writer.join().unwrap();
    let started = Instant::now();
    let mut c = UnixStream::connect(&socket).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(b"{\"command\":\"status\"}\n").unwrap();
    let mut line = String::new();
    BufReader::new(c).read_line(&mut line).unwrap();
    assert!(line.starts_with("{\"status\":\"success\""));
    assert!(started.elapsed() < Duration::from_secs(1));
    unsafe {
        libc::kill(child.id() as i32, libc::SIGKILL);
    }
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
