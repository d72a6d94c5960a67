//! Mutating requests (`deploy`, `rollback`, `stop`, `restart`) and what the
//! CLI says while one waits. The daemon runs one such operation at a time
//! and queues the rest without a word, so the CLI looks for itself: from
//! the daemon's recent events it notes which deploys and rollbacks were
//! running before it sent its request, and if its reply has not come after
//! a second while one of them still runs, it prints on stderr what it waits
//! for. The same look tells a listener that is not a Rollbridge daemon (no
//! usable `events` reply) from a busy daemon, so such a listener cannot hold
//! the command forever.

use std::time::Duration;

use serde_json::Value;

use crate::cli::Args;
use crate::control::client::{self, ClientError};

/// Enough recent events to see the start of a running deploy.
const EVENTS: &str = r#"{"command":"events","limit":300}"#;

/// A deploy or rollback the daemon is running.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Running {
    rollback: bool,
    release_id: String,
}

/// Sends `request` and returns the success line; errors are explained.
pub fn send(args: &Args, request: &str) -> Result<String, String> {
    send_with_progress(args, request, false)
}

/// [`send`]; with `progress`, the daemon's progress lines (the request
/// asked for them) are printed on stderr as they come.
pub fn send_with_progress(args: &Args, request: &str, progress: bool) -> Result<String, String> {
    let loaded = super::status::load(args)?;
    let path = loaded.config.control.path.as_str();
    let explain = |e: ClientError| e.explain(&loaded.path);
    // Also proves a Rollbridge daemon is there before anything is sent.
    let mut ahead = running(&events(path).map_err(explain)?);
    let mut watch = |_elapsed: Duration| -> Result<(), ClientError> {
        if ahead.is_empty() {
            return Ok(());
        }
        let now = running(&events(path)?);
        if let Some(op) = ahead.iter().find(|op| now.contains(op)) {
            eprintln!("{}", waiting_message(op));
        }
        // Said once; or nothing of it is left to wait for.
        ahead.clear();
        Ok(())
    };
    let mut show = |text: &str| {
        if progress {
            eprintln!("{text}");
        }
    };
    client::request_with_progress(path, request, None, &mut watch, &mut show).map_err(explain)
}

/// The recent events, which must come from a Rollbridge daemon within the
/// CLI's request timeout.
fn events(path: &str) -> Result<Vec<Value>, ClientError> {
    let line = client::request(path, EVENTS, Some(client::DEFAULT_TIMEOUT))?;
    match serde_json::from_str::<Value>(&line) {
        Ok(Value::Object(mut reply)) => match reply.remove("events") {
            Some(Value::Array(list)) => Ok(list),
            _ => Err(not_rollbridge(path)),
        },
        _ => Err(not_rollbridge(path)),
    }
}

fn not_rollbridge(path: &str) -> ClientError {
    ClientError::Failed(format!(
        "Something that is not a Rollbridge daemon answers on {path}: its reply to `events` is \
         not a Rollbridge reply. Stop that program or set a different control.path."
    ))
}

/// Deploys and rollbacks that started and have neither switched traffic
/// nor failed yet, oldest first.
fn running(events: &[Value]) -> Vec<Running> {
    let mut out: Vec<Running> = Vec::new();
    let mut rollback_of: Option<String> = None;
    for e in events {
        let id = e
            .get("data")
            .and_then(|d| d.get("releaseId"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        match e.get("message").and_then(Value::as_str).unwrap_or_default() {
            "rollback starting" => rollback_of = Some(id.to_owned()),
            "deploy starting" => {
                out.retain(|op| op.release_id != id);
                out.push(Running {
                    rollback: rollback_of.take().is_some_and(|r| r == id),
                    release_id: id.to_owned(),
                });
            }
            "traffic switched" | "deploy failed" => out.retain(|op| op.release_id != id),
            _ => {}
        }
    }
    out
}

fn waiting_message(op: &Running) -> String {
    if op.rollback {
        format!(
            "Waiting for the running rollback to {} to finish…",
            op.release_id
        )
    } else {
        format!(
            "Waiting for the running deploy of {} to finish…",
            op.release_id
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(message: &str, id: &str) -> Value {
        serde_json::json!({"at": "t", "data": {"releaseId": id}, "message": message})
    }

    #[test]
    fn started_and_unfinished_deploys_are_running() {
        let list = [
            event("deploy starting", "r1"),
            event("traffic switched", "r1"),
            event("deploy starting", "r2"),
            event("deploy failed", "r2"),
            event("rollback starting", "r1"),
            event("deploy starting", "r1"),
            event("deploy starting", "r3"),
        ];
        assert_eq!(
            running(&list),
            [
                Running {
                    rollback: true,
                    release_id: "r1".into()
                },
                Running {
                    rollback: false,
                    release_id: "r3".into()
                },
            ]
        );
    }

    #[test]
    fn waiting_message_names_the_operation_and_release() {
        let deploy = Running {
            rollback: false,
            release_id: "r3".into(),
        };
        assert_eq!(
            waiting_message(&deploy),
            "Waiting for the running deploy of r3 to finish…"
        );
        let rollback = Running {
            rollback: true,
            release_id: "r1".into(),
        };
        assert_eq!(
            waiting_message(&rollback),
            "Waiting for the running rollback to r1 to finish…"
        );
    }
}
