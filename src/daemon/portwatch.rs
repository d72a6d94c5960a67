//! Binding the proxy port the moment a previous owner that does not hand
//! its listener over (the Node tool) lets go of it, and measuring how long
//! the port was closed.
//!
//! The watch starts before `retire-owner` is sent and polls `bind()` every
//! [`BIND_RETRY`]: the old owner closes its listener before it answers, so
//! waiting for the answer first would leave the port closed for as long as
//! the answer takes to arrive. Each failed attempt proves the port was
//! still held at that instant, so "success minus the last failed attempt"
//! is an upper bound of the closed window, whatever the scheduler does.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, bounded};

/// Pause between bind attempts while the old owner still holds the port.
pub const BIND_RETRY: Duration = Duration::from_micros(100);

/// A bound listener and the longest the port can have been closed before
/// it (since the last attempt that found it taken, or since the watch
/// started when none did).
pub type Bound = (TcpListener, Duration);

/// Binds `addr`, retrying every [`BIND_RETRY`] while it is in use, until
/// `deadline` or until `stop` is set.
pub fn bind_when_free(
    addr: SocketAddr,
    deadline: Instant,
    stop: &AtomicBool,
) -> Result<Bound, String> {
    let started = Instant::now();
    let mut last_taken = None;
    loop {
        let attempt = Instant::now();
        match TcpListener::bind(addr) {
            Ok(l) => {
                let closed = last_taken.unwrap_or(started).elapsed();
                l.set_nonblocking(true)
                    .map_err(|e| format!("cannot use the proxy listener on {addr}: {e}"))?;
                return Ok((l, closed));
            }
            Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) && attempt < deadline => {
                last_taken = Some(attempt);
                if stop.load(Ordering::Relaxed) {
                    return Err("stopped".into());
                }
                std::thread::sleep(BIND_RETRY);
            }
            Err(e) => {
                return Err(format!(
                    "cannot bind the proxy to {addr} after the previous owner retired: {e}"
                ));
            }
        }
    }
}

/// [`bind_when_free`] on its own thread, started before the old owner is
/// asked to retire.
pub struct PortWatch {
    stop: Arc<AtomicBool>,
    result: Receiver<Result<Bound, String>>,
}

impl PortWatch {
    /// Starts polling `addr` until `deadline`.
    pub fn start(addr: SocketAddr, deadline: Instant) -> std::io::Result<PortWatch> {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, result) = bounded(1);
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("port-watch".into())
            .spawn(move || {
                let _ = tx.send(bind_when_free(addr, deadline, &flag));
            })?;
        Ok(PortWatch { stop, result })
    }

    /// The listener, once the port is free; an error when it is still
    /// taken after `timeout`.
    pub fn wait(self, timeout: Duration) -> Result<Bound, String> {
        match self.result.recv_timeout(timeout) {
            Ok(r) => r,
            Err(RecvTimeoutError::Timeout) => {
                self.stop.store(true, Ordering::Relaxed);
                Err(format!(
                    "the proxy port was still in use {} ms after the previous owner retired",
                    timeout.as_millis()
                ))
            }
            Err(RecvTimeoutError::Disconnected) => Err("the port watch stopped".into()),
        }
    }
}

impl Drop for PortWatch {
    /// Not needed any more (the listener was handed over, or the takeover
    /// failed): stop polling; a listener it bound meanwhile is closed.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held() -> (TcpListener, SocketAddr) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        (l, addr)
    }

    #[test]
    fn port_is_bound_as_soon_as_it_frees() {
        let (held, addr) = held();
        let start = Instant::now();
        let watch = PortWatch::start(addr, start + Duration::from_secs(5)).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        drop(held);
        let (l, closed) = watch.wait(Duration::from_secs(5)).unwrap();
        assert_eq!(l.local_addr().unwrap(), addr);
        assert!(start.elapsed() >= Duration::from_millis(40));
        // Held for 50 ms, closed for at most a few polls of it.
        assert!(closed < Duration::from_millis(40), "{closed:?}");
    }

    #[test]
    fn a_free_port_counts_as_closed_since_the_watch_started() {
        let (held, addr) = held();
        drop(held);
        let stop = AtomicBool::new(false);
        let start = Instant::now();
        let (_l, closed) =
            bind_when_free(addr, Instant::now() + Duration::from_secs(1), &stop).unwrap();
        assert!(closed <= start.elapsed());
    }

    #[test]
    fn a_port_that_stays_taken_fails_at_the_deadline() {
        let (_held, addr) = held();
        let stop = AtomicBool::new(false);
        let deadline = Instant::now() + Duration::from_millis(30);
        let e = bind_when_free(addr, deadline, &stop).unwrap_err();
        assert!(e.contains("after the previous owner retired"), "{e}");
    }

    #[test]
    fn waiting_gives_up_after_the_timeout_and_stops_polling() {
        let (_held, addr) = held();
        let watch = PortWatch::start(addr, Instant::now() + Duration::from_secs(5)).unwrap();
        let stop = watch.stop.clone();
        let e = watch.wait(Duration::from_millis(20)).unwrap_err();
        assert!(e.contains("still in use"), "{e}");
        assert!(stop.load(Ordering::Relaxed));
    }
}
