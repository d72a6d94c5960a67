//! The command line: one table of commands and options drives parsing,
//! help and shell completion.

pub mod args;
pub mod completion;
pub mod help;
pub mod man;
pub mod parse;
pub mod table;

use std::ffi::OsString;

pub use args::Args;
use parse::Parsed;

/// Runs the CLI on `argv` (without the program name); returns the exit code.
pub fn run(argv: impl IntoIterator<Item = OsString>) -> i32 {
    match parse::parse(argv) {
        Parsed::Run(spec, args) => (spec.run)(&args),
        Parsed::Help(text) => {
            print!("{text}");
            0
        }
        Parsed::Version => {
            println!(
                "rollbridge {} (commit {})",
                env!("CARGO_PKG_VERSION"),
                env!("ROLLBRIDGE_COMMIT")
            );
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
    }
}
