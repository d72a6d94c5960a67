//! The proxy's public face: start it, steer it, hear from it.
//!
//! The engine runs on its own thread; the handle only sends commands over a
//! channel and wakes the loop with a `mio::Waker`. Nothing here blocks the
//! loop, and the loop never blocks on the daemon.

use super::access_log::{self, Control, Sink};
use super::admin::AdminSnapshot;
use super::budget::{self, Budget, ConnectionLoad, Gauge};
use super::error::{ErrorKind, Side};
use super::event_loop;
use super::options::ProxyOptions;
use super::traffic::Maintenance;
use crossbeam_channel::{Receiver, Sender, bounded, unbounded};
use mio::{Poll, Token, Waker};
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

/// Most undelivered events kept; beyond that errors are dropped (an outage
/// must not grow memory). `Drained` events are never dropped in practice:
/// there is one per retire.
const EVENT_QUEUE: usize = 10_000;

/// What the proxy tells the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyEvent {
    /// A retired release has no request or tunnel left.
    Drained { release_id: String },
    /// The instance of `release_id` replaced under `ticket` (see
    /// [`ProxyHandle::replace_upstream`]) has no request or tunnel left.
    InstanceDrained { release_id: String, ticket: u64 },
    /// Worth a `proxy error` log line (upstream refused, died mid-response,
    /// the loop caught a panic...).
    Error {
        release_id: Option<String>,
        side: Side,
        kind: ErrorKind,
        message: String,
    },
    /// The connection cap was reached (new clients wait in the backlog),
    /// or, with `reached: false`, the proxy is back under it. Once per
    /// episode each.
    ConnectionLimit {
        reached: bool,
        max_connections: usize,
    },
}

/// Live counts of one release (status `connections`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseCounts {
    pub release_id: String,
    /// Requests in flight.
    pub http: u64,
    /// Open WebSocket tunnels.
    pub websocket: u64,
    /// Retired and waiting for its last request/tunnel.
    pub draining: bool,
}

pub(crate) enum Command {
    SetActive {
        id: String,
        addr: SocketAddr,
    },
    SetCanary {
        id: String,
        addr: SocketAddr,
        percent: u8,
    },
    ClearActive,
    Retire {
        id: String,
    },
    ForceClose {
        id: String,
    },
    Replace {
        id: String,
        addr: SocketAddr,
        ticket: u64,
    },
    ForceCloseInstance {
        id: String,
        ticket: u64,
    },
    Counts(Sender<Vec<ReleaseCounts>>),
    SetMaintenance(Option<Maintenance>),
    Pause {
        hold_for: Duration,
    },
    Resume,
    Shutdown {
        within: Duration,
        reply: Sender<()>,
    },
    Admin(Box<AdminSnapshot>),
    LameDuck,
    Freeze {
        within: Duration,
        reply: Sender<Result<ProxyFreezeParts, String>>,
        thaw: Receiver<()>,
    },
    Import {
        conns: Vec<super::handover::ConnDoc>,
        reply: Sender<usize>,
    },
}

/// What a frozen loop hands over: inheritable duplicates of its listeners
/// and of every socket its connection docs name.
pub struct ProxyFreezeParts {
    pub listener: OwnedFd,
    pub admin: Option<OwnedFd>,
    pub conns: Vec<super::handover::ConnDoc>,
    pub fds: Vec<OwnedFd>,
    /// The release requests go to, and its upstream address.
    pub active: Option<(String, String)>,
    /// Connections still busy when the wait ended (not carried over).
    pub left_behind: usize,
}

/// A frozen proxy: its export, and the way to let it run again.
pub struct ProxyFreeze {
    pub parts: ProxyFreezeParts,
    thaw: Sender<()>,
}

impl ProxyFreeze {
    /// The exec failed: listening again, serving as before (the
    /// duplicates in `parts` close as it drops).
    pub fn thaw(self) {
        let _ = self.thaw.send(());
    }
}

/// A cloneable, sendable handle to the running proxy.
#[derive(Clone)]
pub struct ProxyHandle {
    tx: Sender<Command>,
    waker: Arc<Waker>,
    /// The configured address, reported until a listener is attached.
    configured: SocketAddr,
    local_addr: Arc<OnceLock<SocketAddr>>,
    /// The admin listener's bound address, once attached.
    admin_addr: Arc<OnceLock<SocketAddr>>,
    /// A duplicate of the listening socket, kept to hand it to a successor
    /// (the loop holds its own). Dropped on shutdown.
    listener: Arc<Mutex<Option<OwnedFd>>>,
    upstream_host: String,
    drain_timeout: Duration,
    budget: Budget,
    gauge: Arc<Gauge>,
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
    /// The access log writer's control and thread (`None`: no access log).
    access_control: Option<Sender<Control>>,
    access_thread: Arc<Mutex<Option<JoinHandle<()>>>>,
}

