//! Re-adoption after a daemon crash (`adoptOrphans`): the plan a start
//! follows, worked out from the state snapshot and what `/proc` says about
//! each recorded pid. Pure: the liveness facts are passed in.
//!
//! Per recorded process:
//! - alive, same start time, still leading its own process group: adopted;
//! - gone, or alive with another start time (a recycled pid): dropped,
//!   never signalled;
//! - alive without a recorded start time (older snapshot): cannot be told
//!   apart from a recycled pid, so it stays a report-only orphan;
//! - alive with the right start time but in another process group: not
//!   adoptable safely (its group cannot be signalled as ours); the start is
//!   refused as without `adoptOrphans`.
//!
//! A crash in the middle of a replacement of the proxied process leaves
//! two instances: the release names the one that serves (the old one up
//! to the switch, the new one after it), `replacing` lists the other. The
//! named one is adopted as usual; the other is adopted only to be stopped
//! (never left running unsupervised).
//!
//! A canary named by the snapshot (`canary`) comes back as the canary when
//! its release is recorded; its traffic share resumes once its proxied
//! process passes its health check.

pub mod resume;

use serde_json::Value;

use super::orphans::{self, Orphan};
use super::state::ReleaseState;
use crate::supervisor::StartReason;
use crate::supervisor::descendants::ProcInfo;

/// What became of one recorded pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No pid was recorded (the process was not running).
    NotRunning,
    Adopt {
        /// Its parent now: where its descendants are looked for.
        root: i32,
    },
    Gone,
    Reused,
    /// Alive, start time unknown: report-only orphan.
    Unverified,
    /// Alive and the same process, but no longer leading its group.
    GroupChanged,
}

impl Verdict {
    /// The event word for a dropped pid.
    pub fn dropped_reason(self) -> Option<&'static str> {
        match self {
            Verdict::Gone => Some("gone"),
            Verdict::Reused => Some("pid reused by another process"),
            _ => None,
        }
    }
}

/// One process as the snapshot recorded it, with its verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcRecord {
    pub id: String,
    pub pid: Option<u32>,
    pub restarts: u64,
    pub memory_restarts: u64,
    pub started_at: Option<String>,
    pub last_start_reason: Option<StartReason>,
    pub last_memory_restart_at: Option<String>,
    pub verdict: Verdict,
}

/// One retained release as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct ReleaseRecord {
    pub id: String,
    pub path: String,
    pub revision: String,
    pub state: ReleaseState,
    pub activated_at: Option<String>,
    pub drain_started_at: Option<String>,
    pub stopped_at: Option<String>,
    pub ports: Vec<(String, u16)>,
    pub processes: Vec<ProcRecord>,
}

/// The canary as recorded (status `canary`).
#[derive(Debug, Clone, PartialEq)]
pub struct CanaryRecord {
    pub release_id: String,
    pub percent: u8,
    pub since: String,
}

/// Everything a start with `adoptOrphans` takes over.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub active_release_id: Option<String>,
    /// The canary, when its release is recorded and is not the active one.
    pub canary: Option<CanaryRecord>,
    pub releases: Vec<ReleaseRecord>,
    pub services: Vec<ProcRecord>,
    pub singletons: Vec<ProcRecord>,
    /// Processes of a release that was still starting (never activated):
    /// adopted only to be stopped. (release id, process)
    pub starting: Vec<(Option<String>, ProcRecord)>,
    /// The instance a cut-short replacement ran besides the one its
    /// release names: adopted only to be stopped. (release id, process)
    pub replaced: Vec<(Option<String>, ProcRecord)>,
    /// Report-only orphans: the snapshot's own list and unverified pids.
    pub orphans: Vec<Orphan>,
}

impl Plan {
    /// Every process record with its release id, in snapshot order.
    pub fn records(&self) -> Vec<(Option<&str>, &ProcRecord)> {
        let mut out: Vec<(Option<&str>, &ProcRecord)> = Vec::new();
        for r in &self.releases {
            out.extend(r.processes.iter().map(|p| (Some(r.id.as_str()), p)));
        }
        out.extend(self.services.iter().map(|p| (None, p)));
        out.extend(self.singletons.iter().map(|p| (None, p)));
        out.extend(self.starting.iter().map(|(r, p)| (r.as_deref(), p)));
        out.extend(self.replaced.iter().map(|(r, p)| (r.as_deref(), p)));
        out
    }

