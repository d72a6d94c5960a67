//! Host checks: control socket, its directory, the proxy port, and (with
//! `statePath`, or the default runtime record when it exists) the state
//! directory and orphans of a crashed daemon.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::Check;
use crate::config::Config;
use crate::config::find::absolute;
use crate::control::probe::{Probe, probe_raw};
use crate::daemon::adopt as adoption;
use crate::daemon::liveness::{self, Holder};
use crate::daemon::orphans;
use crate::daemon::statefile::{self, Read};
use crate::release::ports::errno_name;

/// Every host check in contract order. The socket is probed once and the
/// answer shared, so a daemon is asked for its status only once.
pub fn checks(cfg: &Config) -> Vec<Check> {
    let path = cfg.control.path.as_str();
    let probed = probe_raw(path);
    let mut out = vec![
        control_socket(cfg, &probed),
        writable_dir("control socket directory", path, ""),
        proxy_port(cfg, &probed),
    ];
    if let Some(state) = cfg.state_path.as_deref() {
        out.push(writable_dir(
            "state path directory",
            state,
            "; state cannot be persisted",
        ));
        out.push(orphan_check(
            state,
            &probed,
            Some(cfg).filter(|c| c.adopt_orphans),
        ));
    } else {
        // No statePath: the daemon's private runtime record still tells.
        let record = statefile::default_record(path);
        if Path::new(&record).exists() || Path::new(&statefile::prev_path(&record)).exists() {
            out.push(orphan_check(&record, &probed, None));
        }
    }
    out
}

fn control_socket(cfg: &Config, probed: &Result<Probe, String>) -> Check {
    const NAME: &str = "control socket";
    let path = &cfg.control.path;
    match probed {
        Err(e) => Check::fail(NAME, format!("could not probe {path}: {e}")),
        Ok(Probe::NotAlive) => {
            Check::pass(NAME, format!("no daemon running; {path} is free to bind"))
        }
        // A deploy pipeline runs doctor next to its own daemon.
        Ok(Probe::Rollbridge { application, .. }) if *application == cfg.application => {
            Check::pass(
                NAME,
                format!("Rollbridge daemon for \"{application}\" is running on {path}"),
            )
        }
        Ok(Probe::Rollbridge { application, .. }) => Check::fail(
            NAME,
            format!(
                "a Rollbridge daemon for \"{application}\" is already running on {path}; stop it before starting another"
            ),
        ),
        Ok(Probe::Unidentified) => Check::fail(
            NAME,
            format!(
                "another process is already listening on {path}; the daemon would fail to bind it"
            ),
        ),
    }
}

/// The directory holding `file` (made absolute) must allow write + search.
fn writable_dir(name: &'static str, file: &str, fail_suffix: &str) -> Check {
    let dir = parent_of(file);
    let shown = dir.display();
    if writable(&dir) {
        Check::pass(name, format!("{shown} is writable"))
    } else {
        Check::fail(
            name,
            format!("{shown} is missing or not writable{fail_suffix}"),
        )
    }
}

fn parent_of(file: &str) -> PathBuf {
    let abs = absolute(file);
    abs.parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"))
}

fn writable(dir: &Path) -> bool {
    if !dir.is_dir() {
        return false;
    }
    let Ok(c) = CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated path; access only reads it.
    unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) == 0 }
}

/// Test-binds the proxy address exactly as the daemon would (mio's
/// listener: SO_REUSEADDR, no SO_REUSEPORT), so TIME_WAIT passes and any
/// listener fails.
fn proxy_port(cfg: &Config, probed: &Result<Probe, String>) -> Check {
    const NAME: &str = "proxy port";
    let (host, port) = (cfg.proxy.host.as_str(), cfg.proxy.port);
    let bound = crate::proxy::resolve(host, port)
        .map_err(|e| match e.raw_os_error() {
            Some(_) => errno_name(&e),
            None => "ENOTFOUND".to_owned(),
        })
        .and_then(|addr| {
            mio::net::TcpListener::bind(addr)
                .map(drop)
                .map_err(|e| errno_name(&e))
        });
    let code = match bound {
        Ok(()) => return Check::pass(NAME, format!("{host}:{port} is available")),
        Err(code) => code,
    };
    if let Ok(Probe::Rollbridge {
        application,
        proxy: Some((h, p)),
        ..
    }) = probed
    {
        if *application == cfg.application && h == host && *p == port {
            return Check::pass(
                NAME,
                format!("{host}:{port} is already held by the running Rollbridge daemon"),
            );
        }
    }
    Check::fail(NAME, format!("{host}:{port} is unavailable ({code})"))
}

