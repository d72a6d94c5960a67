//! Finding the config file.

use std::io;
use std::path::{Component, Path, PathBuf};

/// Default file names, in lookup order. `rollbridge.json` is this
/// implementation's allowed extension.
pub const DEFAULT_NAMES: [&str; 2] = ["rollbridge.js", "rollbridge.json"];

/// Resolves the config path: an explicit `--config` exactly as typed (no
/// existence check), else the first default name that is a regular file in
/// `cwd`, as an absolute path.
pub fn resolve(explicit: Option<&str>, cwd: &Path) -> Result<String, String> {
    if let Some(path) = explicit {
        return Ok(path.to_owned());
    }
    for name in DEFAULT_NAMES {
        let candidate = cwd.join(name);
        match std::fs::metadata(&candidate) {
            Ok(meta) if meta.is_file() => return Ok(candidate.to_string_lossy().into_owned()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("Cannot read {}: {e}", candidate.display())),
        }
    }
    Err(format!(
        "No config file found in {}. Pass --config <path> or add rollbridge.js (or rollbridge.json) to that directory.",
        cwd.display()
    ))
}

/// `path` made absolute against the process cwd, `.`/`..` folded lexically.
pub fn absolute(path: &str) -> PathBuf {
    let p = Path::new(path);
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    };
    normalize_lexically(&joined)
}

/// Folds `.` and `..` without touching the filesystem.
pub fn normalize_lexically(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for comp in path.components() {
        match comp {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_path_is_used_as_typed() {
        let got = resolve(Some("conf/missing.js"), Path::new("/nonexistent")).unwrap();
        assert_eq!(got, "conf/missing.js");
    }

    #[test]
    fn missing_default_names_the_directory_and_file() {
        let dir = std::env::temp_dir().join(format!("rb-find-empty-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let err = resolve(None, &dir).unwrap_err();
        assert!(err.starts_with("No config file found"), "{err}");
        assert!(err.contains(&dir.display().to_string()));
        assert!(err.contains("rollbridge.js"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn js_wins_over_json_and_json_is_the_fallback() {
        let dir = std::env::temp_dir().join(format!("rb-find-both-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("rollbridge.json"), "{}").unwrap();
        assert!(resolve(None, &dir).unwrap().ends_with("rollbridge.json"));
        std::fs::write(dir.join("rollbridge.js"), "export default {}").unwrap();
        assert!(resolve(None, &dir).unwrap().ends_with("rollbridge.js"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn directory_named_like_the_config_does_not_count() {
        let dir = std::env::temp_dir().join(format!("rb-find-dir-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("rollbridge.js")).unwrap();
        assert!(resolve(None, &dir).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn dot_dot_is_folded() {
        assert_eq!(
            normalize_lexically(Path::new("/a/b/../c/./d")),
            PathBuf::from("/a/c/d")
        );
    }
}
