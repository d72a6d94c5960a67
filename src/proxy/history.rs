//! Requests per second per release over the last ten minutes, for the
//! admin status page's chart.
//!
//! The loop samples the request counters it already keeps (one total per
//! release in [`super::metrics::Metrics`]) from its periodic sweep, every
//! [`INTERVAL`]; nothing is added to the request path. The ring holds at
//! most [`SAMPLES`] samples, each with one count per release that had
//! traffic in its interval, so it is bounded by the releases the counters
//! keep.

use std::collections::VecDeque;
use std::fmt::Write;
use std::time::{Duration, Instant};

/// Time between two samples.
pub const INTERVAL: Duration = Duration::from_secs(5);
/// Samples kept: ten minutes.
pub const SAMPLES: usize = 120;

/// One interval: its real length and the requests finished in it, by
/// release (`""` = the proxy's own answers), releases without any left out.
#[derive(Debug)]
struct Sample {
    elapsed_ms: u64,
    counts: Vec<(String, u64)>,
}

#[derive(Debug)]
pub struct History {
    next_at: Instant,
    last_at: Instant,
    /// Cumulative totals at the last sample.
    last: Vec<(String, u64)>,
    /// Oldest first.
    samples: VecDeque<Sample>,
}

impl History {
    pub fn new(now: Instant) -> History {
        History {
            next_at: now + INTERVAL,
            last_at: now,
            last: Vec::new(),
            samples: VecDeque::with_capacity(SAMPLES),
        }
    }

    /// Whether a sample is due at `now`.
    pub fn due(&self, now: Instant) -> bool {
        now >= self.next_at
    }

    /// Takes a sample from the cumulative totals by release. A total
    /// below the last one (counters dropped and started again) counts
    /// from zero.
    pub fn sample<'a>(&mut self, now: Instant, totals: impl Iterator<Item = (&'a str, u64)>) {
        let mut counts = Vec::new();
        let mut last = Vec::new();
        for (release, total) in totals {
            let before = self
                .last
                .iter()
                .find(|(r, _)| r == release)
                .map_or(0, |(_, n)| *n);
            let delta = if total >= before {
                total - before
            } else {
                total
            };
            if delta > 0 {
                counts.push((release.to_string(), delta));
            }
            last.push((release.to_string(), total));
        }
        self.last = last;
        let elapsed = now.saturating_duration_since(self.last_at);
        self.last_at = now;
        // A loop held up for long starts a fresh schedule instead of
        // taking several samples at once.
        self.next_at = (self.next_at + INTERVAL).max(now + INTERVAL / 2);
        if self.samples.len() == SAMPLES {
            self.samples.pop_front();
        }
        self.samples.push_back(Sample {
            elapsed_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            counts,
        });
    }

    /// `{"intervalMs":5000,"samples":N,"series":[{"releaseId":"…"|null,"rps":[…]}]}`:
    /// one series per release seen in the window (first seen first,
    /// `null` for the proxy's own answers), each with one value per
    /// sample, oldest first; the last value is the latest interval.
    pub fn to_json(&self, out: &mut String) {
        let mut names: Vec<&str> = Vec::new();
        for s in &self.samples {
            for (r, _) in &s.counts {
                if !names.contains(&r.as_str()) {
                    names.push(r);
                }
            }
        }
        let _ = write!(
            out,
            r#"{{"intervalMs":{},"samples":{},"series":["#,
            INTERVAL.as_millis(),
            self.samples.len()
        );
        for (i, name) in names.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let id = if name.is_empty() {
                "null".to_string()
            } else {
                serde_json::Value::from(*name).to_string()
            };
            let _ = write!(out, r#"{{"releaseId":{id},"rps":["#);
            for (j, s) in self.samples.iter().enumerate() {
                if j > 0 {
                    out.push(',');
                }
                let n = s
                    .counts
                    .iter()
                    .find(|(r, _)| r == name)
                    .map_or(0, |(_, n)| *n);
                out.push_str(&rate(n, s.elapsed_ms));
            }
            out.push_str("]}");
        }
        out.push_str("]}");
    }
}