pub(crate) const WAKER: Token = Token(usize::MAX);
pub(crate) const LISTENER: Token = Token(usize::MAX - 4);

/// Binds the listener, starts the loop thread, and returns the handle plus
/// the event stream. Bind errors carry the OS text ("Address in use").
pub fn start(opts: ProxyOptions) -> io::Result<(ProxyHandle, Receiver<ProxyEvent>)> {
    let listener = bind(&opts.host, opts.port)?;
    let (handle, pending, events) = prepare(opts)?;
    handle.attach(pending, listener)?;
    Ok((handle, events))
}

/// Binds `host:port` (non-blocking, close-on-exec) for [`ProxyHandle::attach`].
pub fn bind(host: &str, port: u16) -> io::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(resolve(host, port)?)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// The engine before it has a listener: commands sent to the handle wait
/// in the channel until [`ProxyHandle::attach`] starts the loop.
pub struct Pending {
    poll: Poll,
    rx: Receiver<Command>,
    etx: Sender<ProxyEvent>,
    opts: ProxyOptions,
    access: Option<Sink>,
}

/// A handle whose loop is not running yet (the listener comes later: bound
/// after a takeover, inherited by socket activation, handed over by the
/// previous owner).
pub fn prepare(opts: ProxyOptions) -> io::Result<(ProxyHandle, Pending, Receiver<ProxyEvent>)> {
    let configured = resolve(&opts.host, opts.port)?;
    let poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
    let (tx, rx) = unbounded();
    let (etx, erx) = bounded(EVENT_QUEUE);
    let budget = budget::derive(budget::nofile_limit(), opts.max_connections);
    let writer = match &opts.access_log {
        Some(path) => Some(access_log::writer::start(
            path.clone(),
            access_log::QUEUE,
            etx.clone(),
        )?),
        None => None,
    };
    let (access, access_control, access_thread) = match writer {
        Some(w) => (Some(Sink::new(w.records)), Some(w.control), Some(w.thread)),
        None => (None, None, None),
    };
    let handle = ProxyHandle {
        tx,
        waker,
        configured,
        local_addr: Arc::new(OnceLock::new()),
        admin_addr: Arc::new(OnceLock::new()),
        listener: Arc::new(Mutex::new(None)),
        upstream_host: opts.upstream_host.clone(),
        drain_timeout: opts.drain_timeout,
        budget,
        gauge: Arc::new(Gauge::new(budget.max_connections)),
        thread: Arc::new(Mutex::new(None)),
        access_control,
        access_thread: Arc::new(Mutex::new(access_thread)),
    };
    Ok((
        handle,
        Pending {
            poll,
            rx,
            etx,
            opts,
            access,
        },
        erx,
    ))
}

/// Clients beyond the connection cap wait in the listen backlog, so it is
/// made as deep as the system allows (the kernel caps it at somaxconn).
const BACKLOG: i32 = 4096;

fn widen_backlog(listener: &mio::net::TcpListener) {
    use std::os::fd::AsRawFd;
    // SAFETY: listen() again on a listening socket only changes its
    // backlog; failure leaves the default in place.
    unsafe {
        libc::listen(listener.as_raw_fd(), BACKLOG);
    }
}

/// `host:port` to a socket address (IP literals, or a name such as
/// `localhost`, resolved once).
pub fn resolve(host: &str, port: u16) -> io::Result<SocketAddr> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    (host, port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("cannot resolve {host}")))
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "proxy loop has stopped")
}

