//! `rollbridge completion <shell>`: print a completion script. Reads no config.

use crate::cli::Args;
use crate::cli::completion::script;

pub fn run(args: &Args) -> i32 {
    // The parser accepts only the shells there are scripts for.
    match args.shell.and_then(script) {
        Some(s) => {
            crate::out!("{s}");
            0
        }
        None => 1,
    }
}
