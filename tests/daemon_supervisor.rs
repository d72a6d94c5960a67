//! The supervisor thread with real children (no deploy exists yet to start
//! processes through the binary): stop escalation reaching grandchildren,
//! crash restarts per policy, output bounded under floods, spawn errors,
//! lifecycle hooks. The supervisor reaps with waitpid(-1), so these tests
//! run one at a time in this (otherwise child-free) test binary.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, unbounded};
use rollbridge::config::{GracefulStop, LifecycleConfig, RestartConfig};
use rollbridge::supervisor::output::MAX_LINE_BYTES;
use rollbridge::supervisor::spawn::{become_subreaper, group_alive};
use rollbridge::supervisor::{
    Notice, ProcState, ProcessSpec, ProcessStatus, StartReason, Supervisor, SupervisorHandle,
};

static SERIAL: Mutex<()> = Mutex::new(());

struct Fixture {
    _guard: MutexGuard<'static, ()>,
    sup: Option<Supervisor>,
    h: SupervisorHandle,
    rx: Receiver<Notice>,
    keys: Vec<u64>,
}

impl Fixture {
    fn new() -> Fixture {
        let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        become_subreaper();
        rollbridge::log::set_enabled(false);
        let (tx, rx) = unbounded();
        let sup = Supervisor::start(std::sync::Arc::new(move |n| {
            let _ = tx.send(n);
        }))
        .unwrap();
        let h = sup.handle();
        Fixture {
            _guard: guard,
            sup: Some(sup),
            h,
            rx,
            keys: Vec::new(),
        }
    }

    fn register(&mut self, spec: ProcessSpec) -> u64 {
        let k = self.h.register(spec);
        self.keys.push(k);
        k
    }

    fn status(&self, key: u64) -> ProcessStatus {
        self.h
            .snapshot(vec![key])
            .pop()
            .flatten()
            .expect("known key")
    }

    /// Waits for an event; returns its data.
    fn wait_event(&self, message: &str, timeout: Duration) -> Option<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(Notice::Event(e)) if e.message == message => {
                    return Some(serde_json::to_value(&e.data).unwrap());
                }
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }

    fn wait_state(&self, key: u64, state: ProcState, timeout: Duration) -> ProcessStatus {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.status(key);
            if s.state == state || Instant::now() >= deadline {
                return s;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.h.stop_all(Box::new(move |n| {
            let _ = tx.send(n);
        }));
        let _ = rx.recv_timeout(Duration::from_secs(15));
        if let Some(sup) = self.sup.take() {
            sup.shutdown();
        }
    }
}

fn spec(id: &str, command: &str) -> ProcessSpec {
    ProcessSpec::simple(id, command, "/tmp")
}

#[test]
fn stop_sends_the_stop_signal_and_records_the_exit() {
    let mut f = Fixture::new();
    let k = f.register(spec("web", "exec sleep 1000"));
    let pid = f.h.start_wait(k, StartReason::Deploy).unwrap();
    let s = f.status(k);
    assert_eq!(s.state, ProcState::Running);
    assert_eq!(s.pid, Some(pid));
    assert!(s.uptime_ms.is_some() && s.exit_code.is_none());
    let started = f
        .wait_event("process started", Duration::from_secs(2))
        .unwrap();
    assert_eq!(started["reason"], "deploy");
    assert_eq!(started["pid"], pid);
    f.h.stop_wait(k).unwrap();
    let s = f.status(k);
    assert_eq!(s.state, ProcState::Stopped);
    assert_eq!(s.pid, None);
    assert_eq!(s.exit_code, Some(None));
    assert_eq!(s.exit_signal, Some(Some("SIGTERM".into())));
    assert!(s.uptime_ms.is_none() && s.started_at.is_some());
    assert!(!group_alive(pid as i32));
}

