//! The supervisor thread's loop: one mio poll over the SIGCHLD self-pipe,
//! the message waker and every child's output pipes, with the nearest timer
//! deadline (restart delays, hook limits, stop escalations) as its timeout.

mod adopted;
mod escaped;
mod exits;
mod handoff;
mod handover;
mod memory_checks;
mod output_pipes;
mod stopping;
mod timer_events;

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

use super::descendants::{self, Marker, ProcInfo};
use super::memory::{self, MemoryVerdict};
use super::output::{Budget, LineSplitter, LogBudget, LogLine, OutputRing, Stream};
use super::restart::{RestartDecision, RestartHistory};
use super::spawn::{self, decode_status, group_alive, signal_group};
use super::status::ChildSample;
use super::stop::{HookKind, Observed, StopAction, StopPlan, StopSeq};
use super::timers::{TimerId, Timers};
use super::{Done, Msg, Notice, ProcKey, ProcState, ProcessSpec, ProcessStatus, Sink, StartReason};
use crate::config::signal_name;
use crate::events::{Data, Event};
use crate::log;
use crate::timefmt::iso_now;

pub(crate) use handover::Frozen;

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
    /// A memory restart waiting out its backoff.
    MemoryRestart {
        key: ProcKey,
        generation: u64,
    },
    /// A memory replacement (handoff) waiting out its backoff.
    MemoryReplace {
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
    /// Descendants outside the group (or not yet known to be in it), with
    /// their identities, refreshed at the stop and kill steps.
    tracked: Vec<ProcInfo>,
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
    /// Injected identity of the last run (finds descendants that left the
    /// group).
    marker: Option<Marker>,
    started: Option<(String, Instant)>,
    exit: Option<(Option<i32>, Option<String>)>,
    reason: Option<StartReason>,
    restarts: u64,
    logs: OutputRing,
    history: RestartHistory,
    /// Memory restarts back off on the crash schedule, counted apart.
    memory_history: RestartHistory,
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
    /// Taken over from a crashed daemon (not our child).
    adopted: Option<adopted::AdoptedRun>,
    /// A memory breach asks the owner for a replacement.
    handoff: bool,
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
            marker: None,
            started: None,
            exit: None,
            reason: None,
            restarts: 0,
            logs,
            history: RestartHistory::default(),
            memory_history: RestartHistory::default(),
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
            adopted: None,
            handoff: false,
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
            adopted: (self.leader.is_some() && self.adopted.is_some()).then_some(true),
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
    /// This process: every re-parented descendant ends up under it.
    root: i32,
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
    /// Followers of output lines (`logs --follow`).
    tap: Option<std::sync::Arc<dyn super::OutputTap>>,
}

impl Drop for Loop {
    fn drop(&mut self) {
        signal_hook::low_level::unregister(self.sig_id);
    }
}

pub(crate) fn thread_main(mut looper: Loop) {
    let result = catch_unwind(AssertUnwindSafe(|| looper.run()));
    if let Err(panic) = result {
        let what = crate::guard::panic_message(&*panic);
        let event = Event::new(
            "supervisor thread panicked",
            Data::new().with("error", what.as_str()),
        );
        log::event(&event);
        eprintln!(
            "rollbridge: FATAL: supervisor thread panicked: {what}; killing managed process groups"
        );
        looper.kill_everything();
        log::flush(Duration::from_secs(1));
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
            root: std::process::id() as i32,
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
            tap: None,
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
            if self.watching_adopted() {
                let bound = adopted::ADOPTED_CHECK;
                timeout = Some(timeout.map_or(bound, |t| t.min(bound)));
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
            // Output first, so a process's last lines are in its ring before
            // its exit is recorded. Then reap, every turn: one cheap
            // syscall, and no exit is ever missed even if signals coalesced.
            self.read_ready();
            self.reap();
            self.reap_adopted();
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
            Msg::SetTap(tap) => self.tap = Some(tap),
            Msg::Adopt { key, adoption } => self.adopt_proc(key, *adoption),
            Msg::SetHandoff { key, on } => {
                if let Some(p) = self.procs.get_mut(&key) {
                    p.handoff = on;
                }
            }
            Msg::Inherit { from, to, reason } => self.inherit(from, to, reason),
            Msg::ResumeMemory { key } => self.memory_resume_sampling(key),
            Msg::Freeze { reply, thaw } => self.freeze(reply, thaw),
            Msg::Import { procs } => self.import(procs),
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
        // Members of the previous run that outlived their leader (in the
        // group or escaped from it) would clash with the new copy (ports):
        // end them first.
        self.kill_leftovers(key);
        let Some(p) = self.procs.get_mut(&key) else {
            return Err(format!("Unknown managed process key {key}"));
        };
        // A new run is our own child again.
        p.adopted = None;
        p.pgid = None;
        p.marker = Marker::from_env(&p.spec.env);
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

    fn add_pipe(&mut self, key: ProcKey, stream: Stream, fd: OwnedFd) -> Option<Token> {
        let token = Token(self.next_token);
        self.next_token += 1;
        let raw = fd.as_raw_fd();
        if let Err(e) =
            self.poll
                .registry()
                .register(&mut SourceFd(&raw), token, Interest::READABLE)
        {
            eprintln!("rollbridge: cannot watch output pipe: {e}");
            return None;
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
        Some(token)
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
