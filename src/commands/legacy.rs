//! The `legacyTakeover` step of `predeploy-cleanup`:
//! stop the processes of the supervisor Rollbridge replaces, matched on the
//! `ps` command line, before the first deploy binds their ports.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::config::model::LegacyTakeover;

struct Row {
    pid: i32,
    ppid: i32,
    args: String,
}

/// Stops every matched process and its descendants; the number signalled.
/// Any survivor (or a signal error other than "already gone") is an error.
pub fn stop(takeover: &LegacyTakeover) -> Result<usize, String> {
    for name in &takeover.screens {
        // Result ignored: the screen may not exist (or screen itself).
        let _ = Command::new("screen")
            .args(["-S", name, "-X", "quit"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    let rows = processes()?;
    let seeds = matching(takeover, &rows);
    let targets = with_descendants(&seeds, &rows);
    let mut signalled = Vec::new();
    for pid in targets {
        // SAFETY: plain syscall on a pid taken from the process table.
        if unsafe { libc::kill(pid, libc::SIGTERM) } == 0 {
            signalled.push(pid);
            continue;
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ESRCH) {
            return Err(format!("Cannot stop legacy process {pid}: {e}"));
        }
    }
    if !signalled.is_empty() {
        std::thread::sleep(Duration::from_millis(takeover.force_stop_timeout_ms));
        for pid in &signalled {
            // SAFETY: as above; errors (already gone) do not matter here.
            unsafe { libc::kill(*pid, libc::SIGKILL) };
        }
    }
    let rows = processes()?;
    let left = matching(takeover, &rows);
    if !left.is_empty() {
        let list: Vec<String> = rows
            .iter()
            .filter(|r| left.contains(&r.pid))
            .map(|r| format!("{} {}", r.pid, r.args))
            .collect();
        return Err(format!(
            "Refusing to deploy: legacy processes are still running:\n{}",
            list.join("\n")
        ));
    }
    Ok(signalled.len())
}

/// `ps -eo pid=,ppid=,args=`.
fn processes() -> Result<Vec<Row>, String> {
    let out = Command::new("ps")
        .args(["-eo", "pid=,ppid=,args="])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("Cannot list processes with ps: {e}"))?;
    Ok(parse_ps(&String::from_utf8_lossy(&out.stdout)))
}

fn parse_ps(text: &str) -> Vec<Row> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.trim_start().splitn(2, char::is_whitespace);
            let pid = parts.next()?.parse().ok()?;
            let rest = parts.next()?.trim_start();
            let mut parts = rest.splitn(2, char::is_whitespace);
            let ppid = parts.next()?.parse().ok()?;
            let args = parts.next().unwrap_or("").trim().to_owned();
            Some(Row { pid, ppid, args })
        })
        .collect()
}

/// Seed pids: a configured screen's session or every `includes` string of
/// some matcher, never this process nor its ancestors.
fn matching(takeover: &LegacyTakeover, rows: &[Row]) -> BTreeSet<i32> {
    let own = ancestors(std::process::id() as i32, rows);
    rows.iter()
        .filter(|r| !own.contains(&r.pid))
        .filter(|r| {
            takeover
                .screens
                .iter()
                .any(|s| r.args.contains(&format!("SCREEN -dmS {s}")))
                || takeover
                    .processes
                    .iter()
                    .any(|m| m.includes.iter().all(|i| r.args.contains(i.as_str())))
        })
        .map(|r| r.pid)
        .collect()
}

/// `pid` and every ancestor found in the table.
fn ancestors(pid: i32, rows: &[Row]) -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    let mut cur = pid;
    while cur > 0 && out.insert(cur) {
        match rows.iter().find(|r| r.pid == cur) {
            Some(r) => cur = r.ppid,
            None => break,
        }
    }
    out
}

fn with_descendants(seeds: &BTreeSet<i32>, rows: &[Row]) -> BTreeSet<i32> {
    let mut all = seeds.clone();
    loop {
        let before = all.len();
        for r in rows {
            if all.contains(&r.ppid) {
                all.insert(r.pid);
            }
        }
        if all.len() == before {
            return all;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::LegacyMatcher;

    fn rows() -> Vec<Row> {
        parse_ps(
            "    1     0 init\n  100     1 SCREEN -dmS shop node server.js\n  101   100 node server.js --port 3000\n  102   101 worker child\n  200     1 node /srv/shop/cron.js --legacy\n  300     1 vim /srv/shop/cron.js\n",
        )
    }

    fn takeover() -> LegacyTakeover {
        LegacyTakeover {
            screens: vec!["shop".into()],
            processes: vec![LegacyMatcher {
                name: "cron".into(),
                includes: vec!["cron.js".into(), "--legacy".into()],
            }],
            force_stop_timeout_ms: 0,
        }
    }

    #[test]
    fn ps_rows_keep_the_whole_command_line() {
        let r = rows();
        assert_eq!((r[2].pid, r[2].ppid), (101, 100));
        assert_eq!(r[2].args, "node server.js --port 3000");
    }

    #[test]
    fn seeds_need_the_screen_or_every_include_and_descendants_follow() {
        let r = rows();
        let seeds = matching(&takeover(), &r);
        assert_eq!(seeds.into_iter().collect::<Vec<_>>(), [100, 200]);
        let all = with_descendants(&matching(&takeover(), &r), &r);
        assert_eq!(all.into_iter().collect::<Vec<_>>(), [100, 101, 102, 200]);
    }
}
