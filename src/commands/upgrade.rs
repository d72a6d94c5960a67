//! `rollbridge upgrade [--binary <path>] [--timeout-ms <n>]`: the daemon
//! replaces its own program. The answer comes from the new program, on the
//! same connection, once it has taken everything over; then the CLI checks
//! that it answers as the same pid.

use std::time::Duration;

use serde_json::{Map, Value};

use crate::cli::Args;
use crate::control::client;
use crate::control::pretty::pretty;
use crate::daemon::core::DEFAULT_UPGRADE_TIMEOUT_MS;

/// Beyond the probe's timeout: the proxy's settling and the new program's
/// start.
const HANDOVER_ALLOWANCE: Duration = Duration::from_secs(10);

pub fn run(args: &Args) -> i32 {
    match upgrade(args) {
        Ok(line) => {
            crate::outln!("{}", pretty(&line));
            0
        }
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

fn upgrade(args: &Args) -> Result<String, String> {
    // Checked by the parser.
    let timeout_ms = args.timeout_ms.unwrap_or(DEFAULT_UPGRADE_TIMEOUT_MS);
    // SAFETY: isatty only inspects the descriptor.
    let progress = args.progress || unsafe { libc::isatty(libc::STDERR_FILENO) == 1 };
    let mut req = Map::new();
    req.insert("command".into(), "upgrade".into());
    if let Some(b) = &args.binary {
        req.insert("binary".into(), absolute(b).into());
    }
    req.insert("timeoutMs".into(), timeout_ms.into());
    if progress {
        req.insert("progress".into(), true.into());
    }
    let loaded = super::status::load(args)?;
    let path = loaded.config.control.path.as_str();
    let explain = |e: client::ClientError| e.explain(&loaded.path);
    let wait = Duration::from_millis(timeout_ms) * 2 + HANDOVER_ALLOWANCE;
    let mut show = |text: &str| {
        if progress {
            eprintln!("{text}");
        }
    };
    let line = client::request_with_progress(
        path,
        &Value::Object(req).to_string(),
        Some(wait),
        &mut |_| Ok(()),
        &mut show,
    )
    .map_err(|e| match e {
        // The daemon's own answer: the old program serves on.
        client::ClientError::Failed(m) if m.starts_with("Upgrade failed") => m,
        e => format!(
            "{} (the daemon's program may have been replaced without answering: check `rollbridge status`)",
            explain(e)
        ),
    })?;
    // The new program answered; it must answer status as well.
    let reply: Value = serde_json::from_str(&line).unwrap_or_default();
    let info = client::request(
        path,
        r#"{"command":"daemon-info"}"#,
        Some(Duration::from_millis(timeout_ms)),
    )
    .map_err(|e| format!("The upgraded daemon does not answer: {}", explain(e)))?;
    let info: Value = serde_json::from_str(&info).unwrap_or_default();
    if info["pid"] != reply["pid"] {
        return Err(format!(
            "The daemon answering now (pid {}) is not the one that was upgraded (pid {}).",
            info["pid"], reply["pid"]
        ));
    }
    show("new program ready");
    Ok(line)
}

/// `--binary` made absolute against this command's directory.
fn absolute(path: &str) -> String {
    if path.is_empty() || path.starts_with('/') {
        return path.to_owned();
    }
    match std::env::current_dir() {
        Ok(cwd) => cwd.join(path).to_string_lossy().into_owned(),
        Err(_) => path.to_owned(),
    }
}

/// `__handover-probe <version>` (run by the daemon on a new binary).
pub fn probe(args: &Args) -> i32 {
    crate::daemon::handover::probe::answer(args.handover_version.as_deref())
}
