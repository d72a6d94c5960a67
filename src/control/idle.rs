//! Control connection budget: when a connection counts as idle, when an
//! idle one is closed, and which one makes room for a newcomer at the cap.
//! Pure bookkeeping over (id, pending requests, last activity); the server
//! thread owns the sockets.

use std::time::{Duration, Instant};

/// Connections served at once. At the cap the longest-idle connection is
/// closed to admit the new one; only when every connection waits for a
/// reply is the newcomer turned away.
pub const MAX_CONNECTIONS: usize = 1024;

/// A connection with no request in flight that sends no complete request
/// line for this long (after accept or after its last reply) is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the budget needs to know about one connection.
#[derive(Debug, Clone, Copy)]
pub struct Activity {
    /// Requests handed to the daemon and not answered yet.
    pub pending: usize,
    /// Accept, last complete request line or last reply.
    pub last_active: Instant,
}

impl Activity {
    pub fn new(now: Instant) -> Activity {
        Activity {
            pending: 0,
            last_active: now,
        }
    }

    /// Since when the connection is idle; `None` while a reply is owed.
    pub fn idle_since(&self) -> Option<Instant> {
        (self.pending == 0).then_some(self.last_active)
    }

    /// When an idle connection is due to be closed.
    pub fn deadline(&self) -> Option<Instant> {
        self.idle_since().map(|t| t + IDLE_TIMEOUT)
    }
}

/// Connections whose idle deadline has passed.
pub fn expired(conns: impl Iterator<Item = (u64, Activity)>, now: Instant) -> Vec<u64> {
    conns
        .filter(|(_, a)| a.deadline().is_some_and(|d| d <= now))
        .map(|(id, _)| id)
        .collect()
}

/// The earliest idle deadline, for the poll timeout.
pub fn next_deadline(conns: impl Iterator<Item = Activity>) -> Option<Instant> {
    conns.filter_map(|a| a.deadline()).min()
}

/// The connection idle the longest (oldest activity, then lowest id):
/// the one closed to admit a newcomer at the cap.
pub fn longest_idle(conns: impl Iterator<Item = (u64, Activity)>) -> Option<u64> {
    conns
        .filter_map(|(id, a)| a.idle_since().map(|t| (t, id)))
        .min()
        .map(|(_, id)| id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(base: Instant, secs: u64, pending: usize) -> Activity {
        Activity {
            pending,
            last_active: base + Duration::from_secs(secs),
        }
    }

    #[test]
    fn a_connection_awaiting_a_reply_is_never_idle() {
        let base = Instant::now();
        let waiting = at(base, 0, 1);
        assert_eq!(waiting.deadline(), None);
        let late = base + Duration::from_secs(3600);
        assert!(expired([(7, waiting)].into_iter(), late).is_empty());
        assert_eq!(longest_idle([(7, waiting)].into_iter()), None);
    }

    #[test]
    fn silent_connection_expires_after_the_idle_timeout() {
        let base = Instant::now();
        let conns = [(1, at(base, 0, 0)), (2, at(base, 5, 0))];
        assert!(expired(conns.into_iter(), base + Duration::from_secs(9)).is_empty());
        assert_eq!(expired(conns.into_iter(), base + IDLE_TIMEOUT), vec![1u64]);
        assert_eq!(
            next_deadline(conns.iter().map(|(_, a)| *a)),
            Some(base + IDLE_TIMEOUT)
        );
    }

    #[test]
    fn longest_idle_skips_busy_connections() {
        let base = Instant::now();
        let conns = [
            (1, at(base, 0, 2)),
            (2, at(base, 3, 0)),
            (3, at(base, 1, 0)),
            (4, at(base, 1, 0)),
        ];
        assert_eq!(longest_idle(conns.into_iter()), Some(3));
    }
}
