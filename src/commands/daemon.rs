//! `rollbridge daemon` (cli.md §2.1): the foreground daemon.

use crate::cli::Args;

/// Set by `ensure-daemon` for the daemon it starts: the pid file it wrote,
/// removed again when this daemon shuts down cleanly.
pub const PID_FILE_ENV: &str = "ROLLBRIDGE_DAEMON_PID_FILE";

pub fn run(args: &Args) -> i32 {
    if args.release_path.is_some()
        || args.release_id.is_some()
        || args.revision.is_some()
        || args.boot_attestation.is_some()
        || args.takeover_owner
    {
        eprintln!(
            "Bootstrap and takeover options (--release-path, --release-id, --revision, \
             --boot-attestation, --takeover-owner) are not available in this build yet."
        );
        return 1;
    }
    // Before anything can start a child (a JS config runs node): systemd's
    // variables and passed descriptors are ours alone.
    crate::daemon::notify::capture();
    let inherited = crate::daemon::activation::take();
    let pid_file = take_pid_file_env();
    let loaded = match crate::config::load(args.config.as_deref()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let result = crate::daemon::run(loaded.config, Some(loaded.path), inherited);
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
