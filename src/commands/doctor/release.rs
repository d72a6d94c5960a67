//! Release checks (`--release-path`): the directory exists, every process's
//! templates render ahead of the deploy (the contract: ports = range
//! `from`, replica 0) and every rendered working directory exists.

use std::path::{Path, PathBuf};

use super::Check;
use crate::config::find::{absolute, normalize_lexically};
use crate::config::{Config, ProcessConfig};
use crate::template::{Context, render_fields};

/// `--release-id` / `--revision` as given.
#[derive(Clone, Copy)]
pub struct Ids<'a> {
    pub release_id: Option<&'a str>,
    pub revision: Option<&'a str>,
}

pub fn checks(cfg: &Config, release_path: &str, ids: Ids) -> Vec<Check> {
    let abs = absolute(release_path);
    let shown = abs.to_string_lossy().into_owned();
    let release = if abs.is_dir() {
        Check::pass("release path", format!("{shown} exists"))
    } else {
        Check::fail(
            "release path",
            format!("{shown} is missing or not a directory"),
        )
    };
    let basename = abs
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let release_id = ids.release_id.or(ids.revision).unwrap_or(&basename);
    let revision = ids.revision.unwrap_or(release_id);
    let ports: Vec<(String, u16)> = cfg
        .processes
        .iter()
        .filter_map(|p| p.port.map(|r| (p.id.clone(), r.from)))
        .collect();
    let env = |name: &str| std::env::var(name).ok();

    let mut errors = Vec::new();
    let mut cwds = Vec::new();
    for p in &cfg.processes {
        let ctx = Context {
            application: &cfg.application,
            release_id,
            release_path: &shown,
            revision,
            process_id: &p.id,
            replica_index: 0,
            replica_count: p.replicas,
            port: p.port.map(|r| r.from),
            ports: &ports,
            proxy: &cfg.proxy,
            env: &env,
        };
        match render_fields(p, &ctx) {
            Ok(r) => cwds.push((p, resolve_cwd(&abs, &r.cwd))),
            Err((_, e)) => errors.push(format!("{}: {e}", p.id)),
        }
    }
    vec![
        release,
        templates_check(cfg.processes.len(), &errors),
        cwd_check(&cwds),
    ]
}

/// A rendered cwd is taken relative to the release, not the CLI's cwd.
fn resolve_cwd(release: &Path, cwd: &str) -> PathBuf {
    normalize_lexically(&release.join(cwd))
}

fn templates_check(total: usize, errors: &[String]) -> Check {
    const NAME: &str = "process templates";
    if errors.is_empty() {
        Check::pass(
            NAME,
            format!("all {total} process command/cwd/env templates resolve"),
        )
    } else {
        Check::fail(
            NAME,
            format!("unresolved templates — {}", errors.join("; ")),
        )
    }
}

fn cwd_check(cwds: &[(&ProcessConfig, PathBuf)]) -> Check {
    const NAME: &str = "process working directories";
    let missing: Vec<String> = cwds
        .iter()
        .filter(|(_, dir)| !dir.is_dir())
        .map(|(p, dir)| format!("{} ({})", p.id, dir.display()))
        .collect();
    match missing.len() {
        0 if cwds.len() == 1 => Check::pass(NAME, "all 1 process working directory exists".into()),
        0 => Check::pass(
            NAME,
            format!("all {} process working directories exist", cwds.len()),
        ),
        1 => Check::fail(NAME, format!("missing working directory: {}", missing[0])),
        _ => Check::fail(
            NAME,
            format!("missing working directories: {}", missing.join(", ")),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_cwd_resolves_against_the_release() {
        let r = Path::new("/srv/app/v1");
        assert_eq!(resolve_cwd(r, "web"), PathBuf::from("/srv/app/v1/web"));
        assert_eq!(
            resolve_cwd(r, "../shared"),
            PathBuf::from("/srv/app/shared")
        );
        assert_eq!(resolve_cwd(r, "/opt/x"), PathBuf::from("/opt/x"));
    }

    #[test]
    fn template_wording() {
        assert_eq!(
            templates_check(2, &[]).detail,
            "all 2 process command/cwd/env templates resolve"
        );
        let c = templates_check(2, &["web: a".into(), "job: b".into()]);
        assert!(!c.ok);
        assert_eq!(c.detail, "unresolved templates — web: a; job: b");
    }
}
