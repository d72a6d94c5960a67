//! The manual page `rollbridge.1` (roff), generated from the command table
//! like help and the completion scripts, so it cannot drift.

use super::table::{COMMANDS, CommandSpec};

/// The whole page.
pub fn page() -> String {
    let mut out = String::new();
    out.push_str(&format!(
        ".TH ROLLBRIDGE 1 \"\" \"rollbridge {}\" \"User Commands\"\n",
        env!("CARGO_PKG_VERSION")
    ));
    out.push_str(".SH NAME\nrollbridge \\- zero-downtime process supervisor and local HTTP/WebSocket traffic switcher\n");
    out.push_str(".SH SYNOPSIS\n.B rollbridge\n.I command\n[\\fIoptions\\fR]\n.br\n.B rollbridge\n\\fB\\-\\-version\\fR | \\fB\\-\\-help\\fR | \\fBhelp\\fR [\\fIcommand\\fR]\n");
    out.push_str(&paragraph(
        "DESCRIPTION",
        "Rollbridge runs an application's processes, owns one stable local proxy port that a front web server \
         (Nginx) points at, and on `rollbridge deploy` starts the new release, health-checks it, switches traffic \
         to it, drains the old release and stops it \u{2014} or exits non-zero leaving the old release serving. \
         One daemon runs per application; the commands below talk to it over its Unix control socket. \
         The configuration is read from `rollbridge.js` or `rollbridge.json` in the current directory, \
         or from the file named with `--config`.",
    ));
    out.push_str(".SH COMMANDS\n");
    for c in COMMANDS.iter().filter(|c| !c.hidden) {
        command(&mut out, c);
    }
    out.push_str(&paragraph(
        "EXIT STATUS",
        "0 on success (also `logs` without a match, and a `recover` dry run that lists orphans); \
         1 on any error: a bad argument, a config that cannot be found, loaded or validated, \
         a daemon that cannot be reached or answered with an error, problems found by `validate` or \
         `doctor`, a failed deploy (the previous release keeps serving).",
    ));
    out.push_str(&paragraph(
        "SEE ALSO",
        "The user guide in the docs folder of the Rollbridge distribution: configuration reference \
         (docs/config.md), the daemon (docs/daemon.md), troubleshooting (docs/troubleshooting.md).",
    ));
    out
}

fn command(out: &mut String, c: &CommandSpec) {
    out.push_str(".TP\n");
    out.push_str(&format!("\\fB{}\\fR", esc(c.name)));
    if !c.options.is_empty() {
        out.push_str(" [\\fIoptions\\fR]");
    }
    if let Some(p) = c.positional {
        out.push_str(&format!(" \\fI{}\\fR", esc(p)));
    }
    out.push('\n');
    out.push_str(&text(c.about));
    out.push('\n');
    out.push_str(".br\n");
    out.push_str(&text(&format!("Output: {}", c.output)));
    out.push('\n');
    if c.options.is_empty() {
        return;
    }
    out.push_str(".RS\n");
    for o in c.options {
        out.push_str(".TP\n");
        let short = if o.long == "config" {
            "\\fB\\-c\\fR, "
        } else {
            ""
        };
        out.push_str(&format!(
            "{short}\\fB\\-\\-{}\\fR",
            esc(&o.long.replace('-', "\\-"))
        ));
        if let Some(v) = o.value {
            out.push_str(&format!(" \\fI{}\\fR", esc(v)));
        }
        out.push('\n');
        let mut help = o.help.to_owned();
        if o.required {
            help.push_str(" (required)");
        }
        if !o.values.is_empty() {
            help.push_str(&format!(" One of: {}.", o.values.join(", ")));
        }
        out.push_str(&text(&help));
        out.push('\n');
    }
    out.push_str(".RE\n");
}

fn paragraph(title: &str, body: &str) -> String {
    format!(".SH {title}\n{}\n", text(body))
}

/// Body text: escaped, and never a line that roff reads as a request.
fn text(s: &str) -> String {
    let e = esc(s);
    if e.starts_with('.') || e.starts_with('\'') {
        format!("\\&{e}")
    } else {
        e
    }
}

/// Escapes roff's backslash (names keep their `\-` written by the caller).
fn esc(s: &str) -> String {
    if s.contains("\\-") {
        return s.to_owned();
    }
    s.replace('\\', "\\e")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_lists_every_visible_command_and_option() {
        let p = page();
        assert!(p.starts_with(".TH ROLLBRIDGE 1 "));
        for c in COMMANDS.iter().filter(|c| !c.hidden) {
            assert!(p.contains(&format!("\\fB{}\\fR", c.name)), "{}", c.name);
            for o in c.options {
                assert!(
                    p.contains(&format!("\\fB\\-\\-{}\\fR", o.long.replace('-', "\\-"))),
                    "{} --{}",
                    c.name,
                    o.long
                );
            }
        }
        assert!(!p.contains("demo-app"));
    }

    #[test]
    fn backslashes_and_leading_dots_are_escaped() {
        assert_eq!(text("a\\b"), "a\\eb");
        assert_eq!(text(".hidden"), "\\&.hidden");
    }
}
