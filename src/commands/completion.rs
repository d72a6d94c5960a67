//! `rollbridge completion <shell>`: print a completion script. Reads no config.

use crate::cli::Args;
use crate::cli::completion::{SHELLS, script};

pub fn run(args: &Args) -> i32 {
    let shell = args.positional.as_deref().unwrap_or_default();
    match script(shell) {
        Some(s) => {
            print!("{s}");
            0
        }
        None => {
            eprintln!(
                "Unsupported shell \"{shell}\". Supported shells: {}.",
                SHELLS.join(", ")
            );
            1
        }
    }
}
