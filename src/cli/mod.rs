//! The command line: one table of commands and options drives parsing,
//! help and shell completion.

pub mod args;

pub use args::Args;
