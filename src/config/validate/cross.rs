//! Cross-process rules, checked after per-field rules.

use super::super::model::{DeployStrategy, Policy};
use super::process::Checked;
use super::rules::Issues;

pub fn check(issues: &mut Issues, processes: &[Checked]) {
    let mut seen: Vec<&str> = Vec::new();
    for p in processes
        .iter()
        .filter(|p| p.has_id && !p.config.id.is_empty())
    {
        let c = &p.config;
        let id = c.id.as_str();
        if seen.contains(&id) {
            issues.push(
                format!("Duplicate process id: {id}"),
                format!(
                    "Give every process a unique id, e.g. rename the second one to \"{id}-2\"."
                ),
            );
        }
        seen.push(id);
        if id.contains('#') {
            issues.push(
                format!("Process \"{id}\" must not contain \"#\""),
                format!(
                    "Use id: \"{}\"; \"#\" is reserved for replica instance ids such as worker#0.",
                    id.replace('#', "")
                ),
            );
        }
        if c.replicas > 1 && (c.policy != Policy::Companion || c.port.is_some()) {
            issues.push(
                format!("Process \"{id}\" can only set replicas > 1 on a companion process without a port"),
                format!(
                    "Move replicas to a port-less companion process; this one is a {}{}.",
                    c.policy.as_str(),
                    if c.port.is_some() { " with a port" } else { "" }
                ),
            );
        }
        if c.non_blocking_drain && c.policy != Policy::Companion {
            issues.push(
                format!("Process \"{id}\" can only set nonBlockingDrain on a companion process"),
                "Remove nonBlockingDrain, or use it only on companion processes.",
            );
        }
        if c.deploy_strategy == DeployStrategy::Handoff {
            if c.policy != Policy::Service {
                issues.push(
                    format!("Process \"{id}\" can only set deployStrategy: \"handoff\" on a service process"),
                    "Use deployStrategy: \"handoff\" only with policy: \"service\".",
                );
            } else if let Some(port) = c.port {
                if port.from == port.to {
                    issues.push(
                        format!("Handoff service \"{id}\" must use a multi-port range"),
                        format!(
                            "Use a range so old and new instances can overlap, e.g. port: {{from: {}, to: {}}}.",
                            port.from,
                            port.from.saturating_add(99)
                        ),
                    );
                }
            } else {
                issues.push(
                    format!("Handoff service \"{id}\" must define a port range"),
                    "Add a range so old and new instances can overlap, e.g. port: {from: 7400, to: 7499}.",
                );
            }
        }
        if c.lifecycle
            .stop_command
            .as_deref()
            .is_some_and(|s| !s.is_empty())
            && c.stop_signal.name != "SIGTERM"
        {
            issues.push(
                format!(
                    "Process \"{id}\" sets both lifecycle.stopCommand and a custom stopSignal ({}); lifecycle.stopCommand replaces stopSignal",
                    c.stop_signal.name
                ),
                "Drop stopSignal (or set it to \"SIGTERM\") when using lifecycle.stopCommand, or drop the stopCommand.",
            );
        }
    }

    let proxied: Vec<&Checked> = processes.iter().filter(|p| p.is_proxied).collect();
    if proxied.len() != 1 {
        issues.push(
            format!("Config must define exactly one proxied process; found {}", proxied.len()),
            if proxied.is_empty() {
                "Mark the web process with policy: \"proxied\"."
            } else {
                "Keep policy: \"proxied\" on exactly one process; make the others companions or services."
            },
        );
    }
    for p in proxied {
        if p.config.port.is_none() {
            let id = if p.config.id.is_empty() {
                "(unnamed)"
            } else {
                &p.config.id
            };
            issues.push(
                format!("Proxied process {id} must define a port range"),
                "Give it a range to allocate from, e.g. port: {from: 18000, to: 18099}.",
            );
        }
    }
}
