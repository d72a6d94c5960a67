//! The deploy health check: a pure schedule plus a
//! blocking single probe. The schedule decides when to probe and when to
//! give up with `now` passed in; the probe runs off the core thread.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use super::ports::errno_name;
use crate::config::HealthConfig;

/// Longest single probe; a hanging endpoint cannot overrun the deadline.
const MAX_PROBE: Duration = Duration::from_secs(5);

/// `http://host:port/path`, with IPv6 hosts bracketed.
pub fn url(host: &str, port: u16, path: &str) -> String {
    format!("http://{}{path}", authority(host, port))
}

fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Healthy,
    /// Probe again at this instant.
    ProbeAt(Instant),
    /// The deploy fails with this message.
    Failed(String),
}

/// When to probe and when to stop.
#[derive(Debug, Clone)]
pub struct Schedule {
    url: String,
    first: Instant,
    deadline: Instant,
    interval: Duration,
    last_error: Option<String>,
    attempts: u32,
}

impl Schedule {
    /// `start` is when the proxied process was spawned; the start delay is
    /// outside the timeout.
    pub fn new(start: Instant, cfg: &HealthConfig, url: String) -> Schedule {
        let first = start + Duration::from_millis(cfg.start_delay_ms);
        Schedule {
            url,
            first,
            deadline: first + Duration::from_millis(cfg.timeout_ms),
            interval: Duration::from_millis(cfg.interval_ms.max(1)),
            last_error: None,
            attempts: 0,
        }
    }

    /// The last probe's error (`HTTP 503`, `connect ECONNREFUSED …`).
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// Probes run so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Time spent probing by `now` (the start delay not counted).
    pub fn waited(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.first)
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn first_probe(&self) -> Instant {
        self.first
    }

    /// Budget for a probe started at `now`.
    pub fn probe_timeout(&self, now: Instant) -> Duration {
        self.deadline
            .saturating_duration_since(now)
            .clamp(Duration::from_millis(50), MAX_PROBE)
    }

    /// Records a probe outcome observed at `now`.
    pub fn record(&mut self, now: Instant, outcome: Result<(), String>) -> Verdict {
        self.attempts += 1;
        match outcome {
            Ok(()) => Verdict::Healthy,
            Err(e) => {
                self.last_error = Some(e);
                let next = now + self.interval;
                if next > self.deadline {
                    self.fail()
                } else {
                    Verdict::ProbeAt(next)
                }
            }
        }
    }

    /// The failure verdict (also used when the deadline passes unprobed or
    /// the process exits during the check).
    pub fn fail(&self) -> Verdict {
        Verdict::Failed(format!(
            "Health check failed for {}: {}",
            self.url,
            self.last_error.as_deref().unwrap_or("no attempts")
        ))
    }
}

/// One `GET` of `path` on `host:port`; `Ok` for a 2xx status. Redirects are
/// not followed (a health endpoint should answer itself).
pub fn probe(host: &str, port: u16, path: &str, timeout: Duration) -> Result<(), String> {
    let started = Instant::now();
    let target = authority(host, port);
    let addr: SocketAddr = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("getaddrinfo {}: {e}", host))?
        .next()
        .ok_or_else(|| format!("getaddrinfo ENOTFOUND {host}"))?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("connect {} {target}", errno_name(&e)))?;
    let left = |started: Instant| {
        timeout
            .saturating_sub(started.elapsed())
            .max(Duration::from_millis(1))
    };
    stream
        .set_write_timeout(Some(left(started)))
        .and_then(|_| {
            stream.write_all(
                format!(
                    "GET {path} HTTP/1.1\r\nHost: {target}\r\nUser-Agent: rollbridge-health\r\nAccept: */*\r\nConnection: close\r\n\r\n"
                )
                .as_bytes(),
            )
        })
        .map_err(|e| format!("write {} {target}", errno_name(&e)))?;
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 512];
    while !head.windows(2).any(|w| w == b"\r\n") {
        stream
            .set_read_timeout(Some(left(started)))
            .map_err(|e| e.to_string())?;
        match stream.read(&mut buf) {
            Ok(0) => return Err(format!("socket hang up ({target} closed the connection)")),
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(format!("timed out after {} ms", timeout.as_millis()));
            }
            Err(e) => return Err(format!("read {} {target}", errno_name(&e))),
        }
        if head.len() > 8192 {
            break;
        }
    }
    let status = parse_status(&head).ok_or_else(|| "invalid HTTP response".to_owned())?;
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(format!("HTTP {status}"))
    }
}

