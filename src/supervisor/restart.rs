//! Crash-restart policy as a pure
//! function of the recorded restart times and an injected `now`.

use std::time::{Duration, Instant};

use crate::config::RestartConfig;

/// Shortest pause before retrying a crash restart whose spawn failed.
pub const SPAWN_RETRY_MIN: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RestartDecision {
    /// Restart after this delay.
    After(Duration),
    /// `maxRestarts` reached inside the window: stay `failed`.
    LimitReached,
}

/// Most times [`RestartHistory::decide_repeat`] keeps with neither a
/// window nor a limit (the delay is capped long before that).
const REPEAT_MEMORY: usize = 64;

/// Times of automatic restarts already scheduled (never cleared by manual
/// restarts or deploys, as the contract says).
#[derive(Debug, Clone, Default)]
pub struct RestartHistory {
    times: Vec<Instant>,
}

impl RestartHistory {
    /// Decides what to do after an unintended exit at `now`, recording the
    /// restart when one is scheduled.
    pub fn decide(&mut self, cfg: &RestartConfig, base_ms: u64, now: Instant) -> RestartDecision {
        // Fast path: unlimited with a constant delay keeps no bookkeeping.
        if cfg.max_restarts.is_none() && cfg.backoff_factor == 1.0 {
            return RestartDecision::After(capped(base_ms as f64, cfg.max_delay_ms));
        }
        if cfg.window_ms > 0 {
            let window = Duration::from_millis(cfg.window_ms);
            // Forget times <= now - window.
            self.times
                .retain(|t| now.saturating_duration_since(*t) < window);
        }
        let n = self.times.len();
        if let Some(max) = cfg.max_restarts {
            if n as u64 >= max {
                return RestartDecision::LimitReached;
            }
        }
        let delay = base_ms as f64 * cfg.backoff_factor.powi(n.min(i32::MAX as usize) as i32);
        self.times.push(now);
        RestartDecision::After(capped(delay, cfg.max_delay_ms))
    }

    /// Like [`decide`](Self::decide) for a restart whose first occurrence
    /// is immediate: always recorded (no fast path), the delay is the crash
    /// schedule for one restart fewer, zero the first time.
    pub fn decide_repeat(
        &mut self,
        cfg: &RestartConfig,
        base_ms: u64,
        now: Instant,
    ) -> RestartDecision {
        if cfg.window_ms > 0 {
            let window = Duration::from_millis(cfg.window_ms);
            self.times
                .retain(|t| now.saturating_duration_since(*t) < window);
        } else if cfg.max_restarts.is_none() && self.times.len() >= REPEAT_MEMORY {
            self.times.remove(0);
        }
        let n = self.times.len();
        if let Some(max) = cfg.max_restarts {
            if n as u64 >= max {
                return RestartDecision::LimitReached;
            }
        }
        self.times.push(now);
        if n == 0 {
            return RestartDecision::After(Duration::ZERO);
        }
        let delay = base_ms as f64
            * cfg
                .backoff_factor
                .powi((n - 1).min(i32::MAX as usize) as i32);
        RestartDecision::After(capped(delay, cfg.max_delay_ms))
    }

    /// After the spawn of a crash restart failed at `now` (out of
    /// descriptors or memory, fork refused...): retried like another crash,
    /// with the same backoff and `maxRestarts` accounting, but never sooner
    /// than [`SPAWN_RETRY_MIN`] so a persistent failure cannot spin.
    pub fn after_spawn_failure(
        &mut self,
        cfg: &RestartConfig,
        base_ms: u64,
        now: Instant,
    ) -> RestartDecision {
        match self.decide(cfg, base_ms, now) {
            RestartDecision::After(d) => RestartDecision::After(d.max(SPAWN_RETRY_MIN)),
            limit => limit,
        }
    }

    pub fn len(&self) -> usize {
        self.times.len()
    }

    pub fn is_empty(&self) -> bool {
        self.times.is_empty()
    }
}

