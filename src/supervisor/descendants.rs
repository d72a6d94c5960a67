//! Every descendant of a managed process, not only its process group.
//!
//! An app that double-forks and calls `setsid` leaves the group the stop
//! signal goes to. Its re-parented process still belongs to the daemon (a
//! child subreaper), and it still carries the `ROLLBRIDGE_*` variables that
//! name its application, release, process and replica. So a process counts
//! as a descendant of a managed run when its parent chain leads to the
//! daemon and one of these holds: it is in the run's process group, its
//! parent chain passes through the run's leader, or its environment names
//! the run. The chain condition keeps other daemons' processes and orphans
//! of a previous daemon out, whatever their environment says.
//!
//! Each one is remembered with its start time (`/proc/<pid>/stat` field
//! 22) and only signalled after checking it is still the same process, so
//! a reused pid is never hit.

use std::collections::{HashMap, HashSet};

use super::status::ChildSample;

/// The variables that tell one managed instance's processes apart.
const MARKER_KEYS: [&str; 4] = [
    "ROLLBRIDGE_APPLICATION",
    "ROLLBRIDGE_RELEASE_ID",
    "ROLLBRIDGE_PROCESS_ID",
    "ROLLBRIDGE_REPLICA_INDEX",
];

/// Part of the identity when present (ported processes).
const PORT_KEY: &str = "ROLLBRIDGE_PORT";

/// The injected identity of one instance, as `KEY=value` entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker(Vec<Vec<u8>>);

impl Marker {
    /// From the instance's complete environment; `None` unless every
    /// identifying variable is present (then matching would be guesswork).
    pub fn from_env(env: &[(String, String)]) -> Option<Marker> {
        let mut entries = Vec::with_capacity(MARKER_KEYS.len());
        for key in MARKER_KEYS {
            let value = env.iter().rev().find(|(k, _)| k == key)?;
            entries.push(format!("{key}={}", value.1).into_bytes());
        }
        // Two instances of one process run side by side while one replaces
        // the other: their ports tell them apart.
        if let Some((key, value)) = env.iter().rev().find(|(k, _)| k == PORT_KEY) {
            entries.push(format!("{key}={value}").into_bytes());
        }
        Some(Marker(entries))
    }

    /// Whether a `/proc/<pid>/environ` blob (NUL-separated) carries every
    /// entry of the marker.
    pub fn matches(&self, environ: &[u8]) -> bool {
        let vars: HashSet<&[u8]> = environ.split(|b| *b == 0).collect();
        self.0.iter().all(|e| vars.contains(e.as_slice()))
    }
}

/// One process as `/proc/<pid>/stat` describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcInfo {
    pub pid: i32,
    pub state: char,
    pub ppid: i32,
    pub pgrp: i32,
    /// Start time in clock ticks since boot: with the pid, the identity.
    pub start: u64,
}

impl ProcInfo {
    pub fn ident(&self) -> Ident {
        Ident {
            pid: self.pid,
            start: self.start,
        }
    }

    fn live(&self) -> bool {
        self.state != 'Z' && self.state != 'X'
    }
}

/// A process identity that survives pid reuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ident {
    pub pid: i32,
    pub start: u64,
}

/// Parses `/proc/<pid>/stat` (fields after the last `)`, since the command
/// name may contain anything).
pub fn parse_stat(stat: &str) -> Option<ProcInfo> {
    let open = stat.find('(')?;
    let pid = stat[..open].trim().parse().ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state); start time is field 22.
    Some(ProcInfo {
        pid,
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        pgrp: fields.get(2)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
    })
}

fn read_info(pid: i32) -> Option<ProcInfo> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Every process in `/proc` (empty without procfs).
pub fn process_table() -> Vec<ProcInfo> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(read_info)
        .collect()
}

/// What identifies one run of a managed process.
#[derive(Debug, Clone)]
pub struct Run<'a> {
    /// The daemon (the subreaper every escaped process ends up under).
    pub root: i32,
    /// The group leader while it lives.
    pub leader: Option<i32>,
    /// The run's process group.
    pub pgid: i32,
    pub marker: Option<&'a Marker>,
    /// Groups that are not the run's even if they match (its hooks).
    pub exclude_pgrps: &'a HashSet<i32>,
}

