//! Shell completion scripts, generated from the command table.

pub use super::table::SHELLS;
use super::table::{COMMANDS, CommandSpec};

pub fn script(shell: &str) -> Option<String> {
    match shell {
        "bash" => Some(bash()),
        "zsh" => Some(zsh()),
        "fish" => Some(fish()),
        _ => None,
    }
}

/// The commands a user is offered: the table minus internal ones.
fn listed() -> impl Iterator<Item = &'static CommandSpec> {
    COMMANDS.iter().filter(|c| !c.hidden)
}

fn names() -> String {
    listed().map(|c| c.name).collect::<Vec<_>>().join(" ")
}

fn long_options(c: &CommandSpec, only_values: bool) -> String {
    c.options
        .iter()
        .filter(|o| !only_values || o.value.is_some())
        .map(|o| format!("--{}", o.long))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Words completed in the positional place: `completion <shell>`,
/// `maintenance on|off`.
fn words(c: &CommandSpec) -> &'static [&'static str] {
    c.positional_values
}

/// Options with a fixed set of values, e.g. `--policy`: (option, values).
fn valued(c: &CommandSpec) -> impl Iterator<Item = (&'static str, String)> + '_ {
    c.options
        .iter()
        .filter(|o| !o.values.is_empty())
        .map(|o| (o.long, o.values.join(" ")))
}

fn bash() -> String {
    let mut cases = String::new();
    let mut value_cases = String::new();
    for c in listed() {
        for (long, values) in valued(c) {
            value_cases.push_str(&format!(
                "    \"{} --{long}\")\n      COMPREPLY=($(compgen -W \"{values}\" -- \"$cur\"))\n      return 0\n      ;;\n",
                c.name
            ));
        }
        if c.name == "completion" {
            cases.push_str(&format!(
                "    completion)\n      COMPREPLY=($(compgen -W \"{}\" -- \"$cur\"))\n      return 0\n      ;;\n",
                SHELLS.join(" ")
            ));
            continue;
        }
        let offered = [words(c).join(" "), long_options(c, false)].join(" ");
        cases.push_str(&format!(
            "    {})\n      opts=\"{}\"\n      values=\"{}\"\n      ;;\n",
            c.name,
            offered.trim(),
            long_options(c, true)
        ));
    }
    format!(
        r#"# bash completion for rollbridge. Enable it with:
#   source <(rollbridge completion bash)
_rollbridge() {{
  local cur prev cmd i opts values
  cur="${{COMP_WORDS[COMP_CWORD]}}"
  prev="${{COMP_WORDS[COMP_CWORD-1]}}"
  cmd=""
  for ((i = 1; i < COMP_CWORD; i++)); do
    if [[ "${{COMP_WORDS[i]}}" != -* ]]; then
      cmd="${{COMP_WORDS[i]}}"
      break
    fi
  done
  if [[ -z "$cmd" ]]; then
    COMPREPLY=($(compgen -W "{names}" -- "$cur"))
    return 0
  fi
  opts=""
  values=""
  case "$cmd" in
{cases}  esac
  case "$cmd $prev" in
{value_cases}  esac
  if [[ -n "$prev" && " $values " == *" $prev "* ]]; then
    COMPREPLY=($(compgen -f -- "$cur"))
    return 0
  fi
  COMPREPLY=($(compgen -W "$opts --help" -- "$cur"))
  return 0
}}
complete -F _rollbridge rollbridge
"#,
        names = names()
    )
}

fn zsh() -> String {
    let mut cases = String::new();
    let mut value_cases = String::new();
    for c in listed() {
        for (long, values) in valued(c) {
            value_cases.push_str(&format!(
                "    \"{} --{long}\") compadd -- {values}; return ;;\n",
                c.name
            ));
        }
        let opts = if c.name == "completion" {
            SHELLS.join(" ")
        } else {
            [words(c).join(" "), long_options(c, false)]
                .join(" ")
                .trim()
                .to_owned()
        };
        cases.push_str(&format!("    {}) compadd -- {} ;;\n", c.name, opts));
    }
    format!(
        r#"#compdef rollbridge
# zsh completion for rollbridge. Enable it with:
#   source <(rollbridge completion zsh)
_rollbridge() {{
  local -a commands
  commands=({names})
  if (( CURRENT == 2 )); then
    compadd -- $commands
    return
  fi
  case "${{words[2]}} ${{words[CURRENT-1]}}" in
{value_cases}  esac
  case "${{words[2]}}" in
{cases}  esac
}}
compdef _rollbridge rollbridge
"#,
        names = names()
    )
}

fn fish() -> String {
    let mut out = String::from(
        "# fish completion for rollbridge. Enable it with:\n#   rollbridge completion fish | source\ncomplete -c rollbridge -f\n",
    );
    for c in listed() {
        out.push_str(&format!(
            "complete -c rollbridge -n __fish_use_subcommand -a {} -d '{}'\n",
            c.name,
            c.summary.replace('\'', "\\'")
        ));
    }
    for c in listed() {
        if !words(c).is_empty() {
            out.push_str(&format!(
                "complete -c rollbridge -n '__fish_seen_subcommand_from {}' -a '{}'\n",
                c.name,
                words(c).join(" ")
            ));
        }
        for o in c.options {
            out.push_str(&format!(
                "complete -c rollbridge -n '__fish_seen_subcommand_from {}' -l {}{} -d '{}'\n",
                c.name,
                o.long,
                match (o.value, o.values) {
                    (None, _) => String::new(),
                    (Some(_), []) => " -r -F".to_owned(),
                    (Some(_), values) => format!(" -r -f -a '{}'", values.join(" ")),
                },
                o.help.replace('\'', "\\'")
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bash_names_every_command_and_option() {
        let s = bash();
        assert!(s.contains("complete -F _rollbridge rollbridge"));
        assert!(s.contains(&format!("compgen -W \"{}\"", names())));
        for c in listed() {
            assert!(s.contains(&format!("    {})\n", c.name)), "{}", c.name);
            for o in c.options {
                assert!(s.contains(&format!("--{}", o.long)));
            }
        }
    }

    #[test]
    fn bash_values_list_only_value_options() {
        let s = bash();
        assert!(s.contains("values=\"--config --process --policy\""));
        assert!(
            s.contains("values=\"--config\"\n      ;;\n    doctor")
                || s.contains("values=\"--config\"")
        );
    }

    #[test]
    fn zsh_has_commands_and_compdef() {
        let s = zsh();
        assert!(s.starts_with("#compdef rollbridge\n"));
        assert!(s.contains("commands=(daemon deploy "));
        assert!(s.contains("    events) compadd -- --config --limit --json --follow ;;"));
        assert!(s.trim_end().ends_with("compdef _rollbridge rollbridge"));
    }

    #[test]
    fn fish_covers_subcommands() {
        let s = fish();
        assert!(s.contains("-a deploy"));
        assert!(s.contains("__fish_seen_subcommand_from deploy' -l release-path -r -F"));
    }

    #[test]
    fn policy_completes_its_values_not_files() {
        let want = "proxied companion singleton service";
        assert!(bash().contains(&format!(
            "    \"restart --policy\")\n      COMPREPLY=($(compgen -W \"{want}\" -- \"$cur\"))"
        )));
        assert!(zsh().contains(&format!(
            "    \"restart --policy\") compadd -- {want}; return ;;"
        )));
        assert!(fish().contains(&format!("-l policy -r -f -a '{want}'")));
    }

    #[test]
    fn traffic_commands_are_completed_in_every_shell() {
        for s in [bash(), zsh(), fish()] {
            for name in ["maintenance", "pause", "resume"] {
                assert!(s.contains(name), "{name}");
            }
            assert!(s.contains("retry-after") && s.contains("timeout-ms"));
        }
        assert!(bash().contains("opts=\"on off --config --message --retry-after\""));
        assert!(
            zsh()
                .contains("    maintenance) compadd -- on off --config --message --retry-after ;;")
        );
        assert!(fish().contains("__fish_seen_subcommand_from maintenance' -a 'on off'"));
    }

    #[test]
    fn internal_demo_app_is_not_completed() {
        for s in [bash(), zsh(), fish()] {
            assert!(!s.contains("demo-app"));
        }
    }

    #[test]
    fn unknown_shell_has_no_script() {
        assert!(script("powershell").is_none());
    }
}
