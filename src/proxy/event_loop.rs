//! The single proxy thread: one mio `Poll` for the listener, every client
//! and upstream socket, the command waker and the timers.
//!
//! Tokens carry their meaning in the two low bits: `idx << 2 | 0` is a
//! session's client socket, `| 1` its upstream socket, `| 2` an idle pooled
//! upstream connection; the listener and the waker sit at the top of the
//! token space. Timers are coarse: deadlines (header, idle, grace, client
//! write, upstream response and read, pool expiry) are checked by a sweep
//! every [`SWEEP`]; connect-retry wake-ups are exact, from a small heap.

use super::access_log::Sink;
use super::admin::{ADMIN_LISTENER, ADMIN_TAG, Admin};
use super::budget::Gauge;
use super::buf::BufPool;
use super::error::{ErrorKind, ProxyError, Side};
use super::farewell::Farewells;
use super::handle::{Command, LISTENER, ProxyEvent, WAKER};
use super::options::ProxyOptions;
use super::release::{Owner, Releases};
use super::session::{ErrorWindow, Session, Shared, Verdict};
use crossbeam_channel::{Receiver, Sender};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use std::collections::BinaryHeap;
use std::io;
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

mod accept;
mod commands;
mod freeze;

/// How often deadlines are checked.
const SWEEP: Duration = Duration::from_millis(100);
/// Pause after the process ran out of descriptors before accepting again.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// Connections closed since the peak after which memory is handed back to
/// the system (slab shrunk, free lists trimmed, `malloc_trim`).
const TRIM_AFTER_CLOSED: usize = 1024;

/// The loop's listening sockets (the proxy's and the optional admin one),
/// and the access log's sink when there is one.
pub(crate) struct Sockets {
    pub listener: TcpListener,
    pub admin: Option<TcpListener>,
    pub access: Option<Sink>,
}

/// Thread entry: runs the loop under a last-resort panic guard.
pub(crate) fn run(
    poll: Poll,
    sockets: Sockets,
    rx: Receiver<Command>,
    events: Sender<ProxyEvent>,
    opts: ProxyOptions,
    local_addr: SocketAddr,
    gauge: Arc<Gauge>,
) {
    let guard_events = events.clone();
    let result = catch_unwind(AssertUnwindSafe(move || {
        let Sockets {
            mut listener,
            admin,
            access,
        } = sockets;
        let admin = match admin.map(|l| Admin::new(l, poll.registry())).transpose() {
            Ok(a) => a,
            Err(e) => {
                report(&events, format!("cannot register admin listener: {e}"));
                None
            }
        };
        if let Err(e) = poll
            .registry()
            .register(&mut listener, LISTENER, Interest::READABLE)
        {
            report(&events, format!("cannot register listener: {e}"));
            return;
        }
        // Accepted sockets inherit TCP_NODELAY from the listener: one
        // setsockopt here instead of one per connection.
        let nodelay_inherited = accept::set_nodelay(&listener);
        let now = Instant::now();
        let max_connections = gauge.max.load(Ordering::Relaxed);
        let mut l = Loop {
            poll,
            listener: Some(listener),
            listening: true,
            nodelay_inherited,
            limit_reported: false,
            peak_sessions: 0,
            gauge,
            rx,
            sessions: Vec::new(),
            free: Vec::new(),
            next_serial: 0,
            again: Vec::new(),
            next_sweep: now + SWEEP,
            accept_paused_until: None,
            shutdown: None,
            farewells: Farewells::default(),
            admin,
            sh: Shared {
                default_host: local_addr.to_string(),
                opts,
                bufs: BufPool::default(),
                releases: Releases::default(),
                scratch: Vec::with_capacity(4096),
                events,
                retries: BinaryHeap::new(),
                shutting_down: false,
                now,
                errors: ErrorWindow {
                    window: now,
                    sent: 0,
                    suppressed: 0,
                },
                sessions_open: 0,
                max_connections,
                traffic: Default::default(),
                metrics: Default::default(),
                rng: super::sticky::Rng::seeded(),
                access,
                ids: Default::default(),
                frozen: false,
            },
            freezing: None,
        };
        l.run();
    }));
    if let Err(panic) = result {
        let what = crate::guard::panic_message(&*panic);
        eprintln!("rollbridge: PROXY EVENT LOOP PANICKED, proxy stopped: {what}");
        report(&guard_events, format!("proxy event loop panicked: {what}"));
    }
}

fn report(events: &Sender<ProxyEvent>, message: String) {
    let _ = events.try_send(ProxyEvent::Error {
        release_id: None,
        side: Side::Internal,
        kind: ErrorKind::Io,
        message,
    });
}

struct Loop {
    poll: Poll,
    listener: Option<TcpListener>,
    /// The listener is registered; false while at the connection cap
    /// (new clients wait in the kernel backlog).
    listening: bool,
    /// The listener has TCP_NODELAY, so accepted sockets have it too.
    nodelay_inherited: bool,
    /// A `limit reached` event went out and no `cleared` yet.
    limit_reported: bool,
    /// Most sessions open at once since memory was last trimmed.
    peak_sessions: usize,
    gauge: Arc<Gauge>,
    rx: Receiver<Command>,
    sessions: Vec<Option<Session>>,
    free: Vec<usize>,
    next_serial: u64,
    /// Sessions that yielded with work left.
    again: Vec<usize>,
    next_sweep: Instant,
    accept_paused_until: Option<Instant>,
    shutdown: Option<(Instant, Option<Sender<()>>)>,
    /// Tunnels waiting for their Close 1001.
    farewells: Farewells,
    admin: Option<Admin>,
    sh: Shared,
    /// A daemon upgrade is preparing the handover.
    freezing: Option<freeze::FreezeRun>,
}

