//! The companion check before the switch: a deploy whose companions (or
//! handoff services) already died is not a working release, however healthy
//! its proxied process looks.
//!
//! After the health check, each of them must still be on its first run,
//! `running`, and have been up for the settle window: `min(1 s, health
//! timeoutMs)` (1 s when the health check is off), measured from its own
//! start. So a companion that crashes 300 ms after start fails the deploy
//! even when the health check passed in 50 ms, and a deploy waits at most one
//! second more than it used to. Any exit counts, code 0 included.

use std::collections::HashMap;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError};

use super::Named;
use crate::config::HealthConfig;
use crate::supervisor::{ProcKey, ProcState, ProcessStatus, StartReason, SupervisorHandle};

/// Longest settle window.
pub const SETTLE: Duration = Duration::from_secs(1);

/// Output lines quoted in the failure message.
const LAST_LINES: usize = 5;

/// An exit seen on the deploy's exit channel: code, signal name.
pub type Exit = (Option<i32>, Option<String>);

/// Exits by key, newest last, gathered while the deploy waited.
pub type SeenExits = HashMap<ProcKey, Exit>;

/// The settle window for a release whose proxied process has `health`.
pub fn settle_window(health: Option<&HealthConfig>) -> Duration {
    match health {
        Some(h) => SETTLE.min(Duration::from_millis(h.timeout_ms)),
        None => SETTLE,
    }
}

/// Why `status` shows a process that has exited since its deploy start,
/// or `None` while it is still on that first run.
pub fn exited(status: &ProcessStatus, seen: Option<&Exit>) -> Option<String> {
    let first_run = status.state == ProcState::Running
        && status.last_start_reason == Some(StartReason::Deploy)
        && status.restarts == 0
        && status.memory_restarts == 0;
    if first_run && seen.is_none() {
        return None;
    }
    let (code, signal) = match seen {
        Some((c, s)) => (*c, s.clone()),
        None => (
            status.exit_code.flatten(),
            status.exit_signal.clone().flatten(),
        ),
    };
    let how = match (code, signal) {
        (_, Some(sig)) => format!("signal {sig}"),
        (Some(c), None) => format!("code {c}"),
        (None, None) if status.memory_restarts > 0 => "memory limit exceeded".into(),
        (None, None) => "unknown status".into(),
    };
    let lines: Vec<&str> = status
        .logs
        .iter()
        .rev()
        .take(LAST_LINES)
        .rev()
        .map(|l| l.line.as_str())
        .collect();
    let output = if lines.is_empty() {
        "no output".to_owned()
    } else {
        format!("last output: {}", lines.join(" | "))
    };
    Some(format!(
        "Companion \"{}\" exited ({how}) after it was started (restarts: {}); {output}",
        status.id, status.restarts
    ))
}

/// Waits until every process in `list` has been up for `settle`, failing
/// as soon as one has exited. `exits` carries unrequested exits.
pub fn check(
    supervisor: &SupervisorHandle,
    list: &[Named],
    settle: Duration,
    exits: &Receiver<(ProcKey, Option<i32>, Option<String>)>,
    seen: &mut SeenExits,
) -> Result<(), String> {
    if list.is_empty() {
        return Ok(());
    }
    let keys: Vec<ProcKey> = list.iter().map(|n| n.key).collect();
    loop {
        while let Ok((k, code, signal)) = exits.try_recv() {
            seen.insert(k, (code, signal));
        }
        let snaps = supervisor.snapshot(keys.clone());
        let mut youngest = settle;
        for (named, snap) in list.iter().zip(snaps) {
            let Some(status) = snap else {
                return Err(format!("Companion \"{}\" is gone", named.id));
            };
            if let Some(why) = exited(&status, seen.get(&named.key)) {
                return Err(why);
            }
            let up = Duration::from_millis(status.uptime_ms.unwrap_or(0));
            youngest = youngest.min(up);
        }
        if youngest >= settle {
            return Ok(());
        }
        match exits.recv_timeout(settle - youngest) {
            Ok((k, code, signal)) => {
                seen.insert(k, (code, signal));
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                std::thread::sleep(settle - youngest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::output::{LogLine, Stream};

    fn status(state: ProcState, reason: StartReason, restarts: u64) -> ProcessStatus {
        ProcessStatus {
            children: vec![],
            command: "c".into(),
            cwd: "/".into(),
            exit_code: None,
            exit_signal: None,
            id: "worker".into(),
            last_memory_restart_at: None,
            last_start_reason: Some(reason),
            logs: ["a", "b", "boom"]
                .iter()
                .map(|l| LogLine {
                    at: "t".into(),
                    line: (*l).into(),
                    stream: Stream::Stderr,
                })
                .collect(),
            memory_restarts: 0,
            pid: Some(1),
            adopted: None,
            restarts,
            rss_bytes: None,
            started_at: Some("t".into()),
            state,
            uptime_ms: Some(10),
        }
    }

    #[test]
    fn companion_on_its_first_run_passes() {
        assert_eq!(
            exited(&status(ProcState::Running, StartReason::Deploy, 0), None),
            None
        );
    }

    #[test]
    fn crash_restarted_companion_fails_with_its_exit_and_last_lines() {
        let s = status(ProcState::Running, StartReason::Crash, 1);
        let why = exited(&s, Some(&(Some(3), None))).unwrap();
        assert_eq!(
            why,
            "Companion \"worker\" exited (code 3) after it was started (restarts: 1); last output: a | b | boom"
        );
    }

    #[test]
    fn companion_waiting_for_its_restart_fails_with_its_signal() {
        let mut s = status(ProcState::Failed, StartReason::Deploy, 0);
        s.exit_code = Some(None);
        s.exit_signal = Some(Some("SIGKILL".into()));
        assert!(exited(&s, None).unwrap().contains("(signal SIGKILL)"));
    }

    #[test]
    fn settle_window_is_one_second_at_most_and_never_beyond_the_health_timeout() {
        let hc = |ms| HealthConfig {
            path: "/ping".into(),
            timeout_ms: ms,
            interval_ms: 250,
            start_delay_ms: 0,
            watch: Default::default(),
        };
        assert_eq!(settle_window(Some(&hc(30_000))), SETTLE);
        assert_eq!(settle_window(Some(&hc(200))), Duration::from_millis(200));
        assert_eq!(settle_window(None), SETTLE);
    }
}