/// Applies `maxDelayMs` (0 = no cap); huge or non-finite values saturate.
fn capped(ms: f64, max_delay_ms: u64) -> Duration {
    let ms = if max_delay_ms > 0 {
        ms.min(max_delay_ms as f64)
    } else {
        ms
    };
    // ~31 years: far beyond any useful delay, still a valid Instant offset.
    const LIMIT_MS: f64 = 1e12;
    let ms = if ms.is_finite() {
        ms.clamp(0.0, LIMIT_MS)
    } else {
        LIMIT_MS
    };
    Duration::from_secs_f64(ms / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(max: Option<u64>, window: u64, factor: f64, cap: u64) -> RestartConfig {
        RestartConfig {
            max_restarts: max,
            window_ms: window,
            backoff_factor: factor,
            max_delay_ms: cap,
        }
    }

    fn ms(d: RestartDecision) -> u128 {
        match d {
            RestartDecision::After(d) => d.as_millis(),
            RestartDecision::LimitReached => panic!("limit reached"),
        }
    }

    #[test]
    fn backoff_doubles_until_the_cap() {
        let c = cfg(None, 0, 2.0, 500);
        let mut h = RestartHistory::default();
        let now = Instant::now();
        let got: Vec<u128> = (0..8).map(|_| ms(h.decide(&c, 10, now))).collect();
        assert_eq!(got, [10, 20, 40, 80, 160, 320, 500, 500]);
    }

    #[test]
    fn factor_three_without_cap_gives_ninety_at_n_two() {
        let c = cfg(None, 0, 3.0, 0);
        let mut h = RestartHistory::default();
        let now = Instant::now();
        h.decide(&c, 10, now);
        h.decide(&c, 10, now);
        assert_eq!(ms(h.decide(&c, 10, now)), 90);
    }

    #[test]
    fn max_restarts_zero_never_restarts() {
        let c = cfg(Some(0), 0, 1.0, 0);
        let mut h = RestartHistory::default();
        assert_eq!(
            h.decide(&c, 10, Instant::now()),
            RestartDecision::LimitReached
        );
    }

    #[test]
    fn max_restarts_counts_within_lifetime_when_window_is_zero() {
        let c = cfg(Some(2), 0, 1.0, 0);
        let mut h = RestartHistory::default();
        let t0 = Instant::now();
        assert_eq!(ms(h.decide(&c, 10, t0)), 10);
        assert_eq!(ms(h.decide(&c, 10, t0 + Duration::from_secs(100))), 10);
        assert_eq!(
            h.decide(&c, 10, t0 + Duration::from_secs(10_000)),
            RestartDecision::LimitReached
        );
    }

    #[test]
    fn window_forgets_old_restarts() {
        let c = cfg(Some(1), 1000, 1.0, 0);
        let mut h = RestartHistory::default();
        let t0 = Instant::now();
        assert_eq!(ms(h.decide(&c, 5, t0)), 5);
        assert_eq!(
            h.decide(&c, 5, t0 + Duration::from_millis(999)),
            RestartDecision::LimitReached
        );
        // Exactly windowMs later the old time is <= now - window: forgotten.
        assert_eq!(ms(h.decide(&c, 5, t0 + Duration::from_millis(1000))), 5);
    }

    #[test]
    fn window_also_resets_the_backoff_exponent() {
        let c = cfg(None, 100, 2.0, 0);
        let mut h = RestartHistory::default();
        let t0 = Instant::now();
        assert_eq!(ms(h.decide(&c, 10, t0)), 10);
        assert_eq!(ms(h.decide(&c, 10, t0)), 20);
        assert_eq!(ms(h.decide(&c, 10, t0 + Duration::from_millis(200))), 10);
    }

    #[test]
    fn fast_path_keeps_no_bookkeeping_and_applies_cap() {
        let c = cfg(None, 0, 1.0, 300);
        let mut h = RestartHistory::default();
        assert_eq!(ms(h.decide(&c, 1000, Instant::now())), 300);
        assert!(h.is_empty());
    }

    #[test]
    fn huge_exponent_saturates_instead_of_panicking() {
        let c = cfg(None, 0, 10.0, 0);
        let mut h = RestartHistory::default();
        let now = Instant::now();
        for _ in 0..400 {
            h.decide(&c, 1000, now);
        }
        assert!(ms(h.decide(&c, 1000, now)) > 0);
    }

    #[test]
    fn failed_spawn_is_retried_with_the_crash_backoff() {
        let c = cfg(None, 0, 2.0, 0);
        let mut h = RestartHistory::default();
        let now = Instant::now();
        assert_eq!(ms(h.decide(&c, 1000, now)), 1000);
        assert_eq!(ms(h.after_spawn_failure(&c, 1000, now)), 2000);
        assert_eq!(ms(h.after_spawn_failure(&c, 1000, now)), 4000);
    }

    #[test]
    fn failed_spawn_retry_waits_at_least_the_floor() {
        let c = cfg(None, 0, 1.0, 0);
        let mut h = RestartHistory::default();
        let d = h.after_spawn_failure(&c, 0, Instant::now());
        assert_eq!(d, RestartDecision::After(SPAWN_RETRY_MIN));
    }

    #[test]
    fn failed_spawn_retries_count_against_max_restarts() {
        let c = cfg(Some(2), 0, 1.0, 0);
        let mut h = RestartHistory::default();
        let t0 = Instant::now();
        assert_eq!(ms(h.decide(&c, 10, t0)), 10);
        assert_eq!(ms(h.after_spawn_failure(&c, 10, t0)), 500);
        assert_eq!(
            h.after_spawn_failure(&c, 10, t0 + Duration::from_secs(1)),
            RestartDecision::LimitReached
        );
    }

    #[test]
    fn failed_spawn_retries_are_forgotten_with_the_window() {
        let c = cfg(Some(1), 1000, 1.0, 0);
        let mut h = RestartHistory::default();
        let t0 = Instant::now();
        assert_eq!(ms(h.decide(&c, 10, t0)), 10);
        assert_eq!(
            h.after_spawn_failure(&c, 10, t0 + Duration::from_millis(10)),
            RestartDecision::LimitReached
        );
        assert_eq!(
            ms(h.after_spawn_failure(&c, 10, t0 + Duration::from_millis(1000))),
            500
        );
    }
}
