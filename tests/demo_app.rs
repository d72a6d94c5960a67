//! The built-in example app through the real binary.

mod cli_support;
use cli_support::BIN;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

struct App {
    child: Child,
    port: u16,
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(release: &str) -> App {
    let mut child = Command::new(BIN)
        .args(["demo-app", "--port", "0"])
        .env("ROLLBRIDGE_RELEASE_ID", release)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line.trim().rsplit(':').next().unwrap().parse().unwrap();
    App { child, port }
}

fn read_response(stream: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).unwrap();
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let len: usize = text
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .unwrap()
                .parse()
                .unwrap();
            if buf.len() >= end + 4 + len {
                return text;
            }
        }
        assert!(n > 0, "connection closed early");
    }
}

#[test]
fn answers_ping_and_names_its_release_over_keep_alive() {
    let app = start("v7");
    let mut s = TcpStream::connect(("127.0.0.1", app.port)).unwrap();
    s.write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert!(read_response(&mut s).ends_with("\r\n\r\npong\n"));
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let body = read_response(&mut s);
    assert!(body.contains("hello from release v7 (pid "), "{body}");
}

#[test]
fn rejects_a_bad_port() {
    let out = Command::new(BIN)
        .args(["demo-app", "--port", "99999"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--port must be a port number"));
}

#[test]
fn demo_runs_two_deploys_with_zero_failures() {
    let out = Command::new(BIN).arg("demo").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("release one  deployed"), "{text}");
    assert!(text.contains("traffic switched from release one"), "{text}");
    assert!(text.contains(", 0 failed"), "{text}");
    assert!(text.contains("Zero-downtime deploy: no request failed."));
}
