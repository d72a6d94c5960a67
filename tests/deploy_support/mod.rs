//! Helpers for the deploy tests: a daemon with a config of real fixture
//! processes, plain HTTP through the proxy port, and status queries.
#![allow(dead_code)]

#[path = "../daemon_support/mod.rs"]
pub mod daemon_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[allow(unused_imports)]
pub use daemon_support::{BIN, TestDaemon, stderr, stdout, temp_dir};

pub mod load;

pub fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/apps/{name}", env!("CARGO_MANIFEST_DIR"))
}

pub fn have_node() -> bool {
    std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A daemon on a config whose `processes` array is `processes` (JSON text);
/// `proxy_extra` is merged into the proxy object.
pub struct Deployment {
    pub daemon: TestDaemon,
    pub releases: PathBuf,
}

impl Deployment {
    pub fn start(tag: &str, proxy_extra: &str, processes: &str) -> Deployment {
        Deployment::start_limited(tag, proxy_extra, processes, None)
    }

    /// Same, with `top` (JSON members, e.g. `"autoRollback":{...}`) added
    /// at the top level of the config.
    pub fn start_with(tag: &str, top: &str, proxy_extra: &str, processes: &str) -> Deployment {
        let with_top = format!("{processes},{top}");
        Deployment::start(tag, proxy_extra, &with_top)
    }

    /// Same, the daemon under RLIMIT_NOFILE `nofile` (soft and hard).
    pub fn start_limited(
        tag: &str,
        proxy_extra: &str,
        processes: &str,
        nofile: Option<u64>,
    ) -> Deployment {
        let dir = temp_dir(tag);
        let config = dir.join("rollbridge.json");
        write(&dir, &config, tag, proxy_extra, processes);
        let releases = dir.join("releases");
        std::fs::create_dir_all(&releases).unwrap();
        let daemon = TestDaemon::start_limited(dir, config, &[], nofile);
        Deployment { daemon, releases }
    }

    /// Rewrites the config (the daemon reloads it before each deploy).
    pub fn rewrite(&self, tag: &str, proxy_extra: &str, processes: &str) {
        write(
            &self.daemon.dir,
            &self.daemon.config,
            tag,
            proxy_extra,
            processes,
        );
    }

    pub fn dir(&self) -> &Path {
        &self.daemon.dir
    }

    /// `rollbridge deploy` of release `id` (a directory under releases/).
    pub fn deploy(&self, id: &str) -> std::process::Output {
        let path = self.releases.join(id);
        std::fs::create_dir_all(&path).unwrap();
        self.daemon.cli(&[
            "deploy",
            "--release-path",
            path.to_str().unwrap(),
            "--release-id",
            id,
        ])
    }

    #[track_caller]
    pub fn deploy_ok(&self, id: &str) -> serde_json::Value {
        let out = self.deploy(id);
        assert_eq!(
            out.status.code(),
            Some(0),
            "deploy {id} failed: {}\n{}",
            stderr(&out),
            self.daemon.stdout.all().join("\n")
        );
        serde_json::from_str(&stdout(&out)).unwrap()
    }

    pub fn status(&self) -> serde_json::Value {
        let out = self.daemon.cli(&["status"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        serde_json::from_str(&stdout(&out)).unwrap()
    }

    pub fn proxy_port(&self) -> u16 {
        self.status()["proxy"]["port"].as_u64().unwrap() as u16
    }

    pub fn release(&self, id: &str) -> serde_json::Value {
        self.status()["releases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["releaseId"] == id)
            .cloned()
            .unwrap_or(serde_json::Value::Null)
    }

    /// Polls `cond` on the status until it holds (or panics after `secs`).
    #[track_caller]
    pub fn wait_status(&self, what: &str, secs: u64, cond: impl Fn(&serde_json::Value) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.status();
            if cond(&s) {
                return;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}: {s:#}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn write(dir: &Path, config: &Path, app: &str, proxy_extra: &str, processes: &str) {
    let sep = if proxy_extra.is_empty() { "" } else { "," };
    let text = format!(
        r#"{{"application":"{app}","control":{{"path":"{}"}},"proxy":{{"port":0{sep}{proxy_extra}}},"processes":{processes}}}"#,
        dir.join("c.sock").display()
    );
    std::fs::write(config, text).unwrap();
}

/// One `GET path` on a fresh connection: (status, body).
pub fn get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    parse(&buf)
}

/// Parses a whole response (head + body, Content-Length or close).
pub fn parse(buf: &[u8]) -> std::io::Result<(u16, String)> {
    let text = String::from_utf8_lossy(buf);
    let bad = || {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("bad response: {text:?}"),
        )
    };
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(bad)?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    Ok((status, body.to_owned()))
}

/// The `web` process entry of release `release` (status JSON).
pub fn process<'a>(release: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    release["processes"]
        .as_array()
        .and_then(|list| list.iter().find(|p| p["id"] == id))
        .unwrap_or(&serde_json::Value::Null)
}

/// A port range `{from, to}` nobody else in this test run uses.
pub fn range(base: u16, len: u16) -> String {
    format!(r#"{{"from":{base},"to":{}}}"#, base + len - 1)
}

/// Reads one Content-Length response from a keep-alive connection (bytes
/// after it stay in `buf` for the next one): the status and whether the
/// server announced `Connection: close`.
pub fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<(u16, bool)> {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                let status = head
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                let close = head.contains("connection: close");
                buf.drain(..end + 4 + len);
                return Ok((status, close));
            }
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// One GET on a fresh connection, with a `Cookie` field when given:
/// (status, head, body).
pub fn get_with_cookie(port: u16, cookie: Option<&str>) -> std::io::Result<(u16, String, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    let cookie = cookie.map_or(String::new(), |c| format!("Cookie: {c}\r\n"));
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: test\r\n{cookie}Connection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let (status, _) = parse(&buf)?;
    Ok((status, head.to_owned(), body.to_owned()))
}

/// A WebSocket to the proxy's `/ws` (the fixture app echoes with its
/// release id).
pub fn open_ws(port: u16) -> tungstenite::WebSocket<TcpStream> {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (ws, response) =
        tungstenite::client::client(format!("ws://127.0.0.1:{port}/ws"), stream).unwrap();
    assert_eq!(response.status(), 101);
    ws
}

/// Sends `text` and returns the next text message.
pub fn ws_echo(ws: &mut tungstenite::WebSocket<TcpStream>, text: &str) -> String {
    ws.send(tungstenite::Message::text(text)).unwrap();
    loop {
        match ws.read().unwrap() {
            tungstenite::Message::Text(t) => return t.to_string(),
            _ => continue,
        }
    }
}
