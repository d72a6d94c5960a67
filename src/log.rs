//! The daemon's own log: one JSON object per line on stdout.
//!
//! Every thread hands its lines to one writer thread through a bounded
//! queue, so a stalled stdout (a full pipe nobody drains, a slow journal)
//! can never block the core, the supervisor or the control thread: when
//! the queue is full, lines are dropped and counted, and the writer says
//! how many once it catches up. Write errors are ignored: logging never
//! stops the daemon. Call [`flush`] before exiting.

use std::io::Write;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_channel::{Sender, bounded, unbounded};

/// Lines that may wait for the writer.
const QUEUE: usize = 16 * 1024;

static ENABLED: AtomicBool = AtomicBool::new(true);
static DROPPED: AtomicU64 = AtomicU64::new(0);
static WRITER: OnceLock<Option<Sender<Item>>> = OnceLock::new();

enum Item {
    Line(String),
    Flush(Sender<()>),
}

/// Turns the stdout log on or off (library users and tests that embed the
/// supervisor without wanting its lines on their stdout).
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

fn writer() -> Option<&'static Sender<Item>> {
    WRITER
        .get_or_init(|| {
            // Unbounded channel, bounded by `len()` below: no upfront
            // allocation for a queue that is almost always empty.
            let (tx, rx) = unbounded::<Item>();
            std::thread::Builder::new()
                .name("log".into())
                .spawn(move || {
                    let stdout = std::io::stdout();
                    for item in rx {
                        let mut out = stdout.lock();
                        match item {
                            Item::Line(line) => {
                                let dropped = DROPPED.swap(0, Ordering::Relaxed);
                                if dropped > 0 {
                                    let note = crate::events::Event::new(
                                        "log lines dropped",
                                        crate::events::Data::new().with("count", dropped),
                                    );
                                    let _ = writeln!(out, "{}", note.to_json());
                                }
                                let _ = out.write_all(line.as_bytes());
                                let _ = out.write_all(b"\n");
                                let _ = out.flush();
                            }
                            Item::Flush(done) => {
                                let _ = out.flush();
                                let _ = done.send(());
                            }
                        }
                    }
                })
                .ok()
                .map(|_| tx)
        })
        .as_ref()
}

/// Queues one line (a newline is appended); never blocks.
pub fn write_line(line: &str) {
    if !ENABLED.load(Ordering::Relaxed) {
        return;
    }
    match writer() {
        Some(tx) => {
            if tx.len() >= QUEUE {
                DROPPED.fetch_add(1, Ordering::Relaxed);
            } else {
                let _ = tx.send(Item::Line(line.to_owned()));
            }
        }
        None => {
            // No writer thread could be started: write directly.
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
        }
    }
}

/// Logs an event line.
pub fn event(event: &crate::events::Event) {
    write_line(&event.to_json());
}

/// Waits (at most `timeout`) until every queued line is written.
pub fn flush(timeout: Duration) {
    let Some(tx) = WRITER.get().and_then(|w| w.as_ref()) else {
        return;
    };
    let (done, rx) = bounded(1);
    if tx.send_timeout(Item::Flush(done), timeout).is_ok() {
        let _ = rx.recv_timeout(timeout);
    }
}
