//! The admin listener: probes, version, metrics and status on a port of
//! its own, served by the proxy's event loop (no extra thread).
//!
//! Each connection reads one small request head, gets one answer and is
//! closed. Answers are built from what the loop owns (readiness, the
//! request counters, live release counts) and from the last snapshot the
//! daemon pushed (status, processes, deploys), so answering never waits
//! on the daemon. Hard caps: [`MAX_CONNS`] connections, [`MAX_HEAD`] bytes
//! of head, [`TIMEOUT`] per connection.

use super::error::{ErrorKind, ProxyError, canned_response};
use super::history::History;
use super::metrics;
use super::session::Shared;
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

/// Token of the admin listener (the top of the token space is the loop's).
pub const ADMIN_LISTENER: Token = Token(usize::MAX - 8);
/// Low two token bits of an admin connection.
pub const ADMIN_TAG: usize = 3;
/// Most admin connections open at once; more are closed at accept.
const MAX_CONNS: usize = 64;
/// Largest request head read.
const MAX_HEAD: usize = 8 * 1024;
/// Longest an admin connection may take from accept to answer written.
const TIMEOUT: Duration = Duration::from_secs(10);

/// What the daemon knows and the loop does not, pushed to the proxy
/// (about every second and after changes).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AdminSnapshot {
    /// `/version` body (JSON object).
    pub version_json: String,
    /// `/status.json` body (the status object).
    pub status_json: String,
    /// The daemon's pid, version and uptime (JSON object) for the page.
    pub daemon_json: String,
    /// The last events (JSON array, oldest first) for the page.
    pub events_json: String,
    pub processes: Vec<ProcessSample>,
    pub deploys_success: u64,
    pub deploys_failure: u64,
}

/// One supervised process for the process families.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessSample {
    pub process: String,
    /// `""` for services and singletons.
    pub release: String,
    pub restarts: u64,
    pub rss_bytes: Option<u64>,
}

struct AdminConn {
    sock: TcpStream,
    input: Vec<u8>,
    output: Vec<u8>,
    written: usize,
    answered: bool,
    deadline: Instant,
}

pub struct Admin {
    listener: TcpListener,
    conns: Vec<Option<AdminConn>>,
    pub snapshot: AdminSnapshot,
    /// Shutdown has begun (lame duck): `/ready` answers 503.
    pub lame_duck: bool,
    /// Requests per second per release, sampled by the loop's sweep.
    pub history: History,
}

fn conn_token(idx: usize) -> Token {
    Token((idx << 2) | ADMIN_TAG)
}

impl Admin {
    /// The listening socket's descriptor (a daemon upgrade passes it on).
    pub fn listener_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.listener)
    }

    pub fn new(mut listener: TcpListener, reg: &Registry) -> io::Result<Admin> {
        reg.register(&mut listener, ADMIN_LISTENER, Interest::READABLE)?;
        Ok(Admin {
            listener,
            conns: Vec::new(),
            snapshot: AdminSnapshot::default(),
            lame_duck: false,
            history: History::new(Instant::now()),
        })
    }

    pub fn accept(&mut self, reg: &Registry, now: Instant) {
        loop {
            let (mut sock, _) = match self.listener.accept() {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // Out of descriptors and friends: try again on the next edge.
                Err(_) => return,
            };
            let idx = match self.conns.iter().position(Option::is_none) {
                Some(i) => i,
                None if self.conns.len() < MAX_CONNS => {
                    self.conns.push(None);
                    self.conns.len() - 1
                }
                // At the cap: closed at once.
                None => continue,
            };
            if reg
                .register(
                    &mut sock,
                    conn_token(idx),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .is_err()
            {
                continue;
            }
            self.conns[idx] = Some(AdminConn {
                sock,
                input: Vec::new(),
                output: Vec::new(),
                written: 0,
                answered: false,
                deadline: now + TIMEOUT,
            });
        }
    }

    /// An event on admin connection `idx`.
    pub fn on_event(&mut self, idx: usize, sh: &Shared, reg: &Registry) {
        let Some(Some(c)) = self.conns.get_mut(idx) else {
            return;
        };
        // A socket error ends the connection like a finished answer.
        let view = View {
            sh,
            snap: &self.snapshot,
            history: &self.history,
            lame: self.lame_duck,
        };
        let keep = step(c, &view).unwrap_or(false);
        if !keep {
            self.close(idx, reg);
        }
    }

    fn close(&mut self, idx: usize, reg: &Registry) {
        if let Some(mut c) = self.conns.get_mut(idx).and_then(Option::take) {
            let _ = reg.deregister(&mut c.sock);
        }
    }

    /// Closes connections past their deadline.
    pub fn expire(&mut self, now: Instant, reg: &Registry) {
        for idx in 0..self.conns.len() {
            if self.conns[idx].as_ref().is_some_and(|c| c.deadline <= now) {
                self.close(idx, reg);
            }
        }
    }
}

