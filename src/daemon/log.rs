//! The daemon's own log: one JSON object per line on stdout. Write errors
//! (a closed pipe, a full disk) are ignored: logging never stops the daemon.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Turns the stdout log on or off (library users and tests that embed the
/// supervisor without wanting its lines on their stdout).
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Writes one line (a newline is appended) atomically with respect to the
/// daemon's other threads.
pub fn write_line(line: &str) {
    if !ENABLED.load(Ordering::Relaxed) {
        return;
    }
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    let mut buf = Vec::with_capacity(line.len() + 1);
    buf.extend_from_slice(line.as_bytes());
    buf.push(b'\n');
    let _ = lock.write_all(&buf);
    let _ = lock.flush();
}

/// Logs an event line.
pub fn event(event: &super::events::Event) {
    write_line(&event.to_json());
}
