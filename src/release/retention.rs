//! Which stopped releases to forget.

/// One retained release as retention sees it, in map (deploy) order.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    /// `Some(stoppedAt)` for releases in state `stopped`; `None` for every
    /// other state, which is never pruned.
    pub stopped_at: Option<u64>,
}

/// Indices (into `entries`) of the releases to forget: stopped releases
/// ranked by newest `stoppedAt` (ties: later position first) beyond `keep`,
/// and, when `max_age_ms > 0`, stopped releases older than that.
pub fn prune(entries: &[Entry], keep: u64, max_age_ms: u64, now_ms: u64) -> Vec<usize> {
    let mut stopped: Vec<(usize, u64)> = entries
        .iter()
        .enumerate()
        .filter_map(|(i, e)| e.stopped_at.map(|t| (i, t)))
        .collect();
    stopped.sort_by(|a, b| b.1.cmp(&a.1).then(b.0.cmp(&a.0)));
    let mut out: Vec<usize> = stopped
        .iter()
        .enumerate()
        .filter(|(rank, (_, t))| {
            *rank as u64 >= keep || (max_age_ms > 0 && now_ms.saturating_sub(*t) > max_age_ms)
        })
        .map(|(_, (i, _))| *i)
        .collect();
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stopped(t: u64) -> Entry {
        Entry {
            stopped_at: Some(t),
        }
    }
    const LIVE: Entry = Entry { stopped_at: None };

    #[test]
    fn keeps_the_newest_stopped_releases() {
        let e = [stopped(10), stopped(30), stopped(20), LIVE];
        assert_eq!(prune(&e, 2, 0, 100), [0]);
    }

    #[test]
    fn ties_keep_the_later_deployed_release() {
        let e = [stopped(10), stopped(10)];
        assert_eq!(prune(&e, 1, 0, 100), [0]);
    }

    #[test]
    fn keep_zero_forgets_every_stopped_release() {
        let e = [stopped(1), LIVE, stopped(2)];
        assert_eq!(prune(&e, 0, 0, 100), [0, 2]);
    }

    #[test]
    fn max_age_prunes_old_releases() {
        let e = [stopped(100), stopped(900), LIVE];
        assert_eq!(prune(&e, 10, 500, 1000), [0]);
        assert!(prune(&e, 10, 0, 1_000_000).is_empty());
    }

    #[test]
    fn active_and_draining_are_never_pruned() {
        assert!(prune(&[LIVE, LIVE], 0, 1, u64::MAX).is_empty());
    }
}
