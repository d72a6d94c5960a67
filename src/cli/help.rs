//! Help text, generated from the command table (commander's layout).

use super::table::{COMMANDS, CommandSpec};

const WIDTH: usize = 36;

pub fn main() -> String {
    let mut out = String::from(
        "Usage: rollbridge [options] [command]\n\nZero-downtime process supervisor and local HTTP/WebSocket traffic switcher.\n\nOptions:\n",
    );
    row(&mut out, "--version", "print the version");
    row(&mut out, "-h, --help", "display help for command");
    out.push_str("\nCommands:\n");
    for c in COMMANDS.iter().filter(|c| !c.hidden) {
        row(&mut out, &usage_fragment(c), c.summary);
    }
    row(&mut out, "help [command]", "display help for command");
    out
}

pub fn command(spec: &CommandSpec) -> String {
    let mut out = format!(
        "Usage: rollbridge {}\n\n{}\n\nOptions:\n",
        usage_fragment(spec),
        spec.about
    );
    for o in spec.options {
        let mut text = o.help.to_owned();
        if o.required {
            text.push_str(" (required)");
        }
        row(&mut out, &o.flags(), &text);
    }
    row(&mut out, "-h, --help", "display help for command");
    out
}

fn usage_fragment(spec: &CommandSpec) -> String {
    let mut s = spec.name.to_owned();
    if !spec.options.is_empty() {
        s.push_str(" [options]");
    }
    if let Some(p) = spec.positional {
        s.push(' ');
        s.push_str(p);
    }
    s
}

fn row(out: &mut String, left: &str, right: &str) {
    let pad = WIDTH.saturating_sub(left.len()).max(2);
    out.push_str("  ");
    out.push_str(left);
    out.push_str(&" ".repeat(pad));
    out.push_str(right);
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn main_help_lists_every_command() {
        let h = main();
        for c in COMMANDS.iter().filter(|c| !c.hidden) {
            assert!(h.contains(&format!("\n  {}", c.name)), "{}", c.name);
        }
        assert!(h.contains("help [command]"));
    }

    #[test]
    fn internal_demo_app_is_not_listed() {
        assert!(!main().contains("demo-app"));
    }

    #[test]
    fn command_help_lists_every_option() {
        for c in COMMANDS {
            let h = command(c);
            for o in c.options {
                assert!(
                    h.contains(&format!("--{}", o.long)),
                    "{} --{}",
                    c.name,
                    o.long
                );
            }
        }
    }
}
