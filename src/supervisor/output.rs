//! Output capture: bytes from a child's pipe become bounded lines in a ring.
//!
//! Lines are split on `\n` (a trailing `\r` is dropped), empty pieces are
//! dropped, a partial line is carried over to the next chunk, and no line
//! grows past [`MAX_LINE_BYTES`]: the excess of an over-long line is
//! discarded up to its newline. So a child that never prints a newline, or
//! floods, holds at most one line buffer per stream plus `outputLines`
//! entries of bounded size.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::Serialize;

/// Longest line kept (bytes, before UTF-8 decoding).
pub const MAX_LINE_BYTES: usize = 8192;
/// Suffix marking a line cut at [`MAX_LINE_BYTES`].
pub const TRUNCATED_MARK: &str = " [truncated]";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// One captured line as status reports it: `{at, line, stream}`.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct LogLine {
    pub at: String,
    pub line: String,
    pub stream: Stream,
}

/// Splits a byte stream into bounded lines.
#[derive(Debug, Default)]
pub struct LineSplitter {
    buf: Vec<u8>,
    /// Inside an over-long line whose start was already emitted.
    skipping: bool,
}

impl LineSplitter {
    /// Feeds one chunk; calls `emit` for every complete non-empty line.
    pub fn push(&mut self, mut chunk: &[u8], emit: &mut dyn FnMut(String)) {
        while !chunk.is_empty() {
            let newline = chunk.iter().position(|&b| b == b'\n');
            let (piece, rest, ended) = match newline {
                Some(i) => (&chunk[..i], &chunk[i + 1..], true),
                None => (chunk, &[][..], false),
            };
            chunk = rest;
            if self.skipping {
                if ended {
                    self.skipping = false;
                }
                continue;
            }
            let room = MAX_LINE_BYTES - self.buf.len();
            if piece.len() > room || (piece.len() == room && !ended) {
                self.buf.extend_from_slice(&piece[..room]);
                let mut line = decode(&self.buf);
                line.push_str(TRUNCATED_MARK);
                emit(line);
                self.buf.clear();
                self.skipping = !ended;
                continue;
            }
            self.buf.extend_from_slice(piece);
            if ended {
                let line = decode(&self.buf);
                self.buf.clear();
                if !line.is_empty() {
                    emit(line);
                }
            }
        }
    }

    /// End of stream: a pending partial line is emitted.
    pub fn finish(&mut self, emit: &mut dyn FnMut(String)) {
        if !self.skipping && !self.buf.is_empty() {
            let line = decode(&self.buf);
            if !line.is_empty() {
                emit(line);
            }
        }
        self.buf.clear();
        self.skipping = false;
    }

    /// The partial line carried over (a handover passes it on).
    pub fn pending(&self) -> (&[u8], bool) {
        (&self.buf, self.skipping)
    }

    /// A splitter that continues where [`pending`](Self::pending) left off.
    pub fn resume(buf: Vec<u8>, skipping: bool) -> LineSplitter {
        LineSplitter { buf, skipping }
    }

    /// Bytes currently buffered (for tests and memory accounting).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
}

fn decode(bytes: &[u8]) -> String {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    String::from_utf8_lossy(bytes).into_owned()
}

/// The newest `capacity` lines of one process (both streams share it).
#[derive(Debug, Clone)]
pub struct OutputRing {
    lines: VecDeque<LogLine>,
    capacity: usize,
}

impl OutputRing {
    pub fn new(capacity: usize) -> OutputRing {
        OutputRing {
            lines: VecDeque::with_capacity(capacity.min(64)),
            capacity: capacity.max(1),
        }
    }

    pub fn push(&mut self, line: LogLine) {
        while self.lines.len() >= self.capacity {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }

    /// A new `outputLines` takes effect at once (oldest lines dropped).
    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity.max(1);
        while self.lines.len() > self.capacity {
            self.lines.pop_front();
        }
    }

