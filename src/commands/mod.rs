//! Command handlers: each takes validated [`Args`](crate::cli::Args), does
//! its work, prints its output and returns the process exit code.

pub mod completion;
pub mod demo_app;
pub mod pending;
pub mod validate;
