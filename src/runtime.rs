//! Runtime identity: which installation a
//! daemon runs, as `{digest, format: 1, path, version}`, and the
//! content-addressed snapshot `ensure-daemon` launches detached daemons
//! from (so a daemon survives deletion of the release that started it).
//!
//! Rust adaptation: the runtime is one file, the executable, named
//! `rollbridge` inside the snapshot. The digest is SHA-256 over the files
//! sorted by relative path, each as `path NUL bytes NUL`, `runtime.json`
//! excluded — so a daemon started straight from an installation reports
//! the same digest as a snapshot of it.

use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use sha2::{Digest, Sha256};

pub const FORMAT: u64 = 1;
pub const EXE_NAME: &str = "rollbridge";
pub const MANIFEST: &str = "runtime.json";
pub const MANIFEST_ENV: &str = "ROLLBRIDGE_DAEMON_RUNTIME_MANIFEST";
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeIdentity {
    pub digest: String,
    pub format: u64,
    pub path: String,
    pub version: String,
}

impl RuntimeIdentity {
    /// Same runtime: format, version and digest equal (path ignored).
    pub fn matches(&self, other: &RuntimeIdentity) -> bool {
        self.format == other.format && self.version == other.version && self.digest == other.digest
    }
}

/// `/tmp/rollbridge-<uid>-<first 16 hex of sha256(application)>-runtime`.
pub fn default_base(application: &str) -> String {
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    let hash = sha256_hex(application.as_bytes());
    format!("/tmp/rollbridge-{uid}-{}-runtime", &hash[..16])
}

/// The identity a daemon reports. With `$ROLLBRIDGE_DAEMON_RUNTIME_MANIFEST`
/// the manifest is re-verified (any mismatch is an error: start fails);
/// without it, the running executable itself.
pub fn for_daemon() -> Result<Option<RuntimeIdentity>, String> {
    match std::env::var(MANIFEST_ENV) {
        Ok(manifest) if !manifest.is_empty() => verify_manifest(Path::new(&manifest)).map(Some),
        _ => Ok(running_installation().ok()),
    }
}

/// The running executable as a runtime.
pub fn running_installation() -> Result<RuntimeIdentity, String> {
    let exe = std::env::current_exe().map_err(|e| format!("Cannot find the executable: {e}"))?;
    let digest = digest_files(&[(EXE_NAME.to_owned(), exe.clone())])?;
    let dir = exe
        .parent()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    Ok(RuntimeIdentity {
        digest,
        format: FORMAT,
        path: dir,
        version: VERSION.into(),
    })
}

/// SHA-256 over `(relative path, file)` pairs sorted by path.
pub fn digest_files(files: &[(String, PathBuf)]) -> Result<String, String> {
    let mut sorted: Vec<&(String, PathBuf)> = files.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    for (rel, path) in sorted {
        h.update(rel.as_bytes());
        h.update([0]);
        let mut f = std::fs::File::open(path)
            .map_err(|e| format!("Cannot read {}: {e}", path.display()))?;
        loop {
            let n = f
                .read(&mut buf)
                .map_err(|e| format!("Cannot read {}: {e}", path.display()))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        h.update([0]);
    }
    Ok(to_hex(&h.finalize()))
}

/// Lower-case hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    to_hex(&Sha256::digest(data))
}

fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Digest of a snapshot directory (every regular file, recursively, except
/// the top-level `runtime.json`).
pub fn digest_dir(dir: &Path) -> Result<String, String> {
    let mut files = Vec::new();
    collect(dir, dir, &mut files)?;
    digest_files(&files)
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) -> Result<(), String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("Cannot list {}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("Cannot list {}: {e}", dir.display()))?;
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path)
            .map_err(|e| format!("Cannot inspect {}: {e}", path.display()))?;
        let rel = path
            .strip_prefix(root)
            .map(|r| r.to_string_lossy().into_owned())
            .unwrap_or_default();
        if meta.is_dir() {
            collect(root, &path, out)?;
        } else if meta.is_file() && rel != MANIFEST {
            out.push((rel, path));
        }
    }
    Ok(())
}

