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

fn send(args: &Args, request: &str) -> i32 {
    match super::waiting::send(args, request) {
        Ok(line) => {
            println!("{}", pretty(&line));
            0
        }
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}
