//! The way back when the new program cannot take over. Before `execve`
//! the old program keeps a descriptor of its own binary (`/proc/self/exe`,
//! without close-on-exec) and names it with the document's memfd in
//! [`FROM_ENV`]. The new program arms itself with them first thing. Until
//! it has imported the world and answers the `upgrade` request
//! ([`release`]), any failure — the document unreadable or refused, the
//! config not loading, an error or a panic during the import, an early
//! exit — ends in [`back`]: every descriptor the document names is put
//! back under its number (from a reserve copy taken before the import
//! could close it), and the old binary is exec'd again (`fexecve`, same
//! pid) with the same document and [`FAILED_ENV`] saying why. The old
//! program resumes as after an upgrade and answers the request with the
//! error, so the daemon never stops serving.

use std::os::fd::RawFd;
use std::sync::Mutex;

use super::HANDOVER_FD_ENV;

/// `<binary fd>:<document fd>`, set by the old program for the new one.
pub const FROM_ENV: &str = "ROLLBRIDGE_UPGRADE_FROM";
/// Why the new program gave up, set for the old program it went back to.
pub const FAILED_ENV: &str = "ROLLBRIDGE_UPGRADE_FAILED";
/// Debug builds only: the import panics (tests of the way back).
const PANIC_TEST_ENV: &str = "ROLLBRIDGE_TEST_PANIC_IN_IMPORT";

struct Armed {
    exe: RawFd,
    doc: RawFd,
    /// (number named in the document, close-on-exec copy).
    reserves: Vec<(RawFd, RawFd)>,
    panic_in_import: bool,
}

static ARMED: Mutex<Option<Armed>> = Mutex::new(None);

/// Parses [`FROM_ENV`]'s value.
fn parse_from(value: &str) -> Option<(RawFd, RawFd)> {
    let (exe, doc) = value.split_once(':')?;
    let exe: RawFd = exe.trim().parse().ok()?;
    let doc: RawFd = doc.trim().parse().ok()?;
    (exe >= 0 && doc >= 0).then_some((exe, doc))
}

/// Reads and unsets [`FROM_ENV`] (and the test switch): when this program
/// was started by an upgrade, a failure before [`release`] goes back to
/// the old binary, a panic included. Call before any thread starts.
pub fn arm() {
    let Some(from) = std::env::var(FROM_ENV).ok() else {
        return;
    };
    let panic_in_import = cfg!(debug_assertions) && std::env::var_os(PANIC_TEST_ENV).is_some();
    // SAFETY: called at program start, before any thread is started.
    unsafe {
        std::env::remove_var(FROM_ENV);
        std::env::remove_var(PANIC_TEST_ENV);
    }
    let Some((exe, doc)) = parse_from(&from) else {
        return;
    };
    if let Ok(mut armed) = ARMED.lock() {
        *armed = Some(Armed {
            exe,
            doc,
            reserves: Vec::new(),
            panic_in_import,
        });
    }
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        previous(info);
        back(&format!("the new program panicked: {info}"));
    }));
}

/// Keeps a close-on-exec copy of each descriptor the document names, so
/// the way back can restore them whatever the import closed meanwhile.
pub fn hold(fds: &[RawFd]) {
    let Ok(mut guard) = ARMED.lock() else {
        return;
    };
    let Some(armed) = guard.as_mut() else {
        return;
    };
    for &fd in fds {
        // SAFETY: fcntl on a descriptor number; a closed one only fails.
        let copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
        if copy >= 0 {
            armed.reserves.push((fd, copy));
        }
    }
}

/// The document's descriptor to read it from (the memfd the old program
/// named), when armed.
pub fn document_fd() -> Option<RawFd> {
    ARMED.lock().ok()?.as_ref().map(|a| a.doc)
}

/// Debug builds, under the test switch: fails the import here.
pub fn panic_for_tests() {
    let armed = ARMED
        .lock()
        .ok()
        .is_some_and(|a| a.as_ref().is_some_and(|a| a.panic_in_import));
    if armed {
        panic!("{PANIC_TEST_ENV} is set");
    }
}

/// The import succeeded: the way back is closed (reserves, the old
/// binary and the document are let go).
pub fn release() {
    let Some(armed) = ARMED.lock().ok().and_then(|mut a| a.take()) else {
        return;
    };
    // SAFETY: closing descriptors this module alone holds.
    unsafe {
        for (_, copy) in &armed.reserves {
            libc::close(*copy);
        }
        libc::close(armed.exe);
        libc::close(armed.doc);
    }
}

/// Goes back to the old program with `reason`. Returns only when this
/// program was not started by an upgrade (or has released), or when the
/// old binary cannot be run.
pub fn back(reason: &str) {
    // try_lock: a panic while the lock is held must not hang here.
    let Some(armed) = ARMED.try_lock().ok().and_then(|mut a| a.take()) else {
        return;
    };
    eprintln!("rollbridge: the new program cannot take over, going back: {reason}");
    // SAFETY: dup2 of our copies onto the numbers the document names (the
    // result is inheritable); fcntl on the document and binary.
    unsafe {
        for (fd, copy) in &armed.reserves {
            libc::dup2(*copy, *fd);
        }
        for fd in [armed.doc, armed.exe] {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
            }
        }
    }
    let reason: String = reason
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(2000)
        .collect();
    let mut env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k != HANDOVER_FD_ENV && k != FROM_ENV && k != FAILED_ENV)
        .collect();
    env.push((HANDOVER_FD_ENV.into(), armed.doc.to_string()));
    env.push((FAILED_ENV.into(), reason));
    let argv: Vec<String> = std::env::args().collect();
    let e = fexec(armed.exe, &argv, &env);
    eprintln!("rollbridge: cannot run the previous program again: {e}");
}

static FAILURE: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

/// Reads and unsets [`FAILED_ENV`]: set when a new program went back to
/// this one. Call before any thread starts.
pub fn take_failure() {
    let reason = std::env::var(FAILED_ENV).ok();
    if reason.is_some() {
        // SAFETY: called at daemon start, before any thread is started.
        unsafe { std::env::remove_var(FAILED_ENV) };
    }
    let _ = FAILURE.set(reason);
}

/// Why the new program went back to this one, if it did.
pub fn failure() -> Option<String> {
    FAILURE.get().cloned().flatten()
}

/// Opens this program's binary without close-on-exec (for the new
/// program's way back).
pub fn own_binary() -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: open of a constant path; the descriptor is ours.
    let fd = unsafe { libc::open(c"/proc/self/exe".as_ptr(), libc::O_RDONLY) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fresh descriptor.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// [`FROM_ENV`]'s value.
pub fn from_value(exe: RawFd, doc: RawFd) -> String {
    format!("{exe}:{doc}")
}

fn fexec(fd: RawFd, argv: &[String], env: &[(String, String)]) -> std::io::Error {
    super::fds::with_c_arrays(argv, env, |args, vars| {
        // SAFETY: NUL-terminated arrays of valid C strings that outlive the call.
        unsafe { libc::fexecve(fd, args, vars) };
        std::io::Error::last_os_error()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_env_names_the_binary_and_the_document() {
        assert_eq!(parse_from(&from_value(7, 9)), Some((7, 9)));
        assert_eq!(parse_from("7"), None);
        assert_eq!(parse_from("x:9"), None);
        assert_eq!(parse_from("-1:9"), None);
    }

    #[test]
    fn going_back_without_being_armed_returns() {
        back("nothing to go back to");
        release();
        panic_for_tests();
    }
}
