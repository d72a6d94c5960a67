//! Commands whose behaviour lands with the daemon (issues 4 and 5): they
//! parse and document fully, and say plainly that this build lacks them.

use crate::cli::Args;

pub fn run(_args: &Args) -> i32 {
    let name = std::env::args().nth(1).unwrap_or_default();
    eprintln!(
        "rollbridge {name}: this command is not available in this build yet; `rollbridge validate` and `rollbridge completion` are."
    );
    1
}
