//! What the access log keeps about a request from its head to its end
//! (only made when the log is on), and the session hooks that make and
//! finish it.

use super::Record;
use crate::proxy::codec::RequestInfo;
use crate::proxy::session::{Session, Shared};
use std::time::{Instant, SystemTime};

/// A request being logged.
#[derive(Debug)]
pub struct Entry {
    /// When the request head was received.
    pub started: Instant,
    /// Bytes written to the client connection before this request.
    pub sent_base: u64,
    /// Bytes of response heads queued for the client (the 101 of a tunnel
    /// included): what is sent beyond them is body.
    pub heads: u64,
    /// Method, target and request id back to back (one allocation).
    text: String,
    /// `None`: the head could not be parsed.
    line: Option<(usize, usize)>,
}

impl Entry {
    pub fn new(started: Instant, sent_base: u64, line: Option<(&str, &str)>, id: &str) -> Entry {
        let (method, target) = line.unwrap_or(("", ""));
        let mut text = String::with_capacity(method.len() + target.len() + id.len());
        text.push_str(method);
        text.push_str(target);
        text.push_str(id);
        Entry {
            started,
            sent_base,
            heads: 0,
            text,
            line: line.map(|(m, t)| (m.len(), m.len() + t.len())),
        }
    }

    pub fn method(&self) -> Option<&str> {
        self.line.and_then(|(m, _)| self.text.get(..m))
    }

    pub fn path(&self) -> Option<&str> {
        self.line.and_then(|(m, t)| self.text.get(m..t))
    }

    pub fn request_id(&self) -> &str {
        let from = self.line.map_or(0, |(_, t)| t);
        self.text.get(from..).unwrap_or("")
    }
}

/// Text of `buf[range]` (the codec only hands out ranges of visible ASCII
/// or of what httparse accepted as UTF-8).
fn text(buf: &[u8], range: std::ops::Range<usize>) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(buf.get(range).unwrap_or(&[]))
}

/// A request head was parsed (`data`: the bytes the codec was given,
/// `sent`: bytes written to the client so far): its entry if the log is on.
pub fn begin(
    sh: &Shared,
    sent: u64,
    data: &[u8],
    info: &RequestInfo,
    generated: &[u8],
) -> Option<Box<Entry>> {
    sh.access.as_ref()?;
    let id = match info.spans.request_id.clone() {
        Some(r) => text(data, r),
        None => String::from_utf8_lossy(generated),
    };
    let method = text(data, info.spans.method.clone());
    let target = text(data, info.spans.target.clone());
    Some(Box::new(Entry::new(
        sh.now,
        sent,
        Some((&method, &target)),
        &id,
    )))
}

impl Session {
    /// A head that could not be parsed is answered: its entry has no
    /// method or path.
    pub(in crate::proxy) fn begin_unparsed_entry(&mut self, sh: &Shared, generated: &[u8]) {
        if sh.access.is_none() {
            return;
        }
        let id = String::from_utf8_lossy(generated);
        self.entry = Some(Box::new(Entry::new(sh.now, self.client.sent, None, &id)));
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
        let Some(entry) = self.entry.take() else {
            return;
        };
        let Some(sink) = sh.access.as_mut() else {
            return;
        };
        let bytes = own_body.unwrap_or_else(|| {
            self.client
                .sent
                .saturating_sub(entry.sent_base)
                .saturating_sub(entry.heads)
        });
        // By the metrics' slot map: the release may have drained already.
        let release_id = release.and_then(|r| Some(sink.name(r, sh.metrics.release_id(r)?)));
        sink.offer(Record {
            time: SystemTime::now(),
            remote: self.peer,
            status,
            bytes,
            duration: sh.now.saturating_duration_since(entry.started),
            release_id,
            upgrade,
            entry,
        });
    }
}
