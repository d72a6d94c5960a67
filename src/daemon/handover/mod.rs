//! `rollbridge upgrade`: the daemon replaces its own program with no gap.
//!
//! The running program serializes its world into a versioned JSON document
//! ([`Handover`]), writes it into a memfd, duplicates every descriptor the
//! successor needs without close-on-exec, and calls `execve` on the new
//! binary with the same argv and [`HANDOVER_FD_ENV`] naming the memfd. The
//! pid stays the same, so managed processes stay our children. The new
//! program reads the document back ([`take`]) instead of binding and
//! starting from scratch. Design: docs/architecture.md "Upgrade in place".

pub mod doc;
pub mod fallback;
pub mod fds;
pub mod probe;

pub use doc::{ConnDoc, Handover, ProcDoc};

/// The version of the document this program writes.
/// 2: connections may include streaming responses (`"kind":"stream"`).
pub const HANDOVER_VERSION: u32 = 2;
/// The oldest version it still reads (the previous release's format).
pub const OLDEST_READ: u32 = 1;
/// Names the memfd holding the document in the new program's environment.
pub const HANDOVER_FD_ENV: &str = "ROLLBRIDGE_HANDOVER_FD";

/// Whether this program can read a document of `version`.
pub fn accepts(version: u32) -> Result<(), String> {
    if version > HANDOVER_VERSION {
        return Err(format!(
            "handover format version {version} is newer than this program reads \
             (versions {OLDEST_READ} to {HANDOVER_VERSION}); use a newer binary"
        ));
    }
    if version < OLDEST_READ {
        return Err(format!(
            "handover format version {version} is older than this program reads \
             (versions {OLDEST_READ} to {HANDOVER_VERSION})"
        ));
    }
    Ok(())
}

/// Reads and unsets [`HANDOVER_FD_ENV`]: the document this program was
/// started with by an upgrade, if any. Call before any thread starts.
pub fn take() -> Option<Result<Handover, String>> {
    let fd = std::env::var(HANDOVER_FD_ENV).ok()?;
    fallback::take_failure();
    // SAFETY: called at daemon start, before any thread is started.
    unsafe { std::env::remove_var(HANDOVER_FD_ENV) };
    let fd: i32 = match fd.parse() {
        Ok(fd) if fd >= 0 => fd,
        _ => return Some(Err(format!("{HANDOVER_FD_ENV} is not a descriptor: {fd}"))),
    };
    // Read from a copy when the way back needs the memfd itself.
    let source = if fallback::document_fd() == Some(fd) {
        // SAFETY: fcntl on a descriptor number; a closed one only fails.
        unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) }
    } else {
        fd
    };
    let doc = fds::read_document(source).and_then(|text| Handover::decode(&text));
    if let Ok(doc) = &doc {
        fallback::hold(&doc.fds());
    }
    Some(doc)
}

static PID_FILE: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

/// The pid file `ensure-daemon` named for this daemon (passed on by an
/// upgrade, removed by the program that finally shuts down).
pub fn remember_pid_file(file: Option<String>) {
    let _ = PID_FILE.set(file);
}

pub fn pid_file() -> Option<String> {
    PID_FILE.get().cloned().flatten()
}
