//! Release building blocks used by the deploy flow: port allocation, the
//! health check, retention and the live-reload compatibility check. Each
//! is pure or does one small blocking I/O step, so the core loop can drive
//! it from events and timers.

pub mod compat;
pub mod health;
pub mod ports;
pub mod retention;
