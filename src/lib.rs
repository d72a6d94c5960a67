//! Rollbridge: a zero-downtime process supervisor and local traffic switcher.
//!
//! All logic lives in this library; `src/main.rs` only hands `argv` to
//! [`cli::run`]. See `docs/architecture.md` for the module and thread map.
pub mod proxy;
