//! `rollbridge deploy` (cli.md §2.3) and `rollbridge rollback` (§2.4).
//! No client timeout: a deploy waits for its health check, which has its
//! own deadline.

use crate::cli::Args;
use crate::control::pretty::pretty;

pub fn run(args: &Args) -> i32 {
    if args.ensure_daemon {
        if let Err(e) = super::ensure_daemon::ensure(args) {
            eprintln!("{e}");
            return 1;
        }
    }
    // Sent exactly as typed (cli.md §2.3); keys in the original's order.
    let path = args.release_path.as_deref().unwrap_or_default();
    send(args, &request("deploy", args, Some(path)))
}

pub fn rollback(args: &Args) -> i32 {
    send(args, &request("rollback", args, None))
}

pub fn stop(args: &Args) -> i32 {
    send(args, &request("stop", args, None))
}

/// `{"command", "releaseId"?, "releasePath"?, "revision"?}`; optional fields
/// are omitted when not given (`revision` only for deploy).
fn request(command: &str, args: &Args, release_path: Option<&str>) -> String {
    let mut request = serde_json::Map::new();
    request.insert("command".into(), command.into());
    if let Some(id) = &args.release_id {
        request.insert("releaseId".into(), id.as_str().into());
    }
    if let Some(path) = release_path {
        request.insert("releasePath".into(), path.into());
        if let Some(rev) = &args.revision {
            request.insert("revision".into(), rev.as_str().into());
        }
    }
    serde_json::Value::Object(request).to_string()
}

/// The daemon could not record the result in its state file: a crash now
/// would leave these processes untracked.
fn warn_state_error(line: &str) {
    let value = serde_json::from_str::<serde_json::Value>(line).unwrap_or_default();
    if let Some(e) = value.get("stateError").and_then(|e| e.as_str()) {
        eprintln!(
            "Warning: the daemon could not write its state file ({e}). It retries every second; \
             until a write succeeds, a daemon crash would leave these processes untracked. Free space \
             or fix the state file's folder, then check that `rollbridge status` no longer shows stateError."
        );
    }
}

fn send(args: &Args, request: &str) -> i32 {
    match super::waiting::send(args, request) {
        Ok(line) => {
            println!("{}", pretty(&line));
            warn_state_error(&line);
            0
        }
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}
