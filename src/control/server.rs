//! The control socket server: one thread, one mio poll over the listener
//! and every connection. Requests are parsed and validated here (no input
//! can panic or stop the loop) and handed to the core through a sink with a
//! [`ReplyTo`]; replies come back over a channel plus a poll waker, in
//! completion order. A slow or silent client only ever holds its own
//! buffers: nothing here blocks on a client. Idle connections are closed
//! and, at the cap, the longest-idle one makes room (see [`super::idle`]).

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, unbounded};
use mio::net::{UnixListener, UnixStream};
use mio::{Events, Interest, Poll, Token, Waker};

use super::fanout::{FanItem, Fanout};
use super::follow::{Follower, MAX_FOLLOWERS, Want};
use super::idle::{self, Activity, MAX_CONNECTIONS};
use super::protocol::{MAX_LINE_BYTES, Reply, Request, parse_request, response_line};
use crate::events::{Data, Event};
use crate::log;
use crate::supervisor::ProcKey;

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
const FIRST_CONN: usize = 2;
/// A client that does not read its replies stops being read past this.
const WRITE_HIGH_WATER: usize = 8 * 1024 * 1024;
/// How long `finish` tries to flush the last replies.
const FINAL_FLUSH: Duration = Duration::from_secs(1);
/// Pause before accepting again after the process ran out of descriptors.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// What the server hands to the core.
pub enum Incoming {
    Request {
        request: Request,
        reply: ReplyTo,
    },
    /// A request that failed validation (already answered): for the
    /// `command failed` event.
    Failed {
        error: String,
    },
    /// A socket error (not a normal close): for the `control connection
    /// error` event.
    ConnectionError {
        code: Option<String>,
        error: String,
    },
}

pub type IncomingSink = Arc<dyn Fn(Incoming) + Send + Sync>;

/// Where one request's reply goes. Dropping it without `send` leaves the
/// client waiting (never do that outside shutdown).
pub struct ReplyTo {
    conn: u64,
    close_after: bool,
    sent: bool,
    tx: Sender<ServerMsg>,
    /// `None` for a [`ReplyTo::local`] reply (nothing to wake).
    waker: Option<Arc<Waker>>,
}

impl ReplyTo {
    pub fn send(self, reply: Reply) {
        self.send_with_fd(reply, None);
    }

    /// Sends the reply with a descriptor attached (`SCM_RIGHTS`, along
    /// with the reply line's bytes).
    pub fn send_with_fd(mut self, reply: Reply, fd: Option<OwnedFd>) {
        self.sent = true;
        let line = response_line(&reply);
        self.post(ServerMsg::Reply {
            conn: self.conn,
            line,
            close: self.close_after,
            fd,
        });
    }

    /// A reply that goes to the daemon itself instead of a client (the
    /// bootstrap deploy): the line arrives on the returned channel.
    pub fn local() -> (ReplyTo, LocalReply) {
        let (tx, rx) = unbounded();
        let reply = ReplyTo {
            conn: 0,
            close_after: false,
            sent: false,
            tx,
            waker: None,
        };
        (reply, LocalReply(rx))
    }

    fn post(&self, msg: ServerMsg) {
        if self.tx.send(msg).is_ok() {
            if let Some(w) = &self.waker {
                let _ = w.wake();
            }
        }
    }

    /// The connection this reply goes to.
    pub fn conn(&self) -> u64 {
        self.conn
    }

    /// A way to send progress lines ahead of the reply.
    pub fn progress(&self) -> Progress {
        Progress {
            conn: self.conn,
            tx: self.tx.clone(),
            waker: self.waker.clone(),
        }
    }
}

/// Sends `{"progress":"…"}` lines to a client before its reply (only for
/// requests that asked for them).
#[derive(Clone)]
pub struct Progress {
    conn: u64,
    tx: Sender<ServerMsg>,
    /// None for a local reply (a bootstrap's own deploy).
    waker: Option<Arc<Waker>>,
}

impl Progress {
    pub fn say(&self, text: &str) {
        let line = serde_json::json!({ "progress": text }).to_string();
        if self
            .tx
            .send(ServerMsg::Line {
                conn: self.conn,
                line,
            })
            .is_ok()
        {
            if let Some(w) = &self.waker {
                let _ = w.wake();
            }
        }
    }
}

/// The receiving end of [`ReplyTo::local`].
pub struct LocalReply(Receiver<ServerMsg>);