#[test]
fn process_ignoring_sigterm_is_sigkilled_after_graceful_stop_with_its_grandchildren() {
    let mut f = Fixture::new();
    let mut sp = spec(
        "stubborn",
        "trap '' TERM; sh -c 'trap \"\" TERM; sleep 1000' & sleep 1000 & wait",
    );
    sp.graceful_stop = GracefulStop::Ms(300);
    let k = f.register(sp);
    let pid = f.h.start_wait(k, StartReason::Deploy).unwrap() as i32;
    std::thread::sleep(Duration::from_millis(100)); // let the shell fork
    let started = Instant::now();
    f.h.stop_wait(k).unwrap();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(290),
        "waited gracefulStopMs: {took:?}"
    );
    assert!(took < Duration::from_secs(4), "then SIGKILL: {took:?}");
    let timed_out = f
        .wait_event(
            "process stop timed out; sending SIGKILL",
            Duration::from_secs(1),
        )
        .unwrap();
    assert_eq!(timed_out["id"], "stubborn");
    assert_eq!(timed_out["pid"], pid);
    assert!(!group_alive(pid), "whole group gone when stop returns");
    assert_eq!(f.status(k).exit_signal, Some(Some("SIGKILL".into())));
}

#[test]
fn grandchild_outliving_the_leader_is_stopped_too() {
    let mut f = Fixture::new();
    // The shell exits on TERM at once; its background child ignores TERM.
    let mut sp = spec("leaky", "sh -c 'trap \"\" TERM; exec sleep 1000' & wait");
    sp.graceful_stop = GracefulStop::Ms(200);
    let k = f.register(sp);
    let pid = f.h.start_wait(k, StartReason::Deploy).unwrap() as i32;
    std::thread::sleep(Duration::from_millis(100));
    f.h.stop_wait(k).unwrap();
    assert!(!group_alive(pid));
}

#[test]
fn crash_restarts_follow_the_policy_until_the_limit() {
    let mut f = Fixture::new();
    let mut sp = spec("crashy", "echo boom; exit 3");
    sp.restart_delay_ms = 20;
    sp.restart = RestartConfig {
        max_restarts: Some(2),
        window_ms: 0,
        backoff_factor: 2.0,
        max_delay_ms: 0,
    };
    let k = f.register(sp);
    f.h.start_wait(k, StartReason::Deploy).unwrap();
    let limit = f
        .wait_event("restart limit reached", Duration::from_secs(5))
        .expect("limit event");
    assert_eq!(limit["id"], "crashy");
    assert_eq!(limit["maxRestarts"], 2);
    assert_eq!(limit["windowMs"], 0);
    let s = f.status(k);
    assert_eq!(s.state, ProcState::Failed);
    assert_eq!(s.restarts, 2);
    assert_eq!(s.exit_code, Some(Some(3)));
    assert_eq!(s.exit_signal, Some(None));
    assert_eq!(
        s.last_start_reason,
        Some(StartReason::Crash),
        "restarted by the policy"
    );
    assert!(s.logs.iter().filter(|l| l.line == "boom").count() == 3);
}

#[test]
fn max_restarts_zero_never_restarts() {
    let mut f = Fixture::new();
    let mut sp = spec("once", "exit 1");
    sp.restart_delay_ms = 10;
    sp.restart.max_restarts = Some(0);
    let k = f.register(sp);
    f.h.start_wait(k, StartReason::Deploy).unwrap();
    assert!(
        f.wait_event("restart limit reached", Duration::from_secs(3))
            .is_some()
    );
    std::thread::sleep(Duration::from_millis(100));
    let s = f.status(k);
    assert_eq!(s.state, ProcState::Failed);
    assert_eq!(s.restarts, 0);
}

#[test]
fn closed_crash_gate_keeps_a_crashed_process_failed() {
    let mut f = Fixture::new();
    let mut sp = spec("gated", "exit 1");
    sp.restart_delay_ms = 10;
    let k = f.register(sp);
    f.h.set_crash_gate(k, false);
    f.h.start_wait(k, StartReason::Deploy).unwrap();
    assert!(
        f.wait_event("process exited", Duration::from_secs(3))
            .is_some()
    );
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(f.status(k).restarts, 0);
}

#[test]
fn output_ring_stays_bounded_under_a_flood() {
    let mut f = Fixture::new();
    let mut sp = spec("flood", "yes line-of-output");
    sp.output_lines = 7;
    let k = f.register(sp);
    f.h.start_wait(k, StartReason::Deploy).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let s = f.status(k);
    assert_eq!(s.logs.len(), 7);
    assert!(s.logs.iter().all(|l| l.line == "line-of-output"));
    f.h.stop_wait(k).unwrap();
}

