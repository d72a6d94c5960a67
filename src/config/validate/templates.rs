//! Template placeholders in `command`, `cwd` and `env` values: every one
//! must be something a deploy can fill in, or the deploy would fail later
//! with "Missing template value". Checked after the cross-process rules,
//! since `{{ports.<id>}}` depends on the other processes.

use super::process::Checked;
use super::rules::Issues;
use crate::suggest::did_you_mean;
use crate::template::{KNOWN_PLACEHOLDERS, placeholders};

/// Plain keys that need nothing else to resolve: the known placeholders
/// but `port` (needs a port of the process's own) and the patterns
/// (`ports.<id>`, `env.<NAME>`).
fn plain() -> impl Iterator<Item = &'static str> {
    KNOWN_PLACEHOLDERS
        .iter()
        .copied()
        .filter(|k| *k != "port" && !k.contains('<'))
}

pub fn check(issues: &mut Issues, processes: &[Checked]) {
    let ported: Vec<&str> = processes
        .iter()
        .filter(|p| p.config.port.is_some() && !p.config.id.is_empty())
        .map(|p| p.config.id.as_str())
        .collect();
    for (i, p) in processes.iter().enumerate() {
        let c = &p.config;
        let base = format!("processes[{i}]");
        let mut fields: Vec<(String, &str)> = vec![(format!("{base}.command"), &c.command)];
        if let Some(cwd) = &c.cwd {
            fields.push((format!("{base}.cwd"), cwd));
        }
        for (key, value) in &c.env {
            fields.push((format!("{base}.env.{key}"), value));
        }
        for (field, text) in fields {
            for (written, key) in placeholders(text) {
                if let Some((message, fix)) = problem(written, key, c.port.is_some(), &ported) {
                    issues.push(format!("{field} uses {message}"), fix);
                }
            }
        }
    }
}

/// Why `key` (written as `written`) cannot be filled in at deploy: the
/// message after "<field> uses", and the fix.
fn problem(written: &str, key: &str, has_port: bool, ported: &[&str]) -> Option<(String, String)> {
    if plain().any(|k| k == key) || key.strip_prefix("env.").is_some_and(|n| !n.is_empty()) {
        return None;
    }
    if key == "port" {
        if has_port {
            return None;
        }
        return Some((
            format!("{written}, but the process has no port"),
            "Give the process a port, e.g. port: {from: 18000, to: 18099}, or use {{ports.<id>}} \
             of a process that has one."
                .into(),
        ));
    }
    if let Some(id) = key.strip_prefix("ports.") {
        if ported.contains(&id) {
            return None;
        }
        let mut fix = String::new();
        if let Some(s) = did_you_mean(id, ported.iter().copied()) {
            fix.push_str(&format!("Did you mean {{{{ports.{s}}}}}? "));
        }
        match ported {
            [] => fix.push_str("No process in this config has a port; give one a port range."),
            _ => fix.push_str(&format!(
                "Use {{{{ports.<id>}}}} with a process that has a port: {}.",
                ported.join(", ")
            )),
        }
        return Some((
            format!("{written}, but no process \"{id}\" defines a port"),
            fix,
        ));
    }
    if matches!(key, "ports" | "proxy" | "env") {
        return Some((
            format!("{written}, which is an object, not text"),
            format!("Use one of its members, e.g. {}.", members_of(key)),
        ));
    }
    let mut candidates: Vec<String> = plain().map(str::to_owned).collect();
    candidates.push("port".into());
    candidates.extend(ported.iter().map(|id| format!("ports.{id}")));
    let mut fix = String::new();
    if let Some(s) = did_you_mean(key, candidates.iter().map(String::as_str)) {
        fix.push_str(&format!("Did you mean {{{{{s}}}}}? "));
    }
    let known: Vec<String> = KNOWN_PLACEHOLDERS
        .iter()
        .map(|k| format!("{{{{{k}}}}}"))
        .collect();
    fix.push_str(&format!("Known placeholders: {}.", known.join(", ")));
    Some((format!("unknown template placeholder {written}"), fix))
}

fn members_of(key: &str) -> &'static str {
    match key {
        "ports" => "{{ports.<id>}}",
        "proxy" => "{{proxy.host}} or {{proxy.port}}",
        _ => "{{env.HOME}}",
    }
}
