//! Live health checks of the serving process, as a pure state machine:
//! probe results and `now` in, the next probe time and actions out. The
//! probing itself runs on the prober thread ([`super::prober`]).

use std::time::{Duration, Instant};

use crate::config::WatchConfig;

/// What a probe result leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing to do; probe again at [`Watcher::next_probe`].
    Wait,
    /// `failures` probes failed in a row, the last with `last_result`:
    /// replace the process. The watcher stays quiet until re-armed.
    Failing { failures: u32, last_result: String },
}

#[derive(Debug, Clone)]
pub struct Watcher {
    cfg: WatchConfig,
    failures: u32,
    next: Option<Instant>,
}

impl Watcher {
    /// Armed at `now`: the first probe one interval later (never with an
    /// interval of 0).
    pub fn new(cfg: WatchConfig, now: Instant) -> Watcher {
        Watcher {
            cfg,
            failures: 0,
            next: (cfg.interval_ms > 0).then(|| now + interval(cfg)),
        }
    }

    /// When to probe next (`None`: off, or quiet after [`Action::Failing`]).
    pub fn next_probe(&self) -> Option<Instant> {
        self.next
    }

    /// Bound of one probe.
    pub fn probe_timeout(&self) -> Duration {
        Duration::from_millis(self.cfg.timeout_ms.max(1))
    }

    /// Failures in a row so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Records a probe that finished at `now`.
    pub fn record(&mut self, now: Instant, result: Result<(), String>) -> Action {
        if self.next.is_none() {
            return Action::Wait;
        }
        match result {
            Ok(()) => {
                self.failures = 0;
                self.next = Some(now + interval(self.cfg));
                Action::Wait
            }
            Err(last_result) => {
                self.failures += 1;
                if self.failures >= self.cfg.failures.max(1) {
                    self.next = None;
                    Action::Failing {
                        failures: self.failures,
                        last_result,
                    }
                } else {
                    self.next = Some(now + interval(self.cfg));
                    Action::Wait
                }
            }
        }
    }
}

fn interval(cfg: WatchConfig) -> Duration {
    Duration::from_millis(cfg.interval_ms.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(interval_ms: u64, failures: u32) -> WatchConfig {
        WatchConfig {
            interval_ms,
            timeout_ms: 2000,
            failures,
        }
    }

    fn ms(t0: Instant, n: u64) -> Instant {
        t0 + Duration::from_millis(n)
    }

    #[test]
    fn first_probe_is_one_interval_after_arming() {
        let t0 = Instant::now();
        let w = Watcher::new(cfg(100, 3), t0);
        assert_eq!(w.next_probe(), Some(ms(t0, 100)));
        assert_eq!(w.probe_timeout(), Duration::from_millis(2000));
    }

    #[test]
    fn zero_interval_never_probes() {
        let t0 = Instant::now();
        let mut w = Watcher::new(cfg(0, 3), t0);
        assert_eq!(w.next_probe(), None);
        assert_eq!(w.record(t0, Err("HTTP 500".into())), Action::Wait);
        assert_eq!(w.failures(), 0);
    }

    #[test]
    fn failures_in_a_row_ask_for_a_replacement_once() {
        let t0 = Instant::now();
        let mut w = Watcher::new(cfg(100, 3), t0);
        assert_eq!(w.record(ms(t0, 100), Err("HTTP 500".into())), Action::Wait);
        assert_eq!(w.next_probe(), Some(ms(t0, 200)));
        assert_eq!(w.record(ms(t0, 200), Err("HTTP 500".into())), Action::Wait);
        assert_eq!(
            w.record(ms(t0, 300), Err("timed out after 2000 ms".into())),
            Action::Failing {
                failures: 3,
                last_result: "timed out after 2000 ms".into()
            }
        );
        // Quiet until re-armed: the replacement is under way.
        assert_eq!(w.next_probe(), None);
        assert_eq!(w.record(ms(t0, 400), Err("HTTP 500".into())), Action::Wait);
    }

    #[test]
    fn a_pass_resets_the_count() {
        let t0 = Instant::now();
        let mut w = Watcher::new(cfg(100, 2), t0);
        assert_eq!(w.record(ms(t0, 100), Err("HTTP 503".into())), Action::Wait);
        assert_eq!(w.record(ms(t0, 200), Ok(())), Action::Wait);
        assert_eq!(w.failures(), 0);
        assert_eq!(w.record(ms(t0, 300), Err("HTTP 503".into())), Action::Wait);
        assert!(matches!(
            w.record(ms(t0, 400), Err("HTTP 503".into())),
            Action::Failing { failures: 2, .. }
        ));
    }

    #[test]
    fn the_next_probe_counts_from_when_the_last_one_finished() {
        let t0 = Instant::now();
        let mut w = Watcher::new(cfg(100, 3), t0);
        // A probe that took its whole timeout does not make the next one due.
        w.record(ms(t0, 2100), Err("timed out after 2000 ms".into()));
        assert_eq!(w.next_probe(), Some(ms(t0, 2200)));
    }
}
