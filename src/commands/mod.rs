//! Command handlers: each takes validated [`Args`](crate::cli::Args), does
//! its work, prints its output and returns the process exit code.

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