fn parse_status(head: &[u8]) -> Option<u16> {
    let line_end = head.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&head[..line_end]).ok()?;
    let mut parts = line.split(' ');
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    parts.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn cfg(delay: u64, timeout: u64, interval: u64) -> HealthConfig {
        HealthConfig {
            path: "/ping".into(),
            timeout_ms: timeout,
            interval_ms: interval,
            start_delay_ms: delay,
            watch: Default::default(),
        }
    }

    #[test]
    fn url_brackets_ipv6() {
        assert_eq!(url("::1", 80, "/ping"), "http://[::1]:80/ping");
        assert_eq!(url("127.0.0.1", 8, "/"), "http://127.0.0.1:8/");
    }

    #[test]
    fn start_delay_is_outside_the_timeout() {
        let t0 = Instant::now();
        let s = Schedule::new(t0, &cfg(500, 1000, 250), "u".into());
        assert_eq!(s.first_probe(), t0 + Duration::from_millis(500));
        let mut s2 = s.clone();
        let v = s2.record(t0 + Duration::from_millis(1000), Err("HTTP 503".into()));
        assert_eq!(v, Verdict::ProbeAt(t0 + Duration::from_millis(1250)));
        let v = s2.record(t0 + Duration::from_millis(1400), Err("HTTP 503".into()));
        assert_eq!(
            v,
            Verdict::Failed("Health check failed for u: HTTP 503".into())
        );
    }

    #[test]
    fn gives_up_with_the_last_error_after_the_deadline() {
        let t0 = Instant::now();
        let mut s = Schedule::new(t0, &cfg(0, 300, 250), "http://127.0.0.1:1/ping".into());
        assert!(matches!(
            s.record(t0, Err("HTTP 500".into())),
            Verdict::ProbeAt(_)
        ));
        let v = s.record(
            t0 + Duration::from_millis(250),
            Err("connect ECONNREFUSED 127.0.0.1:1".into()),
        );
        assert_eq!(
            v,
            Verdict::Failed(
                "Health check failed for http://127.0.0.1:1/ping: connect ECONNREFUSED 127.0.0.1:1"
                    .into()
            )
        );
    }

    #[test]
    fn success_is_healthy_and_no_attempts_is_named() {
        let t0 = Instant::now();
        let mut s = Schedule::new(t0, &cfg(0, 100, 10), "u".into());
        assert_eq!(
            s.fail(),
            Verdict::Failed("Health check failed for u: no attempts".into())
        );
        assert_eq!(s.record(t0, Ok(())), Verdict::Healthy);
    }

    fn serve_once(response: &'static str) -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = l.accept() {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf);
                let _ = s.write_all(response.as_bytes());
            }
        });
        port
    }

    #[test]
    fn probe_accepts_2xx() {
        let port = serve_once("HTTP/1.1 204 No Content\r\n\r\n");
        assert_eq!(
            probe("127.0.0.1", port, "/ping", Duration::from_secs(2)),
            Ok(())
        );
    }

    #[test]
    fn probe_reports_status() {
        let port = serve_once("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(
            probe("127.0.0.1", port, "/ping", Duration::from_secs(2)),
            Err("HTTP 503".into())
        );
    }

    #[test]
    fn probe_reports_refused_connects() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        assert_eq!(
            probe("127.0.0.1", port, "/", Duration::from_secs(1)),
            Err(format!("connect ECONNREFUSED 127.0.0.1:{port}"))
        );
    }

    #[test]
    fn probe_times_out_on_a_silent_server() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let err = probe("127.0.0.1", port, "/", Duration::from_millis(150)).unwrap_err();
        assert!(err.contains("timed out"), "{err}");
        drop(l);
    }
}
