//! Start-up checks before anything binds: a live daemon on the control
//! path, the daemon lock, an unreadable state file (kept aside, the
//! previous good version restored), and living orphans — a daemon never
//! starts a second set of processes beside the ones a crashed daemon left.

use super::liveness::{self, DaemonLock};
use super::orphans::{self, Orphan};
use super::statefile::{self, Location, Read};
use crate::config::Config;
use crate::control::probe::{Probe, already_running_message, probe};
use crate::events::{Data, Event};

/// What start-up keeps: the lock, the (report-only) orphans, events to
/// record once the ring exists.
pub struct Guard {
    pub lock: Option<DaemonLock>,
    pub orphans: Vec<Orphan>,
    pub events: Vec<Event>,
    /// With `adoptOrphans`: what to take over from the crashed daemon.
    pub adoption: Option<super::adopt::Plan>,
}

pub fn refuse_live_socket(path: &str) -> Result<(), String> {
    match probe(path)? {
        Probe::NotAlive => Ok(()),
        alive => Err(already_running_message(path, &alive)),
    }
}

pub fn check_state(
    config: &Config,
    config_path: Option<&str>,
    location: &Location,
) -> Result<Guard, String> {
    let mut events = Vec::new();
    let path = location.path.as_str();
    let lock = match DaemonLock::acquire(path) {
        Ok(lock) => Some(lock),
        Err(None) => return Err(held_message(config, path)),
        Err(Some(e)) => {
            eprintln!("rollbridge: warning: {e}; other tools cannot tell this daemon is alive");
            events.push(Event::new(
                "daemon lock unavailable",
                Data::new().with("error", e),
            ));
            None
        }
    };
    let read = statefile::read(path);
    if let Some(error) = read.error() {
        events.push(unreadable(path, error, &read));
    }
    if let Some(snapshot) = read.value() {
        if let Some(pid) = liveness::writer_alive(snapshot) {
            return Err(format!(
                "The Rollbridge daemon (pid {pid}) that wrote {path} is still running; not starting a second one. \
                 Check it with `rollbridge status`, or stop it with `rollbridge shutdown`."
            ));
        }
    }
    if config.adopt_orphans {
        let plan = read
            .value()
            .map(|v| super::adopt::plan(v, &super::adopt::proc_facts))
            .unwrap_or_default();
        let refused = plan.refused();
        if !refused.is_empty() {
            return Err(refusal(
                config,
                config_path,
                &refused.iter().collect::<Vec<_>>(),
            ));
        }
        return Ok(Guard {
            lock,
            orphans: plan.orphans.clone(),
            events,
            adoption: Some(plan),
        });
    }
    let found = orphans::detect(read.value());
    let living: Vec<&Orphan> = found.iter().filter(|o| o.verified()).collect();
    if !living.is_empty() {
        return Err(refusal(config, config_path, &living));
    }
    Ok(Guard {
        lock,
        orphans: found,
        events,
        adoption: None,
    })
}

/// The lock is held while the control socket does not answer.
fn held_message(config: &Config, state_path: &str) -> String {
    format!(
        "A Rollbridge daemon for application \"{}\" is already running: it holds {} although its control socket {} \
         does not answer (it re-creates a vanished socket within a second). Check it with `rollbridge status`; \
         stop it with `rollbridge shutdown`.",
        config.application,
        statefile::lock_path(state_path),
        config.control.path
    )
}

/// Warns, keeps the bad file aside, restores the previous good version.
fn unreadable(path: &str, error: &str, read: &Read) -> Event {
    let moved = statefile::set_aside(path);
    let restored = match read {
        Read::FromPrev { value, .. } => {
            let text = serde_json::to_string_pretty(value).unwrap_or_default() + "\n";
            crate::durable::write_atomic(std::path::Path::new(path), text.as_bytes()).is_ok()
        }
        _ => false,
    };
    let kept = match &moved {
        Ok(to) => format!("kept as {to}"),
        Err(e) => e.clone(),
    };
    let using = if restored {
        format!("using the previous version {}", statefile::prev_path(path))
    } else {
        "no previous version to fall back to: processes it recorded are not known".into()
    };
    eprintln!("rollbridge: warning: state file unreadable: {error}; {kept}; {using}");
    let mut data = Data::new()
        .with("error", error)
        .with("path", path)
        .with("usingPrevious", restored);
    if let Ok(to) = moved {
        data = data.with("movedTo", to);
    }
    Event::new("state file unreadable", data)
}

/// Names every living orphan and the way out.
pub fn refusal(config: &Config, config_path: Option<&str>, living: &[&Orphan]) -> String {
    let list: String = living.iter().map(|o| format!("  {}\n", line(o))).collect();
    let config_arg = config_path
        .map(|p| format!(" --config {p}"))
        .unwrap_or_default();
    format!(
        "Refusing to start: {} of application \"{}\" started by a previous Rollbridge daemon {} still running:\n{list}\
         No daemon manages them; starting another set beside them would run them twice. \
         Stop them with `rollbridge recover --force{config_arg}`, then start the daemon again.",
        super::orphans::count(living.len()),
        config.application,
        if living.len() == 1 { "is" } else { "are" },
    )
}

/// `<id> pid <pid> (release <r>)`.
pub fn line(o: &Orphan) -> String {
    match &o.release_id {
        Some(r) => format!("{} pid {} (release {r})", o.id, o.pid),
        None => format!("{} pid {}", o.id, o.pid),
    }
}