impl LocalReply {
    /// Waits for the reply: `Ok(payload line)` or `Err(error message)`.
    pub fn wait(self) -> Result<String, String> {
        match self.0.recv() {
            Ok(ServerMsg::Reply { line, .. }) => {
                let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
                if v["status"] == "success" {
                    Ok(line)
                } else {
                    Err(v["error"]
                        .as_str()
                        .unwrap_or("Unknown Rollbridge error")
                        .to_owned())
                }
            }
            _ => Err("Rollbridge is shutting down".into()),
        }
    }
}

impl Drop for ReplyTo {
    /// A reply that is never sent still releases its connection.
    fn drop(&mut self) {
        if !self.sent {
            self.post(ServerMsg::Abandon { conn: self.conn });
        }
    }
}

pub(crate) enum ServerMsg {
    Abandon {
        conn: u64,
    },
    Reply {
        conn: u64,
        line: String,
        close: bool,
        fd: Option<OwnedFd>,
    },
    /// A line ahead of the reply (progress).
    Line {
        conn: u64,
        line: String,
    },
    Close {
        keep: Vec<u64>,
        done: Box<dyn FnOnce(Option<String>) + Send>,
    },
    Exit,
    /// Serve this listener instead (the socket path was re-created).
    Rebind(UnixListener),
    /// Daemon upgrade: stop accepting (clients wait in the backlog) and
    /// pass on the listener and the connection that asked.
    Freeze {
        conn: u64,
        reply: Sender<Result<ControlFreeze, String>>,
    },
    /// The upgrade failed: accept again.
    Thaw,
}

/// Inheritable duplicates of the control listener and of the connection
/// that asked for the upgrade.
pub struct ControlFreeze {
    pub listener: OwnedFd,
    pub conn: Option<OwnedFd>,
}

pub struct ControlServer {
    tx: Sender<ServerMsg>,
    waker: Arc<Waker>,
    fanout: Arc<Fanout>,
    thread: Option<JoinHandle<()>>,
}

