//! The supervisor thread's loop: one mio poll over the SIGCHLD self-pipe,
//! the message waker and every child's output pipes, with the nearest timer
//! deadline (restart delays, hook limits, stop escalations) as its timeout.

use std::collections::HashMap;
use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use super::clock::iso_now;
use super::memory::{self, MemoryVerdict};
use super::output::{Budget, LineSplitter, LogBudget, LogLine, OutputRing, Stream};
use super::restart::{RestartDecision, RestartHistory};
use super::spawn::{self, decode_status, group_alive, signal_group};
use super::status::ChildSample;
use super::stop::{HookKind, Observed, StopAction, StopPlan, StopSeq};
use super::timers::{TimerId, Timers};
use super::{Done, Msg, Notice, ProcKey, ProcState, ProcessSpec, ProcessStatus, Sink, StartReason};
use crate::config::signal_name;
use crate::daemon::events::{Data, Event};
use crate::daemon::log;

pub(crate) const WAKER: Token = Token(0);
const SIGCHLD: Token = Token(1);
const FIRST_PIPE: usize = 2;
/// Bytes read from one pipe per loop turn before others get a go.
const READ_BUDGET: usize = 256 * 1024;
/// Group liveness re-check while a stop waits (cheap `kill(-pgid, 0)`).
const STOP_TICK: Duration = Duration::from_millis(20);
/// Output lines copied to the daemon's log per process per second.
const LOG_LINES_PER_SECOND: u32 = 200;

enum TimerKind {
    Restart {
        key: ProcKey,
        generation: u64,
    },
    HookDeadline {
        key: ProcKey,
        pid: i32,
        kind: HookKind,
        timeout_ms: u64,
    },
    MemorySample {
        key: ProcKey,
        generation: u64,
    },
}

struct Pipe {
    key: ProcKey,
    stream: Stream,
    file: File,
    splitter: LineSplitter,
}

struct StopRun {
    seq: StopSeq,
    pgid: i32,
    waiters: Vec<Done<Result<(), String>>>,
}

struct Managed {
    spec: ProcessSpec,
    state: ProcState,
    generation: u64,
    /// Group leader while it runs (= pgid).
    leader: Option<i32>,
    /// Last spawned group, kept while members may survive the leader.
    pgid: Option<i32>,
    started: Option<(String, Instant)>,
    exit: Option<(Option<i32>, Option<String>)>,
    reason: Option<StartReason>,
    restarts: u64,
    logs: OutputRing,
    history: RestartHistory,
    crash_gate: bool,
    stop_requested: bool,
    stop: Option<StopRun>,
    restart_timer: Option<TimerId>,
    hook: Option<(i32, TimerId)>,
    remove_when_stopped: bool,
    budget: LogBudget,
    memory_timer: Option<TimerId>,
    children: Vec<ChildSample>,
    rss: Option<u64>,
    memory_restarts: u64,
    last_memory_restart_at: Option<String>,
    warned: bool,
    memory_restarting: bool,
}

impl Managed {
    fn new(spec: ProcessSpec) -> Managed {
        let logs = OutputRing::new(spec.output_lines);
        Managed {
            spec,
            state: ProcState::Stopped,
            generation: 0,
            leader: None,
            pgid: None,
            started: None,
            exit: None,
            reason: None,
            restarts: 0,
            logs,
            history: RestartHistory::default(),
            crash_gate: true,
            stop_requested: false,
            stop: None,
            restart_timer: None,
            hook: None,
            remove_when_stopped: false,
            budget: LogBudget::new(LOG_LINES_PER_SECOND),
            memory_timer: None,
            children: Vec::new(),
            rss: None,
            memory_restarts: 0,
            last_memory_restart_at: None,
            warned: false,
            memory_restarting: false,
        }
    }

    fn data(&self) -> Data {
        Data::new().with("processId", self.spec.id.as_str()).with(
            "releaseId",
            self.spec
                .release_id
                .as_deref()
                .map(serde_json::Value::from)
                .unwrap_or(serde_json::Value::Null),
        )
    }