/// Pure selection over a process table; `environ_matches` is asked only
/// about processes under `root` not already selected otherwise.
pub fn select(
    table: &[ProcInfo],
    run: &Run,
    mut environ_matches: impl FnMut(i32) -> bool,
) -> Vec<ProcInfo> {
    let by_pid: HashMap<i32, &ProcInfo> = table.iter().map(|p| (p.pid, p)).collect();
    let mut out = Vec::new();
    for p in table {
        if !p.live() || p.pid == run.root || run.exclude_pgrps.contains(&p.pgrp) {
            continue;
        }
        // Walk up to the daemon; bounded by the table size against loops.
        let mut under_root = false;
        let mut via_leader = run.leader == Some(p.pid);
        let mut cur = p.ppid;
        for _ in 0..=table.len() {
            if cur == run.root {
                under_root = true;
                break;
            }
            if run.leader == Some(cur) {
                via_leader = true;
            }
            match by_pid.get(&cur) {
                Some(parent) if cur > 1 => cur = parent.ppid,
                _ => break,
            }
        }
        if !under_root {
            continue;
        }
        let in_group = run.pgid > 0 && p.pgrp == run.pgid;
        if in_group || via_leader || (run.marker.is_some() && environ_matches(p.pid)) {
            out.push(*p);
        }
    }
    out.sort_by_key(|p| p.pid);
    out
}

/// [`select`] over the live `/proc`.
pub fn scan(run: &Run) -> Vec<ProcInfo> {
    let table = process_table();
    select(&table, run, |pid| {
        let Some(marker) = run.marker else {
            return false;
        };
        std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| marker.matches(&env))
    })
}

/// Whether `ident` is still that very process and not a zombie.
pub fn still_alive(ident: Ident) -> bool {
    read_info(ident.pid).is_some_and(|p| p.start == ident.start && p.live())
}

/// Sends `sig` to `ident` only if it is still the same process. Uses a
/// pidfd where the kernel has one, so the check and the signal cannot be
/// split by a pid reuse; otherwise checks right before `kill`.
pub fn signal_verified(ident: Ident, sig: i32) {
    if ident.pid <= 1 {
        return;
    }
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, ident.pid, 0) };
    if fd >= 0 {
        let fd = fd as i32;
        if still_alive(ident) {
            // SAFETY: the fd is ours; a null siginfo is allowed.
            unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    fd,
                    sig,
                    std::ptr::null::<libc::siginfo_t>(),
                    0,
                );
            }
        }
        // SAFETY: closing the fd opened above.
        unsafe { libc::close(fd) };
        return;
    }
    if still_alive(ident) {
        // SAFETY: plain kill on a pid just verified.
        unsafe { libc::kill(ident.pid, sig) };
    }
}

