//! `rollbridge demo`: a real deploy on built-in defaults (see `demo::run`).

use crate::cli::Args;

pub fn run(_args: &Args) -> i32 {
    match crate::demo::run::run() {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}
