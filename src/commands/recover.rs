//! `rollbridge recover [--force]`: lists, and with `--force`
//! stops, the processes a crashed daemon left behind. Output texts and
//! streams follow the contract's table exactly.

use crate::cli::Args;
use crate::daemon::orphans::{Orphan, count};
use crate::daemon::recover::{Outcome, recover};

pub fn run(args: &Args) -> i32 {
    let outcome = crate::config::load(args.config.as_deref())
        .and_then(|loaded| recover(&loaded.config, args.force));
    let report = match &outcome {
        Ok(outcome) if args.json => Report {
            stdout: format!("{}\n", json(outcome, args.force)),
            stderr: String::new(),
            code: i32::from(
                args.force && (!outcome.remaining.is_empty() || outcome.clear_error.is_some()),
            ),
        },
        Ok(outcome) if args.force => forced(outcome),
        Ok(outcome) => dry_run(outcome),
        Err(e) => Report {
            stderr: format!("{e}\n"),
            code: 1,
            ..Report::default()
        },
    };
    if let Ok(Some(note)) = outcome.as_ref().map(|o| o.note.as_deref()) {
        eprintln!("{note}");
    }
    crate::out!("{}", report.stdout);
    eprint!("{}", report.stderr);
    report.code
}

/// The rendered result, kept apart from printing so every row of the
/// contract's table can be unit-tested.
#[derive(Debug, Default, PartialEq, Eq)]
struct Report {
    stdout: String,
    stderr: String,
    code: i32,
}

fn dry_run(outcome: &Outcome) -> Report {
    let mut report = contract_dry_run(outcome);
    if let Some(plan) = &outcome.adoption {
        report.stdout.push_str(&adoption_text(plan));
    }
    report
}

/// With `adoptOrphans`: what the next daemon start adopts and drops.
fn adoption_text(plan: &crate::daemon::adopt::Plan) -> String {
    let adopt = plan.adopted();
    let dropped = plan.dropped();
    if adopt.is_empty() && dropped.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "With adoptOrphans, the next daemon start adopts {}:\n{}",
        processes(adopt.len()),
        list(&adopt)
    );
    if !dropped.is_empty() {
        out.push_str(&format!(
            "and drops {} recorded pid(s), never signalled:\n",
            dropped.len()
        ));
        for (o, why) in &dropped {
            out.push_str(&format!("  {} (pid {}): {why}\n", o.id, o.pid));
        }
    }
    out
}

fn processes(n: usize) -> String {
    format!("{n} {}", if n == 1 { "process" } else { "processes" })
}

/// `--json`: the same facts as an object (additive keys).
fn json(outcome: &Outcome, force: bool) -> serde_json::Value {
    use serde_json::json;
    let entry = |o: &Orphan| json!({"id": o.id, "pid": o.pid, "releaseId": o.release_id});
    let mut out = json!({
        "statePath": outcome.state_path,
        "orphans": outcome.orphans.iter().map(entry).collect::<Vec<_>>(),
        "adoptOrphans": outcome.adoption.is_some(),
    });
    if let Some(plan) = &outcome.adoption {
        out["wouldAdopt"] = plan.adopted().iter().map(entry).collect();
        out["wouldDrop"] = plan
            .dropped()
            .iter()
            .map(|(o, why)| {
                json!({"id": o.id, "pid": o.pid, "reason": why, "releaseId": o.release_id})
            })
            .collect();
    }
    if force {
        out["stopped"] = outcome.stopped.iter().map(entry).collect();
        out["remaining"] = outcome.remaining.iter().map(entry).collect();
        out["cleared"] = outcome.cleared.into();
        if let Some(e) = &outcome.clear_error {
            out["clearError"] = e.as_str().into();
        }
    }
    out
}

fn contract_dry_run(outcome: &Outcome) -> Report {
    let stdout = if outcome.orphans.is_empty() {
        "No orphaned processes found.\n".to_owned()
    } else {
        format!(
            "Found {} (run with --force to stop):\n{}{}\n",
            count(outcome.orphans.len()),
            list(&outcome.orphans),
            "Review this list before using --force: a pid may have been recycled and now belong to an unrelated process."
        )
    };
    Report {
        stdout,
        ..Report::default()
    }
}

