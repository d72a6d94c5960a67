//! `rollbridge man`: print the manual page (roff). Reads no config.

use crate::cli::Args;

pub fn run(_args: &Args) -> i32 {
    crate::out!("{}", crate::cli::man::page());
    0
}
