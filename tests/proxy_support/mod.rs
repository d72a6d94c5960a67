//! Shared helpers for the proxy integration tests: tiny std::net backends,
//! a raw HTTP client, and proxy start-up on an ephemeral port.
#![allow(dead_code)]

use crossbeam_channel::{Receiver, Sender, unbounded};
use rollbridge::proxy::{self, ProxyEvent, ProxyHandle, ProxyOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const T: Duration = Duration::from_secs(10);

/// A proxy on 127.0.0.1:0 with test-friendly options.
pub struct Proxy {
    pub handle: ProxyHandle,
    pub events: Receiver<ProxyEvent>,
    pub addr: SocketAddr,
}

impl Proxy {
    pub fn start() -> Proxy {
        Proxy::with(|_| {})
    }

    pub fn with(f: impl FnOnce(&mut ProxyOptions)) -> Proxy {
        let mut o = ProxyOptions {
            port: 0,
            connect_retry: Duration::ZERO,
            ..ProxyOptions::default()
        };
        f(&mut o);
        let (handle, events) = proxy::start(o).expect("proxy start");
        let addr = handle.local_addr();
        Proxy {
            handle,
            events,
            addr,
        }
    }

    pub fn connect(&self) -> Client {
        Client::connect(self.addr)
    }

    /// Waits for the next event matching `f`.
    pub fn wait_event(&self, f: impl Fn(&ProxyEvent) -> bool) -> ProxyEvent {
        let end = Instant::now() + T;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(ev) if f(&ev) => return ev,
                Ok(_) => {}
                Err(_) => panic!("timed out waiting for a proxy event"),
            }
        }
    }

    pub fn wait_drained(&self, id: &str) {
        self.wait_event(|e| matches!(e, ProxyEvent::Drained { release_id } if release_id == id));
    }

    /// (http, websocket) of a release, (0, 0) if unknown.
    pub fn counts(&self, id: &str) -> (u64, u64) {
        self.handle
            .counts()
            .unwrap()
            .into_iter()
            .find(|c| c.release_id == id)
            .map_or((0, 0), |c| (c.http, c.websocket))
    }

    /// Polls until `counts(id) == want` (counts are updated by the loop).
    pub fn wait_counts(&self, id: &str, want: (u64, u64)) {
        let end = Instant::now() + T;
        while self.counts(id) != want {
            assert!(
                Instant::now() < end,
                "counts of {id}: {:?} != {want:?}",
                self.counts(id)
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.handle.shutdown_within(Duration::from_millis(200));
    }
}

/// A request as a backend saw it.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    pub path: String,
    pub head: String,
    pub headers: Vec<(String, String)>,
    /// Body bytes exactly as received (chunked framing included).
    pub raw_body: Vec<u8>,
    /// Index of the backend connection it arrived on.
    pub conn: usize,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// What a handler does with the connection after a request.
pub enum After {
    KeepAlive,
    Close,
}

pub type Handler = Arc<dyn Fn(&Req, &mut TcpStream) -> After + Send + Sync>;

/// A threaded test backend (one thread per connection).
pub struct Backend {
    pub addr: SocketAddr,
    pub requests: Receiver<Req>,
    pub connections: Arc<AtomicUsize>,
    /// Connections that ended (EOF or error) on the backend's side.
    pub closed: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Backend {
    /// Answers every request `200` with body `name` and `X-Backend: name`.
    pub fn named(name: &str) -> Backend {
        let name = name.to_string();
        Backend::start(Arc::new(move |_req, s| {
            respond(s, 200, &[("X-Backend", &name)], name.as_bytes());
            After::KeepAlive
        }))
    }

    pub fn start(handler: Handler) -> Backend {
        Backend::bind("127.0.0.1:0", handler)
    }

    pub fn bind(addr: &str, handler: Handler) -> Backend {
        let listener = TcpListener::bind(addr).expect("backend bind");
        Backend::on(listener, handler)
    }

    pub fn on(listener: TcpListener, handler: Handler) -> Backend {
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = unbounded();
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicUsize::new(0));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let (st, cn, cs, cl) = (
            stop.clone(),
            connections.clone(),
            conns.clone(),
            closed.clone(),
        );
        let accept = std::thread::spawn(move || {
            for s in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(s) = s else { continue };
                let idx = cn.fetch_add(1, Ordering::SeqCst);
                if let Ok(c) = s.try_clone() {
                    cs.lock().unwrap().push(c);
                }
                let (h, tx, cl) = (handler.clone(), tx.clone(), cl.clone());
                std::thread::spawn(move || {
                    serve(s, idx, h, tx);
                    cl.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        Backend {
            addr,
            requests: rx,
            connections,
            closed,
            stop,
            accept: Some(accept),
            conns,
        }
    }

    /// Waits until `n` backend connections have ended.
    pub fn wait_closed(&self, n: usize) {
        let end = Instant::now() + T;
        while self.closed.load(Ordering::SeqCst) < n {
            assert!(Instant::now() < end, "backend connections still open");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn next_request(&self) -> Req {
        self.requests
            .recv_timeout(T)
            .expect("backend got no request")
    }

    /// Closes the listener and every accepted connection.
    pub fn kill(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.kill();
    }
}

fn serve(s: TcpStream, idx: usize, h: Handler, tx: Sender<Req>) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    let mut w = match s.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut r = BufReader::new(s);
    while let Some(mut req) = read_request(&mut r) {
        req.conn = idx;
        let after = h(&req, &mut w);
        let _ = tx.send(req);
        if matches!(after, After::Close) {
            break;
        }
    }
    // `Backend::conns` holds a clone: shut down so the peer sees the end.
    let _ = w.shutdown(Shutdown::Both);
}

/// Reads one request (head + body by Content-Length or chunked).
pub fn read_request(r: &mut BufReader<TcpStream>) -> Option<Req> {
    let head = read_head(r)?;
    let mut hs = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut hs);
    req.parse(head.as_bytes()).ok()?;
    let headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let mut out = Req {
        method: req.method?.to_string(),
        path: req.path?.to_string(),
        head: head.clone(),
        headers,
        raw_body: Vec::new(),
        conn: 0,
    };
    out.raw_body = read_body(r, &out.headers, false)?;
    Some(out)
}

/// Reads up to and including the blank line.
pub fn read_head(r: &mut impl BufRead) -> Option<String> {
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        let n = r.read_until(b'\n', &mut line).ok()?;
        if n == 0 {
            return None;
        }
        head.extend_from_slice(&line);
        if line == b"\r\n" {
            // obs-text is legal in field values: keep it, lossily.
            return Some(String::from_utf8_lossy(&head).into_owned());
        }
    }
}

/// Reads a body by its framing; `close_delimited` reads to EOF when there
/// is no framing. Chunked bodies are returned raw.
pub fn read_body(
    r: &mut impl BufRead,
    headers: &[(String, String)],
    close_delimited: bool,
) -> Option<Vec<u8>> {
    let get = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if get("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        loop {
            let mut line = Vec::new();
            if r.read_until(b'\n', &mut line).ok()? == 0 {
                return None;
            }
            body.extend_from_slice(&line);
            let size_str = String::from_utf8_lossy(&line);
            let size = usize::from_str_radix(size_str.trim().split(';').next()?.trim(), 16).ok()?;
            if size == 0 {
                loop {
                    let mut t = Vec::new();
                    if r.read_until(b'\n', &mut t).ok()? == 0 {
                        return None;
                    }
                    body.extend_from_slice(&t);
                    if t == b"\r\n" {
                        return Some(body);
                    }
                }
            }
            let mut chunk = vec![0u8; size + 2];
            r.read_exact(&mut chunk).ok()?;
            body.extend_from_slice(&chunk);
        }
    } else if let Some(n) = get("content-length") {
        let n: usize = n.trim().parse().ok()?;
        body.resize(n, 0);
        r.read_exact(&mut body).ok()?;
    } else if close_delimited {
        r.read_to_end(&mut body).ok()?;
    }
    Some(body)
}

/// Decodes a raw chunked body to its payload.
pub fn dechunk(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut r = BufReader::new(raw);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap() == 0 {
            return out;
        }
        let size = usize::from_str_radix(line.trim().split(';').next().unwrap(), 16).unwrap();
        if size == 0 {
            return out;
        }
        let mut chunk = vec![0u8; size + 2];
        r.read_exact(&mut chunk).unwrap();
        out.extend_from_slice(&chunk[..size]);
    }
}

/// Writes a Content-Length response.
pub fn respond(s: &mut TcpStream, status: u16, headers: &[(&str, &str)], body: &[u8]) {
    let mut out = format!("HTTP/1.1 {status} X\r\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    let _ = s.write_all(&bytes);
}

/// A parsed response as the client saw it.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub head: String,
    pub headers: Vec<(String, String)>,
    /// Payload (chunked decoded).
    pub body: Vec<u8>,
    /// Raw body bytes as received.
    pub raw_body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A raw HTTP client connection.
pub struct Client {
    pub r: BufReader<TcpStream>,
    pub w: TcpStream,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let s = TcpStream::connect(addr).expect("connect to proxy");
        s.set_read_timeout(Some(T)).unwrap();
        let w = s.try_clone().unwrap();
        Client {
            r: BufReader::new(s),
            w,
        }
    }

    pub fn send(&mut self, bytes: &[u8]) -> &mut Client {
        self.w.write_all(bytes).expect("write to proxy");
        self
    }

    pub fn get(&mut self, path: &str) -> Resp {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes());
        self.response()
    }

    pub fn response(&mut self) -> Resp {
        self.try_response(false).expect("no complete response")
    }

    pub fn head_response(&mut self) -> Resp {
        self.try_response(true).expect("no complete response")
    }

    /// Reads one response; `None` if the connection ended first.
    pub fn try_response(&mut self, to_head: bool) -> Option<Resp> {
        let head = read_head(&mut self.r)?;
        let mut hs = [httparse::EMPTY_HEADER; 128];
        let mut resp = httparse::Response::new(&mut hs);
        resp.parse(head.as_bytes()).ok()?;
        let status = resp.code?;
        let headers: Vec<(String, String)> = resp
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_string(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect();
        let no_body = to_head || status == 204 || status == 304 || (100..200).contains(&status);
        let raw_body = if no_body {
            Vec::new()
        } else {
            read_body(&mut self.r, &headers, true)?
        };
        let chunked = headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
        let body = if chunked && !no_body {
            dechunk(&raw_body)
        } else {
            raw_body.clone()
        };
        Some(Resp {
            status,
            head,
            headers,
            body,
            raw_body,
        })
    }

    /// True if the server closed the connection (EOF, no bytes).
    pub fn is_closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.r.read(&mut b), Ok(0) | Err(_))
    }

    pub fn read_all(&mut self) -> Vec<u8> {
        let mut v = Vec::new();
        let _ = self.r.read_to_end(&mut v);
        v
    }
}

/// A free port with nothing listening (bound then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
