//! Steady request load through the proxy: keep-alive and
//! connection-per-request clients counting answers until stopped.

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::{get, read_response};

/// Clients sending `GET /` to the proxy until [`Load::finish`].
pub struct Load {
    pub ok: Arc<AtomicU64>,
    pub failed: Arc<AtomicU64>,
    pub errors: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    /// One keep-alive and one connection-per-request client per `pairs`.
    pub fn start(port: u16, pairs: usize) -> Load {
        let mut load = Load {
            ok: Arc::default(),
            failed: Arc::default(),
            errors: Arc::default(),
            stop: Arc::default(),
            threads: Vec::new(),
        };
        for _ in 0..pairs {
            for keep_alive in [true, false] {
                let t = client(port, keep_alive, &load);
                load.threads.push(t);
            }
        }
        load
    }

    pub fn ok(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }

    /// Stops the clients; returns (ok, failed, errors).
    pub fn finish(mut self) -> (u64, u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let errors = self.errors.lock().unwrap().clone();
        (self.ok(), self.failed.load(Ordering::Relaxed), errors)
    }
}

fn client(port: u16, keep_alive: bool, load: &Load) -> JoinHandle<()> {
    let (ok, failed, errors, stop) = (
        load.ok.clone(),
        load.failed.clone(),
        load.errors.clone(),
        load.stop.clone(),
    );
    std::thread::spawn(move || {
        let fail = |e: String| {
            failed.fetch_add(1, Ordering::Relaxed);
            errors.lock().unwrap().push(e);
        };
        let mut conn: Option<TcpStream> = None;
        let mut buf = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            // Bounded: a few hundred requests a second per client at most.
            std::thread::sleep(Duration::from_millis(2));
            if !keep_alive {
                match get(port, "/") {
                    Ok((200, _)) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok((s, b)) => fail(format!("status {s}: {b}")),
                    Err(e) => fail(format!("conn-per-request: {e}")),
                }
                continue;
            }
            if conn.is_none() {
                match TcpStream::connect(("127.0.0.1", port)) {
                    Ok(s) => {
                        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                        conn = Some(s);
                        buf.clear();
                    }
                    Err(e) => {
                        fail(format!("connect: {e}"));
                        continue;
                    }
                }
            }
            let Some(s) = conn.as_mut() else { continue };
            let result = s
                .write_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
                .and_then(|_| read_response(s, &mut buf));
            match result {
                Ok((200, close)) => {
                    ok.fetch_add(1, Ordering::Relaxed);
                    if close {
                        conn = None;
                    }
                }
                Ok((status, _)) => fail(format!("keep-alive status {status}")),
                Err(e) => {
                    fail(format!("keep-alive: {e}"));
                    conn = None;
                }
            }
        }
    })
}