/// `children` entries (comm, VmRSS) for the selected processes.
pub fn samples(found: &[ProcInfo]) -> Vec<ChildSample> {
    found
        .iter()
        .map(|p| ChildSample {
            command: std::fs::read_to_string(format!("/proc/{}/comm", p.pid))
                .map(|c| c.trim_end_matches('\n').to_owned())
                .unwrap_or_default(),
            pid: p.pid as u32,
            rss_bytes: std::fs::read_to_string(format!("/proc/{}/status", p.pid))
                .ok()
                .and_then(|s| super::memory::parse_vmrss(&s)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pid: i32, ppid: i32, pgrp: i32) -> ProcInfo {
        ProcInfo {
            pid,
            state: 'S',
            ppid,
            pgrp,
            start: pid as u64 * 10,
        }
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn marker() -> Marker {
        Marker::from_env(&env(&[
            ("ROLLBRIDGE_APPLICATION", "app"),
            ("ROLLBRIDGE_RELEASE_ID", "v1"),
            ("ROLLBRIDGE_PROCESS_ID", "web"),
            ("ROLLBRIDGE_REPLICA_INDEX", "0"),
        ]))
        .unwrap()
    }

    #[test]
    fn stat_gives_ppid_group_and_start_time() {
        let stat =
            "4242 (a (b) c) S 7 4200 4200 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 987654 1000 10";
        let info = parse_stat(stat).unwrap();
        assert_eq!(
            info,
            ProcInfo {
                pid: 4242,
                state: 'S',
                ppid: 7,
                pgrp: 4200,
                start: 987654
            }
        );
        assert_eq!(parse_stat("12 (x) S 1 2"), None);
    }

    #[test]
    fn marker_needs_every_identifying_variable_and_matches_exact_entries() {
        assert!(Marker::from_env(&env(&[("ROLLBRIDGE_APPLICATION", "app")])).is_none());
        let m = marker();
        let blob = b"PATH=/bin\0ROLLBRIDGE_APPLICATION=app\0ROLLBRIDGE_RELEASE_ID=v1\0ROLLBRIDGE_PROCESS_ID=web\0ROLLBRIDGE_REPLICA_INDEX=0\0";
        assert!(m.matches(blob));
        let other = b"ROLLBRIDGE_APPLICATION=app\0ROLLBRIDGE_RELEASE_ID=v10\0ROLLBRIDGE_PROCESS_ID=web\0ROLLBRIDGE_REPLICA_INDEX=0\0";
        assert!(!m.matches(other));
    }

    #[test]
    fn setsid_escapee_under_the_daemon_is_found_by_its_environment() {
        let daemon = 100;
        // 200 leads group 200; 300 escaped (own session), re-parented to the
        // daemon; 400 is its child; 500 is another daemon's process.
        let table = [
            p(daemon, 1, daemon),
            p(200, daemon, 200),
            p(201, 200, 200),
            p(300, daemon, 300),
            p(400, 300, 300),
            p(500, 1, 500),
        ];
        let m = marker();
        let none = HashSet::new();
        let run = Run {
            root: daemon,
            leader: Some(200),
            pgid: 200,
            marker: Some(&m),
            exclude_pgrps: &none,
        };
        let found: Vec<i32> = select(&table, &run, |pid| pid == 300 || pid == 500)
            .iter()
            .map(|p| p.pid)
            .collect();
        assert_eq!(found, [200, 201, 300]);
    }

    #[test]
    fn chain_through_the_leader_counts_without_environment() {
        let table = [p(200, 100, 200), p(210, 200, 210), p(211, 210, 211)];
        let none = HashSet::new();
        let run = Run {
            root: 100,
            leader: Some(200),
            pgid: 200,
            marker: None,
            exclude_pgrps: &none,
        };
        let found: Vec<i32> = select(&table, &run, |_| false)
            .iter()
            .map(|p| p.pid)
            .collect();
        assert_eq!(found, [200, 210, 211]);
    }

    #[test]
    fn orphans_of_another_parent_zombies_and_hooks_are_left_out() {
        let mut zombie = p(220, 100, 220);
        zombie.state = 'Z';
        let table = [p(210, 1, 210), zombie, p(230, 100, 230)];
        let hooks: HashSet<i32> = [230].into();
        let m = marker();
        let run = Run {
            root: 100,
            leader: None,
            pgid: 200,
            marker: Some(&m),
            exclude_pgrps: &hooks,
        };
        assert!(select(&table, &run, |_| true).is_empty());
    }

    #[test]
    fn a_reused_pid_is_not_the_same_process() {
        let me = std::process::id() as i32;
        let info = read_info(me).unwrap();
        assert!(still_alive(info.ident()));
        assert!(!still_alive(Ident {
            pid: me,
            start: info.start + 1
        }));
    }

    #[test]
    fn a_replacement_on_another_port_is_not_taken_for_the_replaced_instance() {
        let env = |port: &str| -> Vec<(String, String)> {
            MARKER_KEYS
                .iter()
                .map(|k| (k.to_string(), "x".to_string()))
                .chain([(PORT_KEY.to_string(), port.to_string())])
                .collect()
        };
        let environ = |port: &str| -> Vec<u8> {
            env(port)
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("\0")
                .into_bytes()
        };
        let old = Marker::from_env(&env("18000")).unwrap();
        assert!(old.matches(&environ("18000")));
        assert!(!old.matches(&environ("18001")));
    }
}