    /// The processes a start adopts.
    pub fn adopted(&self) -> Vec<Orphan> {
        self.with(|v| matches!(v, Verdict::Adopt { .. }))
    }

    /// Recorded pids that are gone or recycled (never signalled).
    pub fn dropped(&self) -> Vec<(Orphan, &'static str)> {
        self.records()
            .into_iter()
            .filter_map(|(r, p)| {
                let why = p.verdict.dropped_reason()?;
                Some((orphan(r, p), why))
            })
            .collect()
    }

    /// Living processes that cannot be adopted safely (start refused).
    pub fn refused(&self) -> Vec<Orphan> {
        self.with(|v| v == Verdict::GroupChanged)
    }

    fn with(&self, keep: impl Fn(Verdict) -> bool) -> Vec<Orphan> {
        self.records()
            .into_iter()
            .filter(|(_, p)| keep(p.verdict))
            .map(|(r, p)| orphan(r, p))
            .collect()
    }
}

fn orphan(release_id: Option<&str>, p: &ProcRecord) -> Orphan {
    Orphan {
        id: p.id.clone(),
        pid: p.pid.unwrap_or(0),
        release_id: release_id.map(str::to_owned),
        ..Orphan::default()
    }
}

/// The verdict on one recorded pid from what `/proc` says now.
pub fn judge(
    pid: Option<u32>,
    start_time: Option<u64>,
    pgid: Option<u32>,
    live: Option<ProcInfo>,
) -> Verdict {
    let Some(pid) = pid else {
        return Verdict::NotRunning;
    };
    let Some(info) = live.filter(|i| i.state != 'Z' && i.state != 'X') else {
        return Verdict::Gone;
    };
    let Some(start) = start_time else {
        return Verdict::Unverified;
    };
    if info.start != start {
        return Verdict::Reused;
    }
    let group = pgid.unwrap_or(pid);
    if group != pid || i64::from(info.pgrp) != i64::from(pid) {
        return Verdict::GroupChanged;
    }
    Verdict::Adopt {
        root: if info.ppid > 0 { info.ppid } else { 1 },
    }
}

/// Builds the plan from a snapshot; `facts(pid)` is `/proc/<pid>/stat`.
pub fn plan(snapshot: &Value, facts: &dyn Fn(u32) -> Option<ProcInfo>) -> Plan {
    let arr = |v: &Value, k: &str| -> Vec<Value> {
        v.get(k)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let mut out = Plan {
        active_release_id: text(snapshot, "activeReleaseId"),
        ..Plan::default()
    };
    for r in arr(snapshot, "releases") {
        let Some(id) = text(&r, "releaseId") else {
            continue;
        };
        let ports = r
            .get("ports")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), u16::try_from(v.as_u64()?).ok()?)))
                    .collect()
            })
            .unwrap_or_default();
        out.releases.push(ReleaseRecord {
            path: text(&r, "releasePath").unwrap_or_default(),
            revision: text(&r, "revision").unwrap_or_else(|| id.clone()),
            state: release_state(r.get("state")),
            activated_at: text(&r, "activatedAt"),
            drain_started_at: text(&r, "drainStartedAt"),
            stopped_at: text(&r, "stoppedAt"),
            ports,
            processes: arr(&r, "processes")
                .iter()
                .filter_map(|p| record(p, None, facts))
                .collect(),
            id,
        });
    }
    if out
        .active_release_id
        .as_ref()
        .is_some_and(|a| !out.releases.iter().any(|r| r.id == *a))
    {
        out.active_release_id = None;
    }
    out.canary = canary_record(snapshot.get("canary")).filter(|c| {
        out.active_release_id.as_ref() != Some(&c.release_id)
            && out.releases.iter().any(|r| r.id == c.release_id)
    });
    for (key, list) in [
        ("services", &mut out.services),
        ("singletons", &mut out.singletons),
    ] {
        for entry in arr(snapshot, key) {
            let id = text(&entry, "id");
            if let Some(p) = entry
                .get("process")
                .and_then(|p| record(p, id.as_deref(), facts))
            {
                list.push(p);
            }
        }
    }
    if let Some(starting) = snapshot.get("starting").filter(|s| s.is_object()) {
        let release_id = text(starting, "releaseId");
        for p in arr(starting, "processes") {
            if let Some(rec) = record(&p, None, facts) {
                out.starting.push((release_id.clone(), rec));
            }
        }
    }
    let named: Vec<u32> = out.records().iter().filter_map(|(_, p)| p.pid).collect();
    for p in arr(snapshot, "replacing") {
        if let Some(rec) =
            record(&p, None, facts).filter(|r| !r.pid.is_some_and(|pid| named.contains(&pid)))
        {
            out.replaced.push((text(&p, "releaseId"), rec));
        }
    }
    // The snapshot's own report-only orphans stay so while alive.
    let listed =
        serde_json::json!({"orphans": snapshot.get("orphans").cloned().unwrap_or(Value::Null)});
    out.orphans = orphans::candidates(&listed)
        .into_iter()
        .filter(|o| alive(o.pid, facts))
        .collect();
    let unverified: Vec<Orphan> = out.with(|v| v == Verdict::Unverified);
    for o in unverified {
        if !out.orphans.iter().any(|x| x.pid == o.pid) {
            out.orphans.push(o);
        }
    }
    out
}