/// What an answer is made from.
struct View<'a> {
    sh: &'a Shared,
    snap: &'a AdminSnapshot,
    history: &'a History,
    lame: bool,
}

/// Reads the head, answers once, writes. Ok(false) when done.
fn step(c: &mut AdminConn, view: &View) -> io::Result<bool> {
    let mut eof = false;
    if !c.answered {
        let mut chunk = [0u8; 2048];
        while c.input.len() <= MAX_HEAD {
            match c.sock.read(&mut chunk) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => c.input.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        let answer = match req.parse(&c.input) {
            Ok(httparse::Status::Complete(_)) => Some(answer(
                req.method.unwrap_or(""),
                req.path.unwrap_or(""),
                view,
            )),
            Ok(httparse::Status::Partial) if c.input.len() > MAX_HEAD => {
                canned(ErrorKind::HeadTooLarge)
            }
            Ok(httparse::Status::Partial) if eof => return Ok(false),
            Ok(httparse::Status::Partial) => None,
            Err(httparse::Error::TooManyHeaders) => canned(ErrorKind::HeadTooLarge),
            Err(_) => canned(ErrorKind::BadRequest),
        };
        match answer {
            Some(bytes) => {
                c.output = bytes;
                c.answered = true;
                c.input = Vec::new();
            }
            None => return Ok(true),
        }
    }
    while c.written < c.output.len() {
        match c.sock.write(&c.output[c.written..]) {
            Ok(0) => return Ok(false),
            Ok(n) => c.written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

fn canned(kind: ErrorKind) -> Option<Vec<u8>> {
    canned_response(
        &ProxyError::client(kind, String::new()),
        false,
        super::error::Page::Standard,
    )
}

/// Whether a load balancer should send traffic here.
fn ready(sh: &Shared, lame: bool) -> bool {
    sh.releases.active.is_some() && !lame && !sh.shutting_down
}

/// The whole answer to one admin request.
fn answer(method: &str, target: &str, view: &View) -> Vec<u8> {
    let View {
        sh,
        snap,
        history,
        lame,
    } = *view;
    let head_only = method == "HEAD";
    if method != "GET" && !head_only {
        return response(405, TEXT, "Method not allowed\n", head_only);
    }
    let path = target.split(['?', '#']).next().unwrap_or("");
    match path {
        "/" => response_with(200, HTML, PAGE_HEADERS, STATUS_PAGE, head_only),
        "/healthz" => response(200, TEXT, "ok", head_only),
        "/ready" if ready(sh, lame) => response(200, TEXT, "ready", head_only),
        "/ready" => response(503, TEXT, "not ready", head_only),
        "/version" => {
            let body = if snap.version_json.is_empty() {
                default_version()
            } else {
                snap.version_json.clone()
            };
            response(200, JSON, &body, head_only)
        }
        "/status.json" => {
            let body = if snap.status_json.is_empty() {
                "{}"
            } else {
                &snap.status_json
            };
            response(200, JSON, body, head_only)
        }
        "/overview.json" => response(200, JSON, &overview(snap, history), head_only),
        "/metrics" => {
            let mut body = String::with_capacity(4096);
            render_metrics(sh, snap, &mut body);
            response(200, PROMETHEUS, &body, head_only)
        }
        _ => response(404, TEXT, "Not found\n", head_only),
    }
}

const TEXT: &str = "text/plain; charset=utf-8";
const JSON: &str = "application/json";
const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";

/// The status page: one self-contained file, its data from `/status.json`
/// and `/overview.json`.
const STATUS_PAGE: &str = include_str!("status_page.html");

/// `/overview.json`: what the status page shows besides the status object:
/// `{"daemon","events","traffic","processes"}` (the resident memory of every
/// process, as in `/metrics`); `null` / `[]` before the daemon's first
/// snapshot.
fn overview(snap: &AdminSnapshot, history: &History) -> String {
    use std::fmt::Write;
    let or = |s: &str, empty: &'static str| if s.is_empty() { empty } else { s }.to_string();
    let mut out = format!(
        r#"{{"daemon":{},"events":{},"traffic":"#,
        or(&snap.daemon_json, "null"),
        or(&snap.events_json, "[]")
    );
    history.to_json(&mut out);
    out.push_str(r#","processes":["#);
    for (i, p) in snap.processes.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let text = |s: &str| serde_json::Value::from(s).to_string();
        let rss = p.rss_bytes.map_or("null".to_string(), |n| n.to_string());
        let _ = write!(
            out,
            r#"{{"process":{},"release":{},"rssBytes":{rss}}}"#,
            text(&p.process),
            text(&p.release)
        );
    }
    out.push_str("]}");
    out
}

fn default_version() -> String {
    format!(
        r#"{{"application":null,"version":"{}","activeReleaseId":null,"revision":null}}"#,
        env!("CARGO_PKG_VERSION")
    )
}

/// The page loads nothing from anywhere and talks only to this listener.
const PAGE_HEADERS: &str = "Content-Security-Policy: default-src 'none'; script-src 'unsafe-inline'; \
     style-src 'unsafe-inline'; connect-src 'self'; img-src data:; frame-ancestors 'none'\r\n\
     X-Content-Type-Options: nosniff\r\n";

fn response(status: u16, content_type: &str, body: &str, head_only: bool) -> Vec<u8> {
    response_with(status, content_type, "", body, head_only)
}

/// `extra`: more header lines, each ending in CRLF.
fn response_with(
    status: u16,
    content_type: &str,
    extra: &str,
    body: &str,
    head_only: bool,
) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        503 => "Service Unavailable",
        _ => "Unknown",
    };
    let allow = if status == 405 {
        "Allow: GET, HEAD\r\n"
    } else {
        ""
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\n{allow}{extra}Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

/// Every family, the daemon's from the last snapshot.
fn render_metrics(sh: &Shared, snap: &AdminSnapshot, out: &mut String) {
    use std::fmt::Write;
    out.push_str(
        "# HELP rollbridge_info Rollbridge build information.\n# TYPE rollbridge_info gauge\n",
    );
    let _ = writeln!(
        out,
        "rollbridge_info{{version=\"{}\"}} 1",
        metrics::escape(env!("CARGO_PKG_VERSION"))
    );
    sh.metrics.render(out);
    metrics::render_open(&sh.releases.counts(), out);
    metrics::render_daemon(snap, out);
    out.push_str(
        "# HELP rollbridge_access_log_dropped_total Access log lines dropped because the writer was behind.\n\
         # TYPE rollbridge_access_log_dropped_total counter\n",
    );
    let dropped = sh.access.as_ref().map_or(0, |a| a.dropped);
    let _ = writeln!(out, "rollbridge_access_log_dropped_total {dropped}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_answer_has_headers_but_no_body() {
        let get = String::from_utf8(response(200, TEXT, "ok", false)).unwrap();
        let head = String::from_utf8(response(200, TEXT, "ok", true)).unwrap();
        assert!(get.ends_with("\r\n\r\nok"));
        assert!(head.ends_with("\r\n\r\n"));
        assert!(head.contains("Content-Length: 2\r\n"));
    }

    #[test]
    fn method_not_allowed_names_the_allowed_ones() {
        let r = String::from_utf8(response(405, TEXT, "x", false)).unwrap();
        assert!(r.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
        assert!(r.contains("Allow: GET, HEAD\r\n"));
    }
}
