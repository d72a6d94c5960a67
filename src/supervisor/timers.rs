//! The supervisor's deadlines in one place: an ordered map from instant to
//! what fires. The loop polls with the nearest deadline as its timeout.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Handle to cancel a timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimerId(Instant, u64);

#[derive(Debug)]
pub struct Timers<K> {
    map: BTreeMap<TimerId, K>,
    seq: u64,
}

impl<K> Default for Timers<K> {
    fn default() -> Self {
        Timers {
            map: BTreeMap::new(),
            seq: 0,
        }
    }
}

impl<K> Timers<K> {
    pub fn insert(&mut self, at: Instant, kind: K) -> TimerId {
        self.seq += 1;
        let id = TimerId(at, self.seq);
        self.map.insert(id, kind);
        id
    }

    pub fn cancel(&mut self, id: TimerId) -> Option<K> {
        self.map.remove(&id)
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.map.keys().next().map(|id| id.0)
    }

    /// Time until the nearest deadline (zero when overdue).
    pub fn timeout(&self, now: Instant) -> Option<Duration> {
        self.next_deadline()
            .map(|at| at.saturating_duration_since(now))
    }

    /// Removes and returns every timer due at `now`, earliest first.
    pub fn pop_due(&mut self, now: Instant) -> Vec<(TimerId, K)> {
        let mut due = Vec::new();
        while let Some(entry) = self.map.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let (id, kind) = entry.remove_entry();
            due.push((id, kind));
        }
        due
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_timers_pop_in_deadline_order() {
        let mut t = Timers::default();
        let t0 = Instant::now();
        t.insert(t0 + Duration::from_millis(20), "b");
        t.insert(t0 + Duration::from_millis(10), "a");
        t.insert(t0 + Duration::from_millis(30), "c");
        let due: Vec<_> = t
            .pop_due(t0 + Duration::from_millis(20))
            .into_iter()
            .map(|(_, k)| k)
            .collect();
        assert_eq!(due, ["a", "b"]);
        assert_eq!(t.next_deadline(), Some(t0 + Duration::from_millis(30)));
    }

    #[test]
    fn cancelled_timer_never_fires() {
        let mut t = Timers::default();
        let t0 = Instant::now();
        let id = t.insert(t0, 1);
        assert_eq!(t.cancel(id), Some(1));
        assert!(t.pop_due(t0 + Duration::from_secs(1)).is_empty());
    }

    #[test]
    fn timeout_is_zero_when_overdue() {
        let mut t = Timers::default();
        let t0 = Instant::now();
        t.insert(t0, ());
        assert_eq!(t.timeout(t0 + Duration::from_secs(1)), Some(Duration::ZERO));
    }
}
