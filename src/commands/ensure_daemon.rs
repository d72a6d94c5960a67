//! `rollbridge ensure-daemon`: reuse a running daemon or
//! start a detached one (new session, log file as stdout+stderr, pid file)
//! and wait for it to answer `status`. Unlike the original it watches the
//! child it started: a daemon that dies at once (port in use, bad config)
//! fails the command right away with the log tail instead of waiting out
//! the whole timeout.

use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::cli::Args;
use crate::control::client::{self, ClientError};
use crate::control::pretty::pretty;
use crate::control::protocol::js_number;
use crate::durable::write_atomic;
use crate::runtime::{self, RuntimeIdentity};

const POLL_EVERY: Duration = Duration::from_millis(100);
const STATUS: &str = r#"{"command":"status"}"#;

pub fn run(args: &Args) -> i32 {
    match ensure(args) {
        Ok(line) => {
            crate::outln!("{}", pretty(&line));
            0
        }
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

/// Ensures a daemon runs; returns its status line. Used by `deploy
/// --ensure-daemon` too.
pub fn ensure(args: &Args) -> Result<String, String> {
    let loaded = super::status::load(args)?;
    // Checked by the parser; reported here, after the config loaded.
    let timeout_ms = args.daemon_start_timeout_ms.get()?;
    let config = &loaded.config;
    let base = args
        .daemon_runtime_path
        .clone()
        .unwrap_or_else(|| runtime::default_base(&config.application));
    let prepared = runtime::prepare_snapshot(&base)?;
    let path = config.control.path.as_str();
    // Bounded by the start timeout: a listener that never answers (not a
    // Rollbridge daemon) must not hold the command longer than a start would.
    let first_wait = Duration::from_secs_f64(timeout_ms / 1000.0).min(client::DEFAULT_TIMEOUT);
    match client::request(path, STATUS, Some(first_wait)) {
        Ok(line) => return check_runtime(line, path, &prepared, &config.application),
        Err(ClientError::NoDaemon(_)) => {}
        Err(e) => return Err(e.explain(&loaded.path)),
    }
    // A daemon holding the lock is alive even when its socket vanished: it
    // re-creates the socket within a second. Never start a second one.
    let state = crate::daemon::statefile::location(config);
    if crate::daemon::liveness::holder(&state.path) == crate::daemon::liveness::Holder::Daemon {
        let line = wait_for_live(path, timeout_ms, &state.path)?;
        return check_runtime(line, path, &prepared, &config.application);
    }
    let log_path = args
        .daemon_log_path
        .clone()
        .unwrap_or_else(|| format!("/tmp/rollbridge-{}.log", config.application));
    let pid_path = args
        .daemon_pid_path
        .clone()
        .unwrap_or_else(|| format!("/tmp/rollbridge-{}.pid", config.application));
    let exe = Path::new(&prepared.path).join(runtime::EXE_NAME);
    let manifest = Path::new(&prepared.path).join(runtime::MANIFEST);
    let mut child = spawn_detached(&exe, &manifest, &loaded.path, &log_path, &pid_path)?;
    make_parent(&pid_path)?;
    write_atomic(Path::new(&pid_path), format!("{}\n", child.id()).as_bytes())
        .map_err(|e| format!("Cannot write pid file {pid_path}: {e}"))?;
    let line = wait_ready(path, &mut child, timeout_ms, &log_path)?;
    check_runtime(line, path, &prepared, &config.application)
}

/// The answering daemon should run the prepared runtime (format, version,
/// digest; path ignored). One of the same application that runs another
/// runtime (the Node tool, another build) is used as it is, with a notice
/// on stderr: refusing it would force a shutdown, a gap in service.
pub fn check_runtime(
    line: String,
    path: &str,
    prepared: &RuntimeIdentity,
    application: &str,
) -> Result<String, String> {
    let notice = compatibility(&line, path, prepared, application)?;
    if let Some(notice) = notice {
        eprintln!("{notice}");
    }
    Ok(line)
}

/// `Ok(None)`: same runtime; `Ok(Some(notice))`: same application, other
/// runtime; `Err`: another runtime serving something else.
fn compatibility(
    line: &str,
    path: &str,
    prepared: &RuntimeIdentity,
    application: &str,
) -> Result<Option<String>, String> {
    let status = serde_json::from_str::<serde_json::Value>(line).ok();
    let running = status
        .as_ref()
        .and_then(|v| v.get("daemonRuntime").cloned())
        .and_then(|r| serde_json::from_value::<RuntimeIdentity>(r).ok());
    let serving = status
        .as_ref()
        .and_then(|v| v.get("application"))
        .and_then(|a| a.as_str());
    let same_app = serving == Some(application);
    match running {
        Some(r) if r.matches(prepared) => Ok(None),
        running => {
            let found = match running {
                Some(r) => format!("version {}, digest {}", r.version, r.digest),
                None => "no daemonRuntime".to_owned(),
            };
            if same_app {
                return Ok(Some(format!(
                    "Notice: the daemon for \"{application}\" on {path} runs another Rollbridge runtime ({found}; \
                     this installation is version {}); it is used as it is. Switching it to this installation \
                     takes `rollbridge shutdown` and a new start, which leaves a gap in service; a takeover \
                     without that gap is planned.",
                    prepared.version
                )));
            }
            if let Some(other) = serving {
                return Err(format!(
                    "The Rollbridge daemon on {path} serves application \"{other}\", not \"{application}\", and has \
                     a legacy or mismatched runtime ({found}), so the deploy was not sent. Give this application \
                     its own control.path."
                ));
            }
            Err(format!(
                "The Rollbridge daemon on {path} has a legacy or mismatched runtime ({found}; this installation is \
                 version {}, digest {}), so the deploy was not sent. Keep the current release active, then explicitly \
                 stop the daemon (`rollbridge shutdown`) and start it again with this installation before retrying.",
                prepared.version, prepared.digest
            ))
        }
    }
}

fn make_parent(path: &str) -> Result<(), String> {
    match Path::new(path).parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir)
            .map_err(|e| format!("Cannot create directory {}: {e}", dir.display())),
        _ => Ok(()),
    }
}