impl ProxyHandle {
    /// The address actually bound (the real port when 0 was asked for);
    /// the configured one while no listener is attached.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr.get().copied().unwrap_or(self.configured)
    }

    /// Starts the loop on `listener` (already bound and listening: bound
    /// here, inherited, or handed over). Returns the address it serves.
    pub fn attach(
        &self,
        pending: Pending,
        listener: std::net::TcpListener,
    ) -> io::Result<SocketAddr> {
        self.attach_with(pending, listener, None)
    }

    /// [`attach`](Self::attach) with the admin listener given (a daemon
    /// upgrade passes it on) instead of bound.
    pub fn attach_with(
        &self,
        pending: Pending,
        listener: std::net::TcpListener,
        admin: Option<std::net::TcpListener>,
    ) -> io::Result<SocketAddr> {
        listener.set_nonblocking(true)?;
        let spare = OwnedFd::from(listener.try_clone()?);
        let listener = mio::net::TcpListener::from_std(listener);
        widen_backlog(&listener);
        let local_addr = listener.local_addr()?;
        let admin = match (admin, &pending.opts.admin) {
            (Some(given), _) => {
                given.set_nonblocking(true)?;
                Some(mio::net::TcpListener::from_std(given))
            }
            (None, Some((host, port))) => Some(mio::net::TcpListener::from_std(bind(host, *port)?)),
            (None, None) => None,
        };
        let admin_addr = match &admin {
            Some(l) => Some(l.local_addr()?),
            None => None,
        };
        let Pending {
            poll,
            rx,
            etx,
            opts,
            access,
        } = pending;
        let gauge = self.gauge.clone();
        let thread = std::thread::Builder::new()
            .name("rollbridge-proxy".into())
            .spawn(move || {
                let sockets = event_loop::Sockets {
                    listener,
                    admin,
                    access,
                };
                event_loop::run(poll, sockets, rx, etx, opts, local_addr, gauge)
            })?;
        let _ = self.local_addr.set(local_addr);
        if let Some(addr) = admin_addr {
            let _ = self.admin_addr.set(addr);
        }
        if let Ok(mut slot) = self.listener.lock() {
            *slot = Some(spare);
        }
        if let Ok(mut slot) = self.thread.lock() {
            *slot = Some(thread);
        }
        Ok(local_addr)
    }

    /// Daemon upgrade: stops accepting (clients wait in the backlog) and
    /// reading new requests, lets requests in flight finish for up to
    /// `within`, then exports what stays open and stands still until
    /// [`ProxyFreeze::thaw`] or the program is replaced.
    pub fn freeze(&self, within: Duration) -> io::Result<ProxyFreeze> {
        let (reply, answer) = bounded(1);
        let (thaw, thawed) = bounded(1);
        self.send(Command::Freeze {
            within,
            reply,
            thaw: thawed,
        })?;
        let parts = answer
            .recv()
            .map_err(|_| gone())?
            .map_err(io::Error::other)?;
        Ok(ProxyFreeze { parts, thaw })
    }

    /// Daemon upgrade: carries on the connections a previous program
    /// handed over; returns how many it could.
    pub fn import(&self, conns: Vec<super::handover::ConnDoc>) -> io::Result<usize> {
        let (reply, answer) = bounded(1);
        self.send(Command::Import { conns, reply })?;
        answer.recv().map_err(|_| gone())
    }

    /// Where the admin listener listens (`None` without one, or before
    /// attach).
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr.get().copied()
    }

    /// A duplicate of the listening socket for a successor daemon, taken
    /// once (`None` before attach, after shutdown, or when already taken).
    pub fn take_listener(&self) -> Option<OwnedFd> {
        self.listener.lock().ok().and_then(|mut l| l.take())
    }

    /// The connection cap in force, and the configured value when it had
    /// to be lowered to fit the descriptor limit.
    pub fn budget(&self) -> Budget {
        self.budget
    }

    /// Open connections against the cap (read without asking the loop).
    pub fn connections(&self) -> ConnectionLoad {
        self.gauge.load()
    }

    fn send(&self, cmd: Command) -> io::Result<()> {
        self.tx.send(cmd).map_err(|_| gone())?;
        self.waker.wake()
    }

    /// Routes every new request to release `id` at `addr`.
    pub fn set_active(&self, id: impl Into<String>, addr: SocketAddr) -> io::Result<()> {
        self.send(Command::SetActive {
            id: id.into(),
            addr,
        })
    }

    /// Same, with the address `upstream_host:port` from the options.
    pub fn set_active_port(&self, id: impl Into<String>, port: u16) -> io::Result<()> {
        let addr = resolve(&self.upstream_host, port)?;
        self.set_active(id, addr)
    }

    /// Makes release `id` at `addr` the canary: a client without a valid
    /// assignment goes there with probability `percent` % and gets the
    /// `rollbridge_release` cookie that keeps it on its release. Promote
    /// with [`ProxyHandle::set_active`], abort with [`ProxyHandle::retire`].
    pub fn set_canary(
        &self,
        id: impl Into<String>,
        addr: SocketAddr,
        percent: u8,
    ) -> io::Result<()> {
        self.send(Command::SetCanary {
            id: id.into(),
            addr,
            percent,
        })
    }

    /// No active release: new requests get 503.
    pub fn clear_active(&self) -> io::Result<()> {
        self.send(Command::ClearActive)
    }

    /// Stops routing to `id`; `ProxyEvent::Drained` follows as soon as its
    /// in-flight requests and tunnels reach zero (at once if already zero).
    pub fn retire(&self, id: impl Into<String>) -> io::Result<()> {
        self.send(Command::Retire { id: id.into() })
    }

    /// Closes every connection routed to `id` now (drain deadline, rollback).
    pub fn force_close(&self, id: impl Into<String>) -> io::Result<()> {
        self.send(Command::ForceClose { id: id.into() })
    }

    /// Release `id` now has its upstream at `upstream_host:port` (its
    /// proxied process was replaced): new requests go there, and those
    /// still on the previous upstream drain, followed by
    /// `ProxyEvent::InstanceDrained { ticket }` (at once when nothing is in
    /// flight or the proxy does not know `id`).
    pub fn replace_upstream(
        &self,
        id: impl Into<String>,
        port: u16,
        ticket: u64,
    ) -> io::Result<()> {
        let addr = resolve(&self.upstream_host, port)?;
        self.send(Command::Replace {
            id: id.into(),
            addr,
            ticket,
        })
    }

    /// Closes what is still on the instance replaced under `ticket` (its
    /// drain deadline): tunnels get their Close 1001.
    pub fn force_close_instance(&self, id: impl Into<String>, ticket: u64) -> io::Result<()> {
        self.send(Command::ForceCloseInstance {
            id: id.into(),
            ticket,
        })
    }

    /// Maintenance on (`Some`: every new request, WebSocket upgrades
    /// included, is answered 503 with this page) or off (`None`).
    /// In-flight requests and open tunnels are not touched.
    pub fn set_maintenance(&self, page: Option<Maintenance>) -> io::Result<()> {
        self.send(Command::SetMaintenance(page))
    }

    /// Holds every new request (head read, nothing forwarded) until
    /// [`ProxyHandle::resume`]; one held longer than `hold_for` is answered
    /// 503. Requests already forwarded are not affected.
    pub fn pause(&self, hold_for: Duration) -> io::Result<()> {
        self.send(Command::Pause { hold_for })
    }

    /// Forwards every held request, in arrival order, to the release
    /// active now.
    pub fn resume(&self) -> io::Result<()> {
        self.send(Command::Resume)
    }

    /// Requests held by a pause right now (read without asking the loop).
    pub fn held(&self) -> usize {
        self.gauge.held.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Live counts of every release the proxy still knows.
    pub fn counts(&self) -> io::Result<Vec<ReleaseCounts>> {
        if self.local_addr.get().is_none() {
            return Ok(Vec::new());
        }
        let (tx, rx) = bounded(1);
        self.send(Command::Counts(tx))?;
        rx.recv_timeout(Duration::from_secs(5)).map_err(|_| gone())
    }

    /// Hands the admin listener what only the daemon knows (status,
    /// processes, deploys); answers use the last one sent.
    pub fn publish_admin(&self, snapshot: AdminSnapshot) -> io::Result<()> {
        self.send(Command::Admin(Box::new(snapshot)))
    }

    /// Shutdown has begun: `/ready` answers 503 from now on while the
    /// proxy keeps serving until [`ProxyHandle::shutdown`].
    pub fn lame_duck(&self) -> io::Result<()> {
        self.send(Command::LameDuck)
    }

    /// Asks the access log writer to open its file again (after a
    /// rotation). False when there is no access log.
    pub fn reopen_access_log(&self) -> bool {
        match &self.access_control {
            Some(c) => {
                // A full queue already holds a reopen.
                let _ = c.try_send(Control::Reopen);
                true
            }
            None => false,
        }
    }

    /// Graceful stop bounded by `drain_timeout`: see [`ProxyHandle::shutdown_within`].
    pub fn shutdown(&self) -> io::Result<()> {
        self.shutdown_within(self.drain_timeout)
    }

    /// Stops accepting (the port is closed at once), closes idle connections
    /// and tunnels, lets in-flight requests finish for at most `within`,
    /// then closes everything. Returns when the loop thread has exited.
    pub fn shutdown_within(&self, within: Duration) -> io::Result<()> {
        // The duplicate would keep the port open after the loop closed it.
        drop(self.take_listener());
        if self.local_addr.get().is_none() {
            // Never attached: no loop to stop.
            return Ok(());
        }
        let (tx, rx) = bounded(1);
        let sent = self.send(Command::Shutdown { within, reply: tx });
        if sent.is_ok() {
            let _ = rx.recv_timeout(within.saturating_add(Duration::from_secs(5)));
        }
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = thread {
            let _ = t.join();
        }
        // The loop dropped its sink: the writer writes what is queued and
        // ends, so every logged request is on disk when this returns.
        let writer = self.access_thread.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = writer {
            let _ = t.join();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handle_is_clone_send_sync() {
        fn check<T: Clone + Send + Sync + 'static>() {}
        check::<ProxyHandle>();
        fn check_events<T: Send + 'static>() {}
        check_events::<Receiver<ProxyEvent>>();
    }

    #[test]
    fn resolve_accepts_bracketed_ipv6() {
        assert_eq!(resolve("[::1]", 80).unwrap(), "[::1]:80".parse().unwrap());
        assert_eq!(resolve("::1", 80).unwrap(), "[::1]:80".parse().unwrap());
        assert_eq!(
            resolve("127.0.0.1", 1).unwrap(),
            "127.0.0.1:1".parse().unwrap()
        );
    }
}
