//! Before the running daemon gives itself up, the new binary is tried:
//! `<binary> __handover-probe <version>` must answer within the upgrade's
//! timeout with the version it is and whether it reads our handover
//! format. Anything else (missing, not executable, crashing, silent,
//! refusing the format) fails the upgrade with the old program untouched.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::{HANDOVER_VERSION, OLDEST_READ, accepts};

/// Marks the line where the probe's shell reports its exit status.
const EXIT_MARK: &str = "rollbridge-probe-exit:";

/// The hidden command the probe runs.
pub const PROBE_COMMAND: &str = "__handover-probe";

/// Tries `binary`; `Ok(version)` when it reads our format.
pub fn probe(binary: &str, timeout: Duration) -> Result<String, String> {
    let meta = std::fs::metadata(binary).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("the new binary {binary} does not exist"),
        _ => format!("the new binary {binary} cannot be read: {e}"),
    })?;
    if !meta.is_file() {
        return Err(format!("the new binary {binary} is not a file"));
    }
    let path = std::ffi::CString::new(binary).map_err(|_| "binary path has a NUL".to_owned())?;
    // SAFETY: access() with a valid C string.
    let executable = unsafe { libc::access(path.as_ptr(), libc::X_OK) } == 0;
    if !executable || meta.permissions().mode() & 0o111 == 0 {
        return Err(format!("the new binary {binary} is not executable"));
    }
    // Through a shell that reports the probe's exit status: the
    // supervisor's reaper may collect the shell's own status first.
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!(
            "\"$0\" {PROBE_COMMAND} \"$1\"; echo \"{EXIT_MARK}$?\" >&2"
        ))
        .arg(binary)
        .arg(HANDOVER_VERSION.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("the new binary {binary} cannot be started: {e}"))?;
    let pid = child.id() as i32;
    let (tx, rx) = crossbeam_channel::bounded(1);
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    std::thread::spawn(move || {
        let (mut o, mut e) = (String::new(), String::new());
        if let Some(s) = out.as_mut() {
            let _ = s.take(64 * 1024).read_to_string(&mut o);
        }
        if let Some(s) = err.as_mut() {
            let _ = s.take(64 * 1024).read_to_string(&mut e);
        }
        let _ = tx.send((o, e));
    });
    let Ok((stdout, stderr)) = rx.recv_timeout(timeout) else {
        // SAFETY: kill of the probe we started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let _ = child.wait();
        return Err(format!(
            "the new binary {binary} did not answer the handover probe within {}ms",
            timeout.as_millis()
        ));
    };
    let _ = child.wait();
    let code: Option<i32> = stderr
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix(EXIT_MARK))
        .and_then(|c| c.parse().ok());
    let stderr: String = stderr
        .lines()
        .filter(|l| !l.trim().starts_with(EXIT_MARK))
        .collect::<Vec<_>>()
        .join("\n");
    let answer: Option<Value> = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l.trim()).ok());
    match (answer, code) {
        (Some(v), Some(0)) => {
            let version = v["version"].as_str().unwrap_or("unknown").to_owned();
            Ok(version)
        }
        (_, code) => {
            let mut cause = match code {
                Some(2) if !stderr.trim().is_empty() => {
                    return Err(format!(
                        "the new binary {binary} refuses the handover format: {}",
                        last_line(&stderr)
                    ));
                }
                Some(c) if c > 128 => format!("was killed by signal {}", c - 128),
                Some(c) => format!("exited with code {c}"),
                None => "exited".to_owned(),
            };
            cause = format!(
                "the new binary {binary} {cause} without answering the handover probe \
                 (is it a Rollbridge build with `upgrade` support?)"
            );
            if !stderr.trim().is_empty() {
                cause.push_str(&format!(": {}", last_line(&stderr)));
            }
            Err(cause)
        }
    }
}

fn last_line(text: &str) -> &str {
    text.trim().lines().last().unwrap_or("").trim()
}

/// `__handover-probe <version>`: prints what this binary is and reads,
/// exits 0 when it reads `version`, 2 (with the reason) when not.
pub fn answer(version: Option<&str>) -> i32 {
    let wanted = version.and_then(|v| v.parse::<u32>().ok());
    let Some(wanted) = wanted else {
        eprintln!("{PROBE_COMMAND} needs the handover format version");
        return 2;
    };
    if let Err(e) = accepts(wanted) {
        eprintln!("{e}");
        return 2;
    }
    println!(
        "{}",
        serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "handoverVersions": [OLDEST_READ, HANDOVER_VERSION],
        })
    );
    0
}
