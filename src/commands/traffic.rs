//! `rollbridge maintenance on|off`, `pause`, `resume`: traffic control.
//! Each sends one request and prints the daemon's answer pretty-printed.

use crate::cli::Args;
use crate::control::pretty::pretty;
use serde_json::{Map, Value};

pub fn maintenance(args: &Args) -> i32 {
    let enabled = match args.positional.as_deref() {
        Some("on") => true,
        Some("off") => false,
        other => {
            eprintln!(
                "maintenance takes on or off, got \"{}\".",
                other.unwrap_or_default()
            );
            return 1;
        }
    };
    let mut req = request("maintenance");
    req.insert("enabled".into(), enabled.into());
    if !enabled && (args.message.is_some() || args.retry_after.is_some()) {
        eprintln!("--message and --retry-after go with maintenance on.");
        return 1;
    }
    if let Some(m) = &args.message {
        req.insert("message".into(), m.as_str().into());
    }
    if let Some(v) = &args.retry_after {
        match whole(v, "--retry-after", 0) {
            Ok(n) => req.insert("retryAfter".into(), n.into()),
            Err(code) => return code,
        };
    }
    send(args, req)
}

pub fn pause(args: &Args) -> i32 {
    let mut req = request("pause");
    if let Some(v) = &args.timeout_ms {
        match whole(v, "--timeout-ms", 1) {
            Ok(n) => req.insert("timeoutMs".into(), n.into()),
            Err(code) => return code,
        };
    }
    send(args, req)
}

pub fn resume(args: &Args) -> i32 {
    send(args, request("resume"))
}

fn request(command: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("command".into(), command.into());
    m
}

/// A whole number of at least `min`, else the message and exit code 1.
fn whole(v: &str, flag: &str, min: u64) -> Result<u64, i32> {
    match v.parse::<u64>() {
        Ok(n) if n >= min => Ok(n),
        _ => {
            eprintln!("{flag} must be a whole number of at least {min}, got \"{v}\".");
            Err(1)
        }
    }
}

fn send(args: &Args, req: Map<String, Value>) -> i32 {
    let line = Value::Object(req).to_string();
    match super::status::send(args, &line, Some(crate::control::client::DEFAULT_TIMEOUT)) {
        Ok(answer) => {
            println!("{}", pretty(&answer));
            0
        }
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}
