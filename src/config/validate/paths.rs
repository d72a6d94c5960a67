//! Path-shaped settings a deploy or daemon start would trip over: the
//! control socket path must fit a Unix socket address, and HTTP health
//! paths must start with `/`.

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
