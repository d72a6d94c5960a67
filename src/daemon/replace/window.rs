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
    fn another_or_inactive_release_is_not_covered() {
        let t0 = Instant::now();
        let w = Window::open("v2", t0, 1000);
        assert!(!w.covers("v1", Some("v1"), t0));
        assert!(!w.covers("v2", Some("v1"), t0));
        assert!(!w.covers("v2", None, t0));
    }
}
