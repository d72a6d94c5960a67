//! When each retiring tunnel gets its Close 1001: spread evenly over
//! `proxy.websocketCloseSpreadMs` from the moment it was decided (the drain
//! deadline, a graceful stop), so clients do not all reconnect at once.
//! Wake-ups are exact, from a small heap the event loop polls.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// Pending Close 1001 wake-ups: (when, session index, session serial).
#[derive(Debug, Default)]
pub struct Farewells {
    heap: BinaryHeap<Reverse<(Instant, usize, u64)>>,
}

/// When the `i`-th of `n` tunnels gets its Close: `from + spread * i / n`,
/// so the first goes at once and the last before `from + spread`.
pub fn slot(from: Instant, spread: Duration, i: usize, n: usize) -> Instant {
    if n == 0 {
        return from;
    }
    let nanos = spread.as_nanos().saturating_mul(i as u128) / n as u128;
    let offset = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
    from.checked_add(offset).unwrap_or(from)
}

impl Farewells {
    /// Schedules `tunnels` (session index, serial) over `spread` from `from`.
    pub fn schedule(&mut self, from: Instant, spread: Duration, tunnels: &[(usize, u64)]) {
        let n = tunnels.len();
        for (i, &(idx, serial)) in tunnels.iter().enumerate() {
            self.heap
                .push(Reverse((slot(from, spread, i, n), idx, serial)));
        }
    }

    /// The next wake-up, if any.
    pub fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    /// The next tunnel whose time has come.
    pub fn pop_due(&mut self, now: Instant) -> Option<(usize, u64)> {
        match self.heap.peek() {
            Some(Reverse((at, _, _))) if *at <= now => self
                .heap
                .pop()
                .map(|Reverse((_, idx, serial))| (idx, serial)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closes_are_spread_evenly_over_the_spread() {
        let t0 = Instant::now();
        let ms = |i| slot(t0, Duration::from_millis(600), i, 3) - t0;
        assert_eq!(ms(0), Duration::ZERO);
        assert_eq!(ms(1), Duration::from_millis(200));
        assert_eq!(ms(2), Duration::from_millis(400));
    }

    #[test]
    fn zero_spread_closes_all_at_once() {
        let t0 = Instant::now();
        let mut f = Farewells::default();
        f.schedule(t0, Duration::ZERO, &[(1, 1), (2, 2), (3, 3)]);
        let mut due = Vec::new();
        while let Some(x) = f.pop_due(t0) {
            due.push(x);
        }
        assert_eq!(due.len(), 3);
        assert_eq!(f.next(), None);
    }

    #[test]
    fn later_slots_are_not_due_before_their_time() {
        let t0 = Instant::now();
        let mut f = Farewells::default();
        f.schedule(t0, Duration::from_millis(1000), &[(1, 1), (2, 2)]);
        assert_eq!(f.pop_due(t0), Some((1, 1)));
        assert_eq!(f.pop_due(t0), None);
        assert_eq!(f.next(), Some(t0 + Duration::from_millis(500)));
        assert_eq!(f.pop_due(t0 + Duration::from_millis(500)), Some((2, 2)));
    }
}