fn forced(outcome: &Outcome) -> Report {
    if outcome.orphans.is_empty() && outcome.clear_error.is_none() {
        return Report {
            stdout: "No orphaned processes found; cleared the state file.\n".to_owned(),
            ..Report::default()
        };
    }
    let stopped = if outcome.stopped.is_empty() {
        String::new()
    } else {
        format!(
            "Stopped {}:\n{}",
            count(outcome.stopped.len()),
            list(&outcome.stopped)
        )
    };
    if !outcome.remaining.is_empty() {
        let stderr = format!(
            "{stopped}Could not stop {} — still running (check permissions/ownership):\n{}\
             The state file {} was left in place; investigate, then re-run `rollbridge recover --force`.\n",
            count(outcome.remaining.len()),
            list(&outcome.remaining),
            outcome.state_path
        );
        return Report {
            stderr,
            code: 1,
            ..Report::default()
        };
    }
    match &outcome.clear_error {
        Some(e) => Report {
            stdout: stopped,
            stderr: format!("{e}\n"),
            code: 1,
        },
        None => Report {
            stdout: stopped,
            ..Report::default()
        },
    }
}

/// One line per orphan: `  <id> (pid <pid>[, release <rid>])`.
fn list(orphans: &[Orphan]) -> String {
    orphans
        .iter()
        .map(|o| match &o.release_id {
            Some(rid) => format!("  {} (pid {}, release {})\n", o.id, o.pid, rid),
            None => format!("  {} (pid {})\n", o.id, o.pid),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_pluralised() {
        assert_eq!(count(1), "1 orphaned process");
        assert_eq!(count(2), "2 orphaned processes");
        assert_eq!(count(0), "0 orphaned processes");
    }

    fn orphan(id: &str, pid: u32, rid: Option<&str>) -> Orphan {
        Orphan {
            id: id.into(),
            pid,
            release_id: rid.map(str::to_owned),
            ..Orphan::default()
        }
    }

    #[test]
    fn some_remaining_goes_to_stderr_with_exit_1_and_keeps_the_stopped_block() {
        let outcome = Outcome {
            state_path: "/s/state.json".into(),
            orphans: vec![orphan("web", 10, Some("v1")), orphan("db", 11, None)],
            stopped: vec![orphan("web", 10, Some("v1"))],
            remaining: vec![orphan("db", 11, None)],
            ..Outcome::default()
        };
        let r = forced(&outcome);
        assert_eq!((r.code, r.stdout.as_str()), (1, ""));
        assert_eq!(
            r.stderr,
            "Stopped 1 orphaned process:\n  web (pid 10, release v1)\n\
             Could not stop 1 orphaned process — still running (check permissions/ownership):\n  db (pid 11)\n\
             The state file /s/state.json was left in place; investigate, then re-run `rollbridge recover --force`.\n"
        );
    }

    #[test]
    fn all_stopped_goes_to_stdout() {
        let all = vec![orphan("web", 10, Some("v1")), orphan("db", 11, None)];
        let outcome = Outcome {
            orphans: all.clone(),
            stopped: all,
            cleared: true,
            ..Outcome::default()
        };
        let r = forced(&outcome);
        assert_eq!(
            r,
            Report {
                stdout:
                    "Stopped 2 orphaned processes:\n  web (pid 10, release v1)\n  db (pid 11)\n"
                        .into(),
                stderr: String::new(),
                code: 0
            }
        );
    }

    #[test]
    fn list_lines_name_the_release_when_there_is_one() {
        let orphans = [
            Orphan {
                id: "web".into(),
                pid: 12,
                release_id: Some("v1".into()),
                ..Orphan::default()
            },
            Orphan {
                id: "db".into(),
                pid: 13,
                release_id: None,
                ..Orphan::default()
            },
        ];
        assert_eq!(
            list(&orphans),
            "  web (pid 12, release v1)\n  db (pid 13)\n"
        );
    }
}
