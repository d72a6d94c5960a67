//! The JSON line of one request (formatted on the writer thread).

use super::batch::View;
use serde::Serialize;
use std::borrow::Cow;
use std::net::IpAddr;

/// The line as written, keys in this order.
#[derive(Serialize)]
struct Line<'a> {
    time: &'a str,
    remote: IpAddr,
    method: Option<Cow<'a, str>>,
    path: Option<Cow<'a, str>>,
    status: u16,
    bytes: u64,
    #[serde(rename = "durationMs")]
    duration_ms: f64,
    #[serde(rename = "releaseId")]
    release_id: Option<&'a str>,
    #[serde(rename = "requestId")]
    request_id: Cow<'a, str>,
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
    pub(super) fn iso(&mut self, ms: u64) -> &str {
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

/// Text of request bytes (the codec only hands out ranges of visible ASCII
/// or of what httparse accepted as UTF-8).
fn text(bytes: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

/// Appends `view` as one JSON line (newline included) to `out`.
pub fn format_line(view: &View<'_>, stamp: &mut Stamp, out: &mut Vec<u8>) {
    let r = view.record;
    let micros = u64::try_from(view.duration.as_micros()).unwrap_or(u64::MAX);
    let line = Line {
        time: stamp.iso(crate::timefmt::ms_since_epoch(view.time)),
        remote: r.remote.to_canonical(),
        method: view.method.map(text),
        path: view.path.map(text),
        status: r.status,
        bytes: r.bytes,
        duration_ms: micros as f64 / 1000.0,
        release_id: view.release_id,
        request_id: text(view.request_id),
        upgrade: r.upgrade,
    };
    if serde_json::to_writer(&mut *out, &line).is_ok() {
        out.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::super::batch::{Batch, Finish};
    use super::super::entry::Entry;
    use super::*;
    use std::sync::Arc;
    use std::time::{Duration, Instant, UNIX_EPOCH};

    /// The one line of a batch holding one request of `entry`.
    fn formatted(entry: &Entry, release: Option<&str>) -> String {
        let mut b = Batch::default();
        b.time = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        b.now = Some(entry.started + Duration::from_micros(1500));
        let finish = Finish {
            remote: "::ffff:10.0.0.7".parse().unwrap(),
            status: 200,
            bytes: 12,
            upgrade: false,
        };
        b.push(entry, finish, release.map(Arc::from).as_ref());
        let mut out = Vec::new();
        for v in b.views() {
            format_line(&v, &mut Stamp::default(), &mut out);
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn line_has_every_key_in_order() {
        let mut e = Entry::default();
        e.open(Instant::now(), 0, Some((b"GET", b"/a?b=\"1\"")), b"abc");
        assert_eq!(
            formatted(&e, Some("v1")),
            "{\"time\":\"2023-11-14T22:13:20.123Z\",\"remote\":\"10.0.0.7\",\"method\":\"GET\",\
             \"path\":\"/a?b=\\\"1\\\"\",\"status\":200,\"bytes\":12,\"durationMs\":1.5,\
             \"releaseId\":\"v1\",\"requestId\":\"abc\",\"upgrade\":false}\n"
        );
    }

    #[test]
    fn unparsed_request_logs_null_method_and_path() {
        let mut e = Entry::default();
        e.open(Instant::now(), 0, None, b"id");
        let v: serde_json::Value = serde_json::from_str(&formatted(&e, None)).unwrap();
        assert!(v["method"].is_null() && v["path"].is_null() && v["releaseId"].is_null());
        assert_eq!(v["requestId"], "id");
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
}
