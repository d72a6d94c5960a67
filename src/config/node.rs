//! Evaluating `.js`/`.mjs`/`.cjs` configs with the host's `node`.
//!
//! No JS engine is in the crate set, so a small embedded helper script
//! (`node_loader.mjs`) imports the file, awaits a function export and prints
//! the value as JSON. Each load runs from scratch: no module cache survives
//! between loads and no side effect leaks into the daemon.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::raw::Raw;

const LOADER: &str = include_str!("node_loader.mjs");
const MARK: &str = "\n@@ROLLBRIDGE-CONFIG@@";
/// Output beyond this is dropped: a config that floods stdout cannot make
/// the CLI grow without bound.
const MAX_OUTPUT: u64 = 16 << 20;

/// Default bound on one evaluation; `ROLLBRIDGE_CONFIG_TIMEOUT_MS` overrides.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The `node` executable: `ROLLBRIDGE_NODE` if set, else `node` on PATH.
fn node_program() -> String {
    std::env::var("ROLLBRIDGE_NODE")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "node".to_owned())
}

fn timeout() -> Duration {
    std::env::var("ROLLBRIDGE_CONFIG_TIMEOUT_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .map(Duration::from_millis)
        .unwrap_or(DEFAULT_TIMEOUT)
}

/// Evaluates the config module at `path` and returns its exported value.
pub fn evaluate(path: &str) -> Result<Raw, String> {
    let first = run(path, true)?;
    let out = match first {
        // Node older than 20.10 does not know the flag; retry without it.
        Outcome::NoResult { ref stderr } if stderr.contains("bad option") => run(path, false)?,
        other => other,
    };
    match out {
        Outcome::Result(raw) => Ok(raw),
        Outcome::NoResult { stderr } => Err(format!(
            "Loading {path} with node failed: {}",
            if stderr.trim().is_empty() {
                "node exited without a result".to_owned()
            } else {
                stderr.trim().to_owned()
            }
        )),
    }
}

enum Outcome {
    Result(Raw),
    NoResult { stderr: String },
}

fn run(path: &str, detect_module: bool) -> Result<Outcome, String> {
    let program = node_program();
    let mut cmd = Command::new(&program);
    if detect_module {
        cmd.arg("--experimental-detect-module");
    }
    cmd.args([
        "--no-warnings",
        "--input-type=module",
        "-e",
        LOADER,
        "--",
        path,
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            format!(
                "Cannot load {path}: `{program}` was not found on PATH. Install Node.js to use JavaScript configs, or write the config as rollbridge.json (plain JSON needs no Node.js)."
            )
        } else {
            format!("Cannot load {path}: starting `{program}` failed: {e}")
        }
    })?;
    let stdout = child.stdout.take().map(read_in_background);
    let stderr = child.stderr.take().map(read_in_background);

    // Completion is judged by the output pipes closing, not by waiting on
    // the child: inside the daemon the supervisor reaps every child with
    // `waitpid(-1)`, so `try_wait` here may find it already gone (ECHILD).
    let limit = timeout();
    let started = Instant::now();
    let done =
        |h: &Option<std::thread::JoinHandle<String>>| h.as_ref().is_none_or(|h| h.is_finished());
    loop {
        let exited = matches!(child.try_wait(), Ok(Some(_)) | Err(_));
        if exited || (done(&stdout) && done(&stderr)) {
            break;
        }
        if started.elapsed() >= limit {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "Loading {path} with node timed out after {} ms (set ROLLBRIDGE_CONFIG_TIMEOUT_MS to allow longer); does the config wait on something that never finishes?",
                limit.as_millis()
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let stdout = stdout.and_then(|h| h.join().ok()).unwrap_or_default();
    let stderr = stderr.and_then(|h| h.join().ok()).unwrap_or_default();

    let Some(at) = stdout.rfind(MARK) else {
        return Ok(Outcome::NoResult { stderr });
    };
    let json = stdout[at + MARK.len()..].trim();
    let envelope = Raw::from_json(json)
        .map_err(|e| format!("Loading {path} with node returned unreadable output: {e}"))?;
    if let Some(Raw::String(err)) = envelope.get("error") {
        return Err(format!("Failed to load {path}: {err}"));
    }
    match envelope.get("ok") {
        Some(value) => Ok(Outcome::Result(value.clone().decode_markers())),
        None => Err(format!("Loading {path} with node returned no value")),
    }
}

fn read_in_background<R: Read + Send + 'static>(r: R) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.take(MAX_OUTPUT).read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}
