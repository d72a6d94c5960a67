//! The access log: one JSON line per finished request, written off the
//! proxy thread.
//!
//! When the log is on, the loop copies a request's method, target and id
//! once, at head time, into a buffer its session keeps between requests
//! ([`Entry`]). When the request ends, those bytes and a few numbers are
//! appended to the loop's current [`Batch`]; at the end of each loop
//! iteration the batch (every request finished in it) is offered to the
//! writer with one `try_send`, and the writer sends emptied batches back to
//! be filled again. So a request costs two short copies and no allocation
//! or channel operation of its own. When the writer falls behind (more
//! than [`QUEUE`] records waiting), batches are dropped and their records
//! counted ([`Sink::dropped`], the metric
//! `rollbridge_access_log_dropped_total`): the loop never blocks. The
//! writer thread (`writer.rs`) formats with serde_json, batches the writes
//! and reopens the file on request (SIGHUP) or when the path stops naming
//! the open file (logrotate renamed it).

pub(crate) mod batch;
mod entry;
mod line;
pub mod writer;

pub use batch::Batch;
pub use entry::{Entry, begin};
pub use writer::Control;

use batch::Finish;
use crossbeam_channel::{Receiver, Sender};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Instant, SystemTime};

/// Records that may wait for the writer before new ones are dropped.
pub const QUEUE: usize = 16 * 1024;
/// Records in a batch after which it is sent without waiting for the end
/// of the loop iteration.
const BATCH_RECORDS: usize = 1024;

/// The loop's ends of the channels to the writer.
#[derive(Debug)]
pub struct Queue {
    /// Full batches, to the writer.
    pub tx: Sender<Batch>,
    /// Emptied batches, back from the writer.
    pub spare: Receiver<Batch>,
    /// Records sent and not yet formatted by the writer.
    pub waiting: Arc<AtomicUsize>,
    /// Most records that may wait.
    pub limit: usize,
}

/// The loop's end of the log.
#[derive(Debug)]
pub struct Sink {
    queue: Queue,
    /// Requests finished in this loop iteration.
    batch: Batch,
    /// Records dropped because the writer was behind.
    pub dropped: u64,
    /// Release ids by slot, shared by every record (no copy per request).
    names: Vec<Option<Arc<str>>>,
}

impl Sink {
    pub fn new(queue: Queue) -> Sink {
        Sink {
            queue,
            batch: Batch::default(),
            dropped: 0,
            names: Vec::new(),
        }
    }

    /// Adds a request finished at `now` (the loop's clock) to the current
    /// batch; `release`: its slot and id (`None` for the proxy's own
    /// answers).
    pub fn push(
        &mut self,
        entry: &Entry,
        finish: Finish,
        release: Option<(usize, &str)>,
        now: Instant,
    ) {
        if self.batch.now != Some(now) {
            // A batch's requests end at one loop time.
            self.flush();
            self.batch.now = Some(now);
            self.batch.time = SystemTime::now();
        }
        let name = release.map(|(slot, id)| name(&mut self.names, slot, id));
        self.batch.push(entry, finish, name);
        if self.batch.len() >= BATCH_RECORDS {
            self.flush();
        }
    }

    /// Offers the current batch to the writer; never blocks.
    pub fn flush(&mut self) {
        let n = self.batch.len();
        if n == 0 {
            return;
        }
        // Only this thread adds to `waiting`: what it reads can only shrink.
        if self.queue.waiting.load(Ordering::Relaxed).saturating_add(n) > self.queue.limit {
            self.dropped += n as u64;
            self.batch.clear();
            return;
        }
        let fresh = self.queue.spare.try_recv().unwrap_or_default();
        let batch = std::mem::replace(&mut self.batch, fresh);
        self.queue.waiting.fetch_add(n, Ordering::Relaxed);
        if let Err(e) = self.queue.tx.try_send(batch) {
            self.queue.waiting.fetch_sub(n, Ordering::Relaxed);
            self.dropped += n as u64;
            let mut batch = e.into_inner();
            batch.clear();
            self.batch = batch;
        }
    }
}

/// The shared id of the release in `slot`, now named `id`.
fn name<'a>(names: &'a mut Vec<Option<Arc<str>>>, slot: usize, id: &str) -> &'a Arc<str> {
    if names.len() <= slot {
        names.resize(slot + 1, None);
    }
    let name = &mut names[slot];
    if name.as_deref() != Some(id) {
        *name = Some(Arc::from(id));
    }
    name.get_or_insert_with(|| Arc::from(id))
}