impl Loop {
    fn run(&mut self) {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = self.timeout();
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    self.sh.error(
                        None,
                        &ProxyError::new(ErrorKind::Io, Side::Internal, format!("poll: {e}")),
                    );
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            self.sh.now = Instant::now();
            for ev in events.iter() {
                match ev.token() {
                    WAKER => self.commands(),
                    LISTENER => self.accept(),
                    ADMIN_LISTENER => {
                        if let Some(a) = self.admin.as_mut() {
                            a.accept(self.poll.registry(), self.sh.now);
                        }
                    }
                    Token(t) => {
                        let idx = t >> 2;
                        let readable = ev.is_readable() || ev.is_read_closed() || ev.is_error();
                        let writable = ev.is_writable() || ev.is_write_closed() || ev.is_error();
                        let hup = ev.is_read_closed() || ev.is_error();
                        match t & 3 {
                            0 => self.on_socket(idx, false, readable, writable, hup),
                            1 => match self.sh.releases.owner(idx) {
                                Some(Owner::Session(s)) => {
                                    self.on_socket(s, true, readable, writable, hup)
                                }
                                // Anything but "writable" on an idle
                                // connection means it is closing or broken.
                                Some(Owner::Idle(slot)) if readable => {
                                    self.sh.releases.close_idle(slot, self.poll.registry())
                                }
                                _ => {}
                            },
                            ADMIN_TAG => {
                                if let Some(a) = self.admin.as_mut() {
                                    a.on_event(idx, &self.sh, self.poll.registry());
                                }
                            }
                            _ => {}
                        }
                    }
                }
            }
            for idx in std::mem::take(&mut self.again) {
                self.drive(idx);
            }
            self.fire_retries();
            self.fire_farewells();
            if self.sh.now >= self.next_sweep {
                self.sweep();
            }
            self.check_budget();
            self.check_freeze();
            // The requests logged in this iteration go to the writer at once.
            if let Some(access) = self.sh.access.as_mut() {
                access.flush();
            }
            if self.shutdown_done() {
                return;
            }
        }
    }

    fn timeout(&self) -> Duration {
        if !self.again.is_empty() {
            return Duration::ZERO;
        }
        let now = Instant::now();
        let mut until = self.next_sweep;
        if let Some(std::cmp::Reverse((at, _, _))) = self.sh.retries.peek() {
            until = until.min(*at);
        }
        if let Some(at) = self.farewells.next() {
            until = until.min(at);
        }
        until.saturating_duration_since(now)
    }

    fn on_socket(&mut self, idx: usize, upstream: bool, readable: bool, writable: bool, hup: bool) {
        let Some(Some(s)) = self.sessions.get_mut(idx) else {
            return;
        };
        let conn = if upstream {
            match s.up.as_mut() {
                Some(u) => &mut u.conn,
                None => return,
            }
        } else {
            &mut s.client
        };
        conn.readable |= readable;
        conn.writable |= writable;
        conn.hup |= hup;
        self.drive(idx);
    }

    fn drive(&mut self, idx: usize) {
        let Some(Some(s)) = self.sessions.get_mut(idx) else {
            return;
        };
        let verdict = s.drive(&mut self.sh, self.poll.registry());
        self.apply(idx, verdict);
    }

    fn apply(&mut self, idx: usize, verdict: Verdict) {
        match verdict {
            Verdict::Keep => {}
            Verdict::Again => self.again.push(idx),
            Verdict::Close => self.close(idx),
        }
    }

    fn close(&mut self, idx: usize) {
        if let Some(mut s) = self.sessions.get_mut(idx).and_then(Option::take) {
            s.teardown(&mut self.sh, self.poll.registry());
            self.free.push(idx);
            self.sh.sessions_open = self.sh.sessions_open.saturating_sub(1);
        }
    }

    fn fire_farewells(&mut self) {
        while let Some((idx, serial)) = self.farewells.pop_due(self.sh.now) {
            let Some(Some(s)) = self.sessions.get_mut(idx) else {
                continue;
            };
            if s.serial != serial {
                continue;
            }
            let verdict = s.go_away(&mut self.sh, self.poll.registry());
            self.apply(idx, verdict);
        }
    }

    fn fire_retries(&mut self) {
        while let Some(std::cmp::Reverse((at, idx, serial))) = self.sh.retries.peek().copied() {
            if at > self.sh.now {
                break;
            }
            self.sh.retries.pop();
            let Some(Some(s)) = self.sessions.get_mut(idx) else {
                continue;
            };
            if s.serial != serial {
                continue;
            }
            let verdict = s.retry_connect(&mut self.sh, self.poll.registry());
            self.apply(idx, verdict);
        }
    }

    fn sweep(&mut self) {
        let now = self.sh.now;
        self.next_sweep = now + SWEEP;
        // Notices a dropped last handle (dropping a waker does not wake).
        self.commands();
        let expired: Vec<usize> = self
            .sessions
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                s.as_ref()
                    .is_some_and(|s| s.deadline.is_some_and(|d| d <= now))
            })
            .map(|(i, _)| i)
            .collect();
        for idx in expired {
            if let Some(Some(s)) = self.sessions.get_mut(idx) {
                let verdict = s.expire(&mut self.sh, self.poll.registry());
                self.apply(idx, verdict);
            }
        }
        self.sh.releases.expire_idle(now, self.poll.registry());
        self.sh.flush_suppressed();
        if let Some(a) = self.admin.as_mut() {
            a.expire(now, self.poll.registry());
            if a.history.due(now) {
                a.history.sample(now, self.sh.metrics.totals());
            }
        }
        self.trim_memory();
        if self.accept_paused_until.is_some_and(|t| t <= now) {
            self.accept_paused_until = None;
            self.accept();
        }
    }
}