    fn status(&self, now: Instant) -> ProcessStatus {
        ProcessStatus {
            children: self.children.clone(),
            command: self.spec.command.clone(),
            cwd: self.spec.cwd.clone(),
            exit_code: self.exit.as_ref().map(|(c, _)| *c),
            exit_signal: self.exit.as_ref().map(|(_, s)| s.clone()),
            id: self.spec.id.clone(),
            last_memory_restart_at: self.last_memory_restart_at.clone(),
            last_start_reason: self.reason,
            logs: self.logs.to_vec(),
            memory_restarts: self.memory_restarts,
            pid: self.leader.map(|p| p as u32),
            restarts: self.restarts,
            rss_bytes: self.rss,
            started_at: self.started.as_ref().map(|(iso, _)| iso.clone()),
            state: self.state,
            uptime_ms: match (&self.started, self.state) {
                (Some((_, at)), ProcState::Running) => {
                    Some(now.saturating_duration_since(*at).as_millis() as u64)
                }
                _ => None,
            },
        }
    }
}

struct StopAllRun {
    remaining: usize,
    failures: usize,
    done: Vec<Done<usize>>,
}

pub(crate) struct Loop {
    poll: Poll,
    rx: Receiver<Msg>,
    tx: Sender<Msg>,
    sink: Sink,
    sigchld: mio::net::UnixStream,
    sig_id: signal_hook::SigId,
    procs: HashMap<ProcKey, Managed>,
    by_pid: HashMap<i32, (ProcKey, u64)>,
    hooks: HashMap<i32, (ProcKey, HookKind)>,
    pipes: HashMap<Token, Pipe>,
    next_token: usize,
    ready: Vec<Token>,
    timers: Timers<TimerKind>,
    shutting_down: bool,
    stop_all: Option<StopAllRun>,
    exit: bool,
}

impl Drop for Loop {
    fn drop(&mut self) {
        signal_hook::low_level::unregister(self.sig_id);
    }
}

pub(crate) fn thread_main(mut looper: Loop) {
    let result = catch_unwind(AssertUnwindSafe(|| looper.run()));
    if let Err(panic) = result {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let event = Event::new(
            "supervisor thread panicked",
            Data::new().with("error", what.as_str()),
        );
        log::event(&event);
        eprintln!(
            "rollbridge: FATAL: supervisor thread panicked: {what}; killing managed process groups"
        );
        looper.kill_everything();
        std::process::exit(70);
    }
}

impl Loop {
    pub(crate) fn new(
        poll: Poll,
        rx: Receiver<Msg>,
        tx: Sender<Msg>,
        sink: Sink,
    ) -> std::io::Result<Loop> {
        let (reader, writer) = StdUnixStream::pair()?;
        reader.set_nonblocking(true)?;
        writer.set_nonblocking(true)?;
        let sig_id = signal_hook::low_level::pipe::register(libc::SIGCHLD, writer)?;
        let mut sigchld = mio::net::UnixStream::from_std(reader);
        poll.registry()
            .register(&mut sigchld, SIGCHLD, Interest::READABLE)?;
        Ok(Loop {
            poll,
            rx,
            tx,
            sink,
            sigchld,
            sig_id,
            procs: HashMap::new(),
            by_pid: HashMap::new(),
            hooks: HashMap::new(),
            pipes: HashMap::new(),
            next_token: FIRST_PIPE,
            ready: Vec::new(),
            timers: Timers::default(),
            shutting_down: false,
            stop_all: None,
            exit: false,
        })
    }

