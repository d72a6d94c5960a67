//! The built-in example web app (`rollbridge demo-app`): a tiny keep-alive
//! HTTP/1.1 server so `rollbridge demo` and the tests need no other
//! runtime. It answers `/ping` with `pong` and every other path with the
//! release it belongs to.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Connections served at once; more wait in the accept backlog.
const MAX_CONNECTIONS: usize = 512;
const MAX_HEAD: usize = 16 * 1024;

/// Serves on `host:port` until the process is stopped.
pub fn serve(host: &str, port: u16) -> io::Result<()> {
    let listener = TcpListener::bind((host, port))?;
    let release = std::env::var("ROLLBRIDGE_RELEASE_ID").unwrap_or_else(|_| "unknown".into());
    let greeting: Arc<str> = format!(
        "hello from release {release} (pid {})\n",
        std::process::id()
    )
    .into();
    println!("demo app listening on {}", listener.local_addr()?);
    let active = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        while active.load(Ordering::Acquire) >= MAX_CONNECTIONS {
            std::thread::sleep(Duration::from_millis(1));
        }
        active.fetch_add(1, Ordering::AcqRel);
        let (active, greeting) = (active.clone(), greeting.clone());
        std::thread::spawn(move || {
            let _ = handle(stream, &greeting);
            active.fetch_sub(1, Ordering::AcqRel);
        });
    }
    Ok(())
}

fn handle(stream: TcpStream, greeting: &str) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_nodelay(true)?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let Some(request) = read_head(&mut reader)? else {
            return Ok(());
        };
        let body = if request.path == "/ping" {
            "pong\n"
        } else {
            greeting
        };
        let connection = if request.close { "close" } else { "keep-alive" };
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: {connection}\r\n\r\n{}",
            body.len(),
            if request.head_only { "" } else { body }
        );
        writer.write_all(response.as_bytes())?;
        if request.close {
            return Ok(());
        }
    }
}

struct Request {
    path: String,
    head_only: bool,
    close: bool,
}

/// Reads one request head (bodies are skipped by Content-Length).
fn read_head(reader: &mut BufReader<TcpStream>) -> io::Result<Option<Request>> {
    let mut head = Vec::new();
    loop {
        let n = reader.read_until(b'\n', &mut head)?;
        if n == 0 {
            return Ok(None);
        }
        if head.ends_with(b"\r\n\r\n") || head.ends_with(b"\n\n") {
            break;
        }
        if head.len() > MAX_HEAD {
            return Ok(None);
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    if !matches!(req.parse(&head), Ok(httparse::Status::Complete(_))) {
        return Ok(None);
    }
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).to_ascii_lowercase())
    };
    let length: u64 = header("content-length")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let close = header("connection").is_some_and(|v| v.contains("close")) || req.version == Some(0);
    let request = Request {
        path: req
            .path
            .unwrap_or("/")
            .split('?')
            .next()
            .unwrap_or("/")
            .to_owned(),
        head_only: req.method == Some("HEAD"),
        close,
    };
    io::copy(&mut io::Read::take(reader, length), &mut io::sink())?;
    Ok(Some(request))
}
