//! The graceful stop sequence as a pure
//! state machine: the supervisor feeds it what it observes (leader alive,
//! group alive, hook running) and the injected `now`; it answers with
//! actions. No sleeps, no syscalls: unit-tested step by step.
//!
//! Quiet hook -> drain (hook or wait for the leader) -> stop hook or stop
//! signal -> wait `gracefulStopMs` for the whole group -> SIGKILL the group,
//! wait up to 5 s more -> await the leader's exit -> done.

use std::time::{Duration, Instant};

/// After SIGKILL, how long to wait for the group before giving up on it.
pub const KILL_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookKind {
    Quiet,
    Drain,
    Stop,
}

impl HookKind {
    /// Event prefix: `quiet command`, `drain command`, `stop command`.
    pub fn label(self) -> &'static str {
        match self {
            HookKind::Quiet => "quiet command",
            HookKind::Drain => "drain command",
            HookKind::Stop => "stop command",
        }
    }
}

/// What this stop will do, fixed when it begins.
#[derive(Debug, Clone, PartialEq)]
pub struct StopPlan {
    pub quiet_hook: bool,
    /// `lifecycle.drainTimeoutMs` when > 0.
    pub drain: Option<Duration>,
    pub drain_hook: bool,
    pub stop_hook: bool,
    /// Stop signal number (sent to the whole group).
    pub signal: i32,
    /// `None` = indefinite.
    pub graceful: Option<Duration>,
}

/// What the supervisor sees right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observed {
    pub leader_alive: bool,
    pub group_alive: bool,
    pub hook_running: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopAction {
    RunHook(HookKind),
    /// Send this signal to the group.
    Signal(i32),
    /// `gracefulStopMs` ran out: emit `process stop timed out; sending SIGKILL`.
    TimedOut,
    /// SIGKILL the group.
    Kill,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Begin,
    Quiet,
    DrainStart,
    Draining { deadline: Instant, hook: bool },
    StopStart,
    Graceful { deadline: Option<Instant> },
    Killed { deadline: Instant },
    AwaitLeader,
    Done,
}

#[derive(Debug, Clone)]
pub struct StopSeq {
    plan: StopPlan,
    phase: Phase,
}

