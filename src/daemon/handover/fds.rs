//! The descriptor side of a handover: the document in a memfd, duplicates
//! without close-on-exec for everything the next program inherits, and the
//! `execve` itself.

use std::ffi::CString;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Largest document read back (a world of many connections is still far
/// below this).
const MAX_DOCUMENT: u64 = 256 * 1024 * 1024;

pub use crate::inherit::{inheritable, set_cloexec};

/// Writes `text` into an anonymous memory file that survives `execve`.
pub fn write_document(text: &str) -> std::io::Result<OwnedFd> {
    let name = c"rollbridge-handover";
    // SAFETY: memfd_create with a valid C string; the descriptor is ours.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fresh descriptor from memfd_create.
    let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    file.write_all(text.as_bytes())?;
    file.seek(SeekFrom::Start(0))?;
    Ok(OwnedFd::from(file))
}

/// Reads the document from the inherited memfd `fd` and closes it.
pub fn read_document(fd: RawFd) -> Result<String, String> {
    // SAFETY: fstat on a descriptor number with a local struct.
    let open = unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        libc::fstat(fd, &mut st) == 0
    };
    if !open {
        return Err(format!("the handover descriptor {fd} is not open"));
    }
    // SAFETY: the descriptor was passed to this program to own.
    let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    // From the start: a program that went back reads it a second time.
    file.seek(SeekFrom::Start(0))
        .map_err(|e| format!("cannot read the handover document: {e}"))?;
    let mut text = String::new();
    file.take(MAX_DOCUMENT)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read the handover document: {e}"))?;
    Ok(text)
}

/// Replaces this program with `binary` (same pid): returns only on failure.
pub fn exec(binary: &str, argv: &[String], env: &[(String, String)]) -> std::io::Error {
    let Ok(path) = CString::new(binary) else {
        return std::io::Error::new(std::io::ErrorKind::InvalidInput, "binary path has a NUL");
    };
    with_c_arrays(argv, env, |args, vars| {
        // SAFETY: NUL-terminated arrays of valid C strings that outlive the call.
        unsafe { libc::execve(path.as_ptr(), args, vars) };
        std::io::Error::last_os_error()
    })
}

/// Calls `f` with `argv` and `env` (as `KEY=value`) as the NUL-terminated
/// arrays of C strings an `exec` call takes; they live until `f` returns
/// (read `errno` inside `f`: freeing them may change it). Arguments
/// holding a NUL byte are left out.
pub(super) fn with_c_arrays<R>(
    argv: &[String],
    env: &[(String, String)],
    f: impl FnOnce(*const *const libc::c_char, *const *const libc::c_char) -> R,
) -> R {
    let args: Vec<CString> = argv
        .iter()
        .filter_map(|a| CString::new(a.as_str()).ok())
        .collect();
    let vars: Vec<CString> = env
        .iter()
        .filter_map(|(k, v)| CString::new(format!("{k}={v}")).ok())
        .collect();
    let nul_terminated = |strings: &[CString]| {
        let mut ptrs: Vec<*const libc::c_char> = strings.iter().map(|s| s.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        ptrs
    };
    let (arg_ptrs, env_ptrs) = (nul_terminated(&args), nul_terminated(&vars));
    f(arg_ptrs.as_ptr(), env_ptrs.as_ptr())
}

/// The raw number of an owned descriptor (for the document).
pub fn num(fd: &OwnedFd) -> i32 {
    fd.as_raw_fd()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_survives_a_memfd_round_trip() {
        let fd = write_document(r#"{"handoverVersion":1}"#).unwrap();
        let raw = inheritable(fd.as_raw_fd()).unwrap();
        // SAFETY: plain fcntl query.
        let flags = unsafe { libc::fcntl(raw.as_raw_fd(), libc::F_GETFD) };
        assert_eq!(flags & libc::FD_CLOEXEC, 0, "the duplicate is inheritable");
        let n = std::os::fd::IntoRawFd::into_raw_fd(raw);
        assert_eq!(read_document(n).unwrap(), r#"{"handoverVersion":1}"#);
        assert!(read_document(n).is_err(), "read_document closes it");
    }
}
