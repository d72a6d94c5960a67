//! The docs cannot lie: every config block in README.md and docs/*.md is
//! validated by the real binary, every `rollbridge …` command line in a
//! shell block parses with the real command table, and every relative link
//! points at a file that exists.
//!
//! A fenced block is a config when its language is `js`, `javascript`,
//! `mjs` or `json` and it mentions `processes`; a block that shows only part
//! of a config says so with `<!-- fragment -->` on the line before it.

use rollbridge::cli::parse::{Parsed, parse};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Block {
    file: PathBuf,
    line: usize,
    lang: String,
    text: String,
    fragment: bool,
}

fn pages() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut pages = vec![root.join("README.md")];
    for dir in ["docs", "examples"] {
        collect(&root.join(dir), &mut pages);
    }
    let changelog = root.join("CHANGELOG.md");
    if changelog.exists() {
        pages.push(changelog);
    }
    pages.sort();
    pages
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, out);
        } else if p.extension().is_some_and(|x| x == "md") {
            out.push(p);
        }
    }
}

fn blocks(file: &Path) -> Vec<Block> {
    let text = std::fs::read_to_string(file).unwrap();
    let mut out = Vec::new();
    let mut open: Option<Block> = None;
    let mut prev = "";
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix("```") {
            match open.take() {
                Some(b) => out.push(b),
                None => {
                    open = Some(Block {
                        file: file.to_owned(),
                        line: i + 1,
                        lang: rest.trim().to_lowercase(),
                        text: String::new(),
                        fragment: prev.trim() == "<!-- fragment -->",
                    })
                }
            }
        } else if let Some(b) = open.as_mut() {
            b.text.push_str(line);
            b.text.push('\n');
        }
        prev = line;
    }
    out
}

fn rollbridge() -> &'static str {
    env!("CARGO_BIN_EXE_rollbridge")
}