impl ControlServer {
    /// Serves `listener` (already bound, mode/owner applied) on a thread.
    pub fn start(
        listener: UnixListener,
        path: String,
        sink: IncomingSink,
    ) -> std::io::Result<ControlServer> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (tx, rx) = unbounded();
        let (fanout, fan_rx) = Fanout::new(waker.clone());
        let mut server = Server {
            fanout: fanout.clone(),
            fan_rx,
            sources: HashMap::new(),
            poll,
            listener: Some(listener),
            path,
            sink,
            rx,
            tx: tx.clone(),
            waker: waker.clone(),
            conns: HashMap::new(),
            next_conn: FIRST_CONN as u64,
            spare: spare_fd(),
            accept_retry_at: None,
            out_of_fds: false,
        };
        if let Some(l) = server.listener.as_mut() {
            server
                .poll
                .registry()
                .register(l, LISTENER, Interest::READABLE)?;
        }
        let thread = std::thread::Builder::new()
            .name("control".into())
            .spawn(move || thread_main(server))?;
        Ok(ControlServer {
            tx,
            waker,
            fanout,
            thread: Some(thread),
        })
    }

    /// Where live events and output lines go for followers.
    pub fn fanout(&self) -> Arc<Fanout> {
        self.fanout.clone()
    }

    /// Stops accepting, closes every connection but `keep`, unlinks the
    /// socket path; `done(error)` runs on the control thread afterwards.
    pub fn close(&self, keep: Vec<u64>, done: Box<dyn FnOnce(Option<String>) + Send>) {
        if self.tx.send(ServerMsg::Close { keep, done }).is_ok() {
            let _ = self.waker.wake();
        }
    }

    /// Swaps in a freshly bound listener (the daemon re-created a control
    /// socket whose path vanished); open connections are kept.
    pub fn rebind(&self, listener: UnixListener) {
        if self.tx.send(ServerMsg::Rebind(listener)).is_ok() {
            let _ = self.waker.wake();
        }
    }

    /// Daemon upgrade: stops accepting and returns inheritable duplicates
    /// of the listener and of connection `conn` (whose reply the next
    /// program sends), after flushing what is queued for it.
    pub fn freeze(&self, conn: u64) -> Result<ControlFreeze, String> {
        let (reply, answer) = crossbeam_channel::bounded(1);
        if self.tx.send(ServerMsg::Freeze { conn, reply }).is_ok() {
            let _ = self.waker.wake();
        }
        answer
            .recv()
            .unwrap_or_else(|_| Err("the control thread has stopped".into()))
    }

    /// The upgrade failed: accepting again.
    pub fn thaw(&self) {
        if self.tx.send(ServerMsg::Thaw).is_ok() {
            let _ = self.waker.wake();
        }
    }

    /// Flushes the remaining replies (bounded) and ends the thread.
    pub fn finish(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(t) = self.thread.take() {
            if self.tx.send(ServerMsg::Exit).is_ok() {
                let _ = self.waker.wake();
            }
            let _ = t.join();
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Conn {
    stream: UnixStream,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    /// A descriptor to send with the next bytes written.
    fd_out: Option<OwnedFd>,
    /// Requests in flight and last activity (idle budget).
    activity: Activity,
    read_closed: bool,
    close_after_flush: bool,
    /// Skipping the rest of an over-long line.
    discarding: bool,
    paused: bool,
    dead: bool,
    /// A `--follow` client: the connection stays open for pushed lines.
    follower: Option<Follower>,
}

struct Server {
    fanout: Arc<Fanout>,
    fan_rx: Receiver<FanItem>,
    /// `logs` source label per process, from the core.
    sources: HashMap<ProcKey, String>,
    poll: Poll,
    listener: Option<UnixListener>,
    path: String,
    sink: IncomingSink,
    rx: Receiver<ServerMsg>,
    tx: Sender<ServerMsg>,
    waker: Arc<Waker>,
    conns: HashMap<u64, Conn>,
    next_conn: u64,
    /// A descriptor held in reserve: given up to accept one CLI client when
    /// the process is out of descriptors, taken again once one is free.
    spare: Option<std::fs::File>,
    /// Accepting failed for lack of descriptors: retry then (connections
    /// waiting in the backlog raise no new readiness edge).
    accept_retry_at: Option<Instant>,
    /// The current shortage was reported (once per episode).
    out_of_fds: bool,
}

fn spare_fd() -> Option<std::fs::File> {
    std::fs::File::open("/dev/null").ok()
}

fn thread_main(mut server: Server) {
    loop {
        match catch_unwind(AssertUnwindSafe(|| server.run())) {
            Ok(()) => return,
            Err(panic) => {
                let what = crate::guard::panic_message(&*panic);
                eprintln!(
                    "rollbridge: control thread panicked: {what}; dropping all control connections and serving on"
                );
                log::event(&Event::new(
                    "control thread panicked",
                    Data::new().with("error", what.as_str()),
                ));
                server.conns.clear();
            }
        }
    }
}

impl Server {
    fn run(&mut self) {
        let mut events = Events::with_capacity(256);
        loop {
            let wake = [self.accept_retry_at, self.next_idle_deadline()]
                .into_iter()
                .flatten()
                .min();
            let timeout = wake.map(|at| at.saturating_duration_since(Instant::now()));
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != ErrorKind::Interrupted {
                    eprintln!("rollbridge: control poll failed: {e}");
                    std::thread::sleep(Duration::from_millis(10));
                }
                continue;
            }
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept(),
                    WAKER => {}
                    Token(t) => {
                        let id = t as u64;
                        if ev.is_readable() || ev.is_read_closed() {
                            self.read_conn(id);
                        }
                        if ev.is_writable() {
                            self.flush_conn(id);
                        }
                    }
                }
            }
            while let Ok(msg) = self.rx.try_recv() {
                match msg {
                    ServerMsg::Reply {
                        conn,
                        line,
                        close,
                        fd,
                    } => {
                        if let Some(c) = self.conns.get_mut(&conn) {
                            if fd.is_some() {
                                c.fd_out = fd;
                            }
                            c.activity.pending = c.activity.pending.saturating_sub(1);
                            c.activity.last_active = Instant::now();
                            c.wbuf.extend_from_slice(line.as_bytes());
                            c.wbuf.push(b'\n');
                            c.close_after_flush |= close;
                            match c.follower.as_mut() {
                                // Still owed pushed lines: never idle.
                                Some(f) if !line.starts_with("{\"error\"") => f.start(&mut c.wbuf),
                                _ => {
                                    c.follower = None;
                                    c.activity.pending = c.activity.pending.saturating_sub(1);
                                }
                            }
                            self.flush_conn(conn);
                        }
                    }
                    ServerMsg::Line { conn, line } => {
                        if let Some(c) = self.conns.get_mut(&conn) {
                            c.wbuf.extend_from_slice(line.as_bytes());
                            c.wbuf.push(b'\n');
                            self.flush_conn(conn);
                        }
                    }
                    ServerMsg::Abandon { conn } => {
                        if let Some(c) = self.conns.get_mut(&conn) {
                            c.activity.pending = c.activity.pending.saturating_sub(1);
                            c.activity.last_active = Instant::now();
                        }
                        self.maybe_close(conn);
                    }
                    ServerMsg::Close { keep, done } => {
                        let err = self.close_listener(&keep);
                        done(err);
                    }
                    ServerMsg::Exit => {
                        self.final_flush();
                        return;
                    }
                    ServerMsg::Freeze { conn, reply } => {
                        let _ = reply.send(self.freeze(conn));
                    }
                    ServerMsg::Thaw => {
                        if let Some(l) = self.listener.as_mut() {
                            let _ = self
                                .poll
                                .registry()
                                .register(l, LISTENER, Interest::READABLE);
                        }
                        self.accept();
                    }
                    ServerMsg::Rebind(mut fresh) => {
                        if let Some(mut old) = self.listener.take() {
                            let _ = self.poll.registry().deregister(&mut old);
                        }
                        if self
                            .poll
                            .registry()
                            .register(&mut fresh, LISTENER, Interest::READABLE)
                            .is_ok()
                        {
                            self.listener = Some(fresh);
                        }
                    }
                }
            }
            self.fan_out();
            self.close_idle();
            self.conns.retain(|_, c| !c.dead);
            let following = self.conns.values().any(|c| c.follower.is_some());
            if following != self.fanout.active() {
                self.fanout.set_active(following);
            }
            if self.spare.is_none() {
                self.spare = spare_fd();
            }
            if self.accept_retry_at.is_some_and(|at| at <= Instant::now()) {
                self.accept_retry_at = None;
                self.accept();
            }
        }
    }

    fn freeze(&mut self, conn: u64) -> Result<ControlFreeze, String> {
        let Some(l) = self.listener.as_mut() else {
            return Err("the control socket is closed".into());
        };
        let _ = self.poll.registry().deregister(l);
        let failed = |e: std::io::Error| format!("cannot pass on the control socket: {e}");
        let listener = crate::inherit::inheritable(l.as_raw_fd()).map_err(failed)?;
        let conn = match self.conns.get_mut(&conn) {
            Some(c) => {
                // Progress lines go out before the program changes.
                let _ = c.stream.write_all(&c.wbuf);
                c.wbuf.clear();
                Some(crate::inherit::inheritable(c.stream.as_raw_fd()).map_err(failed)?)
            }
            None => None,
        };
        Ok(ControlFreeze { listener, conn })
    }

    fn accept(&mut self) {
        loop {
            let Some(listener) = self.listener.as_ref() else {
                return;
            };
            match listener.accept() {
                Ok((mut stream, _)) => {
                    self.out_of_fds = false;
                    if self.conns.len() >= MAX_CONNECTIONS && !self.evict_longest_idle() {
                        // Every connection awaits a reply: nothing to give up.
                        drop(stream);
                        continue;
                    }
                    let id = self.next_conn;
                    self.next_conn += 1;
                    if self
                        .poll
                        .registry()
                        .register(
                            &mut stream,
                            Token(id as usize),
                            Interest::READABLE | Interest::WRITABLE,
                        )
                        .is_err()
                    {
                        continue;
                    }
                    self.conns.insert(
                        id,
                        Conn {
                            stream,
                            rbuf: Vec::new(),
                            wbuf: Vec::new(),
                            fd_out: None,
                            activity: Activity::new(Instant::now()),
                            read_closed: false,
                            close_after_flush: false,
                            discarding: false,
                            paused: false,
                            dead: false,
                            follower: None,
                        },
                    );
                    self.read_conn(id);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if out_of_descriptors(&e) && self.spare.take().is_some() => {
                    // The spare descriptor is closed now: the next accept
                    // gets the waiting client its slot.
                    continue;
                }
                Err(e) => {
                    // EMFILE and friends: report once, keep serving the
                    // others, and try again shortly.
                    if !self.out_of_fds {
                        self.out_of_fds = true;
                        (self.sink)(connection_error(&e));
                    }
                    self.accept_retry_at = Some(Instant::now() + ACCEPT_RETRY);
                    return;
                }
            }
        }
    }

    fn read_conn(&mut self, id: u64) {
        let mut lines: Vec<Vec<u8>> = Vec::new();
        let mut too_long = 0usize;
        let mut socket_error = None;
        {
            let Some(c) = self.conns.get_mut(&id) else {
                return;
            };
            let mut buf = [0u8; 64 * 1024];
            loop {
                if c.wbuf.len() > WRITE_HIGH_WATER {
                    c.paused = true;
                    break;
                }
                match c.stream.read(&mut buf) {
                    Ok(0) => {
                        c.read_closed = true;
                        break;
                    }
                    Ok(n) => split_lines(c, &buf[..n], &mut lines, &mut too_long),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => {
                        c.read_closed = true;
                        c.dead = true;
                        socket_error = Some(connection_error(&e));
                        break;
                    }
                }
            }
        }
        if let Some(report) = socket_error {
            (self.sink)(report);
        }
        for _ in 0..too_long {
            let error = format!("Control request line exceeds {MAX_LINE_BYTES} bytes");
            self.answer_locally(id, error);
        }
        for line in lines {
            self.dispatch(id, &line);
        }
        self.maybe_close(id);
    }

    fn dispatch(&mut self, id: u64, line: &[u8]) {
        match parse_request(line) {
            Ok(request) => {
                if request.follows() {
                    let followers = self.conns.values().filter(|c| c.follower.is_some()).count();
                    if followers >= MAX_FOLLOWERS {
                        let error = format!(
                            "Too many followers: at most {MAX_FOLLOWERS} `--follow` clients at once"
                        );
                        return self.answer_locally(id, error);
                    }
                    let want = match &request {
                        Request::Logs { process, .. } => Want::Logs {
                            process: process.clone(),
                        },
                        _ => Want::Events,
                    };
                    if let Some(c) = self.conns.get_mut(&id) {
                        c.follower = Some(Follower::new(want));
                    }
                    // From now on the core and the supervisor publish.
                    self.fanout.set_active(true);
                }
                if let Some(c) = self.conns.get_mut(&id) {
                    c.activity.pending += 1;
                    c.activity.last_active = Instant::now();
                }
                let reply = ReplyTo {
                    conn: id,
                    close_after: request.closes_connection(),
                    sent: false,
                    tx: self.tx.clone(),
                    waker: Some(self.waker.clone()),
                };
                (self.sink)(Incoming::Request { request, reply });
            }
            Err(error) => self.answer_locally(id, error),
        }
    }

    fn answer_locally(&mut self, id: u64, error: String) {
        if let Some(c) = self.conns.get_mut(&id) {
            c.activity.last_active = Instant::now();
            c.wbuf
                .extend_from_slice(response_line(&Err(error.clone())).as_bytes());
            c.wbuf.push(b'\n');
        }
        (self.sink)(Incoming::Failed { error });
        self.flush_conn(id);
    }

    fn flush_conn(&mut self, id: u64) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        flush_follower(c);
        let resume = c.paused && c.wbuf.len() <= WRITE_HIGH_WATER / 2;
        if resume {
            c.paused = false;
            self.read_conn(id);
            return;
        }
        self.maybe_close(id);
    }
}

