//! `rollbridge daemon`: the foreground daemon.

use crate::cli::Args;
use crate::daemon::bootstrap;

/// Set by `ensure-daemon` for the daemon it starts: the pid file it wrote,
/// removed again when this daemon shuts down cleanly.
pub const PID_FILE_ENV: &str = "ROLLBRIDGE_DAEMON_PID_FILE";

pub fn run(args: &Args) -> i32 {
    // Started by `upgrade`: the previous program's world comes along.
    let handover = match crate::daemon::handover::take() {
        Some(Ok(doc)) => Some(doc),
        Some(Err(e)) => {
            eprintln!("rollbridge: cannot take over from the previous program: {e}");
            crate::daemon::handover::fallback::back(&e);
            return 1;
        }
        None => None,
    };
    // Bootstrap options are checked before anything is loaded or bound.
    let tuple = match bootstrap::validate(bootstrap::Options {
        config: args.config.as_deref(),
        release_path: args.release_path.as_deref(),
        release_id: args.release_id.as_deref(),
        revision: args.revision.as_deref(),
        attestation: args.boot_attestation.as_deref(),
    }) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{e}");
            crate::daemon::handover::fallback::back(&e.to_string());
            return 1;
        }
    };
    // Before anything can start a child (a JS config runs node): systemd's
    // variables and passed descriptors are ours alone.
    let (inherited, pid_file) = match &handover {
        Some(doc) => {
            crate::daemon::notify::restore(doc.notify_socket.clone());
            (None, doc.pid_file.clone())
        }
        None => {
            crate::daemon::notify::capture();
            (crate::daemon::activation::take(), take_pid_file_env())
        }
    };
    crate::daemon::handover::remember_pid_file(pid_file.clone());
    let loaded = match crate::config::load(args.config.as_deref()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            crate::daemon::handover::fallback::back(&e.to_string());
            return 1;
        }
    };
    if args.takeover_owner {
        if let Err(e) = bootstrap::check_takeover(tuple.as_ref()) {
            eprintln!("{e}");
            return 1;
        }
    }
    let start = crate::daemon::Start {
        config_path: Some(loaded.path),
        inherited,
        handover,
        boot: tuple.map(|tuple| bootstrap::Boot {
            tuple,
            takeover: args.takeover_owner,
        }),
    };
    let result = crate::daemon::run(loaded.config, start);
    // Lines queued for stdout (startup events included) go out first.
    crate::log::flush(std::time::Duration::from_secs(2));
    match result {
        Ok(code) => {
            if let Some(file) = pid_file {
                remove_own_pid_file(&file);
            }
            code
        }
        Err(e) => {
            eprintln!("{e}");
            crate::daemon::handover::fallback::back(&e.to_string());
            1
        }
    }
}

/// Reads and unsets [`PID_FILE_ENV`], so managed processes do not inherit it.
fn take_pid_file_env() -> Option<String> {
    let file = std::env::var(PID_FILE_ENV).ok().filter(|f| !f.is_empty());
    // SAFETY: called before the daemon starts any thread.
    unsafe { std::env::remove_var(PID_FILE_ENV) };
    file
}

/// Removes the pid file if it still names this process (a newer daemon may
/// have taken the file over).
fn remove_own_pid_file(file: &str) {
    let own = std::process::id().to_string();
    if std::fs::read_to_string(file).is_ok_and(|text| text.trim() == own) {
        let _ = std::fs::remove_file(file);
    }
}
