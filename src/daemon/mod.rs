//! The daemon: startup order, the core loop that owns all daemon state,
//! status building, shutdown.

pub mod events;
pub mod log;
