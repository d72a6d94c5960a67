//! Mutating requests (`deploy`, `rollback`, `stop`, `restart`) and what the
//! CLI says while one waits. The daemon runs one such operation at a time
//! and queues the rest without a word, so the CLI looks for itself: it
//! notes which releases were starting before it sent its request, and if
//! its reply has not come after a second while one of them still starts,
//! it prints on stderr what it waits for. The same look tells a listener
//! that is not a Rollbridge daemon (no usable `status` reply) from a busy
//! daemon, so such a listener cannot hold the command forever.

use std::time::Duration;

use serde_json::Value;

use crate::cli::Args;
use crate::control::client::{self, ClientError};

const STATUS: &str = r#"{"command":"status"}"#;

/// Sends `request` and returns the success line; errors are explained.
pub fn send(args: &Args, request: &str) -> Result<String, String> {
    let loaded = super::status::load(args)?;
    let path = loaded.config.control.path.as_str();
    let explain = |e: ClientError| e.explain(&loaded.path);
    // Also proves a Rollbridge daemon is there before anything is sent.
    let mut ahead = starting_releases(&status(path).map_err(explain)?);
    let mut watch = |_elapsed: Duration| -> Result<(), ClientError> {
        if ahead.is_empty() {
            return Ok(());
        }
        let now = starting_releases(&status(path)?);
        if let Some(id) = ahead.iter().find(|id| now.contains(id)) {
            eprintln!("{}", waiting_message(id));
        }
        // Said once; or nothing of it is left to wait for.
        ahead.clear();
        Ok(())
    };
    client::request_watching(path, request, None, &mut watch).map_err(explain)
}

/// `status`, which must come from a Rollbridge daemon (it names an
/// `application`) within the CLI's request timeout.
fn status(path: &str) -> Result<Value, ClientError> {
    let line = client::request(path, STATUS, Some(client::DEFAULT_TIMEOUT))?;
    match serde_json::from_str::<Value>(&line) {
        Ok(v) if v.get("application").is_some_and(Value::is_string) => Ok(v),
        _ => Err(ClientError::Failed(format!(
            "Something that is not a Rollbridge daemon answers on {path}: its reply to `status` \
             has no application. Stop that program or set a different control.path."
        ))),
    }
}

/// Ids of the releases in state `starting`: a deploy or rollback runs.
fn starting_releases(status: &Value) -> Vec<String> {
    status
        .get("releases")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|r| r.get("state").and_then(Value::as_str) == Some("starting"))
        .filter_map(|r| r.get("releaseId").and_then(Value::as_str).map(str::to_owned))
        .collect()
}

fn waiting_message(release_id: &str) -> String {
    format!("Waiting for the running deploy of {release_id} to finish…")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_starting_releases_are_ahead() {
        let s = serde_json::json!({"releases": [
            {"releaseId": "r1", "state": "active"},
            {"releaseId": "r3", "state": "starting"},
            {"releaseId": "r0", "state": "stopped"}
        ]});
        assert_eq!(starting_releases(&s), ["r3"]);
        assert!(starting_releases(&serde_json::json!({})).is_empty());
    }

    #[test]
    fn waiting_message_names_the_release() {
        assert_eq!(
            waiting_message("r3"),
            "Waiting for the running deploy of r3 to finish…"
        );
    }
}
