//! `rollbridge shutdown`: the reply comes once every managed
//! process is stopped and the socket is gone, so there is no client timeout.

use crate::cli::Args;
use crate::control::pretty::pretty;

pub fn run(args: &Args) -> i32 {
    match super::status::send(args, r#"{"command":"shutdown"}"#, None) {
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
