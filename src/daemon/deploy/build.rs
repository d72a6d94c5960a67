//! Building supervisor specs for one release: templates rendered, the
//! injected `ROLLBRIDGE_*` variables and the final environment layered.

use crate::config::{Config, ProcessConfig};
use crate::supervisor::ProcessSpec;
use crate::template::{self, Context};

/// Identity of the release a process definition is built from.
pub struct ReleaseIds<'a> {
    pub id: &'a str,
    pub path: &'a str,
    pub revision: &'a str,
    /// Allocated port of every ported process of the release, config order.
    pub ports: &'a [(String, u16)],
}

/// One spec per instance (`id`, or `id#0..id#n-1` for replicas).
pub fn instance_specs(
    config: &Config,
    cfg: &ProcessConfig,
    release: &ReleaseIds,
) -> Result<Vec<ProcessSpec>, String> {
    let port = release
        .ports
        .iter()
        .find(|(id, _)| *id == cfg.id)
        .map(|(_, p)| *p);
    let lookup = |name: &str| std::env::var(name).ok();
    let daemon_env: Vec<(String, String)> = std::env::vars().collect();
    let ids = cfg.instance_ids();
    let count = ids.len() as u32;
    let mut specs = Vec::with_capacity(ids.len());
    for (index, instance) in ids.into_iter().enumerate() {
        let ctx = Context {
            application: &config.application,
            release_id: release.id,
            release_path: release.path,
            revision: release.revision,
            process_id: &cfg.id,
            replica_index: index as u32,
            replica_count: count,
            port,
            ports: release.ports,
            proxy: &config.proxy,
            env: &lookup,
        };
        let rendered = template::render_process(cfg, &ctx)?;
        let injected = template::injected_env(&ctx);
        let env = template::merge_env(&[&daemon_env, &injected, &rendered.env]);
        specs.push(ProcessSpec::from_config(
            cfg,
            instance,
            Some(release.id.to_owned()),
            rendered.command,
            rendered.cwd,
            env,
        ));
    }
    Ok(specs)
}
