//! `rollbridge deploy` and `rollbridge rollback`.
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
    // Made absolute against this command's cwd (the daemon's differs and
    // refuses relative paths); an empty path is left for the daemon to name.
    let path = args.release_path.as_deref().unwrap_or_default();
    let path = absolute(path);
    send_progress(args, "deploy", Some(&path))
}

/// Progress on stderr when it is a terminal, or with `--progress`.
fn wants_progress(args: &Args) -> bool {
    // SAFETY: isatty only inspects the descriptor.
    args.progress || unsafe { libc::isatty(libc::STDERR_FILENO) == 1 }
}

/// `deploy`/`rollback`, asking the daemon for progress lines when wanted.
fn send_progress(args: &Args, command: &str, release_path: Option<&str>) -> i32 {
    let progress = wants_progress(args);
    let mut request = request(command, args, release_path);
    if progress {
        if let Ok(serde_json::Value::Object(mut map)) = serde_json::from_str(&request) {
            map.insert("progress".into(), true.into());
            request = serde_json::Value::Object(map).to_string();
        }
    }
    match super::waiting::send_with_progress(args, &request, progress) {
        Ok(line) => {
            crate::outln!("{}", pretty(&line));
            warn_state_error(&line);
            0
        }
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

/// `path` joined to the current directory when relative, `.` components
/// dropped (`..` kept: it may cross a symlink).
fn absolute(path: &str) -> String {
    if path.is_empty() || path.starts_with('/') {
        return path.to_owned();
    }
    let Ok(cwd) = std::env::current_dir() else {
        return path.to_owned();
    };
    let joined: std::path::PathBuf = cwd.join(path).components().collect();
    joined.to_string_lossy().into_owned()
}

/// `promote`: the canary becomes the active release.
pub fn promote(args: &Args) -> i32 {
    send_progress(args, "promote", None)
}

/// `abort`: the canary drains and stops.
pub fn abort(args: &Args) -> i32 {
    send(args, &request("abort", args, None))
}

pub fn rollback(args: &Args) -> i32 {
    send_progress(args, "rollback", None)
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
        if let Some(p) = args.canary {
            request.insert("canary".into(), p.into());
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
            crate::outln!("{}", pretty(&line));
            warn_state_error(&line);
            0
        }
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::absolute;

    #[test]
    fn relative_release_path_is_made_absolute_against_the_cwd() {
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(absolute("rel/./r1"), cwd.join("rel/r1").to_string_lossy());
        assert_eq!(absolute("/srv/r1"), "/srv/r1");
        assert_eq!(absolute(""), "");
    }
}
