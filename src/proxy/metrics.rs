//! Request counters and the latency histogram, owned by the loop thread,
//! plus their rendering in the Prometheus text format (0.0.4).
//!
//! Counting costs a few integer operations per finished request: the
//! release's stats are found by its slot index (mapped once when a release
//! becomes active), the status code by a short linear scan, the bucket by
//! comparing against fixed bounds. No lock, no atomic, no allocation after
//! a code is first seen.
//!
//! Answers the proxy gives without any release involved (no active release,
//! maintenance, a malformed request, a pause that held too long) are counted
//! under `release=""`.

use super::admin::AdminSnapshot;
use super::handle::ReleaseCounts;
use std::fmt::Write;
use std::time::{Duration, Instant};

/// Upper bounds of the latency buckets, in microseconds (`+Inf` is implied).
const BOUNDS_US: [u64; 11] = [
    5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000,
    10_000_000,
];

/// Stats of releases no longer known to the proxy kept for scraping
/// (beyond: the oldest are dropped).
const KEEP_GONE: usize = 16;

/// Counters of one release (or of the proxy's own answers).
#[derive(Debug, Clone)]
struct Stats {
    release: String,
    /// (status, requests) in first-seen order.
    codes: Vec<(u16, u64)>,
    /// Non-cumulative; the last slot is `+Inf`.
    buckets: [u64; BOUNDS_US.len() + 1],
    sum_us: u64,
    count: u64,
}

impl Stats {
    fn new(release: String) -> Stats {
        Stats {
            release,
            codes: Vec::new(),
            buckets: [0; BOUNDS_US.len() + 1],
            sum_us: 0,
            count: 0,
        }
    }

    fn record(&mut self, status: u16, took: Duration) {
        match self.codes.iter_mut().find(|(c, _)| *c == status) {
            Some((_, n)) => *n += 1,
            None => self.codes.push((status, 1)),
        }
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let slot = BOUNDS_US
            .iter()
            .position(|&b| us <= b)
            .unwrap_or(BOUNDS_US.len());
        self.buckets[slot] += 1;
        self.sum_us = self.sum_us.saturating_add(us);
        self.count += 1;
    }
}

/// Everything counted on the hot path.
#[derive(Debug)]
pub struct Metrics {
    /// Release slot → index in `stats`.
    by_slot: Vec<Option<usize>>,
    /// `stats[0]` is the proxy's own answers.
    stats: Vec<Stats>,
    /// Upstream connects abandoned as stalled and started again.
    connect_restarts: u64,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            by_slot: Vec::new(),
            stats: vec![Stats::new(String::new())],
            connect_restarts: 0,
        }
    }
}

impl Metrics {
    /// Release slot `slot` now stands for `id` (a release became active).
    pub fn bind(&mut self, slot: usize, id: &str) {
        let idx = match self.stats.iter().position(|s| s.release == id) {
            Some(i) if i > 0 => i,
            _ => {
                self.stats.push(Stats::new(id.to_string()));
                self.stats.len() - 1
            }
        };
        if self.by_slot.len() <= slot {
            self.by_slot.resize(slot + 1, None);
        }
        self.by_slot[slot] = Some(idx);
        self.prune();
    }

    /// Drops the stats of the oldest releases no slot points at.
    fn prune(&mut self) {
        let bound = |i: usize, by_slot: &[Option<usize>]| by_slot.contains(&Some(i));
        let gone: Vec<usize> = (1..self.stats.len())
            .filter(|&i| !bound(i, &self.by_slot))
            .collect();
        if gone.len() <= KEEP_GONE {
            return;
        }
        let drop = &gone[..gone.len() - KEEP_GONE];
        let mut map = Vec::with_capacity(self.stats.len());
        let mut next = 0;
        for i in 0..self.stats.len() {
            if drop.contains(&i) {
                map.push(None);
            } else {
                map.push(Some(next));
                next += 1;
            }
        }
        let mut i = 0;
        self.stats.retain(|_| {
            let keep = map[i].is_some();
            i += 1;
            keep
        });
        for s in self.by_slot.iter_mut() {
            *s = s.and_then(|i| map.get(i).copied().flatten());
        }
    }

