//! The bundled control client: connect, write one line, read the first
//! line back, close. Unlike the original it can time out, so a wedged
//! daemon cannot hang a CLI command forever.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// Default wait for quick requests (`status`, `events`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A failed `connect` to the control socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectError {
    /// The OS error number, when there is one.
    pub errno: Option<i32>,
    pub path: String,
    /// The original's wording: `connect ENOENT <path>`.
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientError {
    /// `ENOENT` / `ECONNREFUSED`: no daemon on that path.
    NoDaemon(ConnectError),
    /// Any other connect error (`EACCES`, a path too long, ...).
    Unreachable(ConnectError),
    /// Something accepted the connection but sent no reply in time.
    NoAnswer { path: String, waited: Duration },
    /// Any other failure, including a daemon error response.
    Failed(String),
}

impl ClientError {
    /// The first line of the error, as the original words it where it has
    /// one (`connect ENOENT <path>`).
    pub fn message(&self) -> String {
        match self {
            ClientError::NoDaemon(c) | ClientError::Unreachable(c) => c.text.clone(),
            ClientError::NoAnswer { path, waited } => no_answer_text(path, *waited),
            ClientError::Failed(m) => m.clone(),
        }
    }

    /// [`message`](Self::message) plus, for connect errors, a second line
    /// saying what it means and what to do. `config` is the config file
    /// that named the socket.
    pub fn explain(&self, config: &str) -> String {
        let first = self.message();
        let hint = match self {
            ClientError::NoDaemon(c) | ClientError::Unreachable(c) => {
                super::advice::connect_hint(c, config)
            }
            ClientError::NoAnswer { path, .. } => Some(super::advice::no_answer_hint(path, config)),
            ClientError::Failed(_) => None,
        };
        match hint {
            Some(h) => format!("{first}\n{h}"),
            None => first,
        }
    }
}

fn no_answer_text(path: &str, waited: Duration) -> String {
    format!(
        "No reply from {path} within {}ms: something that is not a working Rollbridge daemon holds the control socket.",
        waited.as_millis()
    )
}

/// Sends `request` (one JSON object, no newline) and returns the success
/// response line as received (`{"status":"success",...}`).
pub fn request(
    path: &str,
    request: &str,
    timeout: Option<Duration>,
) -> Result<String, ClientError> {
    request_watching(path, request, timeout, &mut |_| Ok(()))
}

/// How often [`request_watching`] calls its watcher while no reply came.
pub const WATCH_EVERY: Duration = Duration::from_secs(1);

/// [`request`], calling `watch(elapsed)` about every [`WATCH_EVERY`] while
/// the reply is outstanding; an error from it abandons the request.
pub fn request_watching(
    path: &str,
    request: &str,
    timeout: Option<Duration>,
    watch: &mut dyn FnMut(Duration) -> Result<(), ClientError>,
) -> Result<String, ClientError> {
    request_with_progress(path, request, timeout, watch, &mut |_| {})
}

/// [`request_watching`] for a request that asked for progress: each
/// `{"progress":"…"}` line before the reply goes to `progress`.
pub fn request_with_progress(
    path: &str,
    request: &str,
    timeout: Option<Duration>,
    watch: &mut dyn FnMut(Duration) -> Result<(), ClientError>,
    progress: &mut dyn FnMut(&str),
) -> Result<String, ClientError> {
    let started = Instant::now();
    let mut stream = connect(path)?;
    let mut line = request.to_owned();
    line.push('\n');
    stream
        .write_all(line.as_bytes())
        .map_err(|e| ClientError::Failed(format!("write {} {path}", errno_text(&e))))?;
    let mut reader = BufReader::new(&stream);
    loop {
        let reply = read_line(&mut reader, path, timeout, started, watch)?;
        if let Some(text) = progress_text(&reply) {
            progress(&text);
            continue;
        }
        check_reply(&reply)?;
        return Ok(reply);
    }
}

/// The text of a `{"progress":"…"}` line.
fn progress_text(line: &str) -> Option<String> {
    if !line.starts_with("{\"progress\"") {
        return None;
    }
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    value.get("progress")?.as_str().map(str::to_owned)
}

