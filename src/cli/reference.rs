//! The CLI reference page (`docs/cli.md`), generated from the command table
//! like help, the completion scripts and the man page, so it cannot drift.
//! `tests/docs_check.rs` fails when the page in the tree differs from this
//! output; `ROLLBRIDGE_BLESS=1 cargo test --test docs_check` rewrites it.

use super::table::{COMMANDS, CommandSpec};

/// The whole page, in Markdown.
pub fn markdown() -> String {
    let mut out = String::from(
        "# CLI reference\n\n\
         <!-- Generated from the command table (src/cli/table.rs); do not edit by hand. -->\n\n\
         Every command of `rollbridge`, its options, what it prints and when it fails. \
         The same text is in `rollbridge help <command>` and in the man page (`rollbridge man`).\n\n\
         Commands that talk to the daemon find it through the config: `-c, --config <path>`, \
         else `./rollbridge.js`, then `./rollbridge.json` (see [the configuration reference](config.md)). \
         They print the daemon's answer as pretty-printed JSON on stdout.\n\n\
         ## Exit codes\n\n\
         | code | when |\n| --- | --- |\n\
         | 0 | success; also `logs` without a match and a `recover` dry run that lists orphans; `daemon` after a clean shutdown |\n\
         | 1 | any error: a bad argument, a config that cannot be found, loaded or validated, a daemon that cannot be reached or answered with an error, problems found by `validate` or `doctor`, a failed deploy (the previous release keeps serving). The message is on stderr. |\n\n\
         An argument the parser does not know prints `error: <message>`, a blank line and the command's help on stderr. \
         A value out of range (`--limit 0`) prints only the message.\n\n\
         ## Global options\n\n\
         | option | meaning |\n| --- | --- |\n\
         | `--version` | print `rollbridge <version> (commit <hash>)` |\n\
         | `-h, --help` | help for the program, or for a command after its name |\n\
         | `help [command]` | the same as `--help` |\n\n\
         ## Commands\n\n",
    );
    for c in COMMANDS.iter().filter(|c| !c.hidden) {
        out.push_str(&format!("- [`{0}`](#{0}): {1}\n", c.name, prose(c.summary)));
    }
    for c in COMMANDS.iter().filter(|c| !c.hidden) {
        command(&mut out, c);
    }
    out
}

fn command(out: &mut String, c: &CommandSpec) {
    out.push_str(&format!("\n### {}\n\n", c.name));
    out.push_str(&format!("```text\n{}\n```\n\n", synopsis(c)));
    out.push_str(&format!("{}\n\n", prose(c.about)));
    if !c.positional_values.is_empty() {
        if let Some(p) = c.positional {
            out.push_str(&format!(
                "`{}` is one of: {}.\n\n",
                p,
                c.positional_values
                    .iter()
                    .map(|v| format!("`{v}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    if !c.options.is_empty() {
        out.push_str("| option | meaning |\n| --- | --- |\n");
        for o in c.options {
            let mut text = cell(o.help);
            if o.required {
                text.push_str(" **(required)**");
            }
            if !o.values.is_empty() {
                text.push_str(&format!(
                    "; one of: {}",
                    o.values
                        .iter()
                        .map(|v| format!("`{v}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            out.push_str(&format!("| `{}` | {} |\n", o.flags(), text));
        }
        out.push('\n');
    }
    out.push_str(&format!("**Output.** {}\n", prose(c.output)));
}

/// `rollbridge deploy --release-path <path> [-c <path>] [--json] …`: the
/// required options plain, the others in brackets.
fn synopsis(c: &CommandSpec) -> String {
    let mut s = format!("rollbridge {}", c.name);
    if let Some(p) = c.positional {
        s.push(' ');
        s.push_str(p);
    }
    for o in c.options {
        let short = if o.long == "config" {
            "-c".to_owned()
        } else {
            format!("--{}", o.long)
        };
        let word = match o.value {
            Some(v) => format!("{short} {v}"),
            None => short,
        };
        if o.required {
            s.push_str(&format!(" {word}"));
        } else {
            s.push_str(&format!(" [{word}]"));
        }
    }
    s
}

/// Text for a table cell: a `|` would end the cell.
fn cell(s: &str) -> String {
    prose(s).replace('|', "\\|")
}

/// Help text as Markdown: `<` and `>` outside code spans would be read as
/// HTML tags (`<application>` would vanish), so they are escaped there.
fn prose(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_code = false;
    for ch in s.chars() {
        match ch {
            '`' => {
                in_code = !in_code;
                out.push(ch);
            }
            '<' if !in_code => out.push_str("&lt;"),
            '>' if !in_code => out.push_str("&gt;"),
            _ => out.push(ch),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_command_and_option_is_in_the_reference() {
        let page = markdown();
        for c in COMMANDS.iter().filter(|c| !c.hidden) {
            assert!(page.contains(&format!("\n### {}\n", c.name)), "{}", c.name);
            for o in c.options {
                assert!(page.contains(&format!("`{}`", o.flags())), "{}", o.long);
            }
        }
        assert!(!page.contains("### demo-app"));
    }

    #[test]
    fn pipes_in_help_do_not_break_the_table() {
        assert_eq!(cell("on|off"), "on\\|off");
    }

    #[test]
    fn angle_brackets_are_escaped_outside_code() {
        assert_eq!(
            prose("log at /tmp/<app>.log, `--x <n>`"),
            "log at /tmp/&lt;app&gt;.log, `--x <n>`"
        );
    }
}
