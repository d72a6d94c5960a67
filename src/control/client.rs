//! The bundled control client: connect, write one line, read the first
//! line back, close. Unlike the original it can time out, so a wedged
//! daemon cannot hang a CLI command forever.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// Default wait for quick requests (`status`, `events`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientError {
    /// `ENOENT` / `ECONNREFUSED`: no daemon on that path.
    NoDaemon(String),
    /// Any other failure, including a daemon error response.
    Failed(String),
}

impl ClientError {
    pub fn message(&self) -> &str {
        match self {
            ClientError::NoDaemon(m) | ClientError::Failed(m) => m,
        }
    }
}

/// Sends `request` (one JSON object, no newline) and returns the success
/// response line as received (`{"status":"success",...}`).
pub fn request(
    path: &str,
    request: &str,
    timeout: Option<Duration>,
) -> Result<String, ClientError> {
    let started = Instant::now();
    let mut stream = connect(path)?;
    let mut line = request.to_owned();
    line.push('\n');
    stream
        .write_all(line.as_bytes())
        .map_err(|e| ClientError::Failed(format!("write {} {path}", errno_text(&e))))?;
    let reply = read_line(&stream, path, timeout, started)?;
    check_reply(&reply)?;
    Ok(reply)
}

/// Connects, mapping errors the way the CLI reports them.
pub fn connect(path: &str) -> Result<UnixStream, ClientError> {
    UnixStream::connect(path).map_err(|e| {
        let text = format!("connect {} {path}", errno_text(&e));
        match e.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ECONNREFUSED) => ClientError::NoDaemon(text),
            _ => ClientError::Failed(text),
        }
    })
}

fn read_line(
    stream: &UnixStream,
    path: &str,
    timeout: Option<Duration>,
    started: Instant,
) -> Result<String, ClientError> {
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    loop {
        if let Some(t) = timeout {
            let left = t.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(timed_out(path, t));
            }
            let _ = stream.set_read_timeout(Some(left));
        }
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) => {
                return Err(ClientError::Failed(format!(
                    "The Rollbridge daemon on {path} closed the connection without a response"
                )));
            }
            Ok(_) if buf.ends_with(b"\n") => break,
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(timed_out(path, timeout.unwrap_or_default()));
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
    ClientError::Failed(format!(
        "Timed out after {}ms waiting for the Rollbridge daemon on {path}",
        t.as_millis()
    ))
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
        assert_eq!(
            err,
            ClientError::NoDaemon("connect ENOENT /nonexistent-dir-rb/x.sock".into())
        );
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
