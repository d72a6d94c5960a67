//! Traffic control: maintenance (the proxy answers every new request
//! itself) and pause (new requests are held, then forwarded in arrival
//! order on resume). Pure state owned by the loop thread; the session
//! consults it when it routes a request.

use super::codec::RequestInfo;
use std::collections::BTreeMap;
use std::time::Duration;

/// The message of the maintenance page when none is given.
pub const DEFAULT_MAINTENANCE_MESSAGE: &str = "Service temporarily unavailable for maintenance";

/// What maintenance answers: the page's message and `Retry-After`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Maintenance {
    pub message: String,
    /// Seconds, sent as `Retry-After` when given.
    pub retry_after: Option<u64>,
}

/// The loop's traffic-control state.
#[derive(Debug, Default)]
pub struct Traffic {
    pub maintenance: Option<Maintenance>,
    /// Paused: how long a request may be held before it is answered 503.
    pub paused: Option<Duration>,
    pub hold: HoldQueue,
}

impl Traffic {
    /// The maintenance page's message and `Retry-After` (the defaults when
    /// maintenance was switched off after the answer was decided).
    pub fn maintenance_page(&self) -> (&str, Option<u64>) {
        match &self.maintenance {
            Some(m) => (m.message.as_str(), m.retry_after),
            None => (DEFAULT_MAINTENANCE_MESSAGE, None),
        }
    }
}

/// A request held while paused: its parsed head and the head to send
/// upstream. The body (if any) stays unread in the socket.
#[derive(Debug)]
pub struct Held {
    /// Place in the hold queue (arrival order).
    pub seq: u64,
    pub info: RequestInfo,
    pub head: Vec<u8>,
}

/// Held sessions in arrival order, by sequence number. A session that
/// leaves the queue early (timed out, closed) is forgotten by its number.
#[derive(Debug, Default)]
pub struct HoldQueue {
    next: u64,
    /// seq → (session index, session serial).
    waiting: BTreeMap<u64, (usize, u64)>,
}

impl HoldQueue {
    /// Queues a session; `None` when `max` are already held.
    pub fn hold(&mut self, idx: usize, serial: u64, max: usize) -> Option<u64> {
        if self.waiting.len() >= max {
            return None;
        }
        let seq = self.next;
        self.next += 1;
        self.waiting.insert(seq, (idx, serial));
        Some(seq)
    }

    /// Removes a session that stopped waiting.
    pub fn forget(&mut self, seq: u64) {
        self.waiting.remove(&seq);
    }

    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Empties the queue: every held session, oldest first.
    pub fn drain(&mut self) -> Vec<(usize, u64)> {
        std::mem::take(&mut self.waiting).into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_requests_drain_in_arrival_order() {
        let mut q = HoldQueue::default();
        for (idx, serial) in [(7, 1), (3, 2), (9, 3)] {
            assert!(q.hold(idx, serial, 10).is_some());
        }
        assert_eq!(q.len(), 3);
        assert_eq!(q.drain(), [(7, 1), (3, 2), (9, 3)]);
        assert!(q.is_empty());
    }

    #[test]
    fn hold_beyond_the_cap_is_refused() {
        let mut q = HoldQueue::default();
        assert!(q.hold(1, 1, 2).is_some());
        assert!(q.hold(2, 2, 2).is_some());
        assert_eq!(q.hold(3, 3, 2), None);
        assert_eq!(q.len(), 2);
    }

    #[test]
    fn forgotten_request_frees_its_place_and_keeps_the_order() {
        let mut q = HoldQueue::default();
        let a = q.hold(1, 1, 2).unwrap();
        q.hold(2, 2, 2).unwrap();
        q.forget(a);
        assert!(q.hold(3, 3, 2).is_some());
        assert_eq!(q.drain(), [(2, 2), (3, 3)]);
    }

    #[test]
    fn a_session_index_reused_later_is_a_new_entry() {
        let mut q = HoldQueue::default();
        let a = q.hold(4, 1, 10).unwrap();
        let b = q.hold(4, 2, 10).unwrap();
        assert!(a < b);
        assert_eq!(q.drain(), [(4, 1), (4, 2)]);
    }

    #[test]
    fn maintenance_page_defaults_when_off() {
        let mut t = Traffic::default();
        assert_eq!(t.maintenance_page(), (DEFAULT_MAINTENANCE_MESSAGE, None));
        t.maintenance = Some(Maintenance {
            message: "back at noon".into(),
            retry_after: Some(60),
        });
        assert_eq!(t.maintenance_page(), ("back at noon", Some(60)));
    }
}
