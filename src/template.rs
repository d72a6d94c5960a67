//! `{{...}}` templates for `command`, `cwd` and `env` values, and the
//! injected `ROLLBRIDGE_*` environment.

use crate::config::{ProcessConfig, ProxyConfig};

/// Everything a placeholder can refer to, for one process instance.
pub struct Context<'a> {
    pub application: &'a str,
    pub release_id: &'a str,
    /// `--release-path` exactly as sent by the CLI.
    pub release_path: &'a str,
    pub revision: &'a str,
    /// Base process id (never `id#n`).
    pub process_id: &'a str,
    pub replica_index: u32,
    pub replica_count: u32,
    /// This instance's allocated port.
    pub port: Option<u16>,
    /// Allocated port of every ported process in the release, in config order.
    pub ports: &'a [(String, u16)],
    pub proxy: &'a ProxyConfig,
    /// `{{env.NAME}}` lookup: the daemon's environment at render time.
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

/// What a placeholder key resolves to.
enum Value {
    Text(String),
    /// An object such as `{{ports}}` or `{{proxy}}`: not renderable.
    Object,
    Missing,
}

impl Context<'_> {
    fn lookup(&self, key: &str) -> Value {
        let text = |s: &str| Value::Text(s.to_owned());
        let (head, rest) = match key.split_once('.') {
            Some((h, r)) => (h, Some(r)),
            None => (key, None),
        };
        match (head, rest) {
            ("application", None) => text(self.application),
            ("releaseId", None) => text(self.release_id),
            ("releasePath", None) => text(self.release_path),
            ("revision", None) => text(self.revision),
            ("processId", None) => text(self.process_id),
            ("replicaIndex", None) => Value::Text(self.replica_index.to_string()),
            ("replicaCount", None) => Value::Text(self.replica_count.to_string()),
            ("port", None) => match self.port {
                Some(p) => Value::Text(p.to_string()),
                None => Value::Missing,
            },
            // The whole rest is the id, so ids containing "." still resolve.
            ("ports", Some(id)) => self
                .ports
                .iter()
                .find(|(pid, _)| pid == id)
                .map_or(Value::Missing, |(_, p)| Value::Text(p.to_string())),
            ("proxy", Some("host")) => text(&self.proxy.host),
            ("proxy", Some("port")) => Value::Text(self.proxy.port.to_string()),
            ("proxy", Some("upstreamHost")) => text(&self.proxy.upstream_host),
            ("env", Some(name)) => (self.env)(name).map_or(Value::Missing, Value::Text),
            ("ports" | "proxy" | "env", None) => Value::Object,
            _ => Value::Missing,
        }
    }
}

/// Renders one template string. Errors name the placeholder as written.
pub fn render(template: &str, ctx: &Context) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let candidate = &rest[start..];
        match match_placeholder(candidate) {
            Some((len, key)) => {
                let written = &candidate[..len];
                match ctx.lookup(key) {
                    Value::Text(t) => out.push_str(&t),
                    Value::Missing => return Err(format!("Missing template value for {written}")),
                    Value::Object => {
                        return Err(format!(
                            "Template value {written} is an object, not text; use one of its members such as {{{{{key}.<name>}}}}"
                        ));
                    }
                }
                rest = &candidate[len..];
            }
            None => {
                // Not a placeholder: keep one `{` and rescan from the next.
                out.push('{');
                rest = &candidate[1..];
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The placeholders a template uses, as `(written, key)` pairs in order:
/// `"{{ port }}"` gives `("{{ port }}", "port")`.
pub fn placeholders(template: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let candidate = &rest[start..];
        match match_placeholder(candidate) {
            Some((len, key)) => {
                out.push((&candidate[..len], key));
                rest = &candidate[len..];
            }
            None => rest = &candidate[1..],
        }
    }
    out
}

/// Every placeholder a process template can use, as users write them.
pub const KNOWN_PLACEHOLDERS: [&str; 13] = [
    "application",
    "releaseId",
    "releasePath",
    "revision",
    "processId",
    "replicaIndex",
    "replicaCount",
    "port",
    "ports.<id>",
    "proxy.host",
    "proxy.port",
    "proxy.upstreamHost",
    "env.<NAME>",
];

/// Matches `{{ key }}` at the start of `s`: returns (length, key).
fn match_placeholder(s: &str) -> Option<(usize, &str)> {
    let inner = s.strip_prefix("{{")?;
    let trimmed = inner.trim_start();
    let key_len = trimmed
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        .count();
    if key_len == 0 {
        return None;
    }
    let key = &trimmed[..key_len];
    let after = trimmed[key_len..].trim_start();
    after.strip_prefix("}}")?;
    Some((s.len() - after.len() + 2, key))
}

/// A process definition with its templates rendered for one instance.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub command: String,
    /// Rendered `cwd`; the release path when unset or empty.
    pub cwd: String,
    /// The process's own `env`, rendered, in config order.
    pub env: Vec<(String, String)>,
}

