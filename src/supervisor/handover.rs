//! The supervisor's part of a daemon upgrade: every managed process as a
//! [`ProcDoc`] (definition, pid and group, counters, captured output, the
//! output pipes by descriptor number). While the old program prepares the
//! `execve` the supervisor thread is frozen: it neither reads pipes nor
//! reaps, so a child that exits in that window stays a zombie until the
//! new program's first `waitpid` finds it and its restart policy applies.

use serde::{Deserialize, Serialize};

use super::output::{LogLine, Stream};
use super::{ProcState, ProcessSpec, StartReason};
use crate::config::{GracefulStop, LifecycleConfig, MemoryConfig, RestartConfig, Signal};

/// One managed process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcDoc {
    pub key: u64,
    pub spec: SpecDoc,
    pub state: ProcState,
    pub generation: u64,
    /// Group leader while it runs (= its process group).
    pub pid: Option<i32>,
    pub pgid: Option<i32>,
    pub started_at: Option<String>,
    pub uptime_ms: Option<u64>,
    pub exit_code: Option<Option<i32>>,
    pub exit_signal: Option<Option<String>>,
    pub last_start_reason: Option<StartReason>,
    pub restarts: u64,
    pub memory_restarts: u64,
    pub last_memory_restart_at: Option<String>,
    pub crash_gate: bool,
    pub stop_requested: bool,
    /// A crash restart was waiting for its delay.
    pub restart_pending: bool,
    pub logs: Vec<LogLine>,
    pub pipes: Vec<PipeDoc>,
    /// Taken over from a crashed daemon, so not our child: the parent its
    /// descendants hang from. The next program watches it by pidfd again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adopted_root: Option<i32>,
    /// A memory breach asks the daemon for a replacement.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub handoff: bool,
}

/// An output pipe's read end and the partial line read from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipeDoc {
    pub fd: i32,
    pub stream: Stream,
    pub partial: Vec<u8>,
    pub skipping: bool,
}

/// [`ProcessSpec`] as data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpecDoc {
    pub id: String,
    pub release_id: Option<String>,
    pub command: String,
    pub cwd: String,
    pub env: Vec<(String, String)>,
    pub stop_signal: String,
    /// `None`: wait indefinitely.
    pub graceful_stop_ms: Option<u64>,
    pub restart_delay_ms: u64,
    pub max_restarts: Option<u64>,
    pub window_ms: u64,
    pub backoff_factor: f64,
    pub max_delay_ms: u64,
    pub quiet_command: Option<String>,
    pub drain_command: Option<String>,
    pub stop_command: Option<String>,
    pub hook_drain_timeout_ms: u64,
    pub output_lines: usize,
    /// `[limitBytes, warnBytes, checkIntervalMs]`.
    pub memory: Option<(u64, u64, u64)>,
}

impl SpecDoc {
    pub fn from_spec(s: &ProcessSpec) -> SpecDoc {
        SpecDoc {
            id: s.id.clone(),
            release_id: s.release_id.clone(),
            command: s.command.clone(),
            cwd: s.cwd.clone(),
            env: s.env.clone(),
            stop_signal: s.stop_signal.name.to_owned(),
            graceful_stop_ms: match s.graceful_stop {
                GracefulStop::Ms(ms) => Some(ms),
                GracefulStop::Indefinite => None,
            },
            restart_delay_ms: s.restart_delay_ms,
            max_restarts: s.restart.max_restarts,
            window_ms: s.restart.window_ms,
            backoff_factor: s.restart.backoff_factor,
            max_delay_ms: s.restart.max_delay_ms,
            quiet_command: s.lifecycle.quiet_command.clone(),
            drain_command: s.lifecycle.drain_command.clone(),
            stop_command: s.lifecycle.stop_command.clone(),
            hook_drain_timeout_ms: s.lifecycle.drain_timeout_ms,
            output_lines: s.output_lines,
            memory: s
                .memory
                .as_ref()
                .map(|m| (m.limit_bytes, m.warn_bytes, m.check_interval_ms)),
        }
    }

    pub fn to_spec(&self) -> Result<ProcessSpec, String> {
        let stop_signal = Signal::from_name(&self.stop_signal)
            .ok_or_else(|| format!("unknown stop signal {}", self.stop_signal))?;
        Ok(ProcessSpec {
            id: self.id.clone(),
            release_id: self.release_id.clone(),
            command: self.command.clone(),
            cwd: self.cwd.clone(),
            env: self.env.clone(),
            stop_signal,
            graceful_stop: self
                .graceful_stop_ms
                .map_or(GracefulStop::Indefinite, GracefulStop::Ms),
            restart_delay_ms: self.restart_delay_ms,
            restart: RestartConfig {
                max_restarts: self.max_restarts,
                window_ms: self.window_ms,
                backoff_factor: self.backoff_factor,
                max_delay_ms: self.max_delay_ms,
            },
            lifecycle: LifecycleConfig {
                quiet_command: self.quiet_command.clone(),
                drain_command: self.drain_command.clone(),
                stop_command: self.stop_command.clone(),
                drain_timeout_ms: self.hook_drain_timeout_ms,
            },
            output_lines: self.output_lines,
            memory: self.memory.map(
                |(limit_bytes, warn_bytes, check_interval_ms)| MemoryConfig {
                    limit_bytes,
                    warn_bytes,
                    check_interval_ms,
                },
            ),
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample() -> ProcDoc {
        let mut spec = ProcessSpec::simple("web", "node server.js", "/srv/app/v1");
        spec.env = vec![("PORT".into(), "3000".into())];
        spec.release_id = Some("v1".into());
        spec.memory = Some(MemoryConfig {
            limit_bytes: 1 << 30,
            warn_bytes: 0,
            check_interval_ms: 5000,
        });
        ProcDoc {
            key: 3,
            spec: SpecDoc::from_spec(&spec),
            state: ProcState::Running,
            generation: 2,
            pid: Some(4242),
            pgid: Some(4242),
            started_at: Some("2024-01-01T00:00:00.000Z".into()),
            uptime_ms: Some(1000),
            exit_code: None,
            exit_signal: None,
            last_start_reason: Some(StartReason::Crash),
            restarts: 1,
            memory_restarts: 0,
            last_memory_restart_at: None,
            crash_gate: true,
            stop_requested: false,
            restart_pending: false,
            logs: vec![LogLine {
                at: "t".into(),
                line: "listening".into(),
                stream: Stream::Stdout,
            }],
            pipes: vec![PipeDoc {
                fd: 12,
                stream: Stream::Stderr,
                partial: b"half a li".to_vec(),
                skipping: false,
            }],
            adopted_root: Some(1),
            handoff: true,
        }
    }

    #[test]
    fn process_doc_of_the_first_format_reads_as_a_child_without_handoff() {
        let mut v = serde_json::to_value(sample()).unwrap();
        let o = v.as_object_mut().unwrap();
        o.remove("adoptedRoot");
        o.remove("handoff");
        let back: ProcDoc = serde_json::from_value(v).unwrap();
        assert_eq!(back.adopted_root, None);
        assert!(!back.handoff);
    }

    #[test]
    fn process_spec_round_trips_through_its_doc() {
        let mut spec = ProcessSpec::simple("worker#2", "sleep 9", "/tmp");
        spec.graceful_stop = GracefulStop::Indefinite;
        spec.stop_signal = Signal::from_name("SIGINT").unwrap();
        spec.lifecycle.stop_command = Some("kill -USR2 $PID".into());
        let back = SpecDoc::from_spec(&spec).to_spec().unwrap();
        assert_eq!(back, spec);
    }
}
