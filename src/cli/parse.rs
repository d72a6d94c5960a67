//! lexopt tokens -> [`LowArgs`] for one command from the table -> validated
//! [`Args`].

use std::ffi::OsString;

use super::Args;
use super::help;
use super::low::LowArgs;
use super::table::{self, COMMANDS, CommandSpec};
use crate::suggest::did_you_mean;

/// What the command line asks for.
#[derive(Debug)]
pub enum Parsed {
    Run(&'static CommandSpec, Box<Args>),
    /// Help text for stdout, exit 0.
    Help(String),
    Version,
    /// No command: full help on stderr, exit 1.
    NoCommand,
    /// An argument error: `error: ...` line, blank line, help; exit 1.
    Error {
        message: String,
        help: String,
    },
    /// A value the command refuses (`--limit must be a positive integer.`):
    /// the message alone on stderr, exit 1.
    Invalid(String),
}

impl std::fmt::Debug for CommandSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

pub fn parse(argv: impl IntoIterator<Item = OsString>) -> Parsed {
    let mut parser = lexopt::Parser::from_args(argv);
    let first = match parser.next() {
        Ok(Some(arg)) => arg,
        Ok(None) => return Parsed::NoCommand,
        Err(e) => return error(e.to_string(), None),
    };
    let name = match first {
        lexopt::Arg::Value(v) => v.to_string_lossy().into_owned(),
        lexopt::Arg::Short('h') | lexopt::Arg::Long("help") => {
            return Parsed::Help(help::main());
        }
        lexopt::Arg::Long("version") => return Parsed::Version,
        lexopt::Arg::Short(c) => return error(format!("unknown option '-{c}'"), None),
        lexopt::Arg::Long(l) => return error(format!("unknown option '--{l}'"), None),
    };
    if name == "help" {
        return help_command(&mut parser);
    }
    let Some(spec) = table::command(&name) else {
        let mut message = format!("unknown command '{name}'");
        if let Some(s) = did_you_mean(&name, COMMANDS.iter().map(|c| c.name)) {
            message.push_str(&format!(" (Did you mean {s}?)"));
        }
        return error(message, None);
    };
    parse_command(spec, &mut parser)
}

fn help_command(parser: &mut lexopt::Parser) -> Parsed {
    match parser.next() {
        Ok(Some(lexopt::Arg::Value(v))) => {
            let name = v.to_string_lossy();
            match table::command(&name) {
                Some(spec) => Parsed::Help(help::command(spec)),
                None => error(format!("unknown command '{name}'"), None),
            }
        }
        _ => Parsed::Help(help::main()),
    }
}

fn parse_command(spec: &'static CommandSpec, parser: &mut lexopt::Parser) -> Parsed {
    let mut args = LowArgs::default();
    let mut positionals: Vec<String> = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    loop {
        let arg = match parser.next() {
            Ok(Some(arg)) => arg,
            Ok(None) => break,
            Err(e) => return error(e.to_string(), Some(spec)),
        };
        let long = match arg {
            lexopt::Arg::Short('h') | lexopt::Arg::Long("help") => {
                return Parsed::Help(help::command(spec));
            }
            lexopt::Arg::Short('c') if spec.takes_config() => "config".to_owned(),
            lexopt::Arg::Short(c) => {
                return error(format!("unknown option '-{c}'"), Some(spec));
            }
            lexopt::Arg::Long(l) => l.to_owned(),
            lexopt::Arg::Value(v) => {
                positionals.push(v.to_string_lossy().into_owned());
                continue;
            }
        };
        let Some(opt) = spec.option(&long) else {
            let mut message = format!("unknown option '--{long}'");
            if let Some(s) = did_you_mean(&long, spec.options.iter().map(|o| o.long)) {
                message.push_str(&format!(" (Did you mean --{s}?)"));
            }
            return error(message, Some(spec));
        };
        seen.push(opt.long);
        if opt.value.is_some() {
            match parser.value() {
                Ok(v) => args.set(opt.id, Some(v.to_string_lossy().into_owned())),
                Err(_) => {
                    return error(
                        format!("option '{}' argument missing", opt.flags()),
                        Some(spec),
                    );
                }
            }
        } else if let Some(v) = parser.optional_value() {
            return error(
                format!(
                    "option '{}' does not take a value (got '{}')",
                    opt.flags(),
                    v.to_string_lossy()
                ),
                Some(spec),
            );
        } else {
            args.set(opt.id, None);
        }
    }
    for opt in spec.options.iter().filter(|o| o.required) {
        if !seen.contains(&opt.long) {
            return error(
                format!("required option '{}' not specified", opt.flags()),
                Some(spec),
            );
        }
    }
    match (spec.positional, positionals.len()) {
        (Some(_), 1) => args.positional = positionals.pop(),
        (Some(p), 0) => {
            return error(
                format!(
                    "missing required argument '{}'",
                    p.trim_matches(|c| c == '<' || c == '>')
                ),
                Some(spec),
            );
        }
        (None, 0) => {}
        (expected, got) => {
            let want = usize::from(expected.is_some());
            return error(
                format!(
                    "too many arguments for '{}'. Expected {want} argument{} but got {got}.",
                    spec.name,
                    if want == 1 { "" } else { "s" }
                ),
                Some(spec),
            );
        }
    }
    match Args::from_low(spec.cmd, args) {
        Ok(args) => Parsed::Run(spec, Box::new(args)),
        Err(message) => Parsed::Invalid(message),
    }
}

fn error(message: String, spec: Option<&'static CommandSpec>) -> Parsed {
    Parsed::Error {
        message,
        help: match spec {
            Some(s) => help::command(s),
            None => help::main(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Parsed {
        parse(args.iter().map(OsString::from))
    }

    fn run_args(args: &[&str]) -> Args {
        match p(args) {
            Parsed::Run(_, a) => *a,
            other => panic!("expected Run, got {other:?}"),
        }
    }

    fn err_message(args: &[&str]) -> String {
        match p(args) {
            Parsed::Error { message, .. } => message,
            other => panic!("expected Error, got {other:?}"),
        }
    }

    #[test]
    fn config_may_come_last() {
        let a = run_args(&[
            "deploy",
            "--release-path",
            "p",
            "--release-id",
            "v1",
            "--config",
            "f",
        ]);
        assert_eq!(a.release_path.as_deref(), Some("p"));
        assert_eq!(a.release_id.as_deref(), Some("v1"));
        assert_eq!(a.config.as_deref(), Some("f"));
    }

    #[test]
    fn equals_form_and_short_config() {
        let a = run_args(&["status", "-c", "x.js"]);
        assert_eq!(a.config.as_deref(), Some("x.js"));
        let a = run_args(&["deploy", "--release-path=/srv/r"]);
        assert_eq!(a.release_path.as_deref(), Some("/srv/r"));
    }

    #[test]
    fn missing_required_option_is_named() {
        assert_eq!(
            err_message(&["deploy"]),
            "required option '--release-path <path>' not specified"
        );
    }

    #[test]
    fn option_without_value_is_reported() {
        assert_eq!(
            err_message(&["status", "-c"]),
            "option '-c, --config <path>' argument missing"
        );
    }

    #[test]
    fn unknown_command_suggests_the_closest() {
        assert_eq!(
            err_message(&["deplyo"]),
            "unknown command 'deplyo' (Did you mean deploy?)"
        );
        assert_eq!(err_message(&["frobnicate"]), "unknown command 'frobnicate'");
    }

    #[test]
    fn unknown_option_suggests_the_closest() {
        assert_eq!(
            err_message(&["deploy", "--release-pth", "x"]),
            "unknown option '--release-pth' (Did you mean --release-path?)"
        );
    }

    #[test]
    fn completion_needs_its_shell() {
        assert_eq!(
            err_message(&["completion"]),
            "missing required argument 'shell'"
        );
        assert_eq!(run_args(&["completion", "zsh"]).shell, Some("zsh"));
    }

    #[test]
    fn completion_takes_no_config() {
        assert_eq!(
            err_message(&["completion", "bash", "-c", "x"]),
            "unknown option '-c'"
        );
    }

    #[test]
    fn flags_take_no_value() {
        assert!(err_message(&["validate", "--json=yes"]).contains("does not take a value"));
        assert!(run_args(&["validate", "--json"]).json);
    }

    #[test]
    fn help_forms() {
        assert!(matches!(p(&["--help"]), Parsed::Help(_)));
        assert!(matches!(p(&["deploy", "-h"]), Parsed::Help(h) if h.contains("--release-path")));
        assert!(
            matches!(p(&["help", "status"]), Parsed::Help(h) if h.starts_with("Usage: rollbridge status"))
        );
        assert!(matches!(p(&[]), Parsed::NoCommand));
        assert!(matches!(p(&["--version"]), Parsed::Version));
    }

    #[test]
    fn bad_values_are_refused_at_parse_time_without_help() {
        assert!(
            matches!(p(&["events", "--limit", "0"]), Parsed::Invalid(m) if m == "--limit must be a positive integer.")
        );
        assert!(
            matches!(p(&["completion", "tcsh"]), Parsed::Invalid(m) if m.starts_with("Unsupported shell"))
        );
        assert!(matches!(
            p(&["pause", "--timeout-ms", "-1"]),
            Parsed::Invalid(_)
        ));
    }

    #[test]
    fn stray_positional_is_an_error() {
        assert!(err_message(&["status", "extra"]).starts_with("too many arguments for 'status'"));
    }
}
