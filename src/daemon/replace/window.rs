//! The automatic-rollback window: which release it covers and until when.
//! Pure; the core opens it where a switch is recorded (deploy, rollback,
//! promote) and asks it when the new release's process fails.

use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    release_id: String,
    until: Instant,
}

impl Window {
    /// Opened when `release_id` became active at `now`.
    pub fn open(release_id: &str, now: Instant, window_ms: u64) -> Window {
        Window {
            release_id: release_id.to_owned(),
            until: now + Duration::from_millis(window_ms),
        }
    }

    /// What an upgrade carries: the release and the time left (0 once
    /// over). `open(release, now, left)` in the next program resumes it.
    pub fn remaining(&self, now: Instant) -> (&str, u64) {
        let left = self.until.saturating_duration_since(now).as_millis();
        (&self.release_id, u64::try_from(left).unwrap_or(u64::MAX))
    }

    /// Whether a failure of `release_id`'s proxied process at `now` rolls
    /// back (`active`: the release active now).
    pub fn covers(&self, release_id: &str, active: Option<&str>, now: Instant) -> bool {
        self.release_id == release_id && active == Some(release_id) && now <= self.until
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_within_the_window_of_the_active_release_rolls_back() {
        let t0 = Instant::now();
        let w = Window::open("v2", t0, 1000);
        assert!(w.covers("v2", Some("v2"), t0 + Duration::from_millis(999)));
    }

    #[test]
    fn a_failure_after_the_window_does_not() {
        let t0 = Instant::now();
        let w = Window::open("v2", t0, 1000);
        assert!(!w.covers("v2", Some("v2"), t0 + Duration::from_millis(1001)));
    }

    #[test]
    fn a_window_resumed_from_its_remaining_time_ends_at_the_same_moment() {
        let t0 = Instant::now();
        let w = Window::open("v2", t0, 1000);
        let t1 = t0 + Duration::from_millis(400);
        let (id, left) = w.remaining(t1);
        assert_eq!((id, left), ("v2", 600));
        let resumed = Window::open(id, t1, left);
        assert_eq!(resumed, w);
        assert_eq!(w.remaining(t0 + Duration::from_secs(2)).1, 0);
    }

    #[test]
    fn another_or_inactive_release_is_not_covered() {
        let t0 = Instant::now();
        let w = Window::open("v2", t0, 1000);
        assert!(!w.covers("v1", Some("v1"), t0));
        assert!(!w.covers("v2", Some("v1"), t0));
        assert!(!w.covers("v2", None, t0));
    }
}