#[test]
fn endless_line_without_newline_is_truncated_not_buffered() {
    let mut f = Fixture::new();
    let k = f.register(spec(
        "nonl",
        "head -c 20000000 /dev/zero | tr '\\0' 'y'; printf '\\nafter\\n' >&2; sleep 1000",
    ));
    f.h.start_wait(k, StartReason::Deploy).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let s = loop {
        let s = f.status(k);
        if s.logs.iter().any(|l| l.line == "after") || Instant::now() >= deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        s.logs.iter().any(|l| l.line == "after"),
        "{:?}",
        s.logs.len()
    );
    let long: Vec<_> = s
        .logs
        .iter()
        .filter(|l| l.line.starts_with("yyy"))
        .collect();
    assert_eq!(long.len(), 1, "one truncated line, the rest skipped");
    assert!(long[0].line.len() <= MAX_LINE_BYTES + 16);
    let after = s.logs.iter().find(|l| l.line == "after").unwrap();
    assert_eq!(serde_json::to_value(after).unwrap()["stream"], "stderr");
}

#[test]
fn spawn_failure_names_the_process_and_the_reason() {
    let mut f = Fixture::new();
    let k = f.register(ProcessSpec::simple("web", "true", "/nonexistent/release"));
    let err = f.h.start_wait(k, StartReason::Deploy).unwrap_err();
    assert!(err.contains("\"web\""), "{err}");
    assert!(err.contains("/nonexistent/release"), "{err}");
    let s = f.status(k);
    assert_eq!(s.state, ProcState::Failed);
    assert!(s.last_start_reason.is_none() && s.exit_code.is_none());
}

#[test]
fn environment_and_cwd_are_exactly_the_given_ones() {
    let mut f = Fixture::new();
    let mut sp = spec(
        "env",
        "echo \"$ROLLBRIDGE_PORT:$PWD:${HOME-unset}\"; sleep 1000",
    );
    sp.env = vec![
        ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
        ("ROLLBRIDGE_PORT".into(), "4100".into()),
    ];
    let k = f.register(sp);
    f.h.start_wait(k, StartReason::Deploy).unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    while f.status(k).logs.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(f.status(k).logs[0].line, "4100:/tmp:unset");
}

#[test]
fn lifecycle_hooks_run_in_order_before_the_signal() {
    let mut f = Fixture::new();
    let marks = format!("/tmp/rbt-hooks-{}", std::process::id());
    let _ = std::fs::remove_file(&marks);
    let mut sp = spec(
        "hooked",
        "trap 'echo term >> MARKS; exit 0' TERM; while :; do sleep 0.05; done"
            .replace("MARKS", &marks)
            .as_str(),
    );
    sp.lifecycle = LifecycleConfig {
        quiet_command: Some(format!("echo quiet:$ROLLBRIDGE_PID >> {marks}")),
        drain_command: Some(format!("echo drain >> {marks}")),
        stop_command: None,
        drain_timeout_ms: 500,
    };
    let k = f.register(sp);
    let pid = f.h.start_wait(k, StartReason::Deploy).unwrap();
    f.h.stop_wait(k).unwrap();
    let text = std::fs::read_to_string(&marks).unwrap_or_default();
    let _ = std::fs::remove_file(&marks);
    assert_eq!(text, format!("quiet:{pid}\ndrain\nterm\n"));
}

#[test]
fn hook_over_its_limit_is_killed_and_reported() {
    let mut f = Fixture::new();
    let mut sp = spec("slowhook", "exec sleep 1000");
    sp.graceful_stop = GracefulStop::Ms(200);
    sp.lifecycle.quiet_command = Some("sleep 1000".into());
    let k = f.register(sp);
    f.h.start_wait(k, StartReason::Deploy).unwrap();
    let started = Instant::now();
    f.h.stop_wait(k).unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
    let e = f
        .wait_event("quiet command timed out", Duration::from_secs(1))
        .unwrap();
    assert_eq!(e["timeoutMs"], 200);
}