fn spawn_detached(
    exe: &Path,
    manifest: &Path,
    config_path: &str,
    log_path: &str,
    pid_path: &str,
) -> Result<Child, String> {
    make_parent(log_path)?;
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .map_err(|e| format!("Cannot open daemon log {log_path}: {e}"))?;
    let log_err = log
        .try_clone()
        .map_err(|e| format!("Cannot open daemon log {log_path}: {e}"))?;
    let config = absolute(config_path);
    let mut cmd = Command::new(exe);
    cmd.arg("daemon")
        .arg("--config")
        .arg(&config)
        .env(runtime::MANIFEST_ENV, manifest)
        .env(super::daemon::PID_FILE_ENV, absolute(pid_path))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    // SAFETY: setsid between fork and exec only.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
        .map_err(|e| format!("Cannot start the Rollbridge daemon: {e}"))
}

fn absolute(path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}

fn wait_ready(
    path: &str,
    child: &mut Child,
    timeout_ms: f64,
    log_path: &str,
) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs_f64(timeout_ms / 1000.0);
    let mut last_error: Option<String> = None;
    loop {
        match client::request(path, STATUS, Some(Duration::from_secs(2))) {
            Ok(line) => return Ok(line),
            Err(ClientError::NoDaemon(_)) => {}
            Err(e) => last_error = Some(e.message()),
        }
        if let Ok(Some(exit)) = child.try_wait() {
            // A concurrent starter may have won the race: ask once more.
            if let Ok(line) = client::request(path, STATUS, Some(Duration::from_secs(2))) {
                return Ok(line);
            }
            return Err(format!(
                "Rollbridge daemon exited before becoming ready ({exit}). Last lines of {log_path}:\n{}",
                tail(log_path, 20)
            ));
        }
        if Instant::now() >= deadline {
            let mut msg = format!(
                "Rollbridge daemon did not become ready within {}ms.",
                js_number(timeout_ms)
            );
            if let Some(e) = last_error {
                msg.push_str(&format!(" Last error: {e}"));
            }
            return Err(msg);
        }
        std::thread::sleep(POLL_EVERY.min(deadline.saturating_duration_since(Instant::now())));
    }
}

/// Polls a live daemon (lock held) until its socket answers again.
fn wait_for_live(path: &str, timeout_ms: f64, state_path: &str) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs_f64(timeout_ms / 1000.0);
    loop {
        if let Ok(line) = client::request(path, STATUS, Some(Duration::from_secs(2))) {
            return Ok(line);
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "A Rollbridge daemon for this application is running (it holds {}) but its control socket {path} \
                 did not answer within {}ms. Its processes are live, not orphaned: do not run `rollbridge recover \
                 --force`. Check the daemon's log; stop it with `rollbridge shutdown` once its socket is back, or \
                 with SIGTERM to its pid.",
                crate::daemon::statefile::lock_path(state_path),
                js_number(timeout_ms)
            ));
        }
        std::thread::sleep(POLL_EVERY.min(deadline.saturating_duration_since(Instant::now())));
    }
}

fn tail(path: &str, lines: usize) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let start = text.len().saturating_sub(64 * 1024);
    let text = String::from_utf8_lossy(&text[start..]);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod compat_tests {
    use super::*;

    fn prepared() -> RuntimeIdentity {
        serde_json::from_value(serde_json::json!({
            "digest": "d1", "format": 1, "path": "/rt/d1", "version": "0.1.0"
        }))
        .unwrap()
    }

    #[test]
    fn same_runtime_needs_no_notice() {
        let line = r#"{"application":"shop","daemonRuntime":{"digest":"d1","format":1,"path":"/x","version":"0.1.0"}}"#;
        assert_eq!(compatibility(line, "/s", &prepared(), "shop"), Ok(None));
    }

    #[test]
    fn legacy_daemon_of_the_same_application_is_used_with_a_notice() {
        let line = r#"{"application":"shop","activeReleaseId":null}"#;
        let notice = compatibility(line, "/s", &prepared(), "shop")
            .unwrap()
            .unwrap();
        assert!(notice.contains("no daemonRuntime"), "{notice}");
        assert!(notice.contains("rollbridge shutdown"), "{notice}");
        assert!(!notice.contains("--takeover"), "{notice}");
    }

    #[test]
    fn other_runtime_serving_another_application_is_refused() {
        let line = r#"{"application":"blog"}"#;
        let err = compatibility(line, "/s", &prepared(), "shop").unwrap_err();
        assert!(err.contains("legacy or mismatched runtime"), "{err}");
        assert!(err.contains("deploy was not sent"), "{err}");
    }
}