/// Requests per second with at most two decimals (`0`, `12.5`, `0.33`).
fn rate(count: u64, elapsed_ms: u64) -> String {
    if count == 0 || elapsed_ms == 0 {
        return "0".into();
    }
    let hundredths = (count.saturating_mul(100_000) + elapsed_ms / 2) / elapsed_ms;
    let (whole, frac) = (hundredths / 100, hundredths % 100);
    match frac {
        0 => whole.to_string(),
        f if f % 10 == 0 => format!("{whole}.{}", f / 10),
        f => format!("{whole}.{f:02}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(h: &History) -> serde_json::Value {
        let mut out = String::new();
        h.to_json(&mut out);
        serde_json::from_str(&out).unwrap()
    }

    #[test]
    fn rates_are_requests_per_second_of_each_interval() {
        let t = Instant::now();
        let mut h = History::new(t);
        assert!(!h.due(t + Duration::from_secs(4)));
        assert!(h.due(t + INTERVAL));
        h.sample(t + INTERVAL, [("", 0), ("v1", 50)].into_iter());
        h.sample(t + 2 * INTERVAL, [("", 1), ("v1", 60)].into_iter());
        let v = json(&h);
        assert_eq!(v["intervalMs"], 5000);
        assert_eq!(v["samples"], 2);
        let series = v["series"].as_array().unwrap();
        assert_eq!(series.len(), 2);
        assert_eq!(series[0]["releaseId"], "v1");
        assert_eq!(series[0]["rps"], serde_json::json!([10, 2]));
        assert!(series[1]["releaseId"].is_null());
        assert_eq!(series[1]["rps"], serde_json::json!([0, 0.2]));
    }

    #[test]
    fn a_deploy_shows_traffic_moving_to_the_new_release() {
        let t = Instant::now();
        let mut h = History::new(t);
        h.sample(t + INTERVAL, [("v1", 100)].into_iter());
        h.sample(t + 2 * INTERVAL, [("v1", 150), ("v2", 50)].into_iter());
        h.sample(t + 3 * INTERVAL, [("v1", 150), ("v2", 150)].into_iter());
        let v = json(&h);
        assert_eq!(v["series"][0]["releaseId"], "v1");
        assert_eq!(v["series"][0]["rps"], serde_json::json!([20, 10, 0]));
        assert_eq!(v["series"][1]["releaseId"], "v2");
        assert_eq!(v["series"][1]["rps"], serde_json::json!([0, 10, 20]));
    }

    #[test]
    fn history_keeps_ten_minutes_and_forgets_idle_releases() {
        let t = Instant::now();
        let mut h = History::new(t);
        h.sample(t + INTERVAL, [("old", 10)].into_iter());
        for i in 2..=(SAMPLES as u32 + 1) {
            h.sample(
                t + INTERVAL * i,
                [("old", 10), ("new", u64::from(i))].into_iter(),
            );
        }
        assert_eq!(h.samples.len(), SAMPLES);
        let v = json(&h);
        let series = v["series"].as_array().unwrap();
        assert_eq!(series.len(), 1, "{v}");
        assert_eq!(series[0]["releaseId"], "new");
        assert_eq!(series[0]["rps"].as_array().unwrap().len(), SAMPLES);
    }

    #[test]
    fn release_ids_are_json_escaped() {
        let t = Instant::now();
        let mut h = History::new(t);
        h.sample(t + INTERVAL, [("a\"</script>\\", 5)].into_iter());
        assert_eq!(json(&h)["series"][0]["releaseId"], "a\"</script>\\");
    }

    #[test]
    fn counters_that_restart_count_from_zero() {
        let t = Instant::now();
        let mut h = History::new(t);
        h.sample(t + INTERVAL, [("v1", 100)].into_iter());
        h.sample(t + 2 * INTERVAL, [("v1", 5)].into_iter());
        assert_eq!(json(&h)["series"][0]["rps"], serde_json::json!([20, 1]));
    }

    #[test]
    fn a_late_sample_does_not_cause_a_burst_of_samples() {
        let t = Instant::now();
        let mut h = History::new(t);
        let late = t + INTERVAL * 10;
        h.sample(late, std::iter::empty());
        assert!(!h.due(late + Duration::from_millis(100)));
        assert!(h.due(late + INTERVAL));
    }

    #[test]
    fn rates_print_at_most_two_decimals() {
        assert_eq!(rate(1, 3000), "0.33");
        assert_eq!(rate(5, 5000), "1");
        assert_eq!(rate(1, 5000), "0.2");
        assert_eq!(rate(0, 5000), "0");
        assert_eq!(rate(7, 0), "0");
    }
}
