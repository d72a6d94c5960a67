//! What a failed connection to the control socket means, and what to do
//! next: the second line the CLI prints under the OS error.

use super::client::ConnectError;

/// Longest path a Unix socket address holds on Linux (108 bytes in
/// `sun_path`, including the terminating NUL).
pub const MAX_SOCKET_PATH: usize = 107;

/// The advice for a failed `connect`, if there is one for that error.
pub fn connect_hint(err: &ConnectError, config: &str) -> Option<String> {
    let path = &err.path;
    let hint = match err.errno {
        Some(libc::ENOENT) => format!(
            "No Rollbridge daemon is listening at {path} (no socket file). Start one with \
             `rollbridge deploy --ensure-daemon --release-path <dir>` or `rollbridge daemon`, \
             or check control.path in {config}."
        ),
        Some(libc::ECONNREFUSED) => format!(
            "A socket file exists at {path} but no daemon accepts connections on it: the daemon \
             that created it is not running (did it crash?). Run `rollbridge doctor` to check \
             the host and `rollbridge recover` to find processes it left behind, then start a \
             daemon again (`rollbridge deploy --ensure-daemon ...` or `rollbridge daemon`)."
        ),
        Some(libc::EACCES) | Some(libc::EPERM) => format!(
            "Permission denied on {path}: run this command as the user the daemon runs as, or \
             let your user in with control.group and control.mode in {config} (e.g. control: \
             {{group: \"deploy\", mode: \"660\"}}), then restart the daemon."
        ),
        Some(libc::ENOTDIR) => {
            format!("A parent of {path} is not a directory: fix control.path in {config}.")
        }
        _ if path.len() > MAX_SOCKET_PATH => format!(
            "control.path is {} bytes long, but a Unix socket path can be at most \
             {MAX_SOCKET_PATH} bytes (108 including the terminating NUL). Set a shorter \
             control.path in {config}, e.g. under /run or /tmp.",
            path.len()
        ),
        _ => return None,
    };
    Some(hint)
}

/// The advice when something accepted the connection but never answered.
pub fn no_answer_hint(path: &str, config: &str) -> String {
    format!(
        "A Rollbridge daemon answers `status` at once. If another program listens there \
         (see `ss -xlp | grep {path}`), stop it or set a different control.path in {config}; \
         if it is a wedged Rollbridge daemon, restart it (`rollbridge doctor` shows what is \
         on the socket)."
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(errno: i32) -> ConnectError {
        ConnectError {
            errno: Some(errno),
            path: "/tmp/app.sock".into(),
            text: "connect X /tmp/app.sock".into(),
        }
    }

    #[test]
    fn missing_socket_says_how_to_start_a_daemon() {
        let h = connect_hint(&err(libc::ENOENT), "/srv/rollbridge.js").unwrap_or_default();
        assert!(
            h.starts_with("No Rollbridge daemon is listening at /tmp/app.sock (no socket file).")
        );
        assert!(h.contains("--ensure-daemon") && h.contains("control.path in /srv/rollbridge.js"));
    }

    #[test]
    fn refused_socket_points_at_recover_and_doctor() {
        let h = connect_hint(&err(libc::ECONNREFUSED), "c.js").unwrap_or_default();
        assert!(
            h.contains("crash")
                && h.contains("rollbridge recover")
                && h.contains("rollbridge doctor")
        );
    }

    #[test]
    fn permission_denied_points_at_group_and_mode() {
        let h = connect_hint(&err(libc::EACCES), "c.js").unwrap_or_default();
        assert!(h.starts_with("Permission denied on /tmp/app.sock"));
        assert!(h.contains("control.group") && h.contains("control.mode"));
    }

    #[test]
    fn too_long_path_names_the_limit() {
        let long = format!("/tmp/{}", "x".repeat(120));
        let e = ConnectError {
            errno: None,
            path: long.clone(),
            text: String::new(),
        };
        let h = connect_hint(&e, "c.js").unwrap_or_default();
        assert!(h.contains(&format!("{} bytes long", long.len())) && h.contains("107"));
    }
}
