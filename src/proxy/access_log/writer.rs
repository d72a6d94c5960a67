//! The access log's writer thread: formats records, writes them in
//! batches, and reopens the file.
//!
//! Reopening: on [`Control::Reopen`] (the daemon's SIGHUP) the path is
//! opened again (created if missing). Every [`TICK`] the writer also
//! compares the path with the open file: when the path names another file
//! (logrotate's `create` mode renamed ours and made a new one) it switches
//! to it; when the path is gone for two ticks in a row (renamed, nothing
//! created) it creates it. So rotation works with or without a signal.
//! Write and open errors never stop the writer; they are reported as proxy
//! errors (once per episode) and lines are lost, never the proxy's time.

use super::line::{Stamp, format_line};
use super::{Batch, Queue};
use crate::proxy::error::{ErrorKind, Side};
use crate::proxy::handle::ProxyEvent;
use crossbeam_channel::{Receiver, Sender, TryRecvError, bounded, never, select};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the path is checked against the open file.
pub const TICK: Duration = Duration::from_secs(1);
/// Bytes gathered before a write (more records wait in the channel).
const BATCH: usize = 64 * 1024;
/// Pause between batches while requests keep coming: lines reach the file
/// this much later, the queue holds what arrives meanwhile (16 Ki
/// records: 800,000 requests/s).
pub const GATHER: Duration = Duration::from_millis(20);

/// Requests to the writer besides records.
#[derive(Debug)]
pub enum Control {
    /// Open the path again (SIGHUP, after a rotation).
    Reopen,
}

/// Emptied batches kept for the loop to fill again.
const SPARE: usize = 8;

/// The running writer: where records go, how to steer it, its thread.
pub struct Writer {
    pub records: Queue,
    pub control: Sender<Control>,
    pub thread: JoinHandle<()>,
}

/// Opens `path` (append, created 0640 if missing) and starts the writer
/// with a queue of at most `capacity` records. Errors only if the file cannot be
/// opened now.
pub fn start(path: PathBuf, capacity: usize, events: Sender<ProxyEvent>) -> io::Result<Writer> {
    let file = open(&path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot open access log {}: {e}", path.display()),
        )
    })?;
    // Every batch holds a record: `capacity` batches never limit before
    // the record count does.
    let (tx, rx) = bounded(capacity);
    let (spare_tx, spare) = bounded(SPARE);
    let waiting = Arc::new(AtomicUsize::new(0));
    let records = Queue {
        tx,
        spare,
        waiting: waiting.clone(),
        limit: capacity,
    };
    let (control, crx) = bounded(8);
    let mut state = State {
        path,
        file,
        missing_ticks: 0,
        failing: false,
        events,
        stamp: Stamp::default(),
        spare: spare_tx,
        waiting,
    };
    let thread = std::thread::Builder::new()
        .name("access-log".into())
        .spawn(move || state.run(rx, crx))?;
    Ok(Writer {
        records,
        control,
        thread,
    })
}

fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
}

struct State {
    path: PathBuf,
    file: File,
    /// Consecutive ticks the path did not exist.
    missing_ticks: u32,
    /// An error was reported and nothing has succeeded since.
    failing: bool,
    events: Sender<ProxyEvent>,
    stamp: Stamp,
    /// Emptied batches, back to the loop.
    spare: Sender<Batch>,
    /// Records sent by the loop and not yet formatted.
    waiting: Arc<AtomicUsize>,
}

impl State {
    /// Idle, the writer blocks on the channel (one wake-up when traffic
    /// starts). Busy, it sleeps [`GATHER`] between batches instead, so the
    /// proxy's `try_send` finds no sleeping reader to wake (no system call
    /// per request) and a batch is one `write`.
    fn run(&mut self, records: Receiver<Batch>, control: Receiver<Control>) {
        let mut control = control;
        let mut out = Vec::with_capacity(BATCH);
        let mut next_check = Instant::now() + TICK;
        loop {
            let wait = next_check.saturating_duration_since(Instant::now());
            select! {
                recv(records) -> r => match r {
                    Ok(batch) => {
                        self.format(batch, &mut out);
                        if !self.busy(&records, &control, &mut out, &mut next_check) {
                            return;
                        }
                    }
                    // The proxy stopped: everything it sent is written.
                    Err(_) => return,
                },
                recv(control) -> c => match c {
                    Ok(Control::Reopen) => self.reopen(),
                    Err(_) => control = never(),
                },
                default(wait) => {}
            }
            if Instant::now() >= next_check {
                self.check_path();
                next_check = Instant::now() + TICK;
            }
        }
    }

