//! `rollbridge status`: sends `status`, prints the status object. Also the shared helpers of the daemon-talking commands.

use std::time::Duration;

use crate::cli::Args;
use crate::config::Loaded;
use crate::control::client::{self, ClientError};
use crate::control::pretty::pretty;

pub fn run(args: &Args) -> i32 {
    match send(
        args,
        r#"{"command":"status"}"#,
        Some(client::DEFAULT_TIMEOUT),
    ) {
        Ok(line) => {
            // SAFETY: isatty only inspects the descriptor.
            let terminal = unsafe { libc::isatty(libc::STDOUT_FILENO) == 1 };
            if args.json || !terminal {
                crate::outln!("{}", pretty(&line));
                return 0;
            }
            let Ok(status) = serde_json::from_str::<serde_json::Value>(&line) else {
                crate::outln!("{}", pretty(&line));
                return 0;
            };
            // Older daemons do not know `daemon-info`: the view does without.
            let info = send(
                args,
                r#"{"command":"daemon-info"}"#,
                Some(client::DEFAULT_TIMEOUT),
            )
            .ok()
            .and_then(|l| serde_json::from_str::<serde_json::Value>(&l).ok());
            crate::outln!("{}", super::status_view::render(&status, info.as_ref()));
            0
        }
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

/// Loads the config (only to learn `control.path`).
pub(crate) fn load(args: &Args) -> Result<Loaded, String> {
    crate::config::load(args.config.as_deref())
}

/// Loads the config and sends one request; the success line as received.
pub(crate) fn send(
    args: &Args,
    request: &str,
    timeout: Option<Duration>,
) -> Result<String, String> {
    let loaded = load(args)?;
    client::request(&loaded.config.control.path, request, timeout)
        .map_err(|e: ClientError| e.explain(&loaded.path))
}
