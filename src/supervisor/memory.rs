//! Memory supervision: sample the RSS of every member of
//! a process group from `/proc`, and decide (purely) between nothing, a
//! warning and a memory restart.

use std::time::Instant;

use crate::config::{MemoryConfig, RestartConfig};

use super::restart::{RestartDecision, RestartHistory};
use super::status::ChildSample;

/// Members of process group `pgid` by pid, with `comm` and `VmRSS`.
/// `None` when no member was found (keep the previous sample) or there is
/// no `/proc`.
pub fn sample_group(pgid: i32) -> Option<Vec<ChildSample>> {
    let dir = std::fs::read_dir("/proc").ok()?;
    let mut members = Vec::new();
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((state, pgrp)) = parse_stat(&stat) else {
            continue;
        };
        if pgrp != pgid || state == 'Z' || state == 'X' {
            continue;
        }
        let command = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|c| c.trim_end_matches('\n').to_owned())
            .unwrap_or_default();
        let rss_bytes = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| parse_vmrss(&s));
        members.push(ChildSample {
            command,
            pid,
            rss_bytes,
        });
    }
    if members.is_empty() {
        return None;
    }
    members.sort_by_key(|m| m.pid);
    Some(members)
}

/// `(state, pgrp)` from `/proc/<pid>/stat` (the comm field may contain
/// spaces and parentheses: parse after the last `)`).
pub fn parse_stat(stat: &str) -> Option<(char, i32)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((state, pgrp))
}

/// `VmRSS` in bytes from `/proc/<pid>/status`.
pub fn parse_vmrss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Sum over measured members (`None` when none was measured).
pub fn total_rss(members: &[ChildSample]) -> Option<u64> {
    let measured: Vec<u64> = members.iter().filter_map(|m| m.rss_bytes).collect();
    (!measured.is_empty()).then(|| measured.iter().sum())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryVerdict {
    Fine,
    /// Emit `memory warning` (once until re-armed).
    Warn,
    /// Emit `memory limit exceeded` and restart.
    Restart,
}

/// Decides on one sample; `warned` is the re-arm flag (updated).
pub fn judge(rss: u64, cfg: &MemoryConfig, warned: &mut bool) -> MemoryVerdict {
    if rss > cfg.limit_bytes {
        return MemoryVerdict::Restart;
    }
    if cfg.warn_bytes > 0 {
        if rss > cfg.warn_bytes {
            if !*warned {
                *warned = true;
                return MemoryVerdict::Warn;
            }
        } else {
            *warned = false;
        }
    }
    MemoryVerdict::Fine
}

/// When to start again after a memory restart's stop at `now`. The first
/// one starts at once, as a memory restart always did; each repeat within
/// `windowMs` (ever, when it is 0) waits the crash schedule shifted by one
/// (`restartDelayMs`, then `× backoffFactor` each time, capped by
/// `maxDelayMs`), and `maxRestarts` bounds them like crashes. `history`
/// holds the process's memory restarts only, so the two budgets stay apart.
pub fn restart_backoff(
    history: &mut RestartHistory,
    cfg: &RestartConfig,
    base_ms: u64,
    now: Instant,
) -> RestartDecision {
    history.decide_repeat(cfg, base_ms, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn restart(max: Option<u64>, window: u64, factor: f64, cap: u64) -> RestartConfig {
        RestartConfig {
            max_restarts: max,
            window_ms: window,
            backoff_factor: factor,
            max_delay_ms: cap,
        }
    }

    fn delays(h: &mut RestartHistory, c: &RestartConfig, base: u64, at: &[u64]) -> Vec<String> {
        let t0 = Instant::now();
        at.iter()
            .map(
                |ms| match restart_backoff(h, c, base, t0 + Duration::from_millis(*ms)) {
                    RestartDecision::After(d) => d.as_millis().to_string(),
                    RestartDecision::LimitReached => "limit".into(),
                },
            )
            .collect()
    }

    #[test]
    fn repeated_memory_restarts_back_off_and_cap() {
        let mut h = RestartHistory::default();
        let c = restart(None, 0, 2.0, 500);
        assert_eq!(
            delays(&mut h, &c, 100, &[0, 10, 20, 30, 40, 50]),
            ["0", "100", "200", "400", "500", "500"]
        );
    }

    #[test]
    fn default_policy_restarts_at_once_then_waits_the_restart_delay() {
        let mut h = RestartHistory::default();
        let c = restart(None, 0, 1.0, 0);
        assert_eq!(delays(&mut h, &c, 1000, &[0, 1, 2]), ["0", "1000", "1000"]);
    }

    #[test]
    fn memory_restarts_stop_at_max_restarts_until_the_window_forgets() {
        let mut h = RestartHistory::default();
        let c = restart(Some(1), 10_000, 1.0, 0);
        assert_eq!(
            delays(&mut h, &c, 50, &[0, 100, 9_999, 10_000]),
            ["0", "limit", "limit", "0"]
        );
    }

    #[test]
    fn stat_fields_survive_odd_command_names() {
        assert_eq!(
            parse_stat("42 (a) b (c)) S 1 4242 4242 0 -1"),
            Some(('S', 4242))
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    fn cfg(limit: u64, warn: u64) -> MemoryConfig {
        MemoryConfig {
            limit_bytes: limit,
            warn_bytes: warn,
            check_interval_ms: 5000,
        }
    }

    #[test]
    fn stat_with_odd_comm_is_parsed_after_the_last_paren() {
        let stat = "1234 (my (odd) app) S 1 1200 1200 0 -1 4194560 ...";
        assert_eq!(parse_stat(stat), Some(('S', 1200)));
    }

    #[test]
    fn vmrss_is_read_in_bytes() {
        let status = "Name:\tsleep\nVmPeak:\t  1000 kB\nVmRSS:\t    512 kB\n";
        assert_eq!(parse_vmrss(status), Some(512 * 1024));
        assert_eq!(parse_vmrss("Name:\tkthread\n"), None);
    }

    #[test]
    fn total_skips_unmeasured_members() {
        let m = |rss| ChildSample {
            command: "x".into(),
            pid: 1,
            rss_bytes: rss,
        };
        assert_eq!(total_rss(&[m(Some(10)), m(None), m(Some(5))]), Some(15));
        assert_eq!(total_rss(&[m(None)]), None);
    }

    #[test]
    fn warning_fires_once_and_rearms_below_the_threshold() {
        let c = cfg(1000, 500);
        let mut warned = false;
        assert_eq!(judge(600, &c, &mut warned), MemoryVerdict::Warn);
        assert_eq!(judge(700, &c, &mut warned), MemoryVerdict::Fine);
        assert_eq!(judge(400, &c, &mut warned), MemoryVerdict::Fine);
        assert_eq!(judge(600, &c, &mut warned), MemoryVerdict::Warn);
    }

    #[test]
    fn above_the_limit_restarts() {
        let mut warned = false;
        assert_eq!(
            judge(1001, &cfg(1000, 0), &mut warned),
            MemoryVerdict::Restart
        );
        assert_eq!(judge(1000, &cfg(1000, 0), &mut warned), MemoryVerdict::Fine);
    }

    #[test]
    fn own_process_group_can_be_sampled() {
        // SAFETY: getpgrp has no preconditions.
        let pgid = unsafe { libc::getpgrp() };
        let members = sample_group(pgid).expect("this process is a member");
        assert!(members.iter().any(|m| m.pid == std::process::id()));
        assert!(total_rss(&members).unwrap() > 0);
    }
}