impl Drop for Sink {
    /// The loop ended: what it logged last goes to the writer.
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::bounded;
    use std::time::Duration;

    fn sink(batches: usize, limit: usize) -> (Sink, Receiver<Batch>, Sender<Batch>) {
        let (tx, rx) = bounded(batches);
        let (spare_tx, spare) = bounded(4);
        let queue = Queue {
            tx,
            spare,
            waiting: Arc::new(AtomicUsize::new(0)),
            limit,
        };
        (Sink::new(queue), rx, spare_tx)
    }

    /// One loop time for every request of a test.
    fn now() -> Instant {
        static NOW: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        *NOW.get_or_init(Instant::now)
    }

    fn finish() -> Finish {
        Finish {
            remote: "127.0.0.1".parse().unwrap(),
            status: 200,
            bytes: 0,
            upgrade: false,
        }
    }

    fn entry(id: &str) -> Entry {
        let mut e = Entry::default();
        e.open(Instant::now(), 0, Some((b"GET", b"/")), id.as_bytes());
        e
    }

    #[test]
    fn requests_of_one_iteration_go_out_as_one_batch() {
        let (mut sink, rx, _spare) = sink(16, 1000);
        for i in 0..3 {
            sink.push(&entry(&format!("r{i}")), finish(), Some((0, "v1")), now());
        }
        assert!(rx.try_recv().is_err(), "nothing is sent before the flush");
        sink.flush();
        let batch = rx.try_recv().unwrap();
        let ids: Vec<_> = batch.views().map(|v| v.request_id.to_vec()).collect();
        assert_eq!(ids, [b"r0".to_vec(), b"r1".to_vec(), b"r2".to_vec()]);
        assert!(batch.views().all(|v| v.release_id == Some("v1")));
        sink.flush();
        assert!(rx.try_recv().is_err(), "an empty batch is not sent");
    }

    #[test]
    fn emptied_batches_sent_back_are_filled_again() {
        let (mut sink, rx, spare) = sink(16, 1000);
        sink.push(&entry("a"), finish(), None, now());
        sink.flush();
        let mut batch = rx.try_recv().unwrap();
        batch.clear();
        spare.send(batch).unwrap();
        sink.push(&entry("b"), finish(), None, now());
        sink.flush();
        assert!(sink.queue.spare.is_empty(), "the spare batch was taken");
        assert_eq!(rx.try_recv().unwrap().len(), 1);
    }

    #[test]
    fn a_full_batch_goes_out_before_the_end_of_the_iteration() {
        let (mut sink, rx, _spare) = sink(16, QUEUE);
        for _ in 0..BATCH_RECORDS + 1 {
            sink.push(&entry("x"), finish(), None, now());
        }
        assert_eq!(rx.try_recv().unwrap().len(), BATCH_RECORDS);
        drop(sink);
        assert_eq!(rx.try_recv().unwrap().len(), 1, "dropping the sink flushes");
    }

    #[test]
    fn requests_of_two_loop_times_go_out_in_two_batches() {
        let (mut sink, rx, _spare) = sink(16, 1000);
        sink.push(&entry("a"), finish(), None, now());
        sink.push(
            &entry("b"),
            finish(),
            None,
            now() + Duration::from_millis(3),
        );
        assert_eq!(rx.try_recv().unwrap().len(), 1);
        sink.flush();
        assert_eq!(rx.try_recv().unwrap().len(), 1);
    }

    #[test]
    fn flood_into_a_full_queue_drops_and_counts_without_blocking() {
        // Nobody reads: at most `limit` records wait, the rest are dropped.
        let (mut sink, _rx, _spare) = sink(1024, 4);
        let start = Instant::now();
        for _ in 0..10_000 {
            sink.push(&entry("id"), finish(), None, now());
            sink.flush();
        }
        assert_eq!(sink.dropped, 10_000 - 4);
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn flood_into_a_channel_without_room_drops_and_counts() {
        let (mut sink, _rx, _spare) = sink(2, QUEUE);
        for _ in 0..10 {
            sink.push(&entry("id"), finish(), None, now());
            sink.push(&entry("id"), finish(), None, now());
            sink.flush();
        }
        assert_eq!(sink.dropped, 20 - 4);
        assert_eq!(sink.queue.waiting.load(Ordering::Relaxed), 4);
    }
}