/// Parses and re-verifies a manifest: its `path` is its own directory, the
/// digest and version recompute, the format is 1.
pub fn verify_manifest(manifest: &Path) -> Result<RuntimeIdentity, String> {
    let fail = |why: String| format!("runtime validation failed at {}: {why}", manifest.display());
    let text = std::fs::read_to_string(manifest).map_err(|e| fail(e.to_string()))?;
    let id: RuntimeIdentity =
        serde_json::from_str(&text).map_err(|e| fail(format!("invalid manifest: {e}")))?;
    let dir = manifest
        .parent()
        .ok_or_else(|| fail("manifest has no directory".into()))?;
    if Path::new(&id.path) != dir {
        return Err(fail(format!(
            "manifest path {} is not its directory {}",
            id.path,
            dir.display()
        )));
    }
    if id.format != FORMAT {
        return Err(fail(format!("unsupported format {}", id.format)));
    }
    if id.version != VERSION {
        return Err(fail(format!(
            "version {} does not match this build ({VERSION})",
            id.version
        )));
    }
    let digest = digest_dir(dir).map_err(fail)?;
    if digest != id.digest {
        return Err(fail(format!(
            "digest {digest} does not match the manifest ({})",
            id.digest
        )));
    }
    Ok(id)
}

/// Creates (if needed) and validates `<base>/<digest>` for the running
/// executable; returns its identity. Concurrent callers converge.
pub fn prepare_snapshot(base: &str) -> Result<RuntimeIdentity, String> {
    let base = PathBuf::from(base);
    if !base.is_absolute() {
        return Err(format!(
            "Runtime snapshot directory {} must be an absolute path",
            base.display()
        ));
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&base)
        .map_err(|e| {
            format!(
                "Cannot create runtime snapshot directory {}: {e}",
                base.display()
            )
        })?;
    check_base(&base)?;

    let exe = std::env::current_exe().map_err(|e| format!("Cannot find the executable: {e}"))?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let staging = base.join(format!(".staging-{}-{nanos}", std::process::id()));
    let result = stage(&exe, &base, &staging);
    if result.is_err() || staging.exists() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    result
}

fn stage(exe: &Path, base: &Path, staging: &Path) -> Result<RuntimeIdentity, String> {
    let io = |what: &str, e: std::io::Error| format!("Cannot {what} runtime snapshot: {e}");
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(staging)
        .map_err(|e| io("stage", e))?;
    let copy = staging.join(EXE_NAME);
    std::fs::copy(exe, &copy).map_err(|e| io("copy the executable into the", e))?;
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| io("set permissions in the", e))?;
    let digest = digest_dir(staging)?;
    let target = base.join(&digest);
    let identity = RuntimeIdentity {
        digest: digest.clone(),
        format: FORMAT,
        path: target.display().to_string(),
        version: VERSION.into(),
    };
    if target.exists() {
        validate(&target)?;
        return Ok(identity);
    }
    let manifest = staging.join(MANIFEST);
    let text = serde_json::to_string_pretty(&identity).unwrap_or_default() + "\n";
    std::fs::write(&manifest, text).map_err(|e| io("write the manifest of the", e))?;
    std::fs::set_permissions(&manifest, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| io("set permissions in the", e))?;
    run_help(&copy)
        .map_err(|e| format!("runtime validation failed at {}: {e}", staging.display()))?;
    match std::fs::rename(staging, &target) {
        Ok(()) => {}
        // Another caller won the race: use (and check) theirs.
        Err(_) if target.exists() => {}
        Err(e) => return Err(io("install the", e)),
    }
    validate(&target)?;
    Ok(identity)
}

/// Validates an installed snapshot: manifest, digest, version, `--help`.
pub fn validate(dir: &Path) -> Result<RuntimeIdentity, String> {
    let id = verify_manifest(&dir.join(MANIFEST))
        .map_err(|e| format!("runtime validation failed at {}: {e}", dir.display()))?;
    run_help(&dir.join(EXE_NAME))
        .map_err(|e| format!("runtime validation failed at {}: {e}", dir.display()))?;
    Ok(id)
}

