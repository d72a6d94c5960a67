//! Printing a command's output. A reader that went away (`rollbridge status
//! | head`) is not an error of the command: the process ends quietly with
//! exit 0, as it does for `--follow`, instead of panicking the way
//! `println!` does on a closed pipe.

use std::fmt;
use std::io::Write;

/// Writes `args` (and a newline with `newline`) to stdout.
pub fn write(args: fmt::Arguments<'_>, newline: bool) {
    let mut out = std::io::stdout().lock();
    let result = out
        .write_fmt(args)
        .and_then(|()| {
            if newline {
                out.write_all(b"\n")
            } else {
                Ok(())
            }
        })
        .and_then(|()| out.flush());
    if let Err(e) = result {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        // Any other failure (a full disk behind a redirect) is reported
        // once; the command's exit code still says how the work went.
        let _ = writeln!(std::io::stderr(), "cannot write to stdout: {e}");
    }
}

/// `println!` for command output: see the module doc.
#[macro_export]
macro_rules! outln {
    () => {
        $crate::out::write(format_args!(""), true)
    };
    ($($arg:tt)*) => {
        $crate::out::write(format_args!($($arg)*), true)
    };
}

/// `print!` for command output: see the module doc.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::out::write(format_args!($($arg)*), false)
    };
}
