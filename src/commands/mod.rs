//! Command handlers: each takes validated [`Args`], does its work, prints
//! its output and returns the process exit code. [`main`] parses the command
//! line with [`crate::cli`] and dispatches on the [`Cmd`] it yields.

use std::ffi::OsString;

use crate::cli::parse::{self, Parsed};
use crate::cli::{Args, Cmd, help};

pub mod completion;
pub mod daemon;
pub mod demo;
pub mod demo_app;
pub mod deploy;
pub mod doctor;
pub mod ensure_daemon;
pub mod events;
pub mod follow;
pub mod legacy;
pub mod logs;
pub mod man;
pub mod predeploy;
pub mod recover;
pub mod restart;
pub mod shutdown;
pub mod status;
pub mod status_view;
pub mod traffic;
pub mod upgrade;
pub mod validate;
pub mod waiting;

/// Runs the CLI on `argv` (without the program name); returns the exit code.
pub fn main(argv: impl IntoIterator<Item = OsString>) -> i32 {
    // Started by `upgrade`: any failure before the takeover goes back to
    // the previous program.
    crate::daemon::handover::fallback::arm();
    let code = parse_and_run(argv);
    if code != 0 {
        crate::daemon::handover::fallback::back(&format!(
            "the new program exited with code {code}"
        ));
    }
    code
}

fn parse_and_run(argv: impl IntoIterator<Item = OsString>) -> i32 {
    match parse::parse(argv) {
        Parsed::Run(spec, args) => run(spec.cmd, &args),
        Parsed::Help(text) => {
            crate::out!("{text}");
            0
        }
        Parsed::Version => {
            crate::outln!("{}", crate::cli::version_line());
            0
        }
        Parsed::NoCommand => {
            eprint!("{}", help::main());
            1
        }
        Parsed::Error { message, help } => {
            eprint!("error: {message}\n\n{help}");
            1
        }
        Parsed::Invalid(message) => {
            eprintln!("{message}");
            1
        }
    }
}

/// The handler of each command.
pub fn run(cmd: Cmd, args: &Args) -> i32 {
    match cmd {
        Cmd::Daemon => daemon::run(args),
        Cmd::Deploy => deploy::run(args),
        Cmd::Rollback => deploy::rollback(args),
        Cmd::EnsureDaemon => ensure_daemon::run(args),
        Cmd::Status => status::run(args),
        Cmd::Stop => deploy::stop(args),
        Cmd::Restart => restart::run(args),
        Cmd::Shutdown => shutdown::run(args),
        Cmd::Maintenance => traffic::maintenance(args),
        Cmd::Pause => traffic::pause(args),
        Cmd::Resume => traffic::resume(args),
        Cmd::Promote => deploy::promote(args),
        Cmd::Abort => deploy::abort(args),
        Cmd::Upgrade => upgrade::run(args),
        Cmd::HandoverProbe => upgrade::probe(args),
        Cmd::Validate => validate::run(args),
        Cmd::Doctor => doctor::run(args),
        Cmd::Logs => logs::run(args),
        Cmd::Events => events::run(args),
        Cmd::PredeployCleanup => predeploy::run(args),
        Cmd::Recover => recover::run(args),
        Cmd::Completion => completion::run(args),
        Cmd::Man => man::run(args),
        Cmd::Demo => demo::run(args),
        Cmd::DemoApp => demo_app::run(args),
    }
}