    pub fn to_vec(&self) -> Vec<LogLine> {
        self.lines.iter().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}

/// Rate limit for copying output lines into the daemon's own log: at most
/// `per_second` lines a second per process; the rest is counted and
/// reported once the second is over.
#[derive(Debug, Clone)]
pub struct LogBudget {
    per_second: u32,
    window_start: Option<Instant>,
    used: u32,
    dropped: u64,
}

pub enum Budget {
    /// Log the line; `Some(n)`: first report that n lines were suppressed.
    Log(Option<u64>),
    Drop,
}

impl LogBudget {
    pub fn new(per_second: u32) -> LogBudget {
        LogBudget {
            per_second,
            window_start: None,
            used: 0,
            dropped: 0,
        }
    }

    pub fn take(&mut self, now: Instant) -> Budget {
        let fresh = match self.window_start {
            None => true,
            Some(start) => now.saturating_duration_since(start) >= Duration::from_secs(1),
        };
        let mut report = None;
        if fresh {
            self.window_start = Some(now);
            self.used = 0;
            if self.dropped > 0 {
                report = Some(self.dropped);
                self.dropped = 0;
            }
        }
        if self.used < self.per_second {
            self.used += 1;
            Budget::Log(report)
        } else {
            self.dropped += 1;
            Budget::Drop
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> (Vec<String>, LineSplitter) {
        let mut s = LineSplitter::default();
        let mut out = Vec::new();
        for c in chunks {
            s.push(c, &mut |l| out.push(l));
        }
        (out, s)
    }

    #[test]
    fn lines_split_on_newline_and_crlf() {
        let (out, _) = split(&[b"a\nb\r\nc\n"]);
        assert_eq!(out, ["a", "b", "c"]);
    }

    #[test]
    fn empty_pieces_are_dropped() {
        let (out, _) = split(&[b"\n\na\n\r\n"]);
        assert_eq!(out, ["a"]);
    }

    #[test]
    fn partial_line_carries_over_between_chunks() {
        let (out, s) = split(&[b"hel", b"lo\nwor"]);
        assert_eq!(out, ["hello"]);
        assert_eq!(s.buffered(), 3);
    }

    #[test]
    fn finish_emits_the_pending_partial_line() {
        let (_, mut s) = split(&[b"tail"]);
        let mut out = Vec::new();
        s.finish(&mut |l| out.push(l));
        assert_eq!(out, ["tail"]);
    }

    #[test]
    fn endless_line_without_newline_stays_bounded() {
        let chunk = vec![b'y'; 4096];
        let mut s = LineSplitter::default();
        let mut out = Vec::new();
        for _ in 0..1000 {
            s.push(&chunk, &mut |l| out.push(l));
            assert!(s.buffered() <= MAX_LINE_BYTES);
        }
        // One truncated line; the rest is skipped up to the newline.
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].len(), MAX_LINE_BYTES + TRUNCATED_MARK.len());
        s.push(b"\nnext\n", &mut |l| out.push(l));
        assert_eq!(out.last().unwrap(), "next");
    }

    #[test]
    fn line_of_exactly_the_limit_is_not_truncated() {
        let mut line = vec![b'x'; MAX_LINE_BYTES];
        line.push(b'\n');
        let (out, _) = split(&[&line]);
        assert_eq!(out[0].len(), MAX_LINE_BYTES);
    }

    #[test]
    fn invalid_utf8_is_replaced_not_rejected() {
        let (out, _) = split(&[b"a\xffb\n"]);
        assert_eq!(out, ["a\u{fffd}b"]);
    }

    #[test]
    fn ring_keeps_the_newest_lines() {
        let mut r = OutputRing::new(2);
        for i in 0..5 {
            r.push(LogLine {
                at: String::new(),
                line: i.to_string(),
                stream: Stream::Stdout,
            });
        }
        let lines: Vec<_> = r.to_vec().into_iter().map(|l| l.line).collect();
        assert_eq!(lines, ["3", "4"]);
    }

    #[test]
    fn log_budget_drops_then_reports() {
        let mut b = LogBudget::new(2);
        let t0 = Instant::now();
        assert!(matches!(b.take(t0), Budget::Log(None)));
        assert!(matches!(b.take(t0), Budget::Log(None)));
        assert!(matches!(b.take(t0), Budget::Drop));
        assert!(matches!(
            b.take(t0 + Duration::from_secs(1)),
            Budget::Log(Some(1))
        ));
    }
}