impl StopSeq {
    pub fn new(plan: StopPlan) -> StopSeq {
        StopSeq {
            plan,
            phase: Phase::Begin,
        }
    }

    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// The next instant at which `advance` must run even if nothing else
    /// happens (a drain, graceful or kill deadline).
    pub fn deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Draining { deadline, .. } | Phase::Killed { deadline } => Some(deadline),
            Phase::Graceful { deadline } => deadline,
            _ => None,
        }
    }

    /// Moves as far as the observations allow; returns the actions to carry
    /// out. Call again whenever something changed or a deadline passed.
    pub fn advance(&mut self, now: Instant, obs: Observed) -> Vec<StopAction> {
        let mut actions = Vec::new();
        loop {
            match self.phase {
                Phase::Begin => {
                    if self.plan.quiet_hook {
                        actions.push(StopAction::RunHook(HookKind::Quiet));
                        self.phase = Phase::Quiet;
                        return actions;
                    }
                    self.phase = Phase::DrainStart;
                }
                Phase::Quiet => {
                    if obs.hook_running {
                        return actions;
                    }
                    self.phase = Phase::DrainStart;
                }
                Phase::DrainStart => {
                    if !obs.group_alive {
                        self.phase = Phase::AwaitLeader;
                    } else if let Some(d) = self.plan.drain {
                        let hook = self.plan.drain_hook;
                        self.phase = Phase::Draining {
                            deadline: now + d,
                            hook,
                        };
                        if hook {
                            actions.push(StopAction::RunHook(HookKind::Drain));
                            return actions;
                        }
                    } else {
                        self.phase = Phase::StopStart;
                    }
                }
                Phase::Draining { deadline, hook } => {
                    let finished = if hook {
                        !obs.hook_running
                    } else {
                        !obs.leader_alive || !obs.group_alive
                    };
                    if !finished && now < deadline {
                        return actions;
                    }
                    self.phase = Phase::StopStart;
                }
                Phase::StopStart => {
                    if !obs.group_alive {
                        self.phase = Phase::AwaitLeader;
                        continue;
                    }
                    actions.push(if self.plan.stop_hook {
                        StopAction::RunHook(HookKind::Stop)
                    } else {
                        StopAction::Signal(self.plan.signal)
                    });
                    self.phase = Phase::Graceful {
                        deadline: self.plan.graceful.map(|g| now + g),
                    };
                    return actions;
                }
                Phase::Graceful { deadline } => {
                    if !obs.group_alive {
                        self.phase = Phase::AwaitLeader;
                    } else if deadline.is_some_and(|d| now >= d) {
                        actions.push(StopAction::TimedOut);
                        actions.push(StopAction::Kill);
                        self.phase = Phase::Killed {
                            deadline: now + KILL_WAIT,
                        };
                        return actions;
                    } else {
                        return actions;
                    }
                }
                Phase::Killed { deadline } => {
                    if obs.group_alive && now < deadline {
                        return actions;
                    }
                    self.phase = Phase::AwaitLeader;
                }
                Phase::AwaitLeader => {
                    if obs.leader_alive {
                        return actions;
                    }
                    self.phase = Phase::Done;
                }
                Phase::Done => return actions,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TERM: i32 = 15;

    fn plan() -> StopPlan {
        StopPlan {
            quiet_hook: false,
            drain: None,
            drain_hook: false,
            stop_hook: false,
            signal: TERM,
            graceful: Some(Duration::from_millis(100)),
        }
    }

    fn obs(leader: bool, group: bool, hook: bool) -> Observed {
        Observed {
            leader_alive: leader,
            group_alive: group,
            hook_running: hook,
        }
    }

    #[test]
    fn plain_stop_signals_the_group_then_finishes_when_it_is_gone() {
        let mut s = StopSeq::new(plan());
        let t0 = Instant::now();
        assert_eq!(
            s.advance(t0, obs(true, true, false)),
            [StopAction::Signal(TERM)]
        );
        assert!(s.advance(t0, obs(true, true, false)).is_empty());
        assert!(!s.is_done());
        assert!(s.advance(t0, obs(false, false, false)).is_empty());
        assert!(s.is_done());
    }

    #[test]
    fn ignored_signal_is_escalated_to_sigkill_at_the_graceful_deadline() {
        let mut s = StopSeq::new(plan());
        let t0 = Instant::now();
        s.advance(t0, obs(true, true, false));
        assert_eq!(s.deadline(), Some(t0 + Duration::from_millis(100)));
        assert!(
            s.advance(t0 + Duration::from_millis(99), obs(true, true, false))
                .is_empty()
        );
        assert_eq!(
            s.advance(t0 + Duration::from_millis(100), obs(true, true, false)),
            [StopAction::TimedOut, StopAction::Kill]
        );
        assert!(
            s.advance(t0 + Duration::from_millis(101), obs(false, false, false))
                .is_empty()
        );
        assert!(s.is_done());
    }

    #[test]
    fn group_member_surviving_the_leader_keeps_the_stop_waiting() {
        let mut s = StopSeq::new(plan());
        let t0 = Instant::now();
        s.advance(t0, obs(true, true, false));
        // Leader gone, a grandchild still in the group.
        assert!(s.advance(t0, obs(false, true, false)).is_empty());
        assert!(!s.is_done());
        assert_eq!(
            s.advance(t0 + Duration::from_millis(100), obs(false, true, false)),
            [StopAction::TimedOut, StopAction::Kill]
        );
        s.advance(t0 + Duration::from_millis(110), obs(false, false, false));
        assert!(s.is_done());
    }

    #[test]
    fn indefinite_graceful_stop_never_kills() {
        let mut s = StopSeq::new(StopPlan {
            graceful: None,
            ..plan()
        });
        let t0 = Instant::now();
        s.advance(t0, obs(true, true, false));
        assert_eq!(s.deadline(), None);
        assert!(
            s.advance(t0 + Duration::from_secs(3600), obs(true, true, false))
                .is_empty()
        );
    }

    #[test]
    fn kill_wait_gives_up_after_five_seconds() {
        let mut s = StopSeq::new(plan());
        let t0 = Instant::now();
        s.advance(t0, obs(true, true, false));
        s.advance(t0 + Duration::from_millis(100), obs(true, true, false));
        // Group unkillable (e.g. D state); leader already reaped.
        s.advance(t0 + Duration::from_millis(5100), obs(false, true, false));
        assert!(s.is_done());
    }

    #[test]
    fn quiet_hook_runs_first_and_is_awaited() {
        let mut s = StopSeq::new(StopPlan {
            quiet_hook: true,
            ..plan()
        });
        let t0 = Instant::now();
        assert_eq!(
            s.advance(t0, obs(true, true, false)),
            [StopAction::RunHook(HookKind::Quiet)]
        );
        assert!(s.advance(t0, obs(true, true, true)).is_empty());
        assert_eq!(
            s.advance(t0, obs(true, true, false)),
            [StopAction::Signal(TERM)]
        );
    }

    #[test]
    fn process_exiting_during_drain_gets_no_signal() {
        let mut s = StopSeq::new(StopPlan {
            drain: Some(Duration::from_millis(50)),
            ..plan()
        });
        let t0 = Instant::now();
        assert!(s.advance(t0, obs(true, true, false)).is_empty());
        assert_eq!(s.deadline(), Some(t0 + Duration::from_millis(50)));
        assert!(
            s.advance(t0 + Duration::from_millis(10), obs(false, false, false))
                .is_empty()
        );
        assert!(s.is_done());
    }

    #[test]
    fn drain_wait_ends_at_its_deadline_then_signals() {
        let mut s = StopSeq::new(StopPlan {
            drain: Some(Duration::from_millis(50)),
            ..plan()
        });
        let t0 = Instant::now();
        s.advance(t0, obs(true, true, false));
        assert_eq!(
            s.advance(t0 + Duration::from_millis(50), obs(true, true, false)),
            [StopAction::Signal(TERM)]
        );
    }

    #[test]
    fn drain_hook_is_awaited_before_stopping() {
        let mut s = StopSeq::new(StopPlan {
            drain: Some(Duration::from_millis(50)),
            drain_hook: true,
            ..plan()
        });
        let t0 = Instant::now();
        assert_eq!(
            s.advance(t0, obs(true, true, false)),
            [StopAction::RunHook(HookKind::Drain)]
        );
        assert!(s.advance(t0, obs(true, true, true)).is_empty());
        assert_eq!(
            s.advance(t0, obs(true, true, false)),
            [StopAction::Signal(TERM)]
        );
    }

    #[test]
    fn stop_hook_replaces_the_signal() {
        let mut s = StopSeq::new(StopPlan {
            stop_hook: true,
            ..plan()
        });
        let t0 = Instant::now();
        assert_eq!(
            s.advance(t0, obs(true, true, false)),
            [StopAction::RunHook(HookKind::Stop)]
        );
    }

    #[test]
    fn group_already_gone_skips_every_step() {
        let mut s = StopSeq::new(StopPlan {
            drain: Some(Duration::from_millis(50)),
            ..plan()
        });
        assert!(
            s.advance(Instant::now(), obs(false, false, false))
                .is_empty()
        );
        assert!(s.is_done());
    }
}
