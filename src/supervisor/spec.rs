//! What the supervisor needs to run one process instance: everything already
//! rendered (templates and `ROLLBRIDGE_*` variables are the caller's job).

use crate::config::{
    GracefulStop, LifecycleConfig, MemoryConfig, ProcessConfig, RestartConfig, Signal,
};

#[derive(Debug, Clone, PartialEq)]
pub struct ProcessSpec {
    /// Instance id (`worker`, `worker#2`).
    pub id: String,
    /// Release whose definition the process uses (event `releaseId`).
    pub release_id: Option<String>,
    /// Rendered shell command, run as `/bin/sh -c <command>`.
    pub command: String,
    /// Rendered working directory.
    pub cwd: String,
    /// The complete environment, final precedence already applied
    /// (daemon env, then `ROLLBRIDGE_*`, then the process's own `env`).
    pub env: Vec<(String, String)>,
    pub stop_signal: Signal,
    pub graceful_stop: GracefulStop,
    pub restart_delay_ms: u64,
    pub restart: RestartConfig,
    pub lifecycle: LifecycleConfig,
    pub output_lines: usize,
    /// Memory supervision (`None` = off).
    pub memory: Option<MemoryConfig>,
}

impl ProcessSpec {
    /// Takes the stop/restart/output settings from the config entry and the
    /// rendered command, cwd and env from the caller.
    pub fn from_config(
        cfg: &ProcessConfig,
        instance_id: String,
        release_id: Option<String>,
        command: String,
        cwd: String,
        env: Vec<(String, String)>,
    ) -> ProcessSpec {
        ProcessSpec {
            id: instance_id,
            release_id,
            command,
            cwd,
            env,
            stop_signal: cfg.stop_signal,
            graceful_stop: cfg.graceful_stop,
            restart_delay_ms: cfg.restart_delay_ms,
            restart: cfg.restart.clone(),
            lifecycle: cfg.lifecycle.clone(),
            output_lines: cfg.output_lines,
            memory: cfg.memory.clone(),
        }
    }

    /// A spec with the contract's defaults, for tests and tools.
    pub fn simple(id: &str, command: &str, cwd: &str) -> ProcessSpec {
        ProcessSpec {
            id: id.to_owned(),
            release_id: None,
            command: command.to_owned(),
            cwd: cwd.to_owned(),
            env: std::env::vars().collect(),
            stop_signal: Signal::TERM,
            graceful_stop: GracefulStop::Ms(10_000),
            restart_delay_ms: 1000,
            restart: RestartConfig::default(),
            lifecycle: LifecycleConfig::default(),
            output_lines: 50,
            memory: None,
        }
    }
}
