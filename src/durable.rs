//! Durable small files (pid file, state file, its `.prev` copy): write a
//! temp file beside the target, fsync it, rename over the target, fsync
//! the folder. The one atomic-write helper of the daemon.

use std::io::Write;
use std::path::Path;

/// Writes through `.<name>.<pid>.tmp` beside the target.
pub fn write_atomic(path: &Path, content: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let tmp = dir_of(path).join(format!(".{name}.{}.tmp", std::process::id()));
    write_via(path, &tmp, content)
}

/// Writes through the given temp file (same folder as `path`).
pub fn write_via(path: &Path, tmp: &Path, content: &[u8]) -> std::io::Result<()> {
    let dir = dir_of(path);
    let result = (|| {
        let mut f = std::fs::File::create(tmp)?;
        f.write_all(content)?;
        f.sync_all()?;
        std::fs::rename(tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(tmp);
    }
    result
}

fn dir_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_target_and_leaves_no_temp_file() {
        let dir = std::env::temp_dir().join(format!("rb-durable-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let target = dir.join("x.pid");
        write_atomic(&target, b"1\n").unwrap();
        write_atomic(&target, b"2\n").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"2\n");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