/// Connects, mapping errors the way the CLI reports them.
pub fn connect(path: &str) -> Result<UnixStream, ClientError> {
    UnixStream::connect(path).map_err(|e| {
        let err = ConnectError {
            errno: e.raw_os_error(),
            path: path.to_owned(),
            text: format!("connect {} {path}", errno_text(&e)),
        };
        match e.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ECONNREFUSED) => ClientError::NoDaemon(err),
            _ => ClientError::Unreachable(err),
        }
    })
}

fn read_line(
    reader: &mut BufReader<&UnixStream>,
    path: &str,
    timeout: Option<Duration>,
    started: Instant,
    watch: &mut dyn FnMut(Duration) -> Result<(), ClientError>,
) -> Result<String, ClientError> {
    let stream = *reader.get_ref();
    let mut buf = Vec::new();
    let mut next_watch = WATCH_EVERY;
    loop {
        let elapsed = started.elapsed();
        if elapsed >= next_watch {
            watch(elapsed)?;
            next_watch = started.elapsed() + WATCH_EVERY;
        }
        let mut slice = next_watch
            .saturating_sub(started.elapsed())
            .max(Duration::from_millis(1));
        if let Some(t) = timeout {
            let left = t.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(timed_out(path, t));
            }
            slice = slice.min(left);
        }
        let _ = stream.set_read_timeout(Some(slice));
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) => {
                return Err(ClientError::Failed(format!(
                    "The Rollbridge daemon on {path} closed the connection without a response"
                )));
            }
            Ok(_) if buf.ends_with(b"\n") => break,
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // A slice ran out: watch, or give up at the deadline (top).
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) => {
                return Err(ClientError::Failed(format!(
                    "read {} {path}",
                    errno_text(&e)
                )));
            }
        }
    }
    buf.pop();
    String::from_utf8(buf)
        .map_err(|_| ClientError::Failed("The Rollbridge daemon sent invalid UTF-8".into()))
}

fn timed_out(path: &str, t: Duration) -> ClientError {
    ClientError::NoAnswer {
        path: path.to_owned(),
        waited: t,
    }
}

/// `status: "error"` -> failure with its `error` text.
fn check_reply(line: &str) -> Result<(), ClientError> {
    let value: serde_json::Value = serde_json::from_str(line).map_err(|e| {
        ClientError::Failed(format!(
            "Invalid JSON response from the Rollbridge daemon: {e}"
        ))
    })?;
    if value.get("status").and_then(|s| s.as_str()) == Some("error") {
        let msg = value
            .get("error")
            .and_then(|e| e.as_str())
            .filter(|e| !e.is_empty())
            .unwrap_or("Unknown Rollbridge error");
        return Err(ClientError::Failed(msg.to_owned()));
    }
    Ok(())
}

/// `ENOENT`-style code plus the OS text when there is one.
pub fn errno_text(e: &io::Error) -> String {
    let code = match e.raw_os_error() {
        Some(libc::ENOENT) => "ENOENT",
        Some(libc::ECONNREFUSED) => "ECONNREFUSED",
        Some(libc::EACCES) => "EACCES",
        Some(libc::EPERM) => "EPERM",
        Some(libc::ENOTSOCK) => "ENOTSOCK",
        Some(libc::ENOTDIR) => "ENOTDIR",
        Some(libc::ECONNRESET) => "ECONNRESET",
        Some(libc::EPIPE) => "EPIPE",
        Some(libc::EAGAIN) => "EAGAIN",
        Some(libc::ETIMEDOUT) => "ETIMEDOUT",
        Some(libc::EADDRINUSE) => "EADDRINUSE",
        Some(libc::ENAMETOOLONG) => "ENAMETOOLONG",
        _ => return e.to_string(),
    };
    code.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_socket_is_no_daemon_with_original_text() {
        let err = request(
            "/nonexistent-dir-rb/x.sock",
            r#"{"command":"status"}"#,
            None,
        )
        .unwrap_err();
        assert!(matches!(err, ClientError::NoDaemon(_)), "{err:?}");
        assert_eq!(err.message(), "connect ENOENT /nonexistent-dir-rb/x.sock");
    }

    #[test]
    fn error_reply_becomes_its_message() {
        assert_eq!(
            check_reply(r#"{"error":"nope","status":"error"}"#),
            Err(ClientError::Failed("nope".into()))
        );
        assert_eq!(
            check_reply(r#"{"error":"","status":"error"}"#),
            Err(ClientError::Failed("Unknown Rollbridge error".into()))
        );
        assert!(check_reply(r#"{"status":"success"}"#).is_ok());
    }
}
