//! Freezing for a daemon upgrade (export every process, then stand still)
//! and importing the processes a previous program handed over.

use std::os::fd::FromRawFd;

use super::*;
use crate::supervisor::handover::{PipeDoc, ProcDoc, SpecDoc};
use adopted::AdoptedRun;

/// What a freeze hands the daemon: the documents and the inheritable
/// duplicates of the output pipes their numbers name.
pub(crate) type Frozen = (Vec<ProcDoc>, Vec<OwnedFd>);

impl Loop {
    /// Reads what the pipes hold, exports every process, then blocks until
    /// `thaw` fires (the exec failed) or the program is replaced. Nothing
    /// is reaped meanwhile: exits wait as zombies for whoever runs next.
    pub(super) fn freeze(&mut self, reply: Sender<Result<Frozen, String>>, thaw: Receiver<()>) {
        if let Some(busy) = self.busy() {
            let _ = reply.send(Err(busy));
            return;
        }
        self.ready.extend(self.pipes.keys().copied());
        self.read_ready();
        match self.export() {
            Ok(frozen) => {
                if reply.send(Ok(frozen)).is_err() {
                    return;
                }
                let _ = thaw.recv();
                // Pipes may have filled meanwhile (edge-triggered poll).
                self.ready.extend(self.pipes.keys().copied());
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    /// A stop, hook or memory restart under way: not a moment to hand over.
    fn busy(&self) -> Option<String> {
        if self.stop_all.is_some() || self.shutting_down {
            return Some("Rollbridge is shutting down".into());
        }
        self.procs.values().find_map(|p| {
            if p.stop.is_some() || p.hook.is_some() || p.memory_restarting {
                Some(format!(
                    "process \"{}\" is stopping; try again once it has stopped",
                    p.spec.id
                ))
            } else {
                None
            }
        })
    }

    fn export(&self) -> Result<Frozen, String> {
        let now = Instant::now();
        let mut docs = Vec::new();
        let mut fds = Vec::new();
        let mut keys: Vec<&ProcKey> = self.procs.keys().collect();
        keys.sort_unstable();
        for key in keys {
            let p = &self.procs[key];
            let mut pipes = Vec::new();
            let mut tokens: Vec<(&Token, &Pipe)> = self
                .pipes
                .iter()
                .filter(|(_, pipe)| pipe.key == *key)
                .collect();
            tokens.sort_unstable_by_key(|(t, _)| t.0);
            for (_, pipe) in tokens {
                let dup = crate::inherit::inheritable(pipe.file.as_raw_fd())
                    .map_err(|e| format!("cannot pass on an output pipe: {e}"))?;
                let (partial, skipping) = pipe.splitter.pending();
                pipes.push(PipeDoc {
                    fd: dup.as_raw_fd(),
                    stream: pipe.stream,
                    partial: partial.to_vec(),
                    skipping,
                });
                fds.push(dup);
            }
            docs.push(ProcDoc {
                key: *key,
                spec: SpecDoc::from_spec(&p.spec),
                state: p.state,
                generation: p.generation,
                pid: p.leader,
                pgid: p.pgid,
                started_at: p.started.as_ref().map(|(iso, _)| iso.clone()),
                uptime_ms: p
                    .started
                    .as_ref()
                    .map(|(_, at)| now.saturating_duration_since(*at).as_millis() as u64),
                exit_code: p.exit.as_ref().map(|(c, _)| *c),
                exit_signal: p.exit.as_ref().map(|(_, s)| s.clone()),
                last_start_reason: p.reason,
                restarts: p.restarts,
                memory_restarts: p.memory_restarts,
                last_memory_restart_at: p.last_memory_restart_at.clone(),
                crash_gate: p.crash_gate,
                stop_requested: p.stop_requested,
                restart_pending: p.restart_timer.is_some(),
                logs: p.logs.to_vec(),
                pipes,
                adopted_root: p.adopted.as_ref().map(|a| a.root),
                handoff: p.handoff,
            });
        }
        Ok((docs, fds))
    }

    /// Takes over the processes of a previous program: the same pids and
    /// groups, counters and output, pipes watched again. A child that
    /// exited during the handover is a zombie now: the next reap finds it
    /// by pid and its restart policy applies as usual.
    pub(super) fn import(&mut self, docs: Vec<ProcDoc>) {
        let now = Instant::now();
        for d in docs {
            let spec = match d.spec.to_spec() {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("rollbridge: cannot take over process {}: {e}", d.spec.id);
                    continue;
                }
            };
            let key = d.key;
            let mut m = Managed::new(spec);
            m.state = d.state;
            m.generation = d.generation;
            m.leader = d.pid;
            m.pgid = d.pgid;
            m.marker = Marker::from_env(&m.spec.env);
            m.started = d.started_at.map(|iso| {
                let age = Duration::from_millis(d.uptime_ms.unwrap_or(0));
                (iso, now.checked_sub(age).unwrap_or(now))
            });
            m.exit = match (d.exit_code, d.exit_signal) {
                (Some(c), Some(s)) => Some((c, s)),
                (Some(c), None) => Some((c, None)),
                (None, Some(s)) => Some((None, s)),
                (None, None) => None,
            };
            m.reason = d.last_start_reason;
            m.restarts = d.restarts;
            m.memory_restarts = d.memory_restarts;
            m.last_memory_restart_at = d.last_memory_restart_at;
            m.crash_gate = d.crash_gate;
            m.handoff = d.handoff;
            m.stop_requested = d.stop_requested;
            for line in d.logs {
                m.logs.push(line);
            }
            let generation = m.generation;
            if d.restart_pending {
                let at = now + Duration::from_millis(m.spec.restart_delay_ms);
                m.restart_timer = Some(
                    self.timers
                        .insert(at, TimerKind::Restart { key, generation }),
                );
            }
            if let (Some(mem), Some(_)) = (m.spec.memory.as_ref(), m.leader) {
                let at = now + Duration::from_millis(mem.check_interval_ms.max(1));
                m.memory_timer = Some(
                    self.timers
                        .insert(at, TimerKind::MemorySample { key, generation }),
                );
            }
            // Still not our child: watched by a pidfd opened here again.
            let mut adopted_gone = false;
            match (d.adopted_root, m.leader) {
                (Some(root), Some(pid)) => match self.watch_adopted(pid) {
                    Some(pidfd) => {
                        m.adopted = Some(AdoptedRun {
                            root,
                            pidfd: Some(pidfd),
                        })
                    }
                    None => adopted_gone = true,
                },
                (Some(root), None) => m.adopted = Some(AdoptedRun { root, pidfd: None }),
                (None, Some(pid)) => {
                    self.by_pid.insert(pid, (key, generation));
                }
                (None, None) => {}
            }
            self.procs.insert(key, m);
            for pipe in d.pipes {
                crate::inherit::set_cloexec(pipe.fd);
                // SAFETY: the previous program passed this descriptor to us
                // alone, named in the handover document.
                let fd = unsafe { OwnedFd::from_raw_fd(pipe.fd) };
                if let Some(p) = self
                    .add_pipe(key, pipe.stream, fd)
                    .and_then(|t| self.pipes.get_mut(&t))
                {
                    p.splitter = LineSplitter::resume(pipe.partial, pipe.skipping);
                }
            }
            if adopted_gone {
                // Exited during the handover: an exit nobody saw.
                self.leader_gone(key, generation, None, None, true);
            }
        }
    }
}
