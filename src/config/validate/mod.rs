//! Validation: raw config in, normalized [`Config`] plus every issue out.
//!
//! One pass collects all issues in the order the contract fixes;
//! an invalid value is replaced by its default so the normalized config is
//! always complete. Unknown keys never fail validation; they become
//! warnings with a did-you-mean (see [`unknown`]).

mod cross;
mod load_fix;
mod paths;
mod process;
mod rules;
mod sections;
mod templates;
mod unknown;

use std::path::Path;

use serde::Serialize;

use super::model::Config;
use super::raw::Raw;
pub use load_fix::load_error_fix;
use rules::Issues;
pub use rules::{fmt_num, ms};

/// One validation finding: `message` names the field by path, `fix` is a
/// concrete, example-bearing suggestion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Issue {
    pub fix: String,
    pub message: String,
}

/// The outcome of validating one raw config.
#[derive(Debug, Clone)]
pub struct Validation {
    /// Best-effort normalized config; only trustworthy when `issues` is empty.
    pub config: Config,
    pub issues: Vec<Issue>,
    /// Unknown keys (probable typos). They never make a config invalid.
    pub warnings: Vec<Issue>,
}

impl Validation {
    pub fn is_valid(&self) -> bool {
        self.issues.is_empty()
    }
}

/// Validates `raw`, loaded from `config_path` (used for the default
/// `application`: the basename of the directory holding the file).
pub fn validate(raw: &Raw, config_path: &Path) -> Validation {
    let mut issues = Issues::default();
    let empty = Raw::Object(Vec::new());
    let root = match raw {
        Raw::Object(_) => raw,
        _ => {
            issues.push(
                "Config must be an object",
                "Default-export an object with application, proxy and processes, e.g. export default {application: \"app\", proxy: {}, processes: [...]}.",
            );
            &empty
        }
    };

    let application = issues.defaulted_string(
        root,
        "application",
        "application",
        &default_application(config_path),
    );
    let proxy_raw = sections::presence(&mut issues, root);
    let proxy = sections::proxy(&mut issues, proxy_raw.proxy);
    let control = sections::control(&mut issues, proxy_raw.control, &application);
    let processes = process::processes(&mut issues, proxy_raw.processes, &proxy);
    let legacy_takeover = sections::legacy_takeover(&mut issues, root, &proxy);
    let release_retention = sections::release_retention(&mut issues, root);
    let state_path = sections::state_path(&mut issues, root);
    let adopt_orphans = sections::adopt_orphans(&mut issues, root, state_path.is_some());
    let admin = sections::admin(&mut issues, root, &proxy);
    let auto_rollback = sections::auto_rollback(&mut issues, root);
    cross::check(&mut issues, &processes);
    templates::check(&mut issues, &processes);

    let warnings = unknown::warnings(root);
    Validation {
        config: Config {
            application,
            control,
            proxy,
            release_retention,
            state_path,
            adopt_orphans,
            legacy_takeover,
            processes: processes.into_iter().map(|p| p.config).collect(),
            admin,
            auto_rollback,
        },
        issues: issues.list,
        warnings,
    }
}

/// Basename of the directory that contains the config file.
fn default_application(config_path: &Path) -> String {
    let abs = if config_path.is_absolute() {
        config_path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(config_path))
            .unwrap_or_else(|_| config_path.to_path_buf())
    };
    let abs = super::find::normalize_lexically(&abs);
    abs.parent()
        .and_then(|d| d.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The aggregated error every command but `validate`/`doctor` fails with.
pub fn invalid_config_message(issues: &[Issue]) -> String {
    let mut out = String::from("Invalid Rollbridge config:");
    for issue in issues {
        out.push_str("\n  - ");
        out.push_str(&issue.message);
    }
    out
}

#[cfg(test)]
mod tests;
