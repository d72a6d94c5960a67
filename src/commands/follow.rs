//! `--follow` for `logs` and `events`: one streaming request. The daemon
//! answers as usual, then pushes one JSON line per new item until the
//! client goes. Ends with 0 on SIGINT/SIGTERM or a closed stdout (SIGPIPE),
//! with 1 and a message when the daemon goes away.

use std::io::{self, BufRead, BufReader, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::cli::Args;
use crate::control::client;

/// How often a blocked read looks at the interrupt flag.
const TICK: Duration = Duration::from_millis(100);

/// What a follower prints.
pub trait Printer {
    /// The daemon's first reply (what is there already).
    fn first(&mut self, reply: &Value, out: &mut dyn Write) -> io::Result<()>;
    /// One pushed item.
    fn item(&mut self, item: &Value, out: &mut dyn Write) -> io::Result<()>;
}

pub fn run(args: &Args, request: &str, printer: &mut dyn Printer) -> i32 {
    let loaded = match super::status::load(args) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let path = loaded.config.control.path.as_str();
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let _ = signal_hook::flag::register(sig, stop.clone());
    }
    let mut stream = match client::connect(path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{}", e.explain(&loaded.path));
            return 1;
        }
    };
    if let Err(e) = stream.write_all(format!("{request}\n").as_bytes()) {
        eprintln!("write {} {path}", client::errno_text(&e));
        return 1;
    }
    let _ = stream.set_read_timeout(Some(TICK));
    let mut reader = BufReader::new(stream);
    let stdout = io::stdout();
    let mut first = true;
    let mut buf = Vec::new();
    loop {
        if stop.load(Ordering::Relaxed) {
            return 0;
        }
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) => {
                eprintln!(
                    "The Rollbridge daemon on {path} went away: it closed the connection (stopped or shut down)."
                );
                return 1;
            }
            Ok(_) if buf.ends_with(b"\n") => {}
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(e) => {
                eprintln!("read {} {path}", client::errno_text(&e));
                return 1;
            }
        }
        let value: Value = match serde_json::from_slice(&buf) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("Invalid JSON from the Rollbridge daemon: {e}");
                return 1;
            }
        };
        buf.clear();
        let mut out = stdout.lock();
        let written = if first {
            first = false;
            if value.get("status").and_then(Value::as_str) == Some("error") {
                let msg = value
                    .get("error")
                    .and_then(Value::as_str)
                    .filter(|m| !m.is_empty())
                    .unwrap_or("Unknown Rollbridge error");
                eprintln!("{msg}");
                return 1;
            }
            printer.first(&value, &mut out)
        } else if let Some(n) = value.get("dropped").and_then(Value::as_u64) {
            eprintln!("… {n} lines dropped (reader too slow)");
            Ok(())
        } else {
            printer.item(&value, &mut out)
        };
        // A closed stdout (`| head`) ends the follow quietly.
        if written.and_then(|_| out.flush()).is_err() {
            return 0;
        }
    }
}

/// Items of the first reply, to skip when they are pushed again (an item
/// recorded while the follow started can arrive both ways).
#[derive(Default)]
pub struct Seen(Vec<Value>);

impl Seen {
    pub fn remember(&mut self, v: Value) {
        self.0.push(v);
    }

    /// True (once) when `v` was in the first reply.
    pub fn repeat(&mut self, v: &Value) -> bool {
        match self.0.iter().position(|s| s == v) {
            Some(i) => {
                self.0.swap_remove(i);
                true
            }
            None => false,
        }
    }
}