/// Renders `command`, `cwd` and every `env` value. An error names the
/// process and field as well as the placeholder.
pub fn render_process(p: &ProcessConfig, ctx: &Context) -> Result<Rendered, String> {
    render_fields(p, ctx).map_err(|(name, e)| format!("{e} (process \"{}\", {name})", p.id))
}

/// [`render_process`] with the failing field and the bare placeholder
/// error apart: `doctor` reports `<id>: <error>` as the original does.
pub fn render_fields(p: &ProcessConfig, ctx: &Context) -> Result<Rendered, (String, String)> {
    let field = |name: &str, t: &str| render(t, ctx).map_err(|e| (name.to_owned(), e));
    let command = field("command", &p.command)?;
    let cwd = match p.cwd.as_deref() {
        Some(c) if !c.is_empty() => field("cwd", c)?,
        _ => String::new(),
    };
    let cwd = if cwd.is_empty() {
        ctx.release_path.to_owned()
    } else {
        cwd
    };
    let mut env = Vec::with_capacity(p.env.len());
    for (k, v) in &p.env {
        env.push((k.clone(), field(&format!("env.{k}"), v)?));
    }
    Ok(Rendered { command, cwd, env })
}

/// `ROLLBRIDGE_<ID>_PORT` name part: runs of non-alphanumerics become one
/// `_`, then upper case (`background-jobs-main` -> `BACKGROUND_JOBS_MAIN`).
pub fn env_id(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    let mut in_run = false;
    for c in id.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_uppercase());
            in_run = false;
        } else if !in_run {
            out.push('_');
            in_run = true;
        }
    }
    out
}

/// The injected `ROLLBRIDGE_*` variables for one instance.
pub fn injected_env(ctx: &Context) -> Vec<(String, String)> {
    let mut env = vec![
        (
            "ROLLBRIDGE_APPLICATION".to_owned(),
            ctx.application.to_owned(),
        ),
        (
            "ROLLBRIDGE_PROCESS_ID".to_owned(),
            ctx.process_id.to_owned(),
        ),
        (
            "ROLLBRIDGE_REPLICA_INDEX".to_owned(),
            ctx.replica_index.to_string(),
        ),
        (
            "ROLLBRIDGE_REPLICA_COUNT".to_owned(),
            ctx.replica_count.to_string(),
        ),
        (
            "ROLLBRIDGE_RELEASE_ID".to_owned(),
            ctx.release_id.to_owned(),
        ),
        (
            "ROLLBRIDGE_RELEASE_PATH".to_owned(),
            ctx.release_path.to_owned(),
        ),
        ("ROLLBRIDGE_REVISION".to_owned(), ctx.revision.to_owned()),
    ];
    if let Some(port) = ctx.port {
        env.push(("ROLLBRIDGE_PORT".to_owned(), port.to_string()));
    }
    for (id, port) in ctx.ports {
        env.push((format!("ROLLBRIDGE_{}_PORT", env_id(id)), port.to_string()));
    }
    env
}

/// Final environment of a managed process, lowest precedence first: the
/// daemon's own, the injected variables, then the process's rendered `env`.
/// Later entries override earlier ones with the same name.
pub fn merge_env(layers: &[&[(String, String)]]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for layer in layers {
        for (k, v) in layer.iter() {
            match out.iter_mut().find(|(ok, _)| ok == k) {
                Some(slot) => slot.1 = v.clone(),
                None => out.push((k.clone(), v.clone())),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
