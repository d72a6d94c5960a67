//! Config: find the file, load it (JSON natively, JavaScript through
//! `node`), validate it into the normalized [`Config`].
//!
//! Downstream code only ever sees [`Config`]; raw values stay in here.

pub mod find;
pub mod model;
pub mod node;
pub mod raw;
pub mod static_js;
pub mod validate;

pub use model::*;
pub use validate::{Issue, Validation, invalid_config_message, validate};

use raw::Raw;

/// How the raw value was produced (reported by `validate --json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loader {
    /// Plain JSON, parsed natively.
    Json,
    /// A `.js` file of plain data, read natively without Node.
    Static,
    /// Evaluated by the host's `node`.
    Node,
}

impl Loader {
    pub fn as_str(self) -> &'static str {
        match self {
            Loader::Json => "json",
            Loader::Static => "static",
            Loader::Node => "node",
        }
    }
}

/// Environment variable that forces JavaScript configs through Node even
/// when the static reader could read them (`ROLLBRIDGE_CONFIG_LOADER=node`).
pub const LOADER_ENV: &str = "ROLLBRIDGE_CONFIG_LOADER";

/// Loads the raw value of the config at `path` (as resolved). `force_node`
/// (or `ROLLBRIDGE_CONFIG_LOADER=node`) skips the static reader.
pub fn load_raw(path: &str, force_node: bool) -> Result<(Raw, Loader), String> {
    if path.ends_with(".json") {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("Cannot read config {path}: {e}"))?;
        let raw = Raw::from_json(&text).map_err(|e| {
            format!(
                "Invalid JSON in {path} at line {}, column {}: {}",
                e.line(),
                e.column(),
                json_error_text(&e)
            )
        })?;
        return Ok((raw, Loader::Json));
    }
    // Read errors get a plain message before Node is even started.
    let text = std::fs::read(path).map_err(|e| format!("Cannot read config {path}: {e}"))?;
    let force_node = force_node || std::env::var(LOADER_ENV).is_ok_and(|v| v == "node");
    if !force_node {
        if let Some(kind) = module_kind(path) {
            if let Ok(src) = std::str::from_utf8(&text) {
                match static_js::read(src, kind) {
                    static_js::Outcome::Value(raw) => return Ok((raw, Loader::Static)),
                    static_js::Outcome::Error(e) => {
                        return Err(format!("Failed to load {path}: {e}"));
                    }
                    static_js::Outcome::Fallback(_) => {}
                }
            }
        }
    }
    node::evaluate(path).map(|raw| (raw, Loader::Node))
}

/// Which top-level forms the static reader may accept for `path`, as Node
/// would load it; `None` leaves the file to Node.
fn module_kind(path: &str) -> Option<static_js::ModuleKind> {
    use static_js::ModuleKind;
    if path.ends_with(".mjs") {
        return Some(ModuleKind::Esm);
    }
    if path.ends_with(".cjs") {
        return Some(ModuleKind::CommonJs);
    }
    if !path.ends_with(".js") {
        return None;
    }
    // `module.exports` in a `.js` file throws under `"type": "module"`.
    let abs = find::absolute(path);
    let mut dir = abs.parent();
    while let Some(d) = dir {
        let candidate = d.join("package.json");
        if let Ok(text) = std::fs::read_to_string(&candidate) {
            let pkg = Raw::from_json(&text).ok()?;
            let is_module = pkg.get("type").and_then(Raw::as_str) == Some("module");
            return Some(ModuleKind::Either {
                allow_commonjs: !is_module,
            });
        }
        dir = d.parent();
    }
    Some(ModuleKind::Either {
        allow_commonjs: true,
    })
}

/// serde_json's message without its own " at line L column C" suffix.
fn json_error_text(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

/// Everything `validate` needs to report on one config file.
pub struct Checked {
    /// The path as resolved (explicit as typed, or the absolute default).
    pub path: String,
    pub loader: Option<Loader>,
    /// `Err` holds a load error (one issue for `validate`).
    pub outcome: Result<Validation, String>,
}

/// Resolves, loads and validates, keeping load errors as data.
/// `Err` only when no config path could be resolved.
pub fn check(explicit: Option<&str>) -> Result<Checked, String> {
    check_with(explicit, false)
}

/// [`check`], optionally forcing JavaScript configs through Node.
pub fn check_with(explicit: Option<&str>, force_node: bool) -> Result<Checked, String> {
    let cwd =
        std::env::current_dir().map_err(|e| format!("Cannot read the current directory: {e}"))?;
    let path = find::resolve(explicit, &cwd)?;
    let (loader, outcome) = match load_raw(&path, force_node) {
        Ok((raw, loader)) => (
            Some(loader),
            Ok(validate(&raw, std::path::Path::new(&path))),
        ),
        Err(e) => (None, Err(e)),
    };
    Ok(Checked {
        path,
        loader,
        outcome,
    })
}

/// A config that passed validation.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub path: String,
    pub config: Config,
    pub warnings: Vec<Issue>,
}

/// Resolves, loads and validates; any problem is one error message (the
/// aggregated `Invalid Rollbridge config:` text for validation issues).
pub fn load(explicit: Option<&str>) -> Result<Loaded, String> {
    let checked = check(explicit)?;
    let validation = checked.outcome?;
    if !validation.is_valid() {
        return Err(invalid_config_message(&validation.issues));
    }
    Ok(Loaded {
        path: checked.path,
        config: validation.config,
        warnings: validation.warnings,
    })
}
