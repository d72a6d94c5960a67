//! What the access log keeps about a request from its head to its end
//! (only made when the log is on), and the session hooks that open and
//! finish it.
//!
//! A session keeps its entry between requests: the next request's text
//! goes into the same small buffer, so logging a request allocates
//! nothing once the connection has served one.

use super::batch::Finish;
use crate::proxy::codec::RequestInfo;
use crate::proxy::session::{Session, Shared};
use std::time::Instant;

/// A buffer grown beyond this by a long target is not kept for the
/// session's next request.
const KEEP: usize = 1024;

/// A session's request being logged.
#[derive(Debug)]
pub struct Entry {
    /// When the request head was received.
    pub started: Instant,
    /// Bytes written to the client connection before this request.
    pub sent_base: u64,
    /// Bytes of response heads queued for the client (the 101 of a tunnel
    /// included): what is sent beyond them is body.
    pub heads: u64,
    /// A request is being logged (else the entry only keeps its buffer).
    open: bool,
    /// Method, target and request id back to back.
    text: Vec<u8>,
    /// Ends of the method and the target in `text`; `None`: the head could
    /// not be parsed.
    line: Option<(usize, usize)>,
}

impl Default for Entry {
    fn default() -> Entry {
        Entry {
            started: Instant::now(),
            sent_base: 0,
            heads: 0,
            open: false,
            text: Vec::new(),
            line: None,
        }
    }
}

impl Entry {
    /// Starts logging a request (replacing one that never finished).
    pub fn open(
        &mut self,
        started: Instant,
        sent_base: u64,
        line: Option<(&[u8], &[u8])>,
        id: &[u8],
    ) {
        self.started = started;
        self.sent_base = sent_base;
        self.heads = 0;
        self.open = true;
        self.text.clear();
        let (method, target) = line.unwrap_or_default();
        self.text.reserve(method.len() + target.len() + id.len());
        self.line = line.map(|(method, target)| {
            self.text.extend_from_slice(method);
            self.text.extend_from_slice(target);
            (method.len(), method.len() + target.len())
        });
        self.text.extend_from_slice(id);
    }

    /// Method, target and request id back to back.
    pub fn text(&self) -> &[u8] {
        &self.text
    }

    /// Ends of the method and the target in [`Entry::text`].
    pub fn line(&self) -> Option<(usize, usize)> {
        self.line
    }
}

/// A request head was parsed (`data`: the bytes the codec was given,
/// `sent`: bytes written to the client so far): its entry is opened if
/// the log is on.
pub fn begin(
    slot: &mut Option<Box<Entry>>,
    sh: &Shared,
    sent: u64,
    data: &[u8],
    info: &RequestInfo,
    generated: &[u8],
) {
    if sh.access.is_none() {
        return;
    }
    let part = |r: std::ops::Range<usize>| data.get(r).unwrap_or(&[]);
    let id = match info.spans.request_id.clone() {
        Some(r) => part(r),
        None => generated,
    };
    let line = (
        part(info.spans.method.clone()),
        part(info.spans.target.clone()),
    );
    slot.get_or_insert_default()
        .open(sh.now, sent, Some(line), id);
}

impl Session {
    /// A head that could not be parsed is answered: its entry has no
    /// method or path.
    pub(in crate::proxy) fn begin_unparsed_entry(&mut self, sh: &Shared, generated: &[u8]) {
        if sh.access.is_none() {
            return;
        }
        let sent = self.client.sent;
        self.entry
            .get_or_insert_default()
            .open(sh.now, sent, None, generated);
    }

    /// The request is over: `status` went to the client. `release` is
    /// `None` for the proxy's own answers, whose body length is `own_body`;
    /// otherwise the body is what was written beyond the heads.
    pub(in crate::proxy) fn log_access(
        &mut self,
        sh: &mut Shared,
        release: Option<usize>,
        status: u16,
        own_body: Option<u64>,
        upgrade: bool,
    ) {
        let Some(entry) = self.entry.as_mut().filter(|e| e.open) else {
            return;
        };
        entry.open = false;
        let Some(sink) = sh.access.as_mut() else {
            return;
        };
        let bytes = own_body.unwrap_or_else(|| {
            self.client
                .sent
                .saturating_sub(entry.sent_base)
                .saturating_sub(entry.heads)
        });
        let finish = Finish {
            remote: self.peer,
            status,
            bytes,
            upgrade,
        };
        // By the metrics' slot map: the release may have drained already.
        let release = release.and_then(|r| Some((r, sh.metrics.release_id(r)?)));
        sink.push(entry, finish, release, sh.now);
        if entry.text.capacity() > KEEP {
            entry.text = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reopened_entry_replaces_the_previous_text() {
        let mut e = Entry::default();
        e.open(
            Instant::now(),
            5,
            Some((b"POST", b"/long/path")),
            b"first-id",
        );
        e.heads = 40;
        e.open(Instant::now(), 9, None, b"id2");
        assert_eq!(e.text(), b"id2");
        assert_eq!((e.line(), e.sent_base, e.heads), (None, 9, 0));
        e.open(Instant::now(), 9, Some((b"GET", b"/")), b"i");
        assert_eq!((e.text(), e.line()), (&b"GET/i"[..], Some((3, 4))));
    }

    #[test]
    fn a_sessions_next_request_reuses_the_entry_buffer() {
        let mut e = Entry::default();
        e.open(
            Instant::now(),
            0,
            Some((b"GET", b"/first")),
            b"0123456789abcdef",
        );
        let buffer = e.text().as_ptr();
        for _ in 0..100 {
            e.open(
                Instant::now(),
                0,
                Some((b"GET", b"/next")),
                b"fedcba9876543210",
            );
            assert_eq!(e.text().as_ptr(), buffer, "no allocation per request");
        }
    }
}
