//! What `/proc/<pid>/stat` says about a process: its process group and its
//! start time (clock ticks since boot). A recorded pid is only "the same
//! process" while the start time matches: a recycled pid has another one.

/// Process group and start time of a live process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub pgid: u32,
    pub start_time: u64,
}

/// `None` when the process does not exist (or /proc is unreadable).
pub fn stat(pid: u32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse(&text)
}

/// Fields after the command name (which may hold spaces and parentheses):
/// state, ppid, pgrp, ... starttime is the 20th of them.
fn parse(text: &str) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(ProcStat {
        pgid: fields.get(2)?.parse().ok()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

/// The process `pid` is alive and is the one recorded with `start_time`.
pub fn same_process(pid: u32, start_time: u64) -> bool {
    stat(pid).is_some_and(|s| s.start_time == start_time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_names_with_spaces_and_parentheses_parse() {
        let line = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(
            parse(line),
            Some(ProcStat {
                pgid: 42,
                start_time: 987654
            })
        );
        assert_eq!(parse("garbage"), None);
    }

    #[test]
    fn own_process_matches_its_start_time_only() {
        let me = stat(std::process::id()).unwrap();
        assert!(same_process(std::process::id(), me.start_time));
        assert!(!same_process(std::process::id(), me.start_time + 1));
    }
}
