//! `rollbridge daemon` (cli.md §2.1): the foreground daemon.

use crate::cli::Args;

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
    let loaded = match crate::config::load(args.config.as_deref()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let result = crate::daemon::run(loaded.config, Some(loaded.path));
    // Lines queued for stdout (startup events included) go out first.
    crate::daemon::log::flush(std::time::Duration::from_secs(2));
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}
