//! Commands of the contract not built yet (`doctor`): they parse and
//! document fully, and say plainly that this build lacks them instead of
//! doing something half-way.

use crate::cli::Args;

pub fn run(_args: &Args) -> i32 {
    let name = std::env::args().nth(1).unwrap_or_default();
    eprintln!(
        "rollbridge {name} is not available in this build yet. `rollbridge status`, `rollbridge logs` and `rollbridge events` show what the daemon is doing."
    );
    1
}
