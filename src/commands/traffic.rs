//! `rollbridge maintenance on|off`, `pause`, `resume`: traffic control.
//! Each sends one request and prints the daemon's answer pretty-printed.

use crate::cli::Args;
use crate::control::pretty::pretty;
use serde_json::{Map, Value};

pub fn maintenance(args: &Args) -> i32 {
    // `on|off` and the options that go with `on` were checked by the parser.
    let enabled = args.enable == Some(true);
    let mut req = request("maintenance");
    req.insert("enabled".into(), enabled.into());
    if let Some(m) = &args.message {
        req.insert("message".into(), m.as_str().into());
    }
    if let Some(n) = args.retry_after {
        req.insert("retryAfter".into(), n.into());
    }
    send(args, req)
}

pub fn pause(args: &Args) -> i32 {
    let mut req = request("pause");
    if let Some(n) = args.timeout_ms {
        req.insert("timeoutMs".into(), n.into());
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

fn send(args: &Args, req: Map<String, Value>) -> i32 {
    let line = Value::Object(req).to_string();
    match super::status::send(args, &line, Some(crate::control::client::DEFAULT_TIMEOUT)) {
        Ok(answer) => {
            crate::outln!("{}", pretty(&answer));
            0
        }
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}
