//! `rollbridge restart`: restart non-proxied processes in
//! place; the proxied process (`--process web`, `--policy proxied`) is
//! replaced without downtime instead. The reply comes once every target
//! runs again.

use crate::cli::Args;
use crate::control::pretty::pretty;

pub fn run(args: &Args) -> i32 {
    // `--policy` was checked by the parser, before any config is read.
    let mut request = String::from(r#"{"command":"restart""#);
    for (key, value) in [
        ("policy", args.policy),
        ("processId", args.process.as_deref()),
    ] {
        if let Some(v) = value {
            request.push_str(&format!(",\"{key}\":{}", serde_json::Value::from(v)));
        }
    }
    request.push('}');
    match super::waiting::send(args, &request) {
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
