//! The CLI surface through the real binary: validate output, help,
//! version, argument errors and completion scripts.

mod cli_support;
use cli_support::*;

fn repo(rel: &str) -> String {
    format!("{}/{rel}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn validate_accepts_every_example_and_seed_config() {
    let mut files = vec![
        repo("examples/plain-web/rollbridge.json"),
        repo("examples/plain-web/rollbridge.js"),
        repo("examples/velocious/rollbridge.js"),
    ];
    // examples/velocious is the seed documents' production example.
    for seed in ["seed-ticket-server.js", "seed-snippets.js"] {
        files.push(repo(&format!("tests/fixtures/configs/{seed}")));
    }
    for f in files {
        if f.ends_with(".js") && !have_node() {
            continue;
        }
        let r = run(&["validate", "--config", &f]);
        assert_eq!(r.code, 0, "{f}: {}", r.stderr);
        assert!(
            r.stdout.starts_with(&format!("{f} is valid: ")),
            "{}",
            r.stdout
        );
    }
}

#[test]
fn production_example_has_four_processes() {
    let f = repo("examples/velocious/rollbridge.js");
    if !have_node() {
        return;
    }
    let r = run(&["validate", "--config", &f]);
    assert_eq!(
        r.stdout,
        format!("{f} is valid: 4 processes, proxy on 127.0.0.1:4500.\n")
    );
}

#[test]
fn validate_prints_all_issues_at_once() {
    let dir = TempDir::new("issues");
    let path = dir.write(
        "bad.json",
        r#"{"proxy": {"port": "8182"}, "processes": [{"id": "web", "policy": "proxied", "command": "x"}, {"id": "web", "command": 5}]}"#,
    );
    let r = run_in(dir.path(), &["validate", "-c", &path], &[]);
    assert_eq!(r.code, 1);
    assert_eq!(r.stdout, "");
    let expected = format!(
        "Found 4 configuration issues in {path}:\n\n1. proxy.port must be a number\n   Fix: "
    );
    assert!(r.stderr.starts_with(&expected), "{}", r.stderr);
    for (k, msg) in [
        (2, "processes[1].command must be a string"),
        (3, "Duplicate process id: web"),
        (4, "Proxied process web must define a port range"),
    ] {
        assert!(
            r.stderr.contains(&format!("\n\n{k}. {msg}\n   Fix: ")),
            "{}",
            r.stderr
        );
    }

    let r = run_in(dir.path(), &["validate", "-c", &path, "--json"], &[]);
    assert_eq!(r.code, 1);
    let v = json(&r.stdout);
    assert_eq!(v["valid"], false);
    assert_eq!(v["issues"].as_array().unwrap().len(), 4);
    assert!(
        r.stdout
            .starts_with("{\n  \"config\": null,\n  \"issues\": ["),
        "{}",
        r.stdout
    );
}

#[test]
fn validate_json_key_order_and_pretty_print() {
    let dir = TempDir::new("order");
    let path = dir.write("rollbridge.json", MINIMAL);
    let r = run_in(dir.path(), &["validate", "--json", "-c", &path], &[]);
    assert_eq!(r.code, 0);
    let expected = format!(
        "{{\n  \"config\": {{\n    \"application\": \"demo\",\n    \"processes\": 1,\n    \"proxy\": {{\n      \"host\": \"127.0.0.1\",\n      \"port\": 8182\n    }}\n  }},\n  \"issues\": [],\n  \"path\": \"{path}\",\n  \"valid\": true,\n  \"loader\": \"json\"\n}}\n"
    );
    assert_eq!(r.stdout, expected);
}

#[test]
fn validate_single_issue_and_single_process_wording() {
    let dir = TempDir::new("one");
    let path = dir.write("c.json", r#"{"proxy": {}, "processes": []}"#);
    let r = run_in(dir.path(), &["validate", "-c", &path], &[]);
    assert!(
        r.stderr
            .starts_with(&format!("Found 1 configuration issue in {path}:"))
    );
}

#[test]
fn unknown_field_warns_on_stderr_but_stays_valid() {
    let dir = TempDir::new("typo");
    let path = dir.write(
        "c.json",
        &MINIMAL.replace(
            "\"port\": {\"from\"",
            "\"gracefullStopMs\": 5, \"port\": {\"from\"",
        ),
    );
    let r = run_in(dir.path(), &["validate", "-c", &path], &[]);
    assert_eq!(r.code, 0);
    assert!(
        r.stderr
            .contains("processes[0].gracefullStopMs is not a known field"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("Did you mean processes[0].gracefulStopMs?")
    );
}

#[test]
fn no_command_prints_help_on_stderr_and_fails() {
    let r = run(&[]);
    assert_eq!(r.code, 1);
    assert_eq!(r.stdout, "");
    assert!(r.stderr.starts_with("Usage: rollbridge"));
}

#[test]
fn help_goes_to_stdout() {
    for args in [
        &["--help"][..],
        &["-h"],
        &["help"],
        &["help", "deploy"],
        &["deploy", "--help"],
    ] {
        let r = run(args);
        assert_eq!(r.code, 0, "{args:?}");
        assert!(r.stdout.starts_with("Usage: rollbridge"), "{args:?}");
    }
    let r = run(&["help", "deploy"]);
    assert!(r.stdout.contains("--release-path <path>"));
    assert!(r.stdout.contains("-c, --config <path>"));
}

#[test]
fn version_prints_the_crate_version_and_commit() {
    let r = run(&["--version"]);
    let prefix = format!("rollbridge {} (commit ", env!("CARGO_PKG_VERSION"));
    assert!(r.stdout.starts_with(&prefix), "{}", r.stdout);
    let commit = r.stdout[prefix.len()..].trim_end().trim_end_matches(')');
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    match head {
        // Built from this checkout: the commit is HEAD's.
        Some(head) if std::env::var("ROLLBRIDGE_COMMIT").is_err() => assert_eq!(commit, head),
        _ => assert!(!commit.is_empty(), "{}", r.stdout),
    }
}

#[test]
fn unknown_command_is_one_error_line_then_help() {
    let r = run(&["deplyo"]);
    assert_eq!(r.code, 1);
    let mut lines = r.stderr.lines();
    assert_eq!(
        lines.next(),
        Some("error: unknown command 'deplyo' (Did you mean deploy?)")
    );
    assert_eq!(lines.next(), Some(""));
    assert!(lines.next().unwrap().starts_with("Usage: rollbridge"));
}

#[test]
fn unknown_option_names_the_flag() {
    let r = run(&["shutdown", "--jsn"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .starts_with("error: unknown option '--jsn'\n\nUsage: rollbridge shutdown"),
        "{}",
        r.stderr
    );
}

#[test]
fn missing_release_path_is_named() {
    let r = run(&["deploy", "--release-id", "v1"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .starts_with("error: required option '--release-path <path>' not specified\n\n")
    );
}

#[test]
fn option_value_missing_is_named() {
    let r = run(&["validate", "--config"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .starts_with("error: option '-c, --config <path>' argument missing")
    );
}

#[test]
fn completion_scripts_for_each_shell() {
    let bash = run(&["completion", "bash"]);
    assert_eq!(bash.code, 0);
    assert!(bash.stdout.contains("complete -F _rollbridge rollbridge"));
    assert!(bash.stdout.contains("source <(rollbridge completion bash)"));
    let zsh = run(&["completion", "zsh"]);
    assert!(zsh.stdout.starts_with("#compdef rollbridge"));
    assert!(
        zsh.stdout
            .contains("events) compadd -- --config --limit --json")
    );
    let fish = run(&["completion", "fish"]);
    assert!(fish.stdout.contains("complete -c rollbridge"));
}

#[test]
fn completion_rejects_unknown_shell() {
    let r = run(&["completion", "tcsh"]);
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr,
        "Unsupported shell \"tcsh\". Supported shells: bash, zsh, fish.\n"
    );
}

/// Sources the bash script and asks `_rollbridge` to complete `words`.
fn bash_complete(words: &[&str]) -> Vec<String> {
    let script = run(&["completion", "bash"]).stdout;
    let dir = TempDir::new("bashcomp");
    let file = dir.write("comp.bash", &script);
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let program = format!(
        "source {file}; COMP_WORDS=({}); COMP_CWORD={}; _rollbridge; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        quoted.join(" "),
        words.len() - 1
    );
    let out = std::process::Command::new("bash")
        .args(["-c", &program])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn bash_completion_offers_commands_and_options() {
    assert_eq!(bash_complete(&["rollbridge", "dep"]), ["deploy"]);
    assert_eq!(
        bash_complete(&["rollbridge", "deploy", "--rel"]),
        ["--release-path", "--release-id"]
    );
    assert_eq!(
        bash_complete(&["rollbridge", "restart", "--pol"]),
        ["--policy"]
    );
    assert_eq!(bash_complete(&["rollbridge", "completion", "z"]), ["zsh"]);
}

#[test]
fn commands_needing_a_daemon_fail_cleanly_without_one() {
    // Before a daemon exists the CLI still fails with a message and exit 1,
    // never a panic.
    let dir = TempDir::new("nodaemon");
    let path = dir.write(
        "rollbridge.json",
        &MINIMAL.replace("\"demo\"", &format!("\"nd{}\"", std::process::id())),
    );
    let r = run_in(dir.path(), &["status", "-c", &path], &[]);
    assert_eq!(r.code, 1);
    assert!(!r.stderr.is_empty());
    assert!(!r.stderr.contains("panicked"));
}

/// `validate --json` of a config whose one process is `process` (JSON).
fn validate_process(tag: &str, extra: &str, process: &str) -> serde_json::Value {
    let dir = TempDir::new(tag);
    let path = dir.write(
        "rollbridge.json",
        &format!(r#"{{"application":"v","proxy":{{"port":0}}{extra},"processes":[{process}]}}"#),
    );
    let r = run_in(dir.path(), &["validate", "--json", "-c", &path], &[]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    json(&r.stdout)
}

fn issue<'a>(report: &'a serde_json::Value, message: &str) -> &'a serde_json::Value {
    report["issues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["message"] == message)
        .unwrap_or_else(|| panic!("no issue {message:?} in {report}"))
}

#[test]
fn validate_names_an_unknown_placeholder_with_did_you_mean() {
    let r = validate_process(
        "tplunk",
        "",
        r#"{"id":"web","policy":"proxied","command":"serve --port {{prot}}","port":18000}"#,
    );
    let i = issue(
        &r,
        "processes[0].command uses unknown template placeholder {{prot}}",
    );
    let fix = i["fix"].as_str().unwrap();
    assert!(
        fix.starts_with("Did you mean {{port}}? Known placeholders: {{application}}"),
        "{fix}"
    );
    assert!(
        fix.contains("{{ports.<id>}}") && fix.contains("{{env.<NAME>}}"),
        "{fix}"
    );
}

#[test]
fn validate_rejects_a_control_path_longer_than_a_socket_allows() {
    let long = format!("/tmp/{}.sock", "x".repeat(110));
    let r = validate_process(
        "longsock",
        &format!(r#","control":{{"path":"{long}"}}"#),
        r#"{"id":"web","policy":"proxied","command":"x","port":18000}"#,
    );
    let msg = format!(
        "control.path is {} bytes long; a Unix socket path can be at most 107 bytes (108 including the terminating NUL on Linux)",
        long.len()
    );
    let fix = issue(&r, &msg)["fix"].as_str().unwrap().to_owned();
    assert!(fix.contains("/run/") && fix.contains("/tmp/"), "{fix}");
}

#[test]
fn validate_requires_health_paths_to_start_with_a_slash() {
    let r = validate_process(
        "hpath",
        "",
        r#"{"id":"web","policy":"proxied","command":"x","port":18000,"health":{"path":"ping"}}"#,
    );
    let fix = issue(&r, "processes[0].health.path must start with \"/\"")["fix"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(fix.contains("path: \"/ping\""), "{fix}");
}

#[test]
fn validate_rejects_a_negative_health_timeout() {
    let r = validate_process(
        "htimeout",
        "",
        r#"{"id":"web","policy":"proxied","command":"x","port":18000,"health":{"timeoutMs":-1}}"#,
    );
    issue(
        &r,
        "processes[0].health.timeoutMs must be a non-negative number",
    );
}

#[test]
fn syntax_error_fix_points_at_the_line_not_a_missing_file() {
    let dir = TempDir::new("syntaxfix");
    let path = dir.write(
        "rollbridge.json",
        "{\"application\": \"x\",\n \"proxy\": {}\n \"processes\": []}",
    );
    let r = run_in(dir.path(), &["validate", "-c", &path], &[]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains(&format!(
            "   Fix: Fix the syntax in {path} at line 3, column 2"
        )),
        "{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("Make sure the file exists"),
        "{}",
        r.stderr
    );
}

#[test]
fn help_describes_what_rollback_stop_and_predeploy_options_do() {
    let rollback = run(&["rollback", "--help"]).stdout;
    assert!(rollback.contains("retained release to re-activate (default: the most recently activated release other than the active one)"), "{rollback}");
    assert!(!rollback.contains("revision"), "{rollback}");
    let stop = run(&["stop", "--help"]).stdout;
    assert!(
        stop.contains("retained release to stop (default: the active release)"),
        "{stop}"
    );
    assert!(!stop.contains("revision"), "{stop}");
    let cleanup = run(&["predeploy-cleanup", "--help"]).stdout;
    assert!(
        cleanup.contains("release about to be deployed"),
        "{cleanup}"
    );
    assert!(!cleanup.contains("release to run"), "{cleanup}");
}

#[test]
fn demo_app_is_hidden_from_help_and_completion_but_runs() {
    assert!(!run(&["--help"]).stdout.contains("demo-app"));
    for shell in ["bash", "zsh", "fish"] {
        assert!(
            !run(&["completion", shell]).stdout.contains("demo-app"),
            "{shell}"
        );
    }
    let help = run(&["demo-app", "--help"]);
    assert_eq!(help.code, 0);
    assert!(help.stdout.starts_with("Usage: rollbridge demo-app"));
}

#[test]
fn policy_completion_offers_the_policies_not_file_names() {
    let bash = run(&["completion", "bash"]).stdout;
    assert!(
        bash.contains(
            "\"restart --policy\")\n      COMPREPLY=($(compgen -W \"proxied companion singleton service\""
        ),
        "{bash}"
    );
    let zsh = run(&["completion", "zsh"]).stdout;
    assert!(zsh.contains("\"restart --policy\") compadd -- proxied companion singleton service"));
}

#[test]
fn status_accepts_json_like_logs_and_events() {
    let dir = TempDir::new("statusjson");
    let path = dir.write("rollbridge.json", MINIMAL);
    let r = run_in(dir.path(), &["status", "--json", "-c", &path], &[]);
    // No daemon runs: a connect error, not an argument error.
    assert_eq!(r.code, 1);
    assert!(r.stderr.starts_with("connect ENOENT "), "{}", r.stderr);
}

/// `rollbridge man | head -1`: a reader that closed the pipe ends the
/// command quietly with exit 0, not with a panic about a broken pipe.
#[test]
fn a_closed_stdout_pipe_ends_the_command_quietly() {
    use std::os::fd::FromRawFd;
    use std::process::{Command, Stdio};
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two descriptors we then own.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // The reader is gone before the command writes a byte.
    // SAFETY: closing the read end we own.
    unsafe { libc::close(fds[0]) };
    // SAFETY: the write end is ours; Stdio takes it over.
    let write_end = unsafe { std::fs::File::from_raw_fd(fds[1]) };
    for args in [&["man"][..], &["help"][..], &["completion", "bash"][..]] {
        let out = Command::new(env!("CARGO_BIN_EXE_rollbridge"))
            .args(args)
            .stdout(Stdio::from(write_end.try_clone().unwrap()))
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}
