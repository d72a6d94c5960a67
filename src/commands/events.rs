//! `rollbridge events`: the daemon's recent events.

use std::io::Write;

use serde_json::Value;

use super::follow::{self, Printer, Seen};
use crate::cli::Args;
use crate::config::raw::Raw;
use crate::control::pretty::pretty;

pub fn run(args: &Args) -> i32 {
    let limit = args.limit;
    if args.follow {
        let mut request = serde_json::json!({"command": "events", "follow": true});
        if let Some(n) = limit {
            request["limit"] = n.into();
        }
        let mut printer = Follow {
            json: args.json,
            seen: Seen::default(),
        };
        return follow::run(args, &request.to_string(), &mut printer);
    }
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
        crate::outln!("{}", pretty(&Raw::Array(events).to_json()));
        return 0;
    }
    if events.is_empty() {
        crate::outln!("No events recorded yet.");
        return 0;
    }
    for event in &events {
        crate::outln!("{}", human(event));
    }
    0
}

/// `<at>  <message>` plus ` <data>` when it has keys.
fn human(event: &Raw) -> String {
    let at = event.get("at").and_then(Raw::as_str).unwrap_or("");
    let message = event.get("message").and_then(Raw::as_str).unwrap_or("");
    match event.get("data") {
        Some(data @ Raw::Object(members)) if !members.is_empty() => {
            format!("{at}  {message} {}", data.to_json())
        }
        _ => format!("{at}  {message}"),
    }
}

/// `events --follow`: the events there are, then each new one; with
/// `--json` one compact object per line throughout.
struct Follow {
    json: bool,
    seen: Seen,
}

impl Follow {
    fn print(&self, event: &Value, out: &mut dyn Write) -> std::io::Result<()> {
        if self.json {
            return writeln!(out, "{event}");
        }
        match Raw::from_json(&event.to_string()) {
            Ok(raw) => writeln!(out, "{}", human(&raw)),
            Err(_) => Ok(()),
        }
    }
}

impl Printer for Follow {
    fn first(&mut self, reply: &Value, out: &mut dyn Write) -> std::io::Result<()> {
        let list = reply.get("events").and_then(Value::as_array);
        for event in list.into_iter().flatten() {
            self.print(event, out)?;
            self.seen.remember(event.clone());
        }
        Ok(())
    }

    fn item(&mut self, event: &Value, out: &mut dyn Write) -> std::io::Result<()> {
        if self.seen.repeat(event) {
            return Ok(());
        }
        self.print(event, out)
    }
}
