//! Where the daemon's state lives and how it is read back.
//!
//! The state file is `statePath`, or — when that is unset — a private
//! runtime record beside the control socket (`<control.path>.state.json`),
//! so orphans are always detectable. Beside it: `<state>.prev` (the
//! previous good version, rotated on each successful write), `<state>.lock`
//! (held with `flock` for the daemon's life) and, when a daemon found the
//! file unreadable, `<state>.corrupt-<UTC time>`.

use serde_json::Value;

use crate::config::Config;

/// The state file a config implies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub path: String,
    /// `statePath` is set (else the default runtime record).
    pub configured: bool,
}

pub fn location(config: &Config) -> Location {
    match config.state_path.as_deref() {
        Some(p) => Location {
            path: p.to_owned(),
            configured: true,
        },
        None => Location {
            path: default_record(&config.control.path),
            configured: false,
        },
    }
}

/// `<control.path>.state.json`.
pub fn default_record(control_path: &str) -> String {
    format!("{control_path}.state.json")
}

pub fn prev_path(path: &str) -> String {
    format!("{path}.prev")
}

pub fn lock_path(path: &str) -> String {
    format!("{path}.lock")
}

/// What reading the state file gave.
#[derive(Debug, Clone, PartialEq)]
pub enum Read {
    /// No state file: nothing was left behind.
    Missing,
    Good(Value),
    /// The main file is unreadable; the `.prev` copy was used instead.
    FromPrev {
        value: Value,
        error: String,
    },
    /// Unreadable, and no usable `.prev` copy.
    Corrupt {
        error: String,
    },
}

impl Read {
    /// The snapshot to take orphans from (none when missing or corrupt).
    pub fn value(&self) -> Option<&Value> {
        match self {
            Read::Good(v) | Read::FromPrev { value: v, .. } => Some(v),
            _ => None,
        }
    }

    /// Why the main file could not be used.
    pub fn error(&self) -> Option<&str> {
        match self {
            Read::FromPrev { error, .. } | Read::Corrupt { error } => Some(error),
            _ => None,
        }
    }
}

/// Reads `path`, falling back to `<path>.prev` when it is unreadable.
pub fn read(path: &str) -> Read {
    match parse(path) {
        Ok(None) => Read::Missing,
        Ok(Some(v)) => Read::Good(v),
        Err(error) => match parse(&prev_path(path)) {
            Ok(Some(value)) => Read::FromPrev { value, error },
            _ => Read::Corrupt { error },
        },
    }
}

/// `Ok(None)`: missing. A snapshot must be a JSON object.
fn parse(path: &str) -> Result<Option<Value>, String> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {path}: {e}")),
    };
    match serde_json::from_slice::<Value>(&text) {
        Ok(v) if v.is_object() => Ok(Some(v)),
        Ok(_) => Err(format!("{path} is not a JSON object")),
        Err(e) => Err(format!("{path} is not valid JSON ({e})")),
    }
}

/// Moves an unreadable state file aside as `<path>.corrupt-<UTC time>`;
/// the new name.
pub fn set_aside(path: &str) -> Result<String, String> {
    let stamp = crate::timefmt::iso_now().replace(':', "");
    let target = format!("{path}.corrupt-{stamp}");
    std::fs::rename(path, &target)
        .map(|()| target)
        .map_err(|e| format!("cannot move {path} aside: {e}"))
}

/// Removes the state file and its `.prev` copy (nothing left to track).
pub fn clear(path: &str) -> Result<(), String> {
    for p in [path.to_owned(), prev_path(path)] {
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("Cannot remove the state file {p}: {e}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("rb-statefile-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn truncated_state_falls_back_to_prev_or_reports_corrupt() {
        let d = dir("read");
        let path = d.join("state.json").to_string_lossy().into_owned();
        assert_eq!(read(&path), Read::Missing);
        std::fs::write(&path, "{\"activeRel").unwrap();
        assert!(matches!(read(&path), Read::Corrupt { .. }));
        std::fs::write(prev_path(&path), "{\"a\":1}").unwrap();
        match read(&path) {
            Read::FromPrev { value, error } => {
                assert_eq!(value["a"], 1);
                assert!(error.contains("not valid JSON"), "{error}");
            }
            other => panic!("{other:?}"),
        }
        let aside = set_aside(&path).unwrap();
        assert!(aside.contains(".corrupt-"), "{aside}");
        assert_eq!(read(&path), Read::Missing);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