    fn run(&mut self) {
        let mut events = Events::with_capacity(256);
        while !self.exit {
            let now = Instant::now();
            let mut timeout = self.timers.timeout(now);
            if self.procs.values().any(|p| p.stop.is_some()) {
                timeout = Some(timeout.map_or(STOP_TICK, |t| t.min(STOP_TICK)));
            }
            if !self.ready.is_empty() || !self.rx.is_empty() {
                timeout = Some(Duration::ZERO);
            }
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != ErrorKind::Interrupted {
                    eprintln!("rollbridge: supervisor poll failed: {e}");
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            for ev in events.iter() {
                match ev.token() {
                    WAKER => {}
                    SIGCHLD => self.drain_sigchld(),
                    t => self.ready.push(t),
                }
            }
            // Reap every turn: one cheap syscall, and no exit is ever missed
            // even if signals were coalesced.
            self.reap();
            self.read_ready();
            while let Ok(msg) = self.rx.try_recv() {
                self.handle(msg);
            }
            self.fire_timers(Instant::now());
            self.advance_stops(Instant::now());
        }
    }

    fn drain_sigchld(&mut self) {
        let mut buf = [0u8; 64];
        loop {
            match self.sigchld.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => continue,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
    }

    fn notice_event(&self, message: &str, data: Data) {
        (self.sink)(Notice::Event(Event::new(message, data)));
    }

    // ---- messages -------------------------------------------------------

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Register { key, spec } => {
                self.procs.insert(key, Managed::new(spec));
            }
            Msg::Update { key, spec } => {
                if let Some(p) = self.procs.get_mut(&key) {
                    p.logs.set_capacity(spec.output_lines);
                    p.spec = spec;
                }
            }
            Msg::Start { key, reason, done } => {
                let r = self.start_proc(key, reason);
                if let Some(done) = done {
                    done(r);
                }
            }
            Msg::Stop { key, done } => {
                let done = done.unwrap_or_else(|| Box::new(|_| {}));
                self.stop_proc(key, done);
            }
            Msg::SetCrashGate { key, allowed } => {
                if let Some(p) = self.procs.get_mut(&key) {
                    p.crash_gate = allowed;
                    if !allowed {
                        if let Some(t) = p.restart_timer.take() {
                            self.timers.cancel(t);
                        }
                    }
                }
            }
            Msg::Remove { key } => {
                if let Some(p) = self.procs.get_mut(&key) {
                    p.remove_when_stopped = true;
                }
                self.stop_proc(key, Box::new(|_| {}));
            }
            Msg::Snapshot { keys, reply } => {
                let now = Instant::now();
                let out = keys
                    .iter()
                    .map(|k| self.procs.get(k).map(|p| p.status(now)))
                    .collect();
                let _ = reply.send(out);
            }
            Msg::StopAll { done } => self.begin_stop_all(done),
            Msg::StopAllPart { ok } => {
                if let Some(run) = self.stop_all.as_mut() {
                    run.remaining = run.remaining.saturating_sub(1);
                    if !ok {
                        run.failures += 1;
                    }
                    if run.remaining == 0 {
                        let run = self.stop_all.take().unwrap_or_else(unreachable_run);
                        for done in run.done {
                            done(run.failures);
                        }
                    }
                }
            }
            Msg::MemoryStopped { key } => self.memory_restart_resume(key),
            Msg::Exit => self.exit = true,
        }
    }

    fn begin_stop_all(&mut self, done: Done<usize>) {
        self.shutting_down = true;
        if let Some(run) = self.stop_all.as_mut() {
            run.done.push(done);
            return;
        }
        let keys: Vec<ProcKey> = self.procs.keys().copied().collect();
        if keys.is_empty() {
            done(0);
            return;
        }
        self.stop_all = Some(StopAllRun {
            remaining: keys.len(),
            failures: 0,
            done: vec![done],
        });
        for key in keys {
            let tx = self.tx.clone();
            self.stop_proc(
                key,
                Box::new(move |r: Result<(), String>| {
                    let _ = tx.send(Msg::StopAllPart { ok: r.is_ok() });
                }),
            );
        }
    }

    // ---- start ----------------------------------------------------------

    fn start_proc(&mut self, key: ProcKey, reason: StartReason) -> Result<u32, String> {
        if self.shutting_down {
            return Err("Rollbridge is shutting down".into());
        }
        let Some(p) = self.procs.get_mut(&key) else {
            return Err(format!("Unknown managed process key {key}"));
        };
        if let Some(pid) = p.leader {
            return Ok(pid as u32);
        }
        if p.stop.is_some() {
            return Err(format!("Process \"{}\" is stopping", p.spec.id));
        }
        if let Some(t) = p.restart_timer.take() {
            self.timers.cancel(t);
        }
        // Members of the previous run that outlived their leader would clash
        // with the new copy (ports): end them first.
        if let Some(old) = p.pgid.take() {
            if group_alive(old) {
                let _ = signal_group(old, libc::SIGKILL);
            }
        }
        p.state = ProcState::Starting;
        p.stop_requested = false;
        let spawned = match spawn::spawn_managed(&p.spec.command, &p.spec.cwd, &p.spec.env) {
            Ok(s) => s,
            Err(e) => {
                p.state = ProcState::Failed;
                return Err(format!("Failed to start process \"{}\": {e}", p.spec.id));
            }
        };
        let pid = spawned.pid;
        p.generation += 1;
        p.leader = Some(pid);
        p.pgid = Some(pid);
        p.state = ProcState::Running;
        p.started = Some((iso_now(), Instant::now()));
        p.exit = None;
        p.reason = Some(reason);
        let generation = p.generation;
        let data = p
            .data()
            .with("command", p.spec.command.as_str())
            .with("id", p.spec.id.as_str())
            .with("pid", pid)
            .with("reason", reason.as_str());
        if let Some(mem) = p.spec.memory.as_ref() {
            let at = Instant::now() + Duration::from_millis(mem.check_interval_ms.max(1));
            p.memory_timer = Some(
                self.timers
                    .insert(at, TimerKind::MemorySample { key, generation }),
            );
        }
        self.by_pid.insert(pid, (key, generation));
        self.add_pipe(key, Stream::Stdout, spawned.stdout);
        self.add_pipe(key, Stream::Stderr, spawned.stderr);
        self.notice_event("process started", data);
        Ok(pid as u32)
    }

