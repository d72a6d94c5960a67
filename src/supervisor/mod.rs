//! The supervisor: one thread owns every managed child. It spawns, reaps
//! (SIGCHLD + `waitpid(-1, WNOHANG)` until nothing is left), captures output
//! on a poll loop, runs stop sequences and restart timers. Other threads
//! talk to it through [`SupervisorHandle`] (a channel plus a poll waker);
//! it never waits on anyone, so its replies are always quick.
//!
//! Results come back through [`Done`] callbacks (run on the supervisor
//! thread: they must only send on a channel) and events through the sink.

pub mod adopted;
pub mod descendants;
pub mod handover;
pub mod memory;
pub mod output;
pub mod pipes;
pub mod restart;
mod run;
pub mod spawn;
pub mod spec;
pub mod status;
pub mod stop;
pub mod timers;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, bounded, unbounded};
use mio::Waker;

pub use spec::ProcessSpec;
pub use status::{ProcState, ProcessStatus, StartReason};

use crate::events::Event;

/// Identifies one managed process instance for its whole life in the
/// supervisor (across restarts; each spawn also gets a generation).
pub type ProcKey = u64;

/// Completion callback, run on the supervisor thread.
pub type Done<T> = Box<dyn FnOnce(T) + Send>;

/// What the supervisor reports.
#[derive(Debug, Clone)]
pub enum Notice {
    /// An event for the ring and the log.
    Event(Event),
    /// The group leader of `key` exited (any reason). Deploys watching a
    /// health check use it to fail fast.
    Exited {
        key: ProcKey,
        requested: bool,
        code: Option<i32>,
        signal: Option<String>,
    },
    /// A process with the handoff on (see
    /// [`SupervisorHandle::set_handoff`]) went over its memory limit and
    /// its backoff allows a replacement now: the owner starts one (the
    /// process itself keeps running), then calls
    /// [`SupervisorHandle::resume_memory`] if that failed.
    Replace { key: ProcKey },
    /// The restart policy of `key` gave up (`restart limit reached`): the
    /// process stays `failed`.
    GaveUp { key: ProcKey },
}

/// Receives notices (must not block: send on a channel).
pub type Sink = Arc<dyn Fn(Notice) + Send + Sync>;

/// Gets every captured output line while [`active`](OutputTap::active)
/// (for `logs --follow`). Must be cheap and never block.
pub trait OutputTap: Send + Sync {
    fn active(&self) -> bool;
    fn line(&self, key: ProcKey, id: &str, release_id: Option<&str>, line: &output::LogLine);
}

pub(crate) enum Msg {
    Register {
        key: ProcKey,
        spec: ProcessSpec,
    },
    Update {
        key: ProcKey,
        spec: ProcessSpec,
    },
    Start {
        key: ProcKey,
        reason: StartReason,
        done: Option<Done<Result<u32, String>>>,
    },
    Stop {
        key: ProcKey,
        done: Option<Done<Result<(), String>>>,
    },
    SetCrashGate {
        key: ProcKey,
        allowed: bool,
    },
    Remove {
        key: ProcKey,
    },
    Snapshot {
        keys: Vec<ProcKey>,
        reply: Sender<Vec<Option<ProcessStatus>>>,
    },
    StopAll {
        done: Done<usize>,
    },
    /// Internal: one stop of a StopAll finished.
    StopAllPart {
        ok: bool,
    },
    /// Internal: the stop of a memory restart finished.
    MemoryStopped {
        key: ProcKey,
    },
    SetTap(Arc<dyn OutputTap>),
    /// Take over a crashed daemon's process (see `adopted.rs`).
    Adopt {
        key: ProcKey,
        adoption: Box<adopted::Adoption>,
    },
    SetHandoff {
        key: ProcKey,
        on: bool,
    },
    Inherit {
        from: ProcKey,
        to: ProcKey,
        reason: StartReason,
    },
    ResumeMemory {
        key: ProcKey,
    },
    /// Daemon upgrade: export every process, then stand still until
    /// `thaw` fires (the exec failed) or the program is replaced.
    Freeze {
        reply: Sender<Result<run::Frozen, String>>,
        thaw: Receiver<()>,
    },
    /// Daemon upgrade: the processes a previous program handed over.
    Import {
        procs: Vec<handover::ProcDoc>,
    },
    Exit,
}

/// A frozen supervisor: the export, and the way to let it run again.
pub struct Freeze {
    pub procs: Vec<handover::ProcDoc>,
    /// Inheritable duplicates of the output pipes (closed on thaw).
    pub fds: Vec<std::os::fd::OwnedFd>,
    thaw: Sender<()>,
}

impl Freeze {
    /// The exec failed: the supervisor carries on as before.
    pub fn thaw(self) {
        let _ = self.thaw.send(());
    }
}

/// Cloneable way in to the supervisor thread.
#[derive(Clone)]
pub struct SupervisorHandle {
    tx: Sender<Msg>,
    waker: Arc<Waker>,
    next_key: Arc<AtomicU64>,
}

pub struct Supervisor {
    handle: SupervisorHandle,
    thread: Option<JoinHandle<()>>,
}

impl Supervisor {
    /// Starts the supervisor thread. Call [`spawn::become_subreaper`] in the
    /// daemon first so grandchildren are reaped too.
    pub fn start(sink: Sink) -> std::io::Result<Supervisor> {
        let (tx, rx): (Sender<Msg>, Receiver<Msg>) = unbounded();
        let poll = mio::Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), run::WAKER)?);
        let looper = run::Loop::new(poll, rx, tx.clone(), sink)?;
        let thread = std::thread::Builder::new()
            .name("supervisor".into())
            .spawn(move || run::thread_main(looper))?;
        Ok(Supervisor {
            handle: SupervisorHandle {
                tx,
                waker,
                next_key: Arc::new(AtomicU64::new(1)),
            },
            thread: Some(thread),
        })
    }

    pub fn handle(&self) -> SupervisorHandle {
        self.handle.clone()
    }

    /// Ends the thread (children are left as they are: stop them first).
    pub fn shutdown(mut self) {
        self.handle.send(Msg::Exit);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            self.handle.send(Msg::Exit);
            let _ = t.join();
        }
    }
}

