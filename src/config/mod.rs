//! Config: find the file, load it (JSON natively, JavaScript through
//! `node`), validate it into the normalized [`Config`].
//!
//! Downstream code only ever sees [`Config`]; raw values stay in here.

pub mod find;
pub mod model;
mod node;
pub mod raw;
pub mod validate;

pub use model::*;
pub use validate::{Issue, Validation, invalid_config_message, validate};

use raw::Raw;

/// How the raw value was produced (reported by `validate --json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loader {
    /// Plain JSON, parsed natively.
    Json,
    /// Evaluated by the host's `node`.
    Node,
}

impl Loader {
    pub fn as_str(self) -> &'static str {
        match self {
            Loader::Json => "json",
            Loader::Node => "node",
        }
    }
}

/// Loads the raw value of the config at `path` (as resolved).
pub fn load_raw(path: &str) -> Result<(Raw, Loader), String> {
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
    if let Err(e) = std::fs::metadata(path) {
        return Err(format!("Cannot read config {path}: {e}"));
    }
    node::evaluate(path).map(|raw| (raw, Loader::Node))
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
    let cwd =
        std::env::current_dir().map_err(|e| format!("Cannot read the current directory: {e}"))?;
    let path = find::resolve(explicit, &cwd)?;
    let (loader, outcome) = match load_raw(&path) {
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
