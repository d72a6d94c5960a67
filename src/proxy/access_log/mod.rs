//! The access log: one JSON line per finished request, written off the
//! proxy thread.
//!
//! The loop only fills a small [`Record`] (the request line and id copied
//! once, at head time, and only when the log is on) and offers it to a
//! bounded channel with `try_send`: when the writer falls behind, the
//! record is dropped and counted ([`Sink::dropped`], the metric
//! `rollbridge_access_log_dropped_total`), so the loop never blocks. The
//! writer thread (`writer.rs`) formats with serde_json, batches the writes
//! and reopens the file on request (SIGHUP) or when the path stops naming
//! the open file (logrotate renamed it).

mod entry;
pub mod writer;

pub use entry::{Entry, begin};
pub use writer::Control;

use crossbeam_channel::{Sender, TrySendError};
use serde::Serialize;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Records that may wait for the writer before new ones are dropped.
pub const QUEUE: usize = 16 * 1024;

/// One finished request, handed to the writer.
#[derive(Debug)]
pub struct Record {
    /// When the request finished.
    pub time: SystemTime,
    pub remote: IpAddr,
    pub entry: Box<Entry>,
    pub status: u16,
    /// Response body bytes sent (a WebSocket: every byte sent to the
    /// client after the 101 head).
    pub bytes: u64,
    pub duration: Duration,
    /// `None` for the proxy's own answers.
    pub release_id: Option<Arc<str>>,
    pub upgrade: bool,
}

/// The loop's end of the log.
#[derive(Debug)]
pub struct Sink {
    tx: Sender<Record>,
    /// Records dropped because the writer was behind.
    pub dropped: u64,
    /// Release ids by slot, shared by every record (no copy per request).
    names: Vec<Option<Arc<str>>>,
}

impl Sink {
    pub fn new(tx: Sender<Record>) -> Sink {
        Sink {
            tx,
            dropped: 0,
            names: Vec::new(),
        }
    }

    /// The shared id of the release in `slot`, now named `id`.
    pub fn name(&mut self, slot: usize, id: &str) -> Arc<str> {
        if self.names.len() <= slot {
            self.names.resize(slot + 1, None);
        }
        match &self.names[slot] {
            Some(n) if &**n == id => n.clone(),
            _ => {
                let n: Arc<str> = Arc::from(id);
                self.names[slot] = Some(n.clone());
                n
            }
        }
    }

    /// Offers a record; never blocks.
    pub fn offer(&mut self, record: Record) {
        match self.tx.try_send(record) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => self.dropped += 1,
        }
    }
}

/// The line as written, keys in this order.
#[derive(Serialize)]
struct Line<'a> {
    time: &'a str,
    remote: IpAddr,
    method: Option<&'a str>,
    path: Option<&'a str>,
    status: u16,
    bytes: u64,
    #[serde(rename = "durationMs")]
    duration_ms: f64,
    #[serde(rename = "releaseId")]
    release_id: Option<&'a str>,
    #[serde(rename = "requestId")]
    request_id: &'a str,
    upgrade: bool,
}

/// The writer's timestamp text, recomputed in full once per second.
#[derive(Debug, Default)]
pub struct Stamp {
    second: Option<u64>,
    /// `YYYY-MM-DDTHH:MM:SS.mmmZ` of the last record.
    text: String,
}

impl Stamp {
    fn iso(&mut self, ms: u64) -> &str {
        let second = ms / 1000;
        if self.second != Some(second) || self.text.len() != 24 {
            self.second = Some(second);
            self.text = crate::timefmt::iso(ms);
        } else {
            self.text.truncate(20);
            let milli = ms % 1000;
            for d in [milli / 100, milli / 10 % 10, milli % 10] {
                self.text.push(char::from(b'0' + d as u8));
            }
            self.text.push('Z');
        }
        &self.text
    }
}

/// Appends `record` as one JSON line (newline included) to `out`.
pub fn format_line(record: &Record, stamp: &mut Stamp, out: &mut Vec<u8>) {
    let micros = u64::try_from(record.duration.as_micros()).unwrap_or(u64::MAX);
    let line = Line {
        time: stamp.iso(crate::timefmt::ms_since_epoch(record.time)),
        remote: record.remote.to_canonical(),
        method: record.entry.method(),
        path: record.entry.path(),
        status: record.status,
        bytes: record.bytes,
        duration_ms: micros as f64 / 1000.0,
        release_id: record.release_id.as_deref(),
        request_id: record.entry.request_id(),
        upgrade: record.upgrade,
    };
    if serde_json::to_writer(&mut *out, &line).is_ok() {
        out.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::bounded;
    use std::time::{Instant, UNIX_EPOCH};

    fn record(entry: Entry) -> Record {
        Record {
            time: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            remote: "::ffff:10.0.0.7".parse().unwrap(),
            entry: Box::new(entry),
            status: 200,
            bytes: 12,
            duration: Duration::from_micros(1500),
            release_id: Some(Arc::from("v1")),
            upgrade: false,
        }
    }

    #[test]
    fn line_has_every_key_in_order() {
        let e = Entry::new(Instant::now(), 0, Some(("GET", "/a?b=\"1\"")), "abc");
        let mut out = Vec::new();
        format_line(&record(e), &mut Stamp::default(), &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"time\":\"2023-11-14T22:13:20.123Z\",\"remote\":\"10.0.0.7\",\"method\":\"GET\",\
             \"path\":\"/a?b=\\\"1\\\"\",\"status\":200,\"bytes\":12,\"durationMs\":1.5,\
             \"releaseId\":\"v1\",\"requestId\":\"abc\",\"upgrade\":false}\n"
        );
    }

    #[test]
    fn unparsed_request_logs_null_method_and_path() {
        let mut r = record(Entry::new(Instant::now(), 0, None, "id"));
        r.release_id = None;
        let mut out = Vec::new();
        format_line(&r, &mut Stamp::default(), &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert!(v["method"].is_null() && v["path"].is_null() && v["releaseId"].is_null());
    }

    #[test]
    fn stamp_matches_the_full_format_within_and_across_seconds() {
        let mut stamp = Stamp::default();
        for ms in [
            1_700_000_000_123,
            1_700_000_000_999,
            1_700_000_001_005,
            1_700_000_001_040,
        ] {
            assert_eq!(stamp.iso(ms), crate::timefmt::iso(ms));
        }
    }

    #[test]
    fn flood_into_a_full_queue_drops_and_counts_without_blocking() {
        // Nobody reads: the queue fills and everything after is dropped.
        let (tx, _rx) = bounded(4);
        let mut sink = Sink::new(tx);
        let start = Instant::now();
        for _ in 0..10_000 {
            sink.offer(record(Entry::new(Instant::now(), 0, None, "id")));
        }
        assert_eq!(sink.dropped, 10_000 - 4);
        assert!(start.elapsed() < Duration::from_secs(5));
    }
}
