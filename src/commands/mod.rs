//! Command handlers: each takes validated [`Args`](crate::cli::Args), does
//! its work, prints its output and returns the process exit code.

pub mod daemon;
pub mod ensure_daemon;
pub mod logs;
pub mod shutdown;
pub mod status;
