//! `rollbridge validate`: load and validate the config, print every issue.

use serde::Serialize;

use crate::cli::Args;
use crate::config::{self, Issue};

#[derive(Serialize)]
struct Report<'a> {
    config: Option<Summary<'a>>,
    issues: &'a [Issue],
    path: Option<&'a str>,
    valid: bool,
    /// How the file was read: `json` (natively) or `node`.
    #[serde(skip_serializing_if = "Option::is_none")]
    loader: Option<&'static str>,
    /// Unknown keys (probable typos); never make the config invalid.
    #[serde(skip_serializing_if = "<[Issue]>::is_empty")]
    warnings: &'a [Issue],
}

#[derive(Serialize)]
struct Summary<'a> {
    application: &'a str,
    processes: usize,
    proxy: ProxySummary<'a>,
}

#[derive(Serialize)]
struct ProxySummary<'a> {
    host: &'a str,
    port: u16,
}

pub fn run(args: &Args) -> i32 {
    let checked = match config::check_with(args.config.as_deref(), args.node) {
        Ok(c) => c,
        Err(message) => {
            if args.json {
                let issues = [Issue {
                    fix: "Pass --config <path>, or add rollbridge.js (or rollbridge.json) to the current directory.".into(),
                    message,
                }];
                print_json(&Report {
                    config: None,
                    issues: &issues,
                    path: None,
                    valid: false,
                    loader: None,
                    warnings: &[],
                });
            } else {
                eprintln!("{message}");
            }
            return 1;
        }
    };
    let path = checked.path.as_str();
    let (validation, issues) = match &checked.outcome {
        Ok(v) => (Some(v), v.issues.clone()),
        Err(load_error) => (
            None,
            vec![Issue {
                fix: config::validate::load_error_fix(load_error, path),
                message: load_error.clone(),
            }],
        ),
    };
    let warnings = validation.map(|v| v.warnings.as_slice()).unwrap_or(&[]);
    let valid = issues.is_empty();
    let config = validation.map(|v| &v.config);

    if args.json {
        print_json(&Report {
            config: config.filter(|_| valid).map(|c| Summary {
                application: &c.application,
                processes: c.processes.len(),
                proxy: ProxySummary {
                    host: &c.proxy.host,
                    port: c.proxy.port,
                },
            }),
            issues: &issues,
            path: Some(path),
            valid,
            loader: checked.loader.map(|l| l.as_str()),
            warnings,
        });
        return if valid { 0 } else { 1 };
    }

    for w in warnings {
        eprintln!("Warning: {}\n   Fix: {}", w.message, w.fix);
    }
    match config.filter(|_| valid) {
        Some(c) => {
            let n = c.processes.len();
            crate::outln!(
                "{path} is valid: {n} {}, proxy on {}:{}.",
                if n == 1 { "process" } else { "processes" },
                c.proxy.host,
                c.proxy.port
            );
            0
        }
        None => {
            let n = issues.len();
            let mut out = format!(
                "Found {n} configuration {} in {path}:\n",
                if n == 1 { "issue" } else { "issues" }
            );
            for (k, issue) in issues.iter().enumerate() {
                out.push_str(&format!(
                    "\n{}. {}\n   Fix: {}\n",
                    k + 1,
                    issue.message,
                    issue.fix
                ));
            }
            eprint!("{out}");
            1
        }
    }
}

fn print_json<T: Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(s) => crate::outln!("{s}"),
        Err(e) => eprintln!("Cannot encode JSON output: {e}"),
    }
}