/// `{releaseId, percent, since}` with a percent of 1–99.
fn canary_record(v: Option<&Value>) -> Option<CanaryRecord> {
    let v = v?;
    let percent = v.get("percent").and_then(Value::as_u64)?;
    Some(CanaryRecord {
        release_id: v.get("releaseId").and_then(Value::as_str)?.to_owned(),
        percent: u8::try_from(percent)
            .ok()
            .filter(|p| (1..=99).contains(p))?,
        since: v
            .get("since")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
    })
}

fn alive(pid: u32, facts: &dyn Fn(u32) -> Option<ProcInfo>) -> bool {
    facts(pid).is_some_and(|i| i.state != 'Z' && i.state != 'X')
}

fn record(
    p: &Value,
    id: Option<&str>,
    facts: &dyn Fn(u32) -> Option<ProcInfo>,
) -> Option<ProcRecord> {
    let id = id
        .or_else(|| p.get("id").and_then(Value::as_str))?
        .to_owned();
    let num = |k: &str| p.get(k).and_then(Value::as_u64);
    let text = |k: &str| p.get(k).and_then(Value::as_str).map(str::to_owned);
    let pid = num("pid")
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| *n > 1 && *n <= i32::MAX as u32);
    let pgid = num("pgid").and_then(|n| u32::try_from(n).ok());
    let verdict = judge(pid, num("startTime"), pgid, pid.and_then(facts));
    Some(ProcRecord {
        id,
        pid,
        restarts: num("restarts").unwrap_or(0),
        memory_restarts: num("memoryRestarts").unwrap_or(0),
        started_at: text("startedAt"),
        last_start_reason: match p.get("lastStartReason").and_then(Value::as_str) {
            Some("deploy") => Some(StartReason::Deploy),
            Some("crash") => Some(StartReason::Crash),
            Some("manual") => Some(StartReason::Manual),
            Some("memory") => Some(StartReason::Memory),
            _ => None,
        },
        last_memory_restart_at: text("lastMemoryRestartAt"),
        verdict,
    })
}

fn release_state(v: Option<&Value>) -> ReleaseState {
    match v.and_then(Value::as_str) {
        Some("active") => ReleaseState::Active,
        Some("canary") => ReleaseState::Canary,
        Some("draining") => ReleaseState::Draining,
        Some("starting") => ReleaseState::Starting,
        Some("failed") => ReleaseState::Failed,
        _ => ReleaseState::Stopped,
    }
}

/// `/proc/<pid>/stat` of a live process.
pub fn proc_facts(pid: u32) -> Option<ProcInfo> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    crate::supervisor::descendants::parse_stat(&text)
}

#[cfg(test)]
mod tests;
