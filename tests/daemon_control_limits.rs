//! The control socket as a shared resource, with the real binary: silent
//! clients are closed after the idle timeout, and at the connection cap the
//! longest-idle one makes room, so the CLI always gets answered.

mod daemon_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use daemon_support::*;

/// Reads until EOF or the timeout: whether the daemon closed the stream,
/// and the text received before that.
fn wait_closed(s: &mut UnixStream, timeout: Duration) -> (bool, String) {
    s.set_read_timeout(Some(timeout)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (true, String::from_utf8_lossy(&got).into_owned()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (false, String::from_utf8_lossy(&got).into_owned()),
        }
    }
}

#[test]
fn status_answers_promptly_with_1100_silent_clients_connected() {
    let d = TestDaemon::start("silent1100");
    let mut silent = Vec::new();
    for i in 0..1100 {
        let s =
            UnixStream::connect(&d.socket).unwrap_or_else(|e| panic!("connect #{i} failed: {e}"));
        silent.push(s);
    }
    let started = Instant::now();
    let out = d.cli(&["status"]);
    let took = started.elapsed();
    assert_eq!(
        out.status.code(),
        Some(0),
        "status failed: {}",
        stderr(&out)
    );
    assert!(stdout(&out).contains("\"application\""), "{}", stdout(&out));
    assert!(took < Duration::from_secs(5), "status took {took:?}");
    // The oldest silent clients made room; the newest are still served.
    let (closed, _) = wait_closed(&mut silent[0], Duration::from_secs(2));
    assert!(closed, "the longest-idle connection was not closed");
    let last = silent.last_mut().unwrap();
    last.write_all(b"{\"command\":\"status\"}\n").unwrap();
    last.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut line = String::new();
    BufReader::new(&*last).read_line(&mut line).unwrap();
    assert!(line.contains("\"status\":\"success\""), "{line}");
}

#[test]
fn idle_connections_are_closed_but_one_awaiting_a_deploy_is_not() {
    let dir = temp_dir("idle");
    let socket = dir.join("c.sock");
    // A release that never gets healthy: the deploy reply takes 13 s.
    let config = dir.join("rollbridge.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"application":"idle","control":{{"path":"{}"}},"proxy":{{"port":0}},"processes":[{{"id":"web","command":"sleep 1000","policy":"proxied","port":{{"from":0,"to":0}},"health":{{"intervalMs":100,"timeoutMs":13000}}}}]}}"#,
            socket.display()
        ),
    )
    .unwrap();
    let release = dir.join("r1");
    std::fs::create_dir_all(&release).unwrap();
    let d = TestDaemon::start_with(dir.clone(), config, &[]);

    let accepted = Instant::now();
    let mut silent = UnixStream::connect(&socket).unwrap();
    let mut partial = UnixStream::connect(&socket).unwrap();
    partial.write_all(b"{\"command\":").unwrap();
    let mut answered = UnixStream::connect(&socket).unwrap();
    answered.write_all(b"{\"command\":\"status\"}\n").unwrap();
    let mut deploying = UnixStream::connect(&socket).unwrap();
    let deploy =
        serde_json::json!({"command": "deploy", "releasePath": release, "releaseId": "r1"});
    deploying
        .write_all(format!("{deploy}\n").as_bytes())
        .unwrap();

    let (closed, _) = wait_closed(&mut silent, Duration::from_secs(15));
    let after = accepted.elapsed();
    assert!(closed, "a silent connection stayed open");
    assert!(
        after >= Duration::from_secs(9) && after < Duration::from_secs(12),
        "closed after {after:?}"
    );
    let (closed, _) = wait_closed(&mut partial, Duration::from_secs(2));
    assert!(closed, "a connection with only a partial line stayed open");
    let (closed, text) = wait_closed(&mut answered, Duration::from_secs(2));
    assert!(closed, "an idle connection after its reply stayed open");
    assert!(text.contains("\"status\":\"success\""), "{text}");

    // The deploy is still in flight past the idle timeout: its connection
    // stays open and gets the (failed) deploy reply.
    let (closed, text) = wait_closed(&mut deploying, Duration::from_secs(20));
    assert!(
        text.contains("\"status\":\"error\""),
        "deploy reply missing (closed: {closed}): {text:?}"
    );
    assert!(accepted.elapsed() >= Duration::from_secs(12));
    drop(d);
}