    /// Writes batches until a gathering pause brought nothing new; false
    /// once the proxy is gone (after writing what it sent).
    fn busy(
        &mut self,
        records: &Receiver<Batch>,
        control: &Receiver<Control>,
        out: &mut Vec<u8>,
        next_check: &mut Instant,
    ) -> bool {
        loop {
            let mut gone = false;
            loop {
                match records.try_recv() {
                    Ok(batch) => self.format(batch, out),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        gone = true;
                        break;
                    }
                }
            }
            if !out.is_empty() {
                self.write(out);
                out.clear();
            } else {
                return !gone;
            }
            if gone {
                return false;
            }
            if control.try_recv().is_ok() {
                self.reopen();
            }
            if Instant::now() >= *next_check {
                self.check_path();
                *next_check = Instant::now() + TICK;
            }
            std::thread::sleep(GATHER);
        }
    }

    /// Formats a batch's lines into `out` (written whenever it holds
    /// [`BATCH`] bytes), then hands the emptied batch back.
    fn format(&mut self, mut batch: Batch, out: &mut Vec<u8>) {
        for view in batch.views() {
            format_line(&view, &mut self.stamp, out);
            if out.len() >= BATCH {
                self.write(out);
                out.clear();
            }
        }
        self.waiting.fetch_sub(batch.len(), Ordering::Relaxed);
        batch.clear();
        let _ = self.spare.try_send(batch);
    }

    fn write(&mut self, bytes: &[u8]) {
        match self.file.write_all(bytes) {
            Ok(()) => self.failing = false,
            Err(e) => self.report(format!(
                "access log {}: write failed, lines lost: {e}",
                self.path.display()
            )),
        }
    }

    /// Opens the path again, keeping the old file if that fails.
    fn reopen(&mut self) {
        match open(&self.path) {
            Ok(f) => {
                self.file = f;
                self.missing_ticks = 0;
                self.failing = false;
            }
            Err(e) => self.report(format!(
                "access log {}: cannot reopen: {e}",
                self.path.display()
            )),
        }
    }

    /// Follows a rename: the path names another file, or none for a while.
    fn check_path(&mut self) {
        match std::fs::metadata(&self.path) {
            Ok(on_disk) => {
                self.missing_ticks = 0;
                let same = self
                    .file
                    .metadata()
                    .is_ok_and(|open| open.dev() == on_disk.dev() && open.ino() == on_disk.ino());
                if !same {
                    self.reopen();
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // Give a rotation that renames then creates time to create
                // the file itself (its create fails if ours came first).
                self.missing_ticks += 1;
                if self.missing_ticks >= 2 {
                    self.reopen();
                }
            }
            Err(_) => {}
        }
    }

    fn report(&mut self, message: String) {
        if self.failing {
            return;
        }
        self.failing = true;
        let _ = self.events.try_send(ProxyEvent::Error {
            release_id: None,
            side: Side::Internal,
            kind: ErrorKind::Io,
            message,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::access_log::batch::Finish;
    use crate::proxy::access_log::{Entry, Sink};

    /// Logs one request with id `id` (sent at the next flush).
    fn log(sink: &mut Sink, id: &str) {
        let mut e = Entry::default();
        e.open(Instant::now(), 0, Some((b"GET", b"/")), id.as_bytes());
        let finish = Finish {
            remote: "127.0.0.1".parse().unwrap(),
            status: 200,
            bytes: 0,
            upgrade: false,
        };
        sink.push(&e, finish, None, Instant::now());
    }

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rb-access-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn wait_for(path: &Path, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            if text.contains(needle) || Instant::now() > deadline {
                return text;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn writer_reopens_on_request() {
        let d = dir("reopen");
        let path = d.join("access.log");
        let (etx, _erx) = bounded(8);
        let w = start(path.clone(), 16, etx).unwrap();
        let mut sink = Sink::new(w.records);
        log(&mut sink, "one");
        sink.flush();
        assert!(wait_for(&path, "\"one\"").contains("\"one\""));
        std::fs::rename(&path, d.join("access.log.1")).unwrap();
        w.control.send(Control::Reopen).unwrap();
        // The reopen is handled before the next record (one thread, and
        // the control is sent first), so "two" lands in the new file.
        std::thread::sleep(Duration::from_millis(100));
        log(&mut sink, "two");
        sink.flush();
        let fresh = wait_for(&path, "\"two\"");
        assert!(
            fresh.contains("\"two\"") && !fresh.contains("\"one\""),
            "{fresh}"
        );
        drop(sink);
        w.thread.join().unwrap();
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn writer_finishes_queued_lines_when_the_proxy_stops() {
        let d = dir("finish");
        let path = d.join("access.log");
        let (etx, _erx) = bounded(8);
        let w = start(path.clone(), 1024, etx).unwrap();
        let mut sink = Sink::new(w.records);
        for i in 0..500 {
            log(&mut sink, &format!("r{i}"));
            if i % 7 == 0 {
                sink.flush();
            }
        }
        // The last batch was never flushed: dropping the sink sends it.
        drop(sink);
        w.thread.join().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 500);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn unopenable_path_is_an_error_at_start() {
        let (etx, _erx) = bounded(8);
        let e = start("/nonexistent-dir/x/access.log".into(), 4, etx)
            .err()
            .unwrap();
        assert!(e.to_string().contains("cannot open access log"), "{e}");
    }
}
