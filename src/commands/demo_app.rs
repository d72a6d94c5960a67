//! `rollbridge demo-app --port <port>`: serve the built-in example app.

use crate::cli::Args;

pub fn run(args: &Args) -> i32 {
    let host = args.host.as_deref().unwrap_or("127.0.0.1");
    // `--port` is required and checked by the parser.
    let Some(port) = args.port else {
        return 1;
    };
    match crate::demo::app::serve(host, port) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("demo app cannot listen on {host}:{port}: {e}");
            1
        }
    }
}
