//! TEMPORARY entry point (supervisor branch): a minimal hand-rolled parse
//! that dispatches `argv[1]` to the command handlers so the daemon can be
//! tested end to end. The lead replaces this with the real CLI parser; the
//! option spellings are cli.md's, so tests keep working.

use rollbridge::cli::Args;
use rollbridge::commands;

fn main() {
    std::process::exit(run());
}

fn run() -> i32 {
    let mut argv = std::env::args().skip(1);
    let Some(command) = argv.next() else {
        eprintln!("Usage: rollbridge <command> [options]");
        return 1;
    };
    if matches!(command.as_str(), "--help" | "-h" | "help") {
        println!("Usage: rollbridge <command> [options]");
        return 0;
    }
    let mut args = Args::default();
    let rest: Vec<String> = argv.collect();
    let mut i = 0;
    while i < rest.len() {
        let raw = &rest[i];
        let (flag, inline) = match raw.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (raw.clone(), None),
        };
        let takes_value = !matches!(
            flag.as_str(),
            "--json" | "--ensure-daemon" | "--takeover-owner" | "--force" | "--node"
        );
        let value = if takes_value {
            match inline {
                Some(v) => Some(v),
                None => {
                    i += 1;
                    match rest.get(i) {
                        Some(v) => Some(v.clone()),
                        None => {
                            eprintln!("error: option '{flag}' argument missing");
                            return 1;
                        }
                    }
                }
            }
        } else {
            None
        };
        match flag.as_str() {
            "-c" | "--config" => args.config = value,
            "--json" => args.json = true,
            "--process" => args.process = value,
            "--policy" => args.policy = value,
            "--limit" => args.limit = value,
            "--release-path" => args.release_path = value,
            "--release-id" => args.release_id = value,
            "--revision" => args.revision = value,
            "--daemon-log-path" => args.daemon_log_path = value,
            "--daemon-pid-path" => args.daemon_pid_path = value,
            "--daemon-runtime-path" => args.daemon_runtime_path = value,
            "--daemon-start-timeout-ms" => args.daemon_start_timeout_ms = value,
            "--boot-attestation" => args.boot_attestation = value,
            "--ensure-daemon" => args.ensure_daemon = true,
            "--takeover-owner" => args.takeover_owner = true,
            other => {
                eprintln!("error: unknown option '{other}'");
                return 1;
            }
        }
        i += 1;
    }
    match command.as_str() {
        "daemon" => commands::daemon::run(&args),
        "ensure-daemon" => commands::ensure_daemon::run(&args),
        "status" => commands::status::run(&args),
        "logs" => commands::logs::run(&args),
        "shutdown" => commands::shutdown::run(&args),
        other => {
            eprintln!("error: unknown command '{other}'");
            1
        }
    }
}
