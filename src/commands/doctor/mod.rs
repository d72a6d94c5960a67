//! `rollbridge doctor`: checks the config, this host and
//! optionally a prepared release, so a deploy pipeline can fail fast.
//! Never sends anything but the liveness probe to a daemon.

mod host;
mod release;

use serde::Serialize;

use crate::cli::Args;
use crate::config::{self, Config};

/// One result line; field order is the JSON key order.
#[derive(Debug, Serialize)]
pub struct Check {
    pub detail: String,
    pub name: &'static str,
    pub ok: bool,
}

impl Check {
    pub fn pass(name: &'static str, detail: String) -> Check {
        Check {
            detail,
            name,
            ok: true,
        }
    }

    pub fn fail(name: &'static str, detail: String) -> Check {
        Check {
            detail,
            name,
            ok: false,
        }
    }
}

#[derive(Serialize)]
struct Report<'a> {
    checks: &'a [Check],
    ok: bool,
}

pub fn run(args: &Args) -> i32 {
    let checked = match config::check(args.config.as_deref()) {
        Ok(c) => c,
        Err(message) => {
            if !args.json {
                eprintln!("{message}");
                return 1;
            }
            return report(&[Check::fail("config", message)], true);
        }
    };
    let mut checks = Vec::new();
    match config_check(&checked) {
        Ok((check, cfg)) => {
            checks.push(check);
            checks.extend(host::checks(cfg));
            if let Some(path) = args.release_path.as_deref() {
                let ids = release::Ids {
                    release_id: args.release_id.as_deref(),
                    revision: args.revision.as_deref(),
                };
                checks.extend(release::checks(cfg, path, ids));
            }
        }
        // An invalid config makes every further check meaningless.
        Err(check) => checks.push(check),
    }
    report(&checks, args.json)
}

/// The `config` check; the validated config when it passes.
fn config_check(checked: &config::Checked) -> Result<(Check, &Config), Check> {
    let issues = match &checked.outcome {
        Ok(v) if v.is_valid() => {
            let c = &v.config;
            // Pluralized exactly as the original prints it.
            let detail = format!(
                "valid: {}, proxy on {}:{}",
                plural(c.processes.len(), "process", "processes"),
                c.proxy.host,
                c.proxy.port
            );
            return Ok((Check::pass("config", detail), c));
        }
        Ok(v) => v.issues.len(),
        Err(_) => 1,
    };
    Err(Check::fail(
        "config",
        format!(
            "{} — run \"rollbridge validate\" for details",
            plural(issues, "issue", "issues")
        ),
    ))
}

/// `1 check`, `2 checks`: the count with the word in the matching number.
pub(crate) fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Prints the checks and returns the exit code.
fn report(checks: &[Check], json: bool) -> i32 {
    let failed = checks.iter().filter(|c| !c.ok).count();
    if json {
        let body = Report {
            checks,
            ok: failed == 0,
        };
        match serde_json::to_string_pretty(&body) {
            Ok(s) => crate::outln!("{s}"),
            Err(e) => eprintln!("Cannot encode JSON output: {e}"),
        }
    } else {
        for c in checks {
            let mark = if c.ok { '✓' } else { '✗' };
            crate::outln!("{mark} {}: {}", c.name, c.detail);
        }
        if failed == 0 {
            crate::outln!("\nAll checks passed.");
        } else {
            eprintln!("\n{} failed.", plural(failed, "check", "checks"));
        }
    }
    if failed == 0 { 0 } else { 1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_pluralized_like_the_original() {
        assert_eq!(plural(1, "check", "checks"), "1 check");
        assert_eq!(plural(4, "process", "processes"), "4 processes");
        assert_eq!(plural(0, "issue", "issues"), "0 issues");
    }

    #[test]
    fn check_serializes_detail_name_ok_in_order() {
        let s = serde_json::to_string(&Check::pass("config", "fine".into())).unwrap_or_default();
        assert_eq!(s, r#"{"detail":"fine","name":"config","ok":true}"#);
    }
}