/// The snapshot executable must answer `--help` successfully within 10 s.
fn run_help(exe: &Path) -> Result<(), String> {
    let mut child = Command::new(exe)
        .arg("--help")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {} --help: {e}", exe.display()))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("{} --help failed ({status})", exe.display())),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{} --help did not finish within 10 s",
                    exe.display()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Every component from `/` a real directory; ancestors owned by root or
/// us and, when group/other-writable, sticky; the base ours and private.
fn check_base(base: &Path) -> Result<(), String> {
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    let mut current = PathBuf::from("/");
    let components: Vec<Component> = base.components().collect();
    for (i, component) in components.iter().enumerate() {
        match component {
            Component::RootDir => {}
            Component::Normal(name) => current.push(name),
            _ => {
                return Err(format!(
                    "Runtime snapshot directory {} must be a normalized absolute path",
                    base.display()
                ));
            }
        }
        let meta = std::fs::symlink_metadata(&current)
            .map_err(|e| format!("Cannot inspect {}: {e}", current.display()))?;
        if meta.file_type().is_symlink() {
            return Err(format!(
                "Unsafe runtime snapshot path: {} is a symbolic link",
                current.display()
            ));
        }
        if !meta.is_dir() {
            return Err(format!(
                "Unsafe runtime snapshot path: {} is not a directory",
                current.display()
            ));
        }
        let mode = meta.mode();
        let is_base = i + 1 == components.len();
        if is_base {
            if meta.uid() != uid {
                return Err(format!(
                    "Unsafe runtime snapshot directory: {} is not owned by the current user",
                    current.display()
                ));
            }
            if mode & 0o022 != 0 {
                return Err(format!(
                    "Unsafe runtime snapshot directory: {} is writable by group or others",
                    current.display()
                ));
            }
        } else {
            if meta.uid() != 0 && meta.uid() != uid {
                return Err(format!(
                    "Unsafe runtime snapshot path: {} is owned by another user",
                    current.display()
                ));
            }
            if mode & 0o022 != 0 && mode & 0o1000 == 0 {
                return Err(format!(
                    "Unsafe runtime snapshot path: {} is writable by group or others without the sticky bit",
                    current.display()
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rb-runtime-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn sha256_hex_matches_known_vectors() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn digest_is_over_sorted_paths_and_contents_without_the_manifest() {
        let d = tmp("digest");
        std::fs::write(d.join("b"), b"2").unwrap();
        std::fs::write(d.join("a"), b"1").unwrap();
        std::fs::write(d.join(MANIFEST), b"ignored").unwrap();
        assert_eq!(digest_dir(&d).unwrap(), sha256_hex(b"a\x001\x00b\x002\x00"));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn manifest_must_name_its_own_directory_and_digest() {
        let d = tmp("manifest");
        std::fs::write(d.join(EXE_NAME), b"bin").unwrap();
        let digest = digest_dir(&d).unwrap();
        let write = |path: &str, digest: &str| {
            let m = RuntimeIdentity {
                digest: digest.into(),
                format: FORMAT,
                path: path.into(),
                version: VERSION.into(),
            };
            std::fs::write(d.join(MANIFEST), serde_json::to_string(&m).unwrap()).unwrap();
        };
        write(d.to_str().unwrap(), &digest);
        assert_eq!(verify_manifest(&d.join(MANIFEST)).unwrap().digest, digest);
        write("/elsewhere", &digest);
        assert!(
            verify_manifest(&d.join(MANIFEST))
                .unwrap_err()
                .contains("is not its directory")
        );
        write(d.to_str().unwrap(), "00");
        assert!(
            verify_manifest(&d.join(MANIFEST))
                .unwrap_err()
                .starts_with("runtime validation failed at")
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn group_writable_base_is_refused() {
        let d = tmp("unsafe");
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o770)).unwrap();
        let err = check_base(&d).unwrap_err();
        assert!(err.contains("writable by group or others"), "{err}");
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(check_base(&d).is_ok());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn symlinked_component_is_refused() {
        let d = tmp("symlink");
        std::fs::create_dir(d.join("real")).unwrap();
        std::os::unix::fs::symlink(d.join("real"), d.join("link")).unwrap();
        let err = check_base(&d.join("link")).unwrap_err();
        assert!(err.contains("symbolic link"), "{err}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn default_base_uses_uid_and_application_hash() {
        let b = default_base("shop");
        assert!(b.starts_with("/tmp/rollbridge-"));
        assert!(b.ends_with(&format!("-{}-runtime", &sha256_hex(b"shop")[..16])));
    }
}
