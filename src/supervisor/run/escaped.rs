//! Descendants that left their process group (`setsid`, double forks):
//! finding them for a run, signalling them with it, sampling them.

use std::collections::HashSet;

use super::*;

impl Loop {
    /// Every live descendant of `key`'s current (or last) run, group members
    /// included. Hooks are never counted, though they share the identity.
    pub(super) fn descendants_of(&self, key: ProcKey, pgid: Option<i32>) -> Vec<ProcInfo> {
        let Some(p) = self.procs.get(&key) else {
            return Vec::new();
        };
        let pgid = pgid.or(p.leader).or(p.pgid).unwrap_or(0);
        if pgid <= 0 && p.marker.is_none() {
            return Vec::new();
        }
        let hooks: HashSet<i32> = self.hooks.keys().copied().collect();
        descendants::scan(&descendants::Run {
            root: p.adopted.as_ref().map_or(self.root, |a| a.root),
            leader: p.leader,
            pgid,
            marker: p.marker.as_ref(),
            exclude_pgrps: &hooks,
        })
    }

    /// Re-scans a stopping run and remembers what it found (the group is
    /// signalled as a whole; everything else one by one).
    pub(super) fn refresh_tracked(&mut self, key: ProcKey) {
        let Some(pgid) = self
            .procs
            .get(&key)
            .and_then(|p| p.stop.as_ref())
            .map(|r| r.pgid)
        else {
            return;
        };
        let found = self.descendants_of(key, Some(pgid));
        if let Some(run) = self.procs.get_mut(&key).and_then(|p| p.stop.as_mut()) {
            for f in found {
                if !run.tracked.iter().any(|t| t.ident() == f.ident()) {
                    run.tracked.push(f);
                }
            }
        }
    }

    /// Sends `sig` to every tracked descendant outside the group that is
    /// still the process it was when found.
    pub(super) fn signal_escaped(&mut self, key: ProcKey, sig: i32) {
        self.refresh_tracked(key);
        let Some(run) = self.procs.get(&key).and_then(|p| p.stop.as_ref()) else {
            return;
        };
        for t in &run.tracked {
            if t.pgrp != run.pgid {
                descendants::signal_verified(t.ident(), sig);
            }
        }
    }

    /// A stopping run is over only when its group and every tracked
    /// descendant are gone.
    pub(super) fn tracked_alive(&self, key: ProcKey) -> bool {
        self.procs
            .get(&key)
            .and_then(|p| p.stop.as_ref())
            .is_some_and(|r| {
                r.tracked
                    .iter()
                    .any(|t| descendants::still_alive(t.ident()))
            })
    }

    /// Before a new run: SIGKILL whatever the previous one left behind, in
    /// its group or escaped from it (it would clash with the new copy).
    pub(super) fn kill_leftovers(&mut self, key: ProcKey) {
        let Some(p) = self.procs.get(&key) else {
            return;
        };
        if p.leader.is_some() || (p.pgid.is_none() && p.marker.is_none()) {
            return;
        }
        if let Some(old) = p.pgid {
            if group_alive(old) {
                let _ = signal_group(old, libc::SIGKILL);
            }
        }
        for f in self.descendants_of(key, None) {
            descendants::signal_verified(f.ident(), libc::SIGKILL);
        }
    }
}
