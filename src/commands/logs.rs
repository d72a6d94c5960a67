//! `rollbridge logs`: flattens `status` into sources (each
//! release x its processes, then services, then singletons) and prints
//! their captured lines.

use serde_json::{Value, json};

use std::io::Write;

use super::follow::{self, Printer, Seen};
use crate::cli::Args;
use crate::control::client;

pub fn run(args: &Args) -> i32 {
    if args.follow {
        let mut request = json!({"command": "logs", "follow": true});
        if let Some(p) = &args.process {
            request["process"] = p.as_str().into();
        }
        let mut printer = Follow {
            process: args.process.clone(),
            json: args.json,
            seen: Seen::default(),
            header: None,
        };
        return follow::run(args, &request.to_string(), &mut printer);
    }
    let line = match super::status::send(
        args,
        r#"{"command":"status"}"#,
        Some(client::DEFAULT_TIMEOUT),
    ) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let status: Value = match serde_json::from_str(&line) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("Invalid status from the Rollbridge daemon: {e}");
            return 1;
        }
    };
    let all = sources(&status);
    let picked: Vec<&Source> = all
        .iter()
        .filter(|s| args.process.as_deref().is_none_or(|p| selects(p, &s.id)))
        .collect();
    if args.json {
        let out: Vec<Value> = picked
            .iter()
            .map(|s| json!({"id": s.id, "logs": s.logs, "source": s.source}))
            .collect();
        crate::outln!(
            "{}",
            serde_json::to_string_pretty(&out).unwrap_or_else(|_| "[]".into())
        );
        return 0;
    }
    if all.is_empty() {
        crate::outln!("No managed processes.");
        return 0;
    }
    if picked.is_empty() {
        crate::outln!(
            "No process found with id \"{}\".",
            args.process.as_deref().unwrap_or_default()
        );
        return 0;
    }
    crate::outln!("{}", render(&picked));
    0
}

/// `--process` picks an instance id exactly, or every instance of a base id
/// (`worker` picks `worker#0`, `worker#1`), as help and `restart` promise.
pub fn selects(wanted: &str, id: &str) -> bool {
    id == wanted
        || id
            .strip_prefix(wanted)
            .and_then(|rest| rest.strip_prefix('#'))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

pub struct Source {
    pub id: String,
    pub source: String,
    pub logs: Vec<Value>,
}

/// Release processes first (status order), then services, then singletons.
pub fn sources(status: &Value) -> Vec<Source> {
    let mut out = Vec::new();
    let list = |v: &Value, key: &str| {
        v.get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).unwrap_or("").to_owned();
    for release in list(status, "releases") {
        let source = format!(
            "release {} ({})",
            text(&release, "releaseId"),
            text(&release, "state")
        );
        for p in list(&release, "processes") {
            out.push(Source {
                id: text(&p, "id"),
                source: source.clone(),
                logs: list(&p, "logs"),
            });
        }
    }
    for (key, source) in [("services", "service"), ("singletons", "singleton")] {
        for entry in list(status, key) {
            let process = entry.get("process").cloned().unwrap_or(Value::Null);
            out.push(Source {
                id: text(&entry, "id"),
                source: source.into(),
                logs: list(&process, "logs"),
            });
        }
    }
    out
}

/// Human sections joined by one blank line.
pub fn render(sources: &[&Source]) -> String {
    sources
        .iter()
        .map(|s| {
            let mut section = format!("== {} [{}] ==", s.id, s.source);
            if s.logs.is_empty() {
                section.push_str("\n  (no recent output)");
            }
            for l in &s.logs {
                let field = |k: &str| l.get(k).and_then(Value::as_str).unwrap_or("");
                section.push_str(&format!(
                    "\n  {} [{}] {}",
                    field("at"),
                    field("stream"),
                    field("line")
                ));
            }
            section
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// `logs --follow`: what is there (as without `--follow`), then each new
/// line under a `== id [source] ==` header when the source changes; with
/// `--json`, one `{"id","logs":[line],"source"}` object per line.
struct Follow {
    process: Option<String>,
    json: bool,
    seen: Seen,
    /// The section the last printed line belongs to.
    header: Option<(String, String)>,
}

impl Printer for Follow {
    fn first(&mut self, status: &Value, out: &mut dyn Write) -> std::io::Result<()> {
        let all = sources(status);
        let picked: Vec<&Source> = all
            .iter()
            .filter(|s| self.process.as_deref().is_none_or(|p| selects(p, &s.id)))
            .collect();
        for s in &picked {
            for l in &s.logs {
                self.seen.remember(json!({"id": s.id, "line": l}));
                if self.json {
                    let entry = json!({"id": s.id, "logs": [l], "source": s.source});
                    writeln!(out, "{entry}")?;
                }
            }
        }
        if !self.json && !picked.is_empty() {
            writeln!(out, "{}", render(&picked))?;
            if let Some(last) = picked.last() {
                self.header = Some((last.id.clone(), last.source.clone()));
            }
        }
        Ok(())
    }

    fn item(&mut self, entry: &Value, out: &mut dyn Write) -> std::io::Result<()> {
        let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        let (id, source) = (text(entry, "id"), text(entry, "source"));
        let lines = entry.get("logs").and_then(Value::as_array);
        for l in lines.into_iter().flatten() {
            if self.seen.repeat(&json!({"id": id, "line": l})) {
                continue;
            }
            if self.json {
                writeln!(out, "{}", json!({"id": id, "logs": [l], "source": source}))?;
                continue;
            }
            let here = (id.clone(), source.clone());
            if self.header.as_ref() != Some(&here) {
                if self.header.is_some() {
                    writeln!(out)?;
                }
                writeln!(out, "== {id} [{source}] ==")?;
                self.header = Some(here);
            }
            writeln!(
                out,
                "  {} [{}] {}",
                text(l, "at"),
                text(l, "stream"),
                text(l, "line")
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status() -> Value {
        json!({
            "releases": [{"releaseId": "v1", "state": "active", "processes": [
                {"id": "web", "logs": [{"at": "2026-05-22T00:00:00.000Z", "line": "listening", "stream": "stdout"}]}
            ]}],
            "services": [{"id": "beacon", "process": {"id": "beacon", "logs": []}}],
            "singletons": []
        })
    }

    #[test]
    fn base_id_selects_every_instance() {
        assert!(selects("worker", "worker#0"));
        assert!(selects("worker", "worker#12"));
        assert!(selects("worker#1", "worker#1"));
        assert!(selects("web", "web"));
        assert!(!selects("worker", "worker-2#0"));
        assert!(!selects("worker", "worker#"));
        assert!(!selects("worker#1", "worker#10"));
    }

    #[test]
    fn sources_flatten_releases_then_services() {
        let s = sources(&status());
        let names: Vec<_> = s
            .iter()
            .map(|s| (s.id.as_str(), s.source.as_str()))
            .collect();
        assert_eq!(
            names,
            [("web", "release v1 (active)"), ("beacon", "service")]
        );
    }

    #[test]
    fn human_output_matches_the_contract_layout() {
        let s = sources(&status());
        let refs: Vec<&Source> = s.iter().collect();
        assert_eq!(
            render(&refs),
            "== web [release v1 (active)] ==\n  2026-05-22T00:00:00.000Z [stdout] listening\n\n== beacon [service] ==\n  (no recent output)"
        );
    }
}