impl SupervisorHandle {
    fn send(&self, msg: Msg) {
        if self.tx.send(msg).is_ok() {
            let _ = self.waker.wake();
        }
    }

    /// Registers a process (state `stopped`, crash gate open). Nothing runs
    /// until [`start`](Self::start).
    pub fn register(&self, spec: ProcessSpec) -> ProcKey {
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        self.send(Msg::Register { key, spec });
        key
    }

    /// Replaces the definition; the running child is untouched, the next
    /// (re)start uses it.
    pub fn update(&self, key: ProcKey, spec: ProcessSpec) {
        self.send(Msg::Update { key, spec });
    }

    /// Spawns unless a child already runs (then `Ok(current pid)`).
    pub fn start(&self, key: ProcKey, reason: StartReason, done: Done<Result<u32, String>>) {
        self.send(Msg::Start {
            key,
            reason,
            done: Some(done),
        });
    }

    /// Blocking form of [`start`](Self::start), for operation threads.
    pub fn start_wait(&self, key: ProcKey, reason: StartReason) -> Result<u32, String> {
        let (tx, rx) = bounded(1);
        self.start(
            key,
            reason,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        rx.recv()
            .unwrap_or_else(|_| Err("supervisor is not running".into()))
    }

    /// Full graceful stop; `done` runs once the whole group is gone.
    pub fn stop(&self, key: ProcKey, done: Done<Result<(), String>>) {
        self.send(Msg::Stop {
            key,
            done: Some(done),
        });
    }

    /// Blocking form of [`stop`](Self::stop), for operation threads.
    pub fn stop_wait(&self, key: ProcKey) -> Result<(), String> {
        let (tx, rx) = bounded(1);
        self.stop(
            key,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        rx.recv()
            .unwrap_or_else(|_| Err("supervisor is not running".into()))
    }

    /// Whether a crash may auto-restart this process (the owner's gate:
    /// release active/starting, daemon not shutting down, ...).
    pub fn set_crash_gate(&self, key: ProcKey, allowed: bool) {
        self.send(Msg::SetCrashGate { key, allowed });
    }

    /// Handoff on: a memory breach asks the owner for a replacement
    /// ([`Notice::Replace`]) instead of restarting the process in place.
    pub fn set_handoff(&self, key: ProcKey, on: bool) {
        self.send(Msg::SetHandoff { key, on });
    }

    /// `to` replaced `from` (zero-downtime replacement): it takes over its
    /// restart counters and backoff histories, counting this replacement
    /// as a memory restart (`reason` memory) or a restart (crash).
    pub fn inherit(&self, from: ProcKey, to: ProcKey, reason: StartReason) {
        self.send(Msg::Inherit { from, to, reason });
    }

    /// A replacement asked by [`Notice::Replace`] did not happen: memory
    /// sampling of `key` starts again (a new breach waits the backoff).
    pub fn resume_memory(&self, key: ProcKey) {
        self.send(Msg::ResumeMemory { key });
    }

    /// Sends captured output lines to `tap` as well (while it is active).
    pub fn set_output_tap(&self, tap: Arc<dyn OutputTap>) {
        self.send(Msg::SetTap(tap));
    }

    /// Forgets a process once it is stopped (immediately if it is).
    pub fn remove(&self, key: ProcKey) {
        self.send(Msg::Remove { key });
    }

    /// Status entries, in the order asked (`None` for unknown keys).
    pub fn snapshot(&self, keys: Vec<ProcKey>) -> Vec<Option<ProcessStatus>> {
        let n = keys.len();
        let (tx, rx) = bounded(1);
        self.send(Msg::Snapshot { keys, reply: tx });
        rx.recv().unwrap_or_else(|_| vec![None; n])
    }

    /// Daemon upgrade: exports every process and stops reading and
    /// reaping until [`Freeze::thaw`] (or forever: the program is replaced).
    /// Refused while a stop, hook or memory restart runs.
    pub fn freeze(&self) -> Result<Freeze, String> {
        let (reply, answer) = bounded(1);
        let (thaw, thawed) = bounded(1);
        self.send(Msg::Freeze {
            reply,
            thaw: thawed,
        });
        let (procs, fds) = answer
            .recv()
            .unwrap_or_else(|_| Err("supervisor is not running".into()))?;
        Ok(Freeze { procs, fds, thaw })
    }

    /// Daemon upgrade: takes over the processes a previous program ran;
    /// new keys continue after `next_key`.
    pub fn import(&self, procs: Vec<handover::ProcDoc>, next_key: u64) {
        let top = procs.iter().map(|p| p.key + 1).max().unwrap_or(1);
        self.next_key
            .fetch_max(next_key.max(top), Ordering::Relaxed);
        self.send(Msg::Import { procs });
    }

    /// The next key [`register`](Self::register) hands out.
    pub fn next_key(&self) -> u64 {
        self.next_key.load(Ordering::Relaxed)
    }

    /// Shutdown: refuses further starts, cancels restart timers and stops
    /// every process in parallel; `done(failures)` once all are gone.
    pub fn stop_all(&self, done: Done<usize>) {
        self.send(Msg::StopAll { done });
    }
}