/// Writes what the socket takes; a follower whose queue drained hears
/// how many lines it lost meanwhile.
fn flush_follower(c: &mut Conn) {
    loop {
        write_out(c);
        let before = c.wbuf.len();
        if let Some(f) = c.follower.as_mut() {
            f.note_dropped(&mut c.wbuf);
        }
        if c.dead || c.wbuf.len() == before {
            return;
        }
    }
}

fn write_out(c: &mut Conn) {
    {
        while !c.wbuf.is_empty() {
            let written = match c.fd_out.as_ref() {
                Some(fd) => {
                    super::fdpass::send_with_fd(c.stream.as_raw_fd(), &c.wbuf, fd.as_raw_fd())
                }
                None => c.stream.write(&c.wbuf),
            };
            if matches!(written, Ok(n) if n > 0) {
                // Sent (our copy closes); the receiver holds its own.
                c.fd_out = None;
            }
            match written {
                Ok(0) => {
                    c.dead = true;
                    break;
                }
                Ok(n) => {
                    c.wbuf.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => {
                    // Vanished client: its replies are dropped.
                    c.dead = true;
                    c.wbuf.clear();
                    break;
                }
            }
        }
    }
}

impl Server {
    fn maybe_close(&mut self, id: u64) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        let flushed = c.wbuf.is_empty();
        if (c.close_after_flush && flushed)
            || (c.read_closed && c.activity.pending == 0 && flushed)
            || (c.read_closed && c.follower.is_some())
        {
            c.dead = true;
        }
        if c.dead {
            let _ = self.poll.registry().deregister(&mut c.stream);
            self.conns.remove(&id);
        }
    }

    /// Hands published items to every follower that wants them.
    fn fan_out(&mut self) {
        let lost = self.fanout.take_dropped();
        let mut touched = Vec::new();
        while let Ok(item) = self.fan_rx.try_recv() {
            if let FanItem::Sources(list) = item {
                self.sources = list.into_iter().collect();
                continue;
            }
            for (id, c) in self.conns.iter_mut() {
                let Some(f) = c.follower.as_mut() else {
                    continue;
                };
                if let Some(line) = f.line_for(&item, &self.sources) {
                    f.push(&mut c.wbuf, &line);
                    touched.push(*id);
                }
            }
        }
        if lost > 0 {
            for (id, c) in self.conns.iter_mut() {
                if let Some(f) = c.follower.as_mut() {
                    f.lost(lost);
                    f.note_dropped(&mut c.wbuf);
                    touched.push(*id);
                }
            }
        }
        touched.sort_unstable();
        touched.dedup();
        for id in touched {
            self.flush_conn(id);
        }
    }

    fn next_idle_deadline(&self) -> Option<Instant> {
        idle::next_deadline(self.conns.values().map(|c| c.activity))
    }

    /// Closes every connection idle past the timeout.
    fn close_idle(&mut self) {
        let now = Instant::now();
        let due = idle::expired(self.conns.iter().map(|(id, c)| (*id, c.activity)), now);
        for id in due {
            self.drop_conn(id);
        }
    }

    /// At the cap: closes the longest-idle connection; false when every
    /// connection awaits a reply.
    fn evict_longest_idle(&mut self) -> bool {
        match idle::longest_idle(self.conns.iter().map(|(id, c)| (*id, c.activity))) {
            Some(id) => {
                self.drop_conn(id);
                true
            }
            None => false,
        }
    }

    fn drop_conn(&mut self, id: u64) {
        if let Some(mut c) = self.conns.remove(&id) {
            let _ = self.poll.registry().deregister(&mut c.stream);
        }
    }

    fn close_listener(&mut self, keep: &[u64]) -> Option<String> {
        if let Some(mut l) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut l);
        }
        let ids: Vec<u64> = self.conns.keys().copied().collect();
        for id in ids {
            if !keep.contains(&id) {
                if let Some(mut c) = self.conns.remove(&id) {
                    let _ = self.poll.registry().deregister(&mut c.stream);
                }
            }
        }
        match std::fs::remove_file(&self.path) {
            Ok(()) => None,
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => Some(format!("control socket unlink failed: {e}")),
        }
    }

    fn final_flush(&mut self) {
        let deadline = Instant::now() + FINAL_FLUSH;
        loop {
            let ids: Vec<u64> = self.conns.keys().copied().collect();
            for id in ids {
                self.flush_conn(id);
            }
            let pending = self.conns.values().any(|c| !c.wbuf.is_empty() && !c.dead);
            if !pending || Instant::now() >= deadline {
                return;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

fn out_of_descriptors(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

fn connection_error(e: &std::io::Error) -> Incoming {
    let code = super::client::errno_text(e);
    Incoming::ConnectionError {
        code: code.starts_with('E').then_some(code),
        error: e.to_string(),
    }
}

/// Splits received bytes into complete lines, bounding the partial one.
fn split_lines(c: &mut Conn, mut data: &[u8], lines: &mut Vec<Vec<u8>>, too_long: &mut usize) {
    while !data.is_empty() {
        let nl = data.iter().position(|&b| b == b'\n');
        let (piece, rest, ended) = match nl {
            Some(i) => (&data[..i], &data[i + 1..], true),
            None => (data, &[][..], false),
        };
        data = rest;
        if c.discarding {
            if ended {
                c.discarding = false;
            }
            continue;
        }
        if c.rbuf.len() + piece.len() > MAX_LINE_BYTES {
            c.rbuf.clear();
            *too_long += 1;
            c.discarding = !ended;
            continue;
        }
        c.rbuf.extend_from_slice(piece);
        if ended {
            lines.push(std::mem::take(&mut c.rbuf));
        }
    }
}
