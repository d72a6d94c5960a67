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
use super::budget::{self, Admit, Gauge};
use super::buf::BufPool;
use super::error::{ErrorKind, ProxyError, Side};
use super::farewell::Farewells;
use super::handle::{Command, LISTENER, ProxyEvent, WAKER};
use super::options::ProxyOptions;
use super::release::{Owner, Releases};
use super::session::{ErrorWindow, Session, Shared, Verdict, client_token};
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use std::collections::BinaryHeap;
use std::io;
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

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
        let nodelay_inherited = set_nodelay(&listener);
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

/// Sets TCP_NODELAY on a listening socket (Linux passes it on to the
/// sockets it accepts); false if that failed.
fn set_nodelay(listener: &TcpListener) -> bool {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: a valid descriptor and a c_int option value of the given size.
    let r = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    r == 0
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

    fn accept(&mut self) {
        if self.accept_paused_until.is_some() || !self.listening {
            return;
        }
        loop {
            let admit = budget::admit(
                self.sh.sessions_open,
                self.sh.releases.idle_count(),
                self.sh.max_connections,
            );
            if admit == Admit::Full {
                self.stop_listening();
                return;
            }
            let Some(listener) = self.listener.as_ref() else {
                return;
            };
            match listener.accept() {
                Ok((mut sock, addr)) => {
                    if admit == Admit::CloseIdle {
                        // Pooled connections give way to a waiting client.
                        self.sh.releases.close_oldest_idle(self.poll.registry());
                    }
                    if !self.nodelay_inherited {
                        let _ = sock.set_nodelay(true);
                    }
                    let idx = self.free.pop().unwrap_or_else(|| {
                        self.sessions.push(None);
                        self.sessions.len() - 1
                    });
                    if self
                        .poll
                        .registry()
                        .register(
                            &mut sock,
                            client_token(idx),
                            Interest::READABLE | Interest::WRITABLE,
                        )
                        .is_err()
                    {
                        self.free.push(idx);
                        continue;
                    }
                    self.next_serial += 1;
                    self.sh.sessions_open += 1;
                    self.peak_sessions = self.peak_sessions.max(self.sh.sessions_open);
                    let peer = addr.ip().to_canonical();
                    self.sessions[idx] =
                        Some(Session::new(idx, self.next_serial, sock, peer, &self.sh));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
                    ) =>
                {
                    // Out of descriptors: stop accepting for a moment; open
                    // connections are unaffected.
                    self.accept_paused_until = Some(self.sh.now + ACCEPT_PAUSE);
                    return;
                }
                Err(_) => {} // ECONNABORTED and friends: next one
            }
        }
    }

    /// Hands memory back once it is no longer needed: the free lists when
    /// no buffer is checked out, everything after a flood closed.
    fn trim_memory(&mut self) {
        if self.sh.bufs.out == 0 {
            self.sh.bufs.trim();
        }
        let open = self.sh.sessions_open;
        // After a flood, or once the last connection of a busy spell is
        // gone (so idle RSS after load is idle RSS again).
        let quiet = open == 0 && self.peak_sessions > 0;
        if self.peak_sessions < open + TRIM_AFTER_CLOSED && !quiet {
            return;
        }
        self.peak_sessions = open;
        let used = self
            .sessions
            .iter()
            .rposition(Option::is_some)
            .map_or(0, |i| i + 1);
        self.sessions.truncate(used);
        self.sessions.shrink_to_fit();
        self.free.retain(|&i| i < used);
        self.free.shrink_to_fit();
        self.sh.bufs.trim();
        // Freed memory otherwise stays with the allocator's arenas.
        #[cfg(target_env = "gnu")]
        // SAFETY: malloc_trim only releases free memory; no pointers change.
        unsafe {
            libc::malloc_trim(0);
        }
    }

    /// At the cap: stop accepting. The listener is deregistered so the
    /// backlog holds new clients without waking the loop.
    fn stop_listening(&mut self) {
        if let Some(l) = self.listener.as_mut() {
            let _ = self.poll.registry().deregister(l);
        }
        self.listening = false;
        self.gauge.at_limit.store(true, Ordering::Relaxed);
        if !self.limit_reported {
            self.limit_reported = true;
            let _ = self.sh.events.try_send(ProxyEvent::ConnectionLimit {
                reached: true,
                max_connections: self.sh.max_connections,
            });
        }
    }

    /// Once per iteration: publishes the load and resumes accepting when a
    /// connection has closed below the cap.
    fn check_budget(&mut self) {
        let idle = self.sh.releases.idle_count();
        let open = self.sh.sessions_open + idle;
        self.gauge.open.store(open, Ordering::Relaxed);
        self.gauge
            .held
            .store(self.sh.traffic.hold.len(), Ordering::Relaxed);
        let max = self.sh.max_connections;
        if !self.listening && self.listener.is_some() && self.freezing.is_none() {
            if budget::admit(self.sh.sessions_open, idle, max) == Admit::Full {
                return;
            }
            let registered = match self.listener.as_mut() {
                Some(l) => self
                    .poll
                    .registry()
                    .register(l, LISTENER, Interest::READABLE)
                    .is_ok(),
                None => false,
            };
            if !registered {
                return;
            }
            self.listening = true;
            self.gauge.at_limit.store(false, Ordering::Relaxed);
            // Edge-triggered: clients already waiting raise no new edge.
            self.accept();
        }
        // The episode ends well below the cap, so a flood hovering at it
        // does not log one event per closed connection.
        if self.limit_reported && self.listening && open <= budget::low_water(max) {
            self.limit_reported = false;
            let _ = self.sh.events.try_send(ProxyEvent::ConnectionLimit {
                reached: false,
                max_connections: max,
            });
        }
    }

    fn commands(&mut self) {
        loop {
            match self.rx.try_recv() {
                Ok(cmd) => self.command(cmd),
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Disconnected) => {
                    // Every handle is gone: stop gracefully.
                    if self.shutdown.is_none() {
                        self.begin_shutdown(self.sh.opts.drain_timeout, None);
                    }
                    return;
                }
            }
        }
    }

    fn command(&mut self, cmd: Command) {
        let reg = self.poll.registry();
        match cmd {
            Command::SetActive { id, addr } => {
                let slot = self.sh.releases.set_active(id.clone(), addr, reg);
                self.sh.metrics.bind(slot, &id);
                // Requests waiting in connect retry try the new release now.
                let now = self.sh.now;
                self.sh.retries = std::mem::take(&mut self.sh.retries)
                    .into_iter()
                    .map(|std::cmp::Reverse((_, idx, serial))| {
                        std::cmp::Reverse((now, idx, serial))
                    })
                    .collect();
            }
            Command::SetCanary { id, addr, percent } => {
                let slot = self.sh.releases.set_canary(id.clone(), addr, percent, reg);
                self.sh.metrics.bind(slot, &id);
            }
            Command::ClearActive => self.sh.releases.active = None,
            Command::Retire { id } => self.sh.releases.retire(&id, reg, &self.sh.events),
            Command::ForceClose { id } => {
                let slots = self.sh.releases.all_of(&id);
                self.force_close(&slots);
            }
            Command::Replace { id, addr, ticket } => {
                let events = &self.sh.events;
                if let Some(slot) = self.sh.releases.replace(&id, addr, ticket, reg, events) {
                    self.sh.metrics.bind(slot, &id);
                }
            }
            Command::ForceCloseInstance { id, ticket } => {
                let slots: Vec<usize> = self
                    .sh
                    .releases
                    .find_replaced(&id, ticket)
                    .into_iter()
                    .collect();
                self.force_close(&slots);
            }
            Command::Counts(reply) => {
                let _ = reply.try_send(self.sh.releases.counts());
            }
            Command::SetMaintenance(page) => self.sh.traffic.maintenance = page,
            Command::Pause { hold_for } => self.sh.traffic.paused = Some(hold_for),
            Command::Resume => self.resume(),
            Command::Shutdown { within, reply } => self.begin_shutdown(within, Some(reply)),
            Command::Admin(snapshot) => {
                if let Some(a) = self.admin.as_mut() {
                    a.snapshot = *snapshot;
                }
            }
            Command::Freeze {
                within,
                reply,
                thaw,
            } => self.begin_freeze(within, reply, thaw),
            Command::Import { conns, reply } => {
                let n = self.import(conns);
                let _ = reply.send(n);
            }
            Command::LameDuck => {
                if let Some(a) = self.admin.as_mut() {
                    a.lame_duck = true;
                }
            }
        }
    }

    /// Closes every connection routed to one of `slots` now: tunnels get a
    /// Close 1001, spread out; the rest closes.
    fn force_close(&mut self, slots: &[usize]) {
        let victims: Vec<usize> = self
            .sessions
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                s.as_ref()
                    .is_some_and(|s| s.release().is_some_and(|r| slots.contains(&r)))
            })
            .map(|(i, _)| i)
            .collect();
        let tunnels = self.tunnels(&victims);
        for idx in victims {
            if !tunnels.iter().any(|&(t, _)| t == idx) {
                self.close(idx);
            }
        }
        let spread = self.sh.opts.websocket_close_spread;
        self.farewells.schedule(self.sh.now, spread, &tunnels);
        for &r in slots {
            self.sh.releases.close_idle_of(r, self.poll.registry());
        }
    }

    /// Ends a pause: every held request is routed, oldest first, to the
    /// release active now.
    fn resume(&mut self) {
        self.sh.traffic.paused = None;
        for (idx, serial) in self.sh.traffic.hold.drain() {
            let Some(Some(s)) = self.sessions.get_mut(idx) else {
                continue;
            };
            if s.serial != serial {
                continue;
            }
            let verdict = s.resume_held(&mut self.sh, self.poll.registry());
            self.apply(idx, verdict);
        }
        self.gauge.held.store(0, Ordering::Relaxed);
    }

    fn begin_shutdown(&mut self, within: Duration, reply: Option<Sender<()>>) {
        if let Some(mut l) = self.listener.take() {
            if self.listening {
                let _ = self.poll.registry().deregister(&mut l);
            }
        }
        self.sh.shutting_down = true;
        self.shutdown = Some((super::session::later(self.sh.now, within), reply));
        // Held requests are forwarded: the releases still run while in-flight
        // requests finish.
        self.resume();
        self.sh.releases.close_all_idle(self.poll.registry());
        // Tunnels get a Close 1001, spread out within the stop's bound.
        let all: Vec<usize> = (0..self.sessions.len()).collect();
        let tunnels = self.tunnels(&all);
        let spread = self.sh.opts.websocket_close_spread.min(within);
        self.farewells.schedule(self.sh.now, spread, &tunnels);
        // Idle connections close after a last read: a request already in
        // the socket buffer is served first, with `Connection: close`.
        let idle: Vec<usize> = self
            .sessions
            .iter()
            .enumerate()
            .filter(|(_, s)| s.as_ref().is_some_and(Session::is_idle))
            .map(|(i, _)| i)
            .collect();
        for idx in idle {
            self.drive(idx);
        }
    }

    fn shutdown_done(&mut self) -> bool {
        let Some((deadline, _)) = &self.shutdown else {
            return false;
        };
        let empty = self.sessions.iter().all(Option::is_none);
        if !empty && self.sh.now < *deadline {
            return false;
        }
        for idx in 0..self.sessions.len() {
            self.close(idx);
        }
        self.sh.releases.close_all_idle(self.poll.registry());
        if let Some((_, Some(reply))) = self.shutdown.take() {
            let _ = reply.send(());
        }
        true
    }

    /// The tunnels among `sessions`, with their serials.
    fn tunnels(&self, sessions: &[usize]) -> Vec<(usize, u64)> {
        sessions
            .iter()
            .filter_map(|&i| match self.sessions.get(i) {
                Some(Some(s)) if matches!(s.phase, super::session::Phase::Tunnel(_)) => {
                    Some((i, s.serial))
                }
                _ => None,
            })
            .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_sockets_inherit_nodelay_from_the_listener() {
        let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        assert!(set_nodelay(&listener));
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let sock = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        };
        assert!(sock.nodelay().unwrap());
    }
}