/// With `adopt` (the config, when it sets `adoptOrphans`), living
/// processes the next start would adopt are no failure: they are reported
/// as "will be adopted".
fn orphan_check(state_path: &str, probed: &Result<Probe, String>, adopt: Option<&Config>) -> Check {
    const NAME: &str = "orphaned processes";
    if matches!(probed, Ok(Probe::Rollbridge { .. } | Probe::Unidentified)) {
        return Check::pass(
            NAME,
            "a daemon is running; its managed processes are not orphans".into(),
        );
    }
    let state = absolute(state_path).to_string_lossy().into_owned();
    let denied = matches!(probed, Err(e) if e.contains("EACCES") || e.contains("EPERM"));
    match liveness::holder(&state) {
        Holder::Daemon => {
            return Check::pass(
                NAME,
                format!(
                    "a daemon is running (it holds {}); its managed processes are not orphans",
                    statefile::lock_path(&state)
                ),
            );
        }
        Holder::Unknown(e) => return cannot_tell(&e),
        Holder::Nobody if denied && !Path::new(&statefile::lock_path(&state)).exists() => {
            return cannot_tell("the control socket exists but you may not open it");
        }
        Holder::Nobody => {}
    }
    let read = statefile::read(&state);
    if let Read::Corrupt { error } = &read {
        return Check::fail(
            NAME,
            format!(
                "the state file is unreadable ({error}) and has no previous version; \
                 look for leftover processes by hand"
            ),
        );
    }
    let mut found = orphans::detect(read.value());
    let mut adopted = match (read.value(), adopt) {
        (Some(v), Some(_)) => adoption::plan(v, &adoption::proc_facts).adopted(),
        _ => Vec::new(),
    };
    // One the config no longer defines stays a report-only orphan.
    adopted.retain(|o| {
        let base = o.id.split('#').next().unwrap_or(&o.id);
        adopt.is_some_and(|c| c.process(base).is_some())
    });
    found.retain(|o| !adopted.iter().any(|a| a.pid == o.pid));
    match (found.is_empty(), adopted.is_empty()) {
        (true, true) => Check::pass(NAME, "no leftover processes from a previous daemon".into()),
        (true, false) => Check::pass(NAME, will_be_adopted(&adopted)),
        (false, _) => {
            let mut detail = format!(
                "{} possible orphaned {} still running: {} — verify and stop any leftovers",
                found.len(),
                if found.len() == 1 {
                    "process"
                } else {
                    "processes"
                },
                listing(&found)
            );
            if !adopted.is_empty() {
                detail.push_str("; ");
                detail.push_str(&will_be_adopted(&adopted));
            }
            Check::fail(NAME, detail)
        }
    }
}

fn listing(list: &[orphans::Orphan]) -> String {
    let names: Vec<String> = list
        .iter()
        .map(|o| format!("{} (pid {})", o.id, o.pid))
        .collect();
    names.join(", ")
}

/// `2 processes will be adopted by the next daemon start (adoptOrphans): …`
fn will_be_adopted(list: &[orphans::Orphan]) -> String {
    format!(
        "{} will be adopted by the next daemon start (adoptOrphans): {}",
        super::plural(list.len(), "process", "processes"),
        listing(list)
    )
}

/// Permission problems: a daemon is probably running as another user.
fn cannot_tell(why: &str) -> Check {
    Check::pass(
        "orphaned processes",
        format!(
            "not checked: {why} (permission denied), so a daemon is probably running as another user; \
             run doctor as the daemon's user to check for orphans"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_of_relative_file_is_absolute() {
        assert!(parent_of("x.sock").is_absolute());
        assert_eq!(parent_of("/tmp/a/x.sock"), PathBuf::from("/tmp/a"));
    }

    #[test]
    fn missing_dir_is_not_writable() {
        assert!(!writable(Path::new("/nonexistent-rb-doctor/dir")));
        assert!(writable(&std::env::temp_dir()));
    }
}