    fn add_pipe(&mut self, key: ProcKey, stream: Stream, fd: OwnedFd) {
        let token = Token(self.next_token);
        self.next_token += 1;
        let raw = fd.as_raw_fd();
        if let Err(e) =
            self.poll
                .registry()
                .register(&mut SourceFd(&raw), token, Interest::READABLE)
        {
            eprintln!("rollbridge: cannot watch output pipe: {e}");
            return;
        }
        self.pipes.insert(
            token,
            Pipe {
                key,
                stream,
                file: File::from(fd),
                splitter: LineSplitter::default(),
            },
        );
        // Data may already be waiting (edge-triggered poll).
        self.ready.push(token);
    }

    // ---- output ---------------------------------------------------------

    fn read_ready(&mut self) {
        let mut tokens = std::mem::take(&mut self.ready);
        tokens.sort_unstable();
        tokens.dedup();
        for t in tokens {
            self.read_pipe(t);
        }
    }

    fn read_pipe(&mut self, token: Token) {
        let Some(pipe) = self.pipes.get_mut(&token) else {
            return;
        };
        let mut buf = [0u8; 16 * 1024];
        let mut total = 0;
        let mut lines = Vec::new();
        let mut eof = false;
        loop {
            match pipe.file.read(&mut buf) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => {
                    pipe.splitter.push(&buf[..n], &mut |l| lines.push(l));
                    total += n;
                    if total >= READ_BUDGET {
                        self.ready.push(token);
                        break;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => {
                    eof = true;
                    break;
                }
            }
        }
        let (key, stream) = (pipe.key, pipe.stream);
        if eof {
            pipe.splitter.finish(&mut |l| lines.push(l));
            let raw = pipe.file.as_raw_fd();
            let _ = self.poll.registry().deregister(&mut SourceFd(&raw));
            self.pipes.remove(&token);
        }
        let now = Instant::now();
        for line in lines {
            self.record_line(key, stream, line, now);
        }
    }

    fn record_line(&mut self, key: ProcKey, stream: Stream, line: String, now: Instant) {
        let Some(p) = self.procs.get_mut(&key) else {
            return;
        };
        let at = iso_now();
        if let Budget::Log(report) = p.budget.take(now) {
            if let Some(n) = report {
                let e = Event {
                    at: at.clone(),
                    data: p.data().with("id", p.spec.id.as_str()).with("lines", n),
                    message: "process output suppressed".into(),
                };
                log::event(&e);
            }
            let e = Event {
                at: at.clone(),
                data: p
                    .data()
                    .with("id", p.spec.id.as_str())
                    .with("line", line.as_str())
                    .with("stream", stream.as_str()),
                message: "process output".into(),
            };
            log::event(&e);
        }
        p.logs.push(LogLine { at, line, stream });
    }

    // ---- exits ----------------------------------------------------------

    fn reap(&mut self) {
        for (pid, status) in spawn::reap_all() {
            if let Some((key, kind)) = self.hooks.remove(&pid) {
                self.hook_exited(key, kind, pid, status);
            } else if let Some((key, generation)) = self.by_pid.remove(&pid) {
                self.leader_exited(key, generation, status);
            }
            // Anything else: a re-parented grandchild or a hook already
            // killed at its limit. Reaping it is all there is to do.
        }
    }

    fn hook_exited(&mut self, key: ProcKey, kind: HookKind, pid: i32, status: i32) {
        let Some(p) = self.procs.get_mut(&key) else {
            return;
        };
        if let Some((hook_pid, timer)) = p.hook {
            if hook_pid == pid {
                p.hook = None;
                self.timers.cancel(timer);
            }
        }
        let id = p.spec.id.clone();
        let data = p.data();
        match decode_status(status) {
            (Some(0), _) => {}
            (Some(code), _) => self.notice_event(
                &format!("{} exited non-zero", kind.label()),
                data.with("code", code).with("id", id),
            ),
            (_, Some(sig)) => self.notice_event(
                &format!("{} exited on signal", kind.label()),
                data.with("id", id).with("signal", sig_text(sig)),
            ),
            _ => {}
        }
    }

    fn leader_exited(&mut self, key: ProcKey, generation: u64, status: i32) {
        let shutting_down = self.shutting_down;
        let Some(p) = self.procs.get_mut(&key) else {
            return;
        };
        if p.generation != generation {
            return;
        }
        let (code, sig) = decode_status(status);
        let signal = sig.map(sig_text);
        p.leader = None;
        p.exit = Some((code, signal.clone()));
        p.rss = None;
        p.children.clear();
        if let Some(t) = p.memory_timer.take() {
            self.timers.cancel(t);
        }
        let requested = p.stop_requested;
        if !requested {
            p.state = ProcState::Failed;
        } else if p.stop.is_none() {
            p.state = ProcState::Stopped;
        }
        let data = p
            .data()
            .with(
                "code",
                code.map(serde_json::Value::from).unwrap_or_default(),
            )
            .with("id", p.spec.id.as_str())
            .with(
                "signal",
                signal
                    .clone()
                    .map(serde_json::Value::from)
                    .unwrap_or_default(),
            );
        let mut follow_up = None;
        if !requested && p.crash_gate && !shutting_down {
            let now = Instant::now();
            match p
                .history
                .decide(&p.spec.restart, p.spec.restart_delay_ms, now)
            {
                RestartDecision::After(delay) => {
                    let t = self
                        .timers
                        .insert(now + delay, TimerKind::Restart { key, generation });
                    p.restart_timer = Some(t);
                }
                RestartDecision::LimitReached => {
                    follow_up = Some(
                        p.data()
                            .with("id", p.spec.id.as_str())
                            .with("maxRestarts", p.spec.restart.max_restarts.unwrap_or(0))
                            .with("windowMs", p.spec.restart.window_ms),
                    );
                }
            }
        }
        self.notice_event("process exited", data);
        (self.sink)(Notice::Exited {
            key,
            requested,
            code,
            signal,
        });
        if let Some(d) = follow_up {
            self.notice_event("restart limit reached", d);
        }
    }

    // ---- timers ---------------------------------------------------------

    fn fire_timers(&mut self, now: Instant) {
        for (_, kind) in self.timers.pop_due(now) {
            match kind {
                TimerKind::Restart { key, generation } => self.restart_due(key, generation),
                TimerKind::MemorySample { key, generation } => self.memory_sample(key, generation),
                TimerKind::HookDeadline {
                    key,
                    pid,
                    kind,
                    timeout_ms,
                } => {
                    if self.hooks.remove(&pid).is_none() {
                        continue;
                    }
                    let _ = signal_group(pid, libc::SIGKILL);
                    if let Some(p) = self.procs.get_mut(&key) {
                        if p.hook.is_some_and(|(h, _)| h == pid) {
                            p.hook = None;
                        }
                        let data = p
                            .data()
                            .with("id", p.spec.id.as_str())
                            .with("timeoutMs", timeout_ms);
                        self.notice_event(&format!("{} timed out", kind.label()), data);
                    }
                }
            }
        }
    }

    fn restart_due(&mut self, key: ProcKey, generation: u64) {
        let shutting_down = self.shutting_down;
        let Some(p) = self.procs.get_mut(&key) else {
            return;
        };
        p.restart_timer = None;
        if p.generation != generation
            || p.leader.is_some()
            || p.stop_requested
            || !p.crash_gate
            || shutting_down
        {
            return;
        }
        p.restarts += 1;
        if let Err(error) = self.start_proc(key, StartReason::Crash) {
            if let Some(p) = self.procs.get(&key) {
                let data = p
                    .data()
                    .with("error", error.as_str())
                    .with("id", p.spec.id.as_str());
                self.notice_event("process restart failed", data);
            }
        }
    }

    // ---- memory ---------------------------------------------------------

    fn memory_sample(&mut self, key: ProcKey, generation: u64) {
        let Some(p) = self.procs.get_mut(&key) else {
            return;
        };
        p.memory_timer = None;
        let Some(cfg) = p.spec.memory.clone() else {
            return;
        };
        if p.generation != generation || p.stop.is_some() || p.memory_restarting {
            return;
        }
        let Some(pgid) = p.leader else {
            return;
        };
        if let Some(members) = memory::sample_group(pgid) {
            p.rss = memory::total_rss(&members).or(p.rss);
            p.children = members;
        }
        let mut restart = false;
        if let Some(rss) = p.rss {
            match memory::judge(rss, &cfg, &mut p.warned) {
                MemoryVerdict::Fine => {}
                MemoryVerdict::Warn => {
                    let data = p
                        .data()
                        .with("id", p.spec.id.as_str())
                        .with("rssBytes", rss)
                        .with("warnBytes", cfg.warn_bytes);
                    self.notice_event("memory warning", data);
                }
                MemoryVerdict::Restart => {
                    let data = p
                        .data()
                        .with("id", p.spec.id.as_str())
                        .with("limitBytes", cfg.limit_bytes)
                        .with("rssBytes", rss);
                    self.notice_event("memory limit exceeded", data);
                    restart = true;
                }
            }
        }
        let Some(p) = self.procs.get_mut(&key) else {
            return;
        };
        if restart {
            p.memory_restarting = true;
            let tx = self.tx.clone();
            self.stop_proc(
                key,
                Box::new(move |_| {
                    let _ = tx.send(Msg::MemoryStopped { key });
                }),
            );
        } else {
            let at = Instant::now() + Duration::from_millis(cfg.check_interval_ms.max(1));
            p.memory_timer = Some(
                self.timers
                    .insert(at, TimerKind::MemorySample { key, generation }),
            );
        }
    }

    /// After the stop of a memory restart: start again with reason
    /// `memory` unless the crash gate now refuses.
    fn memory_restart_resume(&mut self, key: ProcKey) {
        let shutting_down = self.shutting_down;
        let Some(p) = self.procs.get_mut(&key) else {
            return;
        };
        p.memory_restarting = false;
        if !p.crash_gate || shutting_down || p.remove_when_stopped {
            return;
        }
        p.memory_restarts += 1;
        p.last_memory_restart_at = Some(iso_now());
        p.warned = false;
        if let Err(error) = self.start_proc(key, StartReason::Memory) {
            if let Some(p) = self.procs.get(&key) {
                let data = p
                    .data()
                    .with("error", error.as_str())
                    .with("id", p.spec.id.as_str());
                self.notice_event("memory restart failed", data);
            }
        }
    }

    // ---- stop -----------------------------------------------------------

    fn stop_proc(&mut self, key: ProcKey, done: Done<Result<(), String>>) {
        let Some(p) = self.procs.get_mut(&key) else {
            done(Ok(()));
            return;
        };
        p.stop_requested = true;
        if let Some(t) = p.restart_timer.take() {
            self.timers.cancel(t);
        }
        if let Some(t) = p.memory_timer.take() {
            self.timers.cancel(t);
        }
        if let Some(run) = p.stop.as_mut() {
            run.waiters.push(done);
            return;
        }
        let pgid = p.leader.or(p.pgid.filter(|g| group_alive(*g)));
        let Some(pgid) = pgid else {
            p.state = ProcState::Stopped;
            p.pgid = None;
            done(Ok(()));
            if p.remove_when_stopped {
                self.procs.remove(&key);
            }
            return;
        };
        let lc = &p.spec.lifecycle;
        let plan = StopPlan {
            quiet_hook: lc.quiet_command.is_some() && p.leader.is_some(),
            drain: (lc.drain_timeout_ms > 0).then(|| Duration::from_millis(lc.drain_timeout_ms)),
            drain_hook: lc.drain_command.is_some(),
            stop_hook: lc.stop_command.is_some(),
            signal: p.spec.stop_signal.number,
            graceful: p.spec.graceful_stop.duration(),
        };
        p.state = ProcState::Stopping;
        p.stop = Some(StopRun {
            seq: StopSeq::new(plan),
            pgid,
            waiters: vec![done],
        });
        // Advanced at the end of this loop turn.
    }

    fn advance_stops(&mut self, now: Instant) {
        let keys: Vec<ProcKey> = self
            .procs
            .iter()
            .filter(|(_, p)| p.stop.is_some())
            .map(|(k, _)| *k)
            .collect();
        for key in keys {
            let Some(p) = self.procs.get_mut(&key) else {
                continue;
            };
            let leader_alive = p.leader.is_some();
            let hook_running = p.hook.is_some();
            let Some(run) = p.stop.as_mut() else {
                continue;
            };
            let pgid = run.pgid;
            let obs = Observed {
                leader_alive,
                group_alive: group_alive(pgid),
                hook_running,
            };
            let actions = run.seq.advance(now, obs);
            let mut error = None;
            for action in actions {
                match action {
                    StopAction::RunHook(kind) => self.run_hook(key, kind, pgid),
                    StopAction::Signal(sig) => {
                        if let Err(e) = signal_group(pgid, sig) {
                            error = Some(e);
                        }
                    }
                    StopAction::TimedOut => {
                        if let Some(p) = self.procs.get(&key) {
                            let data = p.data().with("id", p.spec.id.as_str()).with("pid", pgid);
                            self.notice_event("process stop timed out; sending SIGKILL", data);
                        }
                    }
                    StopAction::Kill => {
                        if let Err(e) = signal_group(pgid, libc::SIGKILL) {
                            error = Some(e);
                        }
                    }
                }
            }
            let Some(p) = self.procs.get_mut(&key) else {
                continue;
            };
            let finished = p.stop.as_ref().is_some_and(|r| r.seq.is_done());
            if finished || error.is_some() {
                let run = p.stop.take();
                let result = match error {
                    Some(e) => {
                        p.state = ProcState::Failed;
                        Err(format!("Could not stop process \"{}\": {e}", p.spec.id))
                    }
                    None => {
                        p.state = ProcState::Stopped;
                        p.pgid = None;
                        Ok(())
                    }
                };
                let remove = p.remove_when_stopped && result.is_ok();
                if let Some(run) = run {
                    for waiter in run.waiters {
                        waiter(result.clone());
                    }
                }
                if remove {
                    self.procs.remove(&key);
                }
            }
        }
    }

    fn run_hook(&mut self, key: ProcKey, kind: HookKind, pgid: i32) {
        let now = Instant::now();
        let Some(p) = self.procs.get_mut(&key) else {
            return;
        };
        let lc = &p.spec.lifecycle;
        let command = match kind {
            HookKind::Quiet => lc.quiet_command.clone(),
            HookKind::Drain => lc.drain_command.clone(),
            HookKind::Stop => lc.stop_command.clone(),
        };
        let Some(command) = command else {
            return;
        };
        let pid_value = match kind {
            HookKind::Stop => pgid.to_string(),
            _ => p.leader.map(|l| l.to_string()).unwrap_or_default(),
        };
        let budget = match kind {
            HookKind::Drain => Duration::from_millis(lc.drain_timeout_ms),
            _ => p.spec.graceful_stop.hook_budget(),
        };
        let mut env: Vec<(String, String)> = p
            .spec
            .env
            .iter()
            .filter(|(k, _)| k != "ROLLBRIDGE_PID")
            .cloned()
            .collect();
        env.push(("ROLLBRIDGE_PID".into(), pid_value));
        match spawn::spawn_hook(&command, &p.spec.cwd, &env) {
            Ok(pid) => {
                let timer = self.timers.insert(
                    now + budget,
                    TimerKind::HookDeadline {
                        key,
                        pid,
                        kind,
                        timeout_ms: budget.as_millis() as u64,
                    },
                );
                p.hook = Some((pid, timer));
                self.hooks.insert(pid, (key, kind));
            }
            Err(error) => {
                let data = p
                    .data()
                    .with("error", error.as_str())
                    .with("id", p.spec.id.as_str());
                self.notice_event(&format!("{} failed", kind.label()), data);
            }
        }
    }

    fn kill_everything(&mut self) {
        for p in self.procs.values() {
            if let Some(g) = p.leader.or(p.pgid) {
                let _ = signal_group(g, libc::SIGKILL);
            }
        }
    }
}

fn sig_text(sig: i32) -> String {
    signal_name(sig)
        .map(str::to_owned)
        .unwrap_or_else(|| format!("SIG{sig}"))
}

fn unreachable_run() -> StopAllRun {
    StopAllRun {
        remaining: 0,
        failures: 0,
        done: Vec::new(),
    }
}
