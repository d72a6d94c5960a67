//! Path-shaped settings a deploy or daemon start would trip over: the
//! control socket path must fit a Unix socket address, and HTTP health
//! paths must start with `/`.

use super::super::raw::Raw;
use super::rules::Issues;
use crate::control::advice::MAX_SOCKET_PATH;

/// `control.path` longer than a Unix socket address holds.
pub fn socket_path(issues: &mut Issues, path: &str, given: bool) {
    if path.len() <= MAX_SOCKET_PATH {
        return;
    }
    let which = if given {
        "control.path".to_owned()
    } else {
        format!("control.path (default {path})")
    };
    issues.push(
        format!(
            "{which} is {} bytes long; a Unix socket path can be at most {MAX_SOCKET_PATH} bytes \
             (108 including the terminating NUL on Linux)",
            path.len()
        ),
        "Use a shorter path, e.g. control: {path: \"/run/rollbridge/app.sock\"} or \
         control: {path: \"/tmp/rollbridge-app.sock\"}."
            .to_owned(),
    );
}

/// An HTTP health path (`field` names it) must be absolute. An empty one
/// is accepted like every empty string.
pub fn health_path(issues: &mut Issues, field: &str, value: &str) {
    if value.is_empty() || value.starts_with('/') {
        return;
    }
    let key = field.rsplit('.').next().unwrap_or(field);
    issues.push(
        format!("{field} must start with \"/\""),
        format!(
            "Write the path as the app serves it, e.g. {key}: \"/{}\".",
            value
        ),
    );
}

/// Longest `proxy.accessLog` accepted (Linux `PATH_MAX`).
const MAX_ACCESS_LOG_PATH: usize = 4096;

/// `proxy.accessLog`: absent or `null` (off), else an absolute file path
/// (the daemon may run from any directory).
pub fn access_log(issues: &mut Issues, proxy: &Raw) -> Option<String> {
    const FIX: &str = "Set proxy.accessLog to an absolute file path, e.g. accessLog: \"/var/log/rollbridge/access.log\", or remove it.";
    match proxy.get("accessLog") {
        None | Some(Raw::Null) => None,
        Some(Raw::String(s))
            if s.starts_with('/')
                && s.len() <= MAX_ACCESS_LOG_PATH
                && !s.ends_with('/')
                && !s.contains('\0') =>
        {
            Some(s.clone())
        }
        Some(Raw::String(_)) => {
            issues.push(
                "proxy.accessLog must be an absolute file path (at most 4096 bytes)",
                FIX,
            );
            None
        }
        Some(_) => {
            issues.push("proxy.accessLog must be a string", FIX);
            None
        }
    }
}
