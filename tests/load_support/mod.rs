//! Constant HTTP load on a proxy port for the takeover tests: threads that
//! reuse one keep-alive connection or open a new connection per request,
//! counting answers, failures, and connection refusals (with when they
//! happened) apart. Needs `mod deploy_support;` in the test crate.
#![allow(dead_code)]

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::deploy_support::{get, read_response};

#[derive(Default)]
pub struct Load {
    pub ok: AtomicU64,
    pub failed: AtomicU64,
    /// Keep-alive requests re-sent because the server closed the idle
    /// connection before reading them (what every HTTP client does).
    pub resent: AtomicU64,
    /// Each failure, with when its connection was opened.
    pub errors: Mutex<Vec<(Instant, String)>>,
    /// Each connection attempt refused (nothing listening): when it was
    /// started and when the refusal was seen. The refusal itself lies in
    /// between; a descheduled load thread can see it much later.
    pub refused: Mutex<Vec<(Instant, Instant)>>,
}

impl Load {
    fn fail(&self, opened: Instant, e: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        self.errors.lock().unwrap().push((opened, e));
    }

    fn connect_failed(&self, opened: Instant, what: &str, e: std::io::Error) {
        if e.kind() == std::io::ErrorKind::ConnectionRefused {
            self.refused.lock().unwrap().push((opened, Instant::now()));
        } else {
            self.fail(opened, format!("{what}: {e}"));
        }
    }

    /// `ok, failed, resent, refused` as one line for the test output.
    pub fn summary(&self) -> String {
        format!(
            "requests ok: {}, failed: {}, keep-alive re-sent: {}, connections refused: {}",
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            self.resent.load(Ordering::Relaxed),
            self.refused.lock().unwrap().len()
        )
    }
}

/// Threads putting load on `port` until `stop`: one per entry of
/// `keep_alive` (true: one reused connection, false: one per request).
pub fn spawn_load(
    port: u16,
    keep_alive: &[bool],
    stop: Arc<AtomicBool>,
    load: Arc<Load>,
) -> Vec<std::thread::JoinHandle<()>> {
    keep_alive
        .iter()
        .map(|&ka| {
            let (stop, load) = (stop.clone(), load.clone());
            std::thread::spawn(move || run(port, ka, &stop, &load))
        })
        .collect()
}

fn run(port: u16, keep_alive: bool, stop: &AtomicBool, load: &Load) {
    let mut conn: Option<(TcpStream, usize, Instant)> = None;
    let mut buf = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        if !keep_alive {
            let opened = Instant::now();
            match get(port, "/") {
                Ok((200, _)) => {
                    load.ok.fetch_add(1, Ordering::Relaxed);
                }
                Ok((s, b)) => load.fail(opened, format!("status {s}: {b}")),
                Err(e) => load.connect_failed(opened, "conn-per-request", e),
            }
            continue;
        }
        if conn.is_none() {
            let opened = Instant::now();
            match TcpStream::connect(("127.0.0.1", port)) {
                Ok(s) => {
                    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    conn = Some((s, 0, opened));
                    buf.clear();
                }
                Err(e) => {
                    load.connect_failed(opened, "keep-alive connect", e);
                    continue;
                }
            }
        }
        let Some((s, served, opened)) = conn.as_mut() else {
            continue;
        };
        let opened = *opened;
        let result = s
            .write_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
            .and_then(|_| read_response(s, &mut buf));
        match result {
            Ok((200, close)) => {
                load.ok.fetch_add(1, Ordering::Relaxed);
                *served += 1;
                if close {
                    conn = None;
                }
            }
            Ok((status, _)) => {
                load.fail(opened, format!("keep-alive status {status}"));
                conn = None;
            }
            // A reused connection closed before any response byte: the
            // request was never read; send it again.
            Err(_) if *served > 0 && buf.is_empty() => {
                load.resent.fetch_add(1, Ordering::Relaxed);
                conn = None;
            }
            Err(e) => {
                load.fail(opened, format!("keep-alive: {e}"));
                conn = None;
            }
        }
    }
}