#[test]
fn stop_all_refuses_new_starts_and_stops_everything() {
    let mut f = Fixture::new();
    let a = f.register(spec("a", "exec sleep 1000"));
    let b = f.register(spec("b", "exec sleep 1000"));
    let pa = f.h.start_wait(a, StartReason::Deploy).unwrap() as i32;
    let pb = f.h.start_wait(b, StartReason::Deploy).unwrap() as i32;
    let (tx, rx) = crossbeam_channel::bounded(1);
    f.h.stop_all(Box::new(move |n| {
        let _ = tx.send(n);
    }));
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), 0);
    assert!(!group_alive(pa) && !group_alive(pb));
    assert_eq!(
        f.h.start_wait(a, StartReason::Manual).unwrap_err(),
        "Rollbridge is shutting down"
    );
}

#[test]
fn snapshot_answers_while_a_stop_is_waiting() {
    let mut f = Fixture::new();
    let mut sp = spec("slowstop", "trap '' TERM; exec sleep 1000");
    sp.graceful_stop = GracefulStop::Ms(1500);
    let k = f.register(sp);
    f.h.start_wait(k, StartReason::Deploy).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let (tx, rx) = crossbeam_channel::bounded(1);
    f.h.stop(
        k,
        Box::new(move |r| {
            let _ = tx.send(r);
        }),
    );
    let t = Instant::now();
    let s = f.wait_state(k, ProcState::Stopping, Duration::from_secs(1));
    assert_eq!(s.state, ProcState::Stopping);
    assert!(t.elapsed() < Duration::from_millis(500));
    assert!(rx.recv_timeout(Duration::from_secs(5)).unwrap().is_ok());
}

fn memory_hog() -> &'static str {
    // tail keeps everything it read while waiting for an EOF that never comes.
    "(head -c 60000000 /dev/zero; sleep 1000) | tail"
}

#[test]
fn memory_limit_exceeded_restarts_the_process_with_reason_memory() {
    let mut f = Fixture::new();
    let mut sp = spec("hog", memory_hog());
    sp.memory = Some(rollbridge::config::MemoryConfig {
        limit_bytes: 30_000_000,
        warn_bytes: 0,
        check_interval_ms: 100,
    });
    sp.graceful_stop = GracefulStop::Ms(2000);
    let k = f.register(sp);
    let first = f.h.start_wait(k, StartReason::Deploy).unwrap();
    let e = f
        .wait_event("memory limit exceeded", Duration::from_secs(10))
        .expect("limit event");
    assert_eq!(e["limitBytes"], 30_000_000);
    assert!(e["rssBytes"].as_u64().unwrap() > 30_000_000);
    let deadline = Instant::now() + Duration::from_secs(10);
    let s = loop {
        let s = f.status(k);
        if s.memory_restarts == 1 && s.state == ProcState::Running {
            break s;
        }
        assert!(Instant::now() < deadline, "no memory restart: {s:?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(s.last_start_reason, Some(StartReason::Memory));
    assert!(s.last_memory_restart_at.is_some());
    assert_ne!(s.pid, Some(first));
    assert_eq!(
        s.restarts, 0,
        "memory restarts do not count as crash restarts"
    );
    assert!(!group_alive(first as i32), "old group fully stopped first");
}

#[test]
fn memory_warning_fires_once_and_samples_the_whole_group() {
    let mut f = Fixture::new();
    let mut sp = spec("warm", memory_hog());
    sp.memory = Some(rollbridge::config::MemoryConfig {
        limit_bytes: 1_000_000_000,
        warn_bytes: 20_000_000,
        check_interval_ms: 50,
    });
    let k = f.register(sp);
    f.h.start_wait(k, StartReason::Deploy).unwrap();
    let e = f
        .wait_event("memory warning", Duration::from_secs(10))
        .expect("warning");
    assert_eq!(e["warnBytes"], 20_000_000);
    assert!(
        f.wait_event("memory warning", Duration::from_millis(400))
            .is_none(),
        "once"
    );
    let s = f.status(k);
    assert!(s.rss_bytes.unwrap() > 20_000_000);
    let names: Vec<_> = s.children.iter().map(|c| c.command.as_str()).collect();
    assert!(
        names.contains(&"tail") && names.contains(&"sleep"),
        "{names:?}"
    );
    f.h.stop_wait(k).unwrap();
    let s = f.status(k);
    assert!(
        s.children.is_empty() && s.rss_bytes.is_none(),
        "cleared on exit"
    );
}
