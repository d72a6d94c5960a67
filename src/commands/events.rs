//! `rollbridge events` (cli.md §2.10): the daemon's recent events.

use crate::cli::Args;
use crate::config::raw::Raw;
use crate::control::pretty::pretty;

pub fn run(args: &Args) -> i32 {
    let limit = match args.limit.as_deref() {
        None => None,
        Some(text) => match text.trim().parse::<u64>() {
            Ok(n) if n >= 1 => Some(n),
            _ => {
                eprintln!("--limit must be a positive integer.");
                return 1;
            }
        },
    };
    let request = match limit {
        Some(n) => format!(r#"{{"command":"events","limit":{n}}}"#),
        None => r#"{"command":"events"}"#.to_owned(),
    };
    let line = match super::status::send(
        args,
        &request,
        Some(crate::control::client::DEFAULT_TIMEOUT),
    ) {
        Ok(line) => line,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let events = match Raw::from_json(&line) {
        Ok(reply) => match reply.get("events") {
            Some(Raw::Array(items)) => items.clone(),
            _ => Vec::new(),
        },
        Err(e) => {
            eprintln!("The daemon sent an unreadable reply: {e}");
            return 1;
        }
    };
    if args.json {
        println!("{}", pretty(&Raw::Array(events).to_json()));
        return 0;
    }
    if events.is_empty() {
        println!("No events recorded yet.");
        return 0;
    }
    for event in &events {
        let at = event.get("at").and_then(Raw::as_str).unwrap_or("");
        let message = event.get("message").and_then(Raw::as_str).unwrap_or("");
        match event.get("data") {
            Some(data @ Raw::Object(members)) if !members.is_empty() => {
                println!("{at}  {message} {}", data.to_json())
            }
            _ => println!("{at}  {message}"),
        }
    }
    0
}
