//! Rollbridge: a zero-downtime process supervisor and local traffic switcher.
//!
//! All logic lives in this library; `src/main.rs` only hands `argv` to
//! [`commands::main`]. See `docs/architecture.md` for the module and thread map.

pub mod cli;
pub mod commands;
pub mod config;
pub mod control;
pub mod daemon;
pub mod demo;
pub mod durable;
pub mod events;
pub mod guard;
pub mod inherit;
pub mod log;
pub mod out;
pub mod proxy;
pub mod release;
pub mod runtime;
pub mod suggest;
pub mod supervisor;
pub mod template;
pub mod timefmt;
