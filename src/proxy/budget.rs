//! The descriptor budget: how many connections the proxy may hold open so
//! that it can never take the descriptors the control socket, spawning,
//! output pipes and state writes need.
//!
//! The arithmetic is pure (the limit is passed in); [`Gauge`] is the one
//! piece of shared state, a few atomics the loop updates once per
//! iteration and `status` reads without a round trip to the loop.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Smallest and largest number of descriptors kept out of the proxy's reach.
const RESERVE_MIN: u64 = 64;
const RESERVE_MAX: u64 = 256;

/// Descriptors kept for everything but the proxy: `limit / 8`, at least 64,
/// at most 256, and never more than half of a tiny limit.
pub fn reserve(limit: u64) -> u64 {
    (limit / 8).clamp(RESERVE_MIN, RESERVE_MAX).min(limit / 2)
}

/// The largest connection count `limit` descriptors allow: each proxied
/// connection can need two (client + upstream). Never below 1.
pub fn allowed(limit: u64) -> usize {
    let n = limit.saturating_sub(reserve(limit)) / 2;
    usize::try_from(n).unwrap_or(usize::MAX).max(1)
}

/// The cap in force and whether a configured value had to be lowered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub max_connections: usize,
    /// The configured value, when it exceeded what the limit allows.
    pub clamped_from: Option<usize>,
}

/// `configured` (`0` = derive from `limit`) checked against `limit`.
pub fn derive(limit: u64, configured: usize) -> Budget {
    let allowed = allowed(limit);
    match configured {
        0 => Budget {
            max_connections: allowed,
            clamped_from: None,
        },
        n if n > allowed => Budget {
            max_connections: allowed,
            clamped_from: Some(n),
        },
        n => Budget {
            max_connections: n,
            clamped_from: None,
        },
    }
}

/// The process's soft `RLIMIT_NOFILE` (after the daemon raised it).
pub fn nofile_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a plain syscall filling a local struct.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0;
    if !ok || lim.rlim_cur == libc::RLIM_INFINITY {
        return 1 << 20;
    }
    lim.rlim_cur
}

/// Live connection load, written by the loop, read by `status`.
#[derive(Debug, Default)]
pub struct Gauge {
    pub max: AtomicUsize,
    pub open: AtomicUsize,
    pub at_limit: AtomicBool,
    /// Requests held by a pause (status `paused.held`).
    pub held: AtomicUsize,
}

/// A snapshot of [`Gauge`] (status `proxy.maxConnections` and friends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLoad {
    pub max_connections: usize,
    /// Client connections plus idle pooled upstream connections.
    pub open_connections: usize,
    pub at_connection_limit: bool,
}

impl Gauge {
    pub fn new(max: usize) -> Gauge {
        Gauge {
            max: AtomicUsize::new(max),
            ..Gauge::default()
        }
    }

    pub fn load(&self) -> ConnectionLoad {
        ConnectionLoad {
            max_connections: self.max.load(Ordering::Relaxed),
            open_connections: self.open.load(Ordering::Relaxed),
            at_connection_limit: self.at_limit.load(Ordering::Relaxed),
        }
    }
}

/// What the accept path may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Room for one more.
    Accept,
    /// At the cap, but an idle pooled upstream connection can be closed
    /// to make room.
    CloseIdle,
    /// At the cap: leave connections in the backlog.
    Full,
}

/// `sessions` client connections and `idle` pooled ones against `max`.
pub fn admit(sessions: usize, idle: usize, max: usize) -> Admit {
    if sessions + idle < max {
        Admit::Accept
    } else if idle > 0 && sessions < max {
        Admit::CloseIdle
    } else {
        Admit::Full
    }
}

/// Whether a finished exchange may park its upstream connection in the
/// pool (the pooled one counts against the cap too).
pub fn may_pool(sessions: usize, idle: usize, max: usize) -> bool {
    sessions + idle < max
}

/// Open connections at or below which a cap episode counts as over
/// (nine tenths of the cap).
pub fn low_water(max: usize) -> usize {
    max - max.div_ceil(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_is_an_eighth_between_64_and_256() {
        assert_eq!(reserve(1024), 128);
        assert_eq!(reserve(128), 64);
        assert_eq!(reserve(20_000), 256);
        assert_eq!(reserve(1 << 20), 256);
    }

    #[test]
    fn reserve_never_takes_more_than_half_of_a_tiny_limit() {
        assert_eq!(reserve(64), 32);
        assert_eq!(reserve(10), 5);
        assert_eq!(reserve(0), 0);
    }

    #[test]
    fn allowed_counts_two_descriptors_per_connection() {
        assert_eq!(allowed(20_000), (20_000 - 256) / 2);
        assert_eq!(allowed(128), 32);
        assert_eq!(allowed(64), 16);
        assert_eq!(allowed(1024), 448);
    }

    #[test]
    fn allowed_is_at_least_one() {
        assert_eq!(allowed(0), 1);
        assert_eq!(allowed(2), 1);
    }

    #[test]
    fn zero_means_derived() {
        assert_eq!(
            derive(128, 0),
            Budget {
                max_connections: 32,
                clamped_from: None
            }
        );
    }

    #[test]
    fn explicit_value_within_the_limit_is_kept() {
        assert_eq!(derive(1024, 100).max_connections, 100);
        assert_eq!(derive(1024, 448).clamped_from, None);
    }

    #[test]
    fn explicit_value_beyond_the_limit_is_clamped() {
        assert_eq!(
            derive(128, 5000),
            Budget {
                max_connections: 32,
                clamped_from: Some(5000)
            }
        );
    }

    #[test]
    fn admit_accepts_below_the_cap() {
        assert_eq!(admit(0, 0, 1), Admit::Accept);
        assert_eq!(admit(5, 4, 10), Admit::Accept);
    }

    #[test]
    fn admit_closes_idle_pooled_connections_first_at_the_cap() {
        assert_eq!(admit(5, 5, 10), Admit::CloseIdle);
        assert_eq!(admit(9, 3, 10), Admit::CloseIdle);
    }

    #[test]
    fn admit_leaves_clients_in_the_backlog_when_full() {
        assert_eq!(admit(10, 0, 10), Admit::Full);
        assert_eq!(admit(10, 2, 10), Admit::Full);
    }

    #[test]
    fn episode_ends_at_nine_tenths() {
        assert_eq!(low_water(100), 90);
        assert_eq!(low_water(32), 28);
        assert_eq!(low_water(1), 0);
    }

    #[test]
    fn pooling_stops_at_the_cap() {
        assert!(may_pool(3, 0, 4));
        assert!(!may_pool(4, 0, 4));
        assert!(!may_pool(2, 2, 4));
    }
}
