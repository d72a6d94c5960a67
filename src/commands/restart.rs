//! `rollbridge restart`: restart non-proxied processes in
//! place; the proxied process (`--process web`, `--policy proxied`) is
//! replaced without downtime instead. The reply comes once every target
//! runs again.

use crate::cli::Args;
use crate::control::pretty::pretty;

pub const POLICIES: [&str; 4] = ["proxied", "companion", "singleton", "service"];

pub fn run(args: &Args) -> i32 {
    // Checked before the config is loaded.
    if let Some(p) = args.policy.as_deref() {
        if !POLICIES.contains(&p) {
            eprintln!("--policy must be one of: proxied, companion, singleton, service.");
            return 1;
        }
    }
    let mut request = String::from(r#"{"command":"restart""#);
    for (key, value) in [("policy", &args.policy), ("processId", &args.process)] {
        if let Some(v) = value {
            request.push_str(&format!(
                ",\"{key}\":{}",
                serde_json::Value::from(v.as_str())
            ));
        }
    }
    request.push('}');
    match super::waiting::send(args, &request) {
        Ok(line) => {
            println!("{}", pretty(&line));
            0
        }
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}