    /// One finished request: `status` went to the client, the head was
    /// received at `since`. `release` is the slot, `None` for the proxy's
    /// own answers with no release involved.
    pub fn record(&mut self, release: Option<usize>, status: u16, since: Instant, now: Instant) {
        let idx = release
            .and_then(|r| self.by_slot.get(r).copied().flatten())
            .unwrap_or(0);
        if let Some(s) = self.stats.get_mut(idx) {
            s.record(status, now.saturating_duration_since(since));
        }
    }

    /// An upstream connect stalled (the app's accept queue was full) and
    /// was started again.
    pub fn connect_stalled(&mut self) {
        self.connect_restarts += 1;
    }

    /// Requests answered so far, by release (`""` = the proxy's own
    /// answers), for the traffic history.
    pub fn totals(&self) -> impl Iterator<Item = (&str, u64)> {
        self.stats.iter().map(|s| (s.release.as_str(), s.count))
    }

    /// The release slot `slot` stands for (still known after the release
    /// itself drained and left the proxy's table).
    pub fn release_id(&self, slot: usize) -> Option<&str> {
        let idx = self.by_slot.get(slot).copied().flatten()?;
        self.stats.get(idx).map(|s| s.release.as_str())
    }

    /// The request families in the text format.
    pub fn render(&self, out: &mut String) {
        out.push_str(
            "# HELP rollbridge_http_requests_total HTTP requests answered, by release and status sent to the client.\n\
             # TYPE rollbridge_http_requests_total counter\n",
        );
        for s in &self.stats {
            let release = escape(&s.release);
            for (code, n) in &s.codes {
                let _ = writeln!(
                    out,
                    "rollbridge_http_requests_total{{release=\"{release}\",code=\"{code}\"}} {n}"
                );
            }
        }
        out.push_str(
            "# HELP rollbridge_http_request_duration_seconds Time from the request head received to the response complete.\n\
             # TYPE rollbridge_http_request_duration_seconds histogram\n",
        );
        for s in self.stats.iter().filter(|s| s.count > 0) {
            let release = escape(&s.release);
            let mut cumulative = 0;
            for (i, n) in s.buckets.iter().enumerate() {
                cumulative += n;
                let le = match BOUNDS_US.get(i) {
                    Some(b) => seconds(*b),
                    None => "+Inf".to_string(),
                };
                let _ = writeln!(
                    out,
                    "rollbridge_http_request_duration_seconds_bucket{{release=\"{release}\",le=\"{le}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "rollbridge_http_request_duration_seconds_sum{{release=\"{release}\"}} {}",
                seconds(s.sum_us)
            );
            let _ = writeln!(
                out,
                "rollbridge_http_request_duration_seconds_count{{release=\"{release}\"}} {}",
                s.count
            );
        }
        out.push_str(
            "# HELP rollbridge_upstream_connect_restarts_total Connects to an app that stalled (its accept queue was full) and were started again.\n\
             # TYPE rollbridge_upstream_connect_restarts_total counter\n",
        );
        let _ = writeln!(
            out,
            "rollbridge_upstream_connect_restarts_total {}",
            self.connect_restarts
        );
    }
}

/// The open-connections gauge from the live release counts.
pub fn render_open(counts: &[ReleaseCounts], out: &mut String) {
    out.push_str(
        "# HELP rollbridge_open_connections Requests in flight (http) and open WebSocket tunnels, by release.\n\
         # TYPE rollbridge_open_connections gauge\n",
    );
    for c in counts {
        let release = escape(&c.release_id);
        let _ = writeln!(
            out,
            "rollbridge_open_connections{{release=\"{release}\",kind=\"http\"}} {}",
            c.http
        );
        let _ = writeln!(
            out,
            "rollbridge_open_connections{{release=\"{release}\",kind=\"websocket\"}} {}",
            c.websocket
        );
    }
}

/// The daemon's families (processes, deploys) from its last snapshot.
pub fn render_daemon(snap: &AdminSnapshot, out: &mut String) {
    out.push_str(
        "# HELP rollbridge_process_restarts_total Restarts of each supervised process.\n\
         # TYPE rollbridge_process_restarts_total counter\n",
    );
    for p in &snap.processes {
        let _ = writeln!(
            out,
            "rollbridge_process_restarts_total{{process=\"{}\",release=\"{}\"}} {}",
            escape(&p.process),
            escape(&p.release),
            p.restarts
        );
    }
    out.push_str(
        "# HELP rollbridge_process_resident_memory_bytes Resident memory of each running process.\n\
         # TYPE rollbridge_process_resident_memory_bytes gauge\n",
    );
    for p in &snap.processes {
        if let Some(rss) = p.rss_bytes {
            let _ = writeln!(
                out,
                "rollbridge_process_resident_memory_bytes{{process=\"{}\",release=\"{}\"}} {rss}",
                escape(&p.process),
                escape(&p.release)
            );
        }
    }
    out.push_str(
        "# HELP rollbridge_deploys_total Deploys (rollbacks included) by result.\n\
         # TYPE rollbridge_deploys_total counter\n",
    );
    let _ = writeln!(
        out,
        "rollbridge_deploys_total{{result=\"success\"}} {}",
        snap.deploys_success
    );
    let _ = writeln!(
        out,
        "rollbridge_deploys_total{{result=\"failure\"}} {}",
        snap.deploys_failure
    );
}

/// Microseconds as seconds without float noise (`0.005`, `2.5`, `10`).
fn seconds(us: u64) -> String {
    let whole = us / 1_000_000;
    let frac = us % 1_000_000;
    if frac == 0 {
        return whole.to_string();
    }
    let digits = format!("{frac:06}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// A label value escaped per the text format (`\`, `"`, newline).
pub fn escape(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape("x\ny"), "x\\ny");
    }

    #[test]
    fn seconds_are_printed_exactly() {
        assert_eq!(seconds(5_000), "0.005");
        assert_eq!(seconds(2_500_000), "2.5");
        assert_eq!(seconds(10_000_000), "10");
        assert_eq!(seconds(0), "0");
    }

    #[test]
    fn requests_are_counted_by_release_and_code() {
        let mut m = Metrics::default();
        m.bind(0, "v1");
        let t = Instant::now();
        m.record(Some(0), 200, t, t + Duration::from_millis(3));
        m.record(Some(0), 200, t, t + Duration::from_millis(30));
        m.record(None, 503, t, t);
        let mut out = String::new();
        m.render(&mut out);
        assert!(out.contains("rollbridge_http_requests_total{release=\"v1\",code=\"200\"} 2\n"));
        assert!(out.contains("rollbridge_http_requests_total{release=\"\",code=\"503\"} 1\n"));
        assert!(out.contains(
            "rollbridge_http_request_duration_seconds_bucket{release=\"v1\",le=\"0.005\"} 1\n"
        ));
        assert!(out.contains(
            "rollbridge_http_request_duration_seconds_bucket{release=\"v1\",le=\"+Inf\"} 2\n"
        ));
        assert!(
            out.contains("rollbridge_http_request_duration_seconds_sum{release=\"v1\"} 0.033\n")
        );
    }

    #[test]
    fn a_reused_slot_counts_for_its_new_release() {
        let mut m = Metrics::default();
        let t = Instant::now();
        m.bind(0, "v1");
        m.record(Some(0), 200, t, t);
        m.bind(0, "v2");
        m.record(Some(0), 500, t, t);
        let mut out = String::new();
        m.render(&mut out);
        assert!(out.contains("{release=\"v1\",code=\"200\"} 1\n"));
        assert!(out.contains("{release=\"v2\",code=\"500\"} 1\n"));
    }

    #[test]
    fn stats_of_old_releases_are_bounded() {
        let mut m = Metrics::default();
        for i in 0..100 {
            m.bind(0, &format!("r{i}"));
        }
        assert_eq!(m.stats.len(), 1 + 1 + KEEP_GONE);
        let t = Instant::now();
        m.record(Some(0), 200, t, t);
        let mut out = String::new();
        m.render(&mut out);
        assert!(out.contains("{release=\"r99\",code=\"200\"} 1\n"));
    }
}
