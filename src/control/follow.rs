//! One follower on the control thread: what it wants, the line each
//! published item becomes for it, and its bounded queue. A follower that
//! does not read loses lines (counted, told once with `{"dropped":N}` when
//! room returns); it never holds anyone else up.

use std::collections::HashMap;

use super::fanout::FanItem;
use crate::supervisor::ProcKey;

/// Followers served at once; more are refused with a message.
pub const MAX_FOLLOWERS: usize = 32;
/// Bytes queued for one follower before its lines are dropped.
pub const QUEUE_BYTES: usize = 256 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Want {
    Events,
    /// Output lines, of one process (or its instances) when given.
    Logs {
        process: Option<String>,
    },
}

#[derive(Debug)]
pub struct Follower {
    pub want: Want,
    /// The first reply went out: pushed lines may follow it.
    started: bool,
    /// Lines published before the first reply.
    early: Vec<u8>,
    /// Lines dropped since the last notice.
    dropped: u64,
}

impl Follower {
    pub fn new(want: Want) -> Follower {
        Follower {
            want,
            started: false,
            early: Vec::new(),
            dropped: 0,
        }
    }

    /// The line `item` becomes for this follower (`None`: not wanted).
    pub fn line_for(&self, item: &FanItem, sources: &HashMap<ProcKey, String>) -> Option<String> {
        match (item, &self.want) {
            (FanItem::Event(e), Want::Events) => Some(e.to_json()),
            (
                FanItem::Output {
                    key,
                    id,
                    release_id,
                    line,
                },
                Want::Logs { process },
            ) => {
                if process.as_deref().is_some_and(|p| !selects(p, id)) {
                    return None;
                }
                let source = match (sources.get(key), release_id) {
                    (Some(s), _) => s.clone(),
                    (None, Some(r)) => format!("release {r} (starting)"),
                    (None, None) => "service".into(),
                };
                let entry = serde_json::json!({"id": id, "logs": [line], "source": source});
                Some(entry.to_string())
            }
            _ => None,
        }
    }

    /// Queues `line` (plus newline) on `wbuf`, or counts it as dropped when
    /// the queue is full. Before the first reply lines wait aside.
    pub fn push(&mut self, wbuf: &mut Vec<u8>, line: &str) {
        if !self.started {
            if self.early.len() + line.len() < QUEUE_BYTES {
                self.early.extend_from_slice(line.as_bytes());
                self.early.push(b'\n');
            } else {
                self.dropped += 1;
            }
            return;
        }
        self.note_dropped(wbuf);
        if self.dropped > 0 || wbuf.len() + line.len() >= QUEUE_BYTES {
            self.dropped += 1;
            return;
        }
        wbuf.extend_from_slice(line.as_bytes());
        wbuf.push(b'\n');
    }

    /// Lines lost before they reached this follower.
    pub fn lost(&mut self, n: u64) {
        self.dropped += n;
    }

    /// After the first reply: the lines that waited.
    pub fn start(&mut self, wbuf: &mut Vec<u8>) {
        self.started = true;
        wbuf.append(&mut self.early);
        self.note_dropped(wbuf);
    }

    /// Once there is room again, says how many lines were dropped.
    pub fn note_dropped(&mut self, wbuf: &mut Vec<u8>) {
        if self.started && self.dropped > 0 && wbuf.len() < QUEUE_BYTES / 2 {
            wbuf.extend_from_slice(format!("{{\"dropped\":{}}}\n", self.dropped).as_bytes());
            self.dropped = 0;
        }
    }
}

/// `--process` semantics of `logs`: an instance id exactly, or every
/// instance of a base id.
pub fn selects(wanted: &str, id: &str) -> bool {
    id == wanted
        || id
            .strip_prefix(wanted)
            .and_then(|rest| rest.strip_prefix('#'))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Data, Event};
    use crate::supervisor::output::{LogLine, Stream};

    fn output(id: &str) -> FanItem {
        FanItem::Output {
            key: 7,
            id: id.into(),
            release_id: Some("v2".into()),
            line: LogLine {
                at: "t".into(),
                line: "hello".into(),
                stream: Stream::Stdout,
            },
        }
    }

    #[test]
    fn logs_line_is_shaped_like_a_logs_json_entry() {
        let f = Follower::new(Want::Logs { process: None });
        let mut sources = HashMap::new();
        assert_eq!(
            f.line_for(&output("web"), &sources).unwrap(),
            r#"{"id":"web","logs":[{"at":"t","line":"hello","stream":"stdout"}],"source":"release v2 (starting)"}"#
        );
        sources.insert(7, "release v2 (active)".to_string());
        assert!(
            f.line_for(&output("web"), &sources)
                .unwrap()
                .contains(r#""source":"release v2 (active)""#)
        );
        assert!(
            f.line_for(&FanItem::Event(Event::new("x", Data::new())), &sources)
                .is_none()
        );
    }

    #[test]
    fn process_filter_applies_to_followed_lines() {
        let f = Follower::new(Want::Logs {
            process: Some("worker".into()),
        });
        let none = HashMap::new();
        assert!(f.line_for(&output("web"), &none).is_none());
        assert!(f.line_for(&output("worker#1"), &none).is_some());
    }

    #[test]
    fn full_queue_drops_and_tells_once_when_room_returns() {
        let mut f = Follower::new(Want::Events);
        let mut wbuf = Vec::new();
        f.start(&mut wbuf);
        let line = "x".repeat(1000);
        let mut pushed = 0;
        while wbuf.len() + line.len() < QUEUE_BYTES {
            f.push(&mut wbuf, &line);
            pushed += 1;
        }
        f.push(&mut wbuf, &line);
        f.push(&mut wbuf, &line);
        assert_eq!(wbuf.len(), pushed * 1001);
        wbuf.clear();
        f.push(&mut wbuf, "next");
        assert_eq!(String::from_utf8(wbuf).unwrap(), "{\"dropped\":2}\nnext\n");
    }

    #[test]
    fn lines_before_the_first_reply_wait() {
        let mut f = Follower::new(Want::Events);
        let mut wbuf = Vec::new();
        f.push(&mut wbuf, "early");
        assert!(wbuf.is_empty());
        wbuf.extend_from_slice(b"reply\n");
        f.start(&mut wbuf);
        assert_eq!(wbuf, b"reply\nearly\n");
    }
}