#[test]
fn every_config_block_in_the_docs_validates() {
    let tmp = std::env::temp_dir().join(format!("rb-docs-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let mut checked = 0;
    let mut failures = Vec::new();
    for page in pages() {
        for b in blocks(&page) {
            let ext = match b.lang.as_str() {
                "js" | "javascript" => "js",
                "mjs" => "mjs",
                "json" => "json",
                _ => continue,
            };
            if b.fragment || !b.text.contains("processes") {
                continue;
            }
            let cfg = tmp.join(format!("rollbridge-{checked}.{ext}"));
            std::fs::write(&cfg, &b.text).unwrap();
            let out = Command::new(rollbridge())
                .arg("validate")
                .arg("--config")
                .arg(&cfg)
                .env("NO_COLOR", "1")
                .output()
                .unwrap();
            checked += 1;
            if !out.status.success() {
                failures.push(format!(
                    "{}:{}: {}{}",
                    b.file.display(),
                    b.line,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    assert!(checked > 0, "no config block found");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Splits one shell command line into words (quotes, no expansions) and
/// stops at what ends a simple command: `#`, `|`, `;`, `&`, redirections.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut has = false;
    let mut quote: Option<char> = None;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => cur.push(c),
            None => match c {
                '\'' | '"' => {
                    quote = Some(c);
                    has = true;
                }
                '#' if !has => break,
                // A `<placeholder>` is a word, not a redirection.
                '<' if chars.peek().is_some_and(|n| n.is_alphanumeric()) => {
                    cur.push(c);
                    for n in chars.by_ref() {
                        cur.push(n);
                        if n == '>' {
                            break;
                        }
                    }
                    has = true;
                }
                '|' | ';' | '&' | '>' | '<' => break,
                c if c.is_whitespace() => {
                    if has {
                        out.push(std::mem::take(&mut cur));
                        has = false;
                    }
                }
                c => {
                    cur.push(c);
                    has = true;
                }
            },
        }
    }
    if has {
        out.push(cur);
    }
    out
}

/// The `rollbridge` invocations of a shell block: (line, args after the
/// program name).
fn invocations(b: &Block) -> Vec<(usize, Vec<String>)> {
    let mut out = Vec::new();
    let mut joined = String::new();
    let mut start = 0;
    for (i, raw) in b.text.lines().enumerate() {
        if joined.is_empty() {
            start = b.line + 1 + i;
        }
        if let Some(cont) = raw.strip_suffix('\\') {
            joined.push_str(cont);
            joined.push(' ');
            continue;
        }
        joined.push_str(raw);
        let line = std::mem::take(&mut joined);
        let mut w = words(line.trim_start().trim_start_matches("$ "));
        // Leading `sudo` and VAR=value assignments.
        while w
            .first()
            .is_some_and(|x| x == "sudo" || (x.contains('=') && !x.starts_with('-')))
        {
            w.remove(0);
        }
        let is_rb = w
            .first()
            .is_some_and(|p| p == "rollbridge" || p.ends_with("/rollbridge") || p == "\"$bin\"");
        if is_rb {
            out.push((start, w[1..].to_vec()));
        }
    }
    out
}

#[test]
fn every_rollbridge_command_line_in_the_docs_parses() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for page in pages() {
        for b in blocks(&page) {
            if !matches!(b.lang.as_str(), "sh" | "bash" | "shell" | "console" | "") {
                continue;
            }
            for (line, args) in invocations(&b) {
                checked += 1;
                let argv: Vec<OsString> = std::iter::once(OsString::from("rollbridge"))
                    .chain(args.iter().map(OsString::from))
                    .collect();
                let message = match parse(argv.into_iter().skip(1)) {
                    Parsed::Error { message, .. } | Parsed::Invalid(message) => Some(message),
                    _ => None,
                };
                if let Some(message) = message {
                    failures.push(format!(
                        "{}:{line}: rollbridge {}: {message}",
                        b.file.display(),
                        args.join(" ")
                    ));
                }
            }
        }
    }
    assert!(checked > 0, "no rollbridge command line found");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// docs/cli.md is generated from the command table; a change to a command,
/// an option or its help must be carried into the page.
#[test]
fn cli_reference_page_matches_the_command_table() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/cli.md");
    let want = rollbridge::cli::reference::markdown();
    if std::env::var_os("ROLLBRIDGE_BLESS").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "docs/cli.md differs from the command table; regenerate it with \
         `ROLLBRIDGE_BLESS=1 cargo test --test docs_check cli_reference`"
    );
}

#[test]
fn every_relative_link_in_the_docs_resolves() {
    let mut failures = Vec::new();
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        let dir = page.parent().unwrap();
        let mut in_code = false;
        for (i, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("```") {
                in_code = !in_code;
                continue;
            }
            if in_code {
                continue;
            }
            let mut rest = line;
            while let Some(at) = rest.find("](") {
                let after = &rest[at + 2..];
                let Some(end) = after.find(')') else { break };
                let target = after[..end].split_whitespace().next().unwrap_or("");
                rest = &after[end..];
                if target.is_empty()
                    || target.starts_with('#')
                    || target.contains("://")
                    || target.starts_with("mailto:")
                {
                    continue;
                }
                let path = target.split('#').next().unwrap_or(target);
                if !dir.join(path).exists() {
                    failures.push(format!("{}:{}: {target}", page.display(), i + 1));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "broken links:\n{}",
        failures.join("\n")
    );
}

#[test]
fn word_splitting_stops_at_shell_operators() {
    assert_eq!(
        words("rollbridge status --json | jq .  # x"),
        ["rollbridge", "status", "--json"]
    );
    assert_eq!(
        words("rollbridge man > /usr/share/man/man1/rollbridge.1"),
        ["rollbridge", "man"]
    );
    assert_eq!(
        words(r#"rollbridge maintenance on --message "Back soon""#),
        ["rollbridge", "maintenance", "on", "--message", "Back soon"]
    );
    assert_eq!(
        words("rollbridge deploy --release-path <path>"),
        ["rollbridge", "deploy", "--release-path", "<path>"]
    );
}
