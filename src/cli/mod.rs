//! The command line: one table of commands and options, as plain data,
//! drives parsing, help, shell completion, the man page and the CLI
//! reference. Parsing yields a [`table::Cmd`] and typed [`Args`]; running the
//! command is the caller's business (`commands::main`), so this module
//! depends on nothing but its own table.

pub mod args;
pub mod completion;
pub mod help;
pub mod low;
pub mod man;
pub mod parse;
pub mod reference;
pub mod table;

pub use args::Args;
pub use table::Cmd;

/// The line `--version` prints.
pub fn version_line() -> String {
    format!(
        "rollbridge {} (commit {})",
        env!("CARGO_PKG_VERSION"),
        env!("ROLLBRIDGE_COMMIT")
    )
}
