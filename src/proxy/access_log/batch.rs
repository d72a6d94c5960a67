//! What the loop hands to the writer: the requests finished in one loop
//! iteration, their text back to back in one buffer.
//!
//! A batch is filled on the proxy thread, sent once, formatted by the
//! writer, cleared and sent back to be filled again: in steady traffic no
//! allocation is made per request or per batch.

use super::entry::Entry;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// No release (the proxy's own answer).
const NO_RELEASE: u32 = u32::MAX;

/// One finished request of a batch (its text is in the batch). Kept small:
/// the loop writes one per request.
#[derive(Debug, Clone)]
pub struct Record {
    pub remote: IpAddr,
    pub status: u16,
    pub upgrade: bool,
    /// False: the head could not be parsed (no method or path).
    parsed: bool,
    /// Index in the batch's release ids, or [`NO_RELEASE`].
    release: u32,
    /// Offsets in the batch's text: start, end of the method, end of the
    /// target, end of the request id.
    text: [u32; 4],
    /// Response body bytes sent (a WebSocket: every byte sent to the
    /// client after the 101 head).
    pub bytes: u64,
    /// When the head was received (the writer takes the duration).
    started: Instant,
}

/// How a request ended, besides what its entry kept.
#[derive(Debug, Clone, Copy)]
pub struct Finish {
    pub remote: IpAddr,
    pub status: u16,
    pub bytes: u64,
    pub upgrade: bool,
}

/// Records finished in one loop iteration.
#[derive(Debug)]
pub struct Batch {
    /// When the first of them finished (the rest finished in the same
    /// iteration, within a few milliseconds).
    pub time: SystemTime,
    /// The loop's clock then (durations end there).
    pub now: Option<Instant>,
    records: Vec<Record>,
    text: Vec<u8>,
    /// Release ids the records name (shared, not copied, per request).
    names: Vec<Arc<str>>,
}

impl Default for Batch {
    fn default() -> Batch {
        Batch {
            time: UNIX_EPOCH,
            now: None,
            records: Vec::new(),
            text: Vec::new(),
            names: Vec::new(),
        }
    }
}

/// One record as the writer formats it.
#[derive(Debug)]
pub struct View<'a> {
    pub time: SystemTime,
    pub record: &'a Record,
    pub duration: Duration,
    pub method: Option<&'a [u8]>,
    pub path: Option<&'a [u8]>,
    pub request_id: &'a [u8],
    pub release_id: Option<&'a str>,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.records.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Empties the batch, keeping its buffers.
    pub fn clear(&mut self) {
        self.records.clear();
        self.text.clear();
        self.names.clear();
    }

    /// Adds a request: `entry`'s text is copied, `release` (the release's
    /// shared id) is named once per batch.
    pub fn push(&mut self, entry: &Entry, finish: Finish, release: Option<&Arc<str>>) {
        let release = match release {
            None => NO_RELEASE,
            Some(name) => match self.names.iter().position(|n| Arc::ptr_eq(n, name)) {
                Some(i) => i as u32,
                None => {
                    self.names.push(name.clone());
                    self.names.len() as u32 - 1
                }
            },
        };
        // Offsets past u32 (never with real head limits) read as empty.
        let at = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let start = self.text.len();
        self.text.extend_from_slice(entry.text());
        let (method, target) = entry.line().unwrap_or((0, 0));
        self.records.push(Record {
            remote: finish.remote,
            status: finish.status,
            upgrade: finish.upgrade,
            parsed: entry.line().is_some(),
            release,
            text: [
                at(start),
                at(start + method),
                at(start + target),
                at(self.text.len()),
            ],
            bytes: finish.bytes,
            started: entry.started,
        });
    }

    /// The records in the order they finished.
    pub fn views(&self) -> impl Iterator<Item = View<'_>> {
        self.records.iter().map(move |r| {
            let [start, method, target, end] = r.text.map(|n| n as usize);
            let part = |from: usize, to: usize| self.text.get(from..to).unwrap_or(&[]);
            View {
                time: self.time,
                record: r,
                duration: self.now.map_or(Duration::ZERO, |now| {
                    now.saturating_duration_since(r.started)
                }),
                method: r.parsed.then(|| part(start, method)),
                path: r.parsed.then(|| part(method, target)),
                request_id: part(target, end),
                release_id: self.names.get(r.release as usize).map(|n| &**n),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn finish(status: u16) -> Finish {
        Finish {
            remote: "127.0.0.1".parse().unwrap(),
            status,
            bytes: 3,
            upgrade: false,
        }
    }

    #[test]
    fn batch_keeps_each_records_text_and_release() {
        let v1: Arc<str> = Arc::from("v1");
        let v2: Arc<str> = Arc::from("v2");
        let mut e = Entry::default();
        let mut b = Batch::default();
        e.open(Instant::now(), 0, Some((b"GET", b"/a")), b"id-1");
        b.push(&e, finish(200), Some(&v1));
        e.open(Instant::now(), 0, None, b"id-2");
        b.push(&e, finish(400), None);
        e.open(Instant::now(), 0, Some((b"POST", b"/b?c")), b"id-3");
        b.push(&e, finish(201), Some(&v2));
        e.open(Instant::now(), 0, Some((b"GET", b"/d")), b"id-4");
        b.push(&e, finish(200), Some(&v1));
        let got: Vec<_> = b
            .views()
            .map(|v| (v.method, v.path, v.request_id, v.release_id))
            .collect();
        assert_eq!(
            got,
            [
                (
                    Some(&b"GET"[..]),
                    Some(&b"/a"[..]),
                    &b"id-1"[..],
                    Some("v1")
                ),
                (None, None, &b"id-2"[..], None),
                (
                    Some(&b"POST"[..]),
                    Some(&b"/b?c"[..]),
                    &b"id-3"[..],
                    Some("v2")
                ),
                (
                    Some(&b"GET"[..]),
                    Some(&b"/d"[..]),
                    &b"id-4"[..],
                    Some("v1")
                ),
            ]
        );
        assert_eq!(b.names.len(), 2, "one shared id per release and batch");
    }

    #[test]
    fn cleared_batch_is_empty_and_keeps_its_buffers() {
        let mut e = Entry::default();
        e.open(Instant::now(), 0, Some((b"GET", b"/")), b"x");
        let mut b = Batch::default();
        b.push(&e, finish(200), None);
        let cap = b.text.capacity();
        b.clear();
        assert!(b.is_empty() && b.views().next().is_none());
        assert_eq!(b.text.capacity(), cap);
    }
}
