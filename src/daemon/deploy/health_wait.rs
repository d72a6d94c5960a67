//! The deploy's wait for the proxied process to become healthy: probes on
//! the health schedule, fails fast when the process exits, reports attempts
//! as progress, and on failure says what the operator needs: the last probe
//! result, the time waited and the process's last output lines.

use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use super::{Plan, companions};
use crate::config::Config;
use crate::control::server::Progress;
use crate::release::health;
use crate::supervisor::{ProcKey, SupervisorHandle};

/// Output lines quoted in a failed health check's message.
const LAST_LINES: usize = 20;
/// A process that exited may still have output in its pipes: the time the
/// supervisor gets to read it before the lines are quoted.
const EXIT_SETTLE: Duration = Duration::from_millis(100);
/// Repeated identical probe results are reported at most this often.
const REPEAT_EVERY: Duration = Duration::from_secs(1);

/// What a health check watches and reports to: exits of managed
/// processes (fail fast), the supervisor (last output lines), progress.
pub(crate) struct Waiter<'a> {
    pub exits: &'a Receiver<(ProcKey, Option<i32>, Option<String>)>,
    pub supervisor: &'a SupervisorHandle,
    pub progress: Option<&'a Progress>,
}

impl Waiter<'_> {
    fn say(&self, text: impl FnOnce() -> String) {
        if let Some(p) = self.progress {
            p.say(&text());
        }
    }
}

impl Plan {
    pub(super) fn waiter(&self) -> Waiter<'_> {
        Waiter {
            exits: &self.exits,
            supervisor: &self.supervisor,
            progress: self.progress.as_ref(),
        }
    }
}

/// Probes until healthy, the deadline, or the process exits (fail fast).
pub(crate) fn health_check(
    plan: &Waiter,
    config: &Config,
    hc: &crate::config::HealthConfig,
    port: u16,
    key: ProcKey,
    id: &str,
    seen: &mut companions::SeenExits,
) -> Result<(), String> {
    let url = health::url(&config.proxy.upstream_host, port, &hc.path);
    let mut schedule = health::Schedule::new(Instant::now(), hc, url);
    let mut next = schedule.first_probe();
    let mut said: Option<(String, Instant)> = None;
    plan.say(|| format!("health check {}", schedule.url()));
    loop {
        // Wait for the next probe, watching for the process exiting.
        loop {
            let now = Instant::now();
            if now >= next {
                break;
            }
            match plan.exits.recv_timeout(next - now) {
                Ok((k, code, signal)) if k == key => {
                    let how = match (code, signal) {
                        (_, Some(sig)) => format!("signal {sig}"),
                        (Some(c), None) => format!("code {c}"),
                        (None, None) => "unknown status".into(),
                    };
                    let summary = format!(
                        "Health check failed for {}: process \"{id}\" exited ({how}) before it became healthy",
                        schedule.url()
                    );
                    std::thread::sleep(EXIT_SETTLE);
                    return Err(diagnose(plan, &schedule, key, id, summary, true));
                }
                Ok((k, code, signal)) => {
                    seen.insert(k, (code, signal));
                }
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(next.saturating_duration_since(Instant::now()));
                }
            }
        }
        let now = Instant::now();
        let outcome = health::probe(
            &config.proxy.upstream_host,
            port,
            &hc.path,
            schedule.probe_timeout(now),
        );
        let result = match &outcome {
            Ok(()) => "healthy".to_owned(),
            Err(e) => e.clone(),
        };
        let verdict = schedule.record(Instant::now(), outcome);
        let repeat = said
            .as_ref()
            .is_some_and(|(r, at)| *r == result && at.elapsed() < REPEAT_EVERY);
        if !repeat || verdict == health::Verdict::Healthy {
            plan.say(|| {
                format!(
                    "health check attempt {}: {result} ({} ms)",
                    schedule.attempts(),
                    schedule.waited(Instant::now()).as_millis()
                )
            });
            said = Some((result, Instant::now()));
        }
        match verdict {
            health::Verdict::Healthy => return Ok(()),
            health::Verdict::ProbeAt(at) => next = at,
            health::Verdict::Failed(summary) => {
                return Err(diagnose(plan, &schedule, key, id, summary, false));
            }
        }
    }
}

/// The failure message: `summary`, what was tried for how long, then the
/// last output lines of the process.
fn diagnose(
    plan: &Waiter,
    schedule: &health::Schedule,
    key: ProcKey,
    id: &str,
    summary: String,
    exited: bool,
) -> String {
    let waited = schedule.waited(Instant::now()).as_millis();
    let attempts = schedule.attempts();
    let tried = match (exited, schedule.last_error()) {
        (true, Some(last)) => format!("last probe: {last}; {attempts} attempt(s) in {waited} ms"),
        (true, None) => format!("no probe answered; waited {waited} ms"),
        (false, _) => format!("waited {waited} ms, {attempts} attempt(s)"),
    };
    let logs = plan
        .supervisor
        .snapshot(vec![key])
        .pop()
        .flatten()
        .map(|s| s.logs)
        .unwrap_or_default();
    let mut message = format!("{summary} ({tried})");
    if logs.is_empty() {
        message.push_str(&format!("\nNo output from \"{id}\"."));
    } else {
        let skip = logs.len().saturating_sub(LAST_LINES);
        message.push_str(&format!(
            "\nLast {} line(s) of \"{id}\" output:",
            logs.len() - skip
        ));
        for l in &logs[skip..] {
            message.push_str(&format!("\n  [{}] {}", l.stream.as_str(), l.line));
        }
    }
    message
}
