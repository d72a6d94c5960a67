//! Which config changes cannot be applied by a deploy:
//! they need a daemon restart.

use crate::config::Config;

/// The changed names, in the contract's order; empty when the new config
/// can be adopted live.
pub fn incompatible_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut out = Vec::new();
    if old.application != new.application {
        out.push("application");
    }
    if old.control != new.control {
        out.push("control");
    }
    if old.state_path != new.state_path {
        out.push("statePath");
    }
    if old.proxy.host != new.proxy.host {
        out.push("proxy.host");
    }
    if old.proxy.port != new.proxy.port {
        out.push("proxy.port");
    }
    if old.proxy.upstream_host != new.proxy.upstream_host {
        out.push("proxy.upstreamHost");
    }
    let processes_changed = old.processes.len() != new.processes.len()
        || old.processes.iter().any(|o| match new.process(&o.id) {
            None => true,
            Some(n) => {
                o.policy != n.policy
                    || o.deploy_strategy != n.deploy_strategy
                    || o.replicas != n.replicas
                    || o.port != n.port
            }
        });
    if processes_changed {
        out.push("processes");
    }
    out
}

/// The deploy error for a non-empty change list.
pub fn message(changes: &[&str]) -> String {
    format!(
        "Config changes to {} cannot be applied live; restart the Rollbridge daemon before deploying.",
        changes.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::raw::Raw;
    use crate::config::validate;

    fn cfg(json: &str) -> Config {
        let v = validate(
            &Raw::from_json(json).unwrap(),
            std::path::Path::new("/a/b.json"),
        );
        assert!(v.issues.is_empty(), "{:?}", v.issues);
        v.config
    }

    const BASE: &str = r#"{"proxy":{"port":8182},"processes":[{"id":"web","policy":"proxied","command":"a","port":{"from":1,"to":9}},{"id":"w","command":"b"}]}"#;

    #[test]
    fn live_changes_are_compatible() {
        let new = BASE
            .replace(
                "\"command\":\"a\"",
                "\"command\":\"a2\",\"env\":{\"X\":\"1\"}",
            )
            .replace("{\"port\":8182}", "{\"port\":8182,\"drainTimeoutMs\":5}");
        assert!(incompatible_changes(&cfg(BASE), &cfg(&new)).is_empty());
    }

    #[test]
    fn process_order_may_change() {
        let swapped = r#"{"proxy":{"port":8182},"processes":[{"id":"w","command":"b"},{"id":"web","policy":"proxied","command":"a","port":{"from":1,"to":9}}]}"#;
        assert!(incompatible_changes(&cfg(BASE), &cfg(swapped)).is_empty());
    }

    #[test]
    fn restart_only_changes_are_listed_in_order() {
        let new = BASE
            .replace("{\"port\":8182}", "{\"port\":9000}")
            .replace("\"command\":\"b\"", "\"command\":\"b\",\"replicas\":2")
            .replacen('{', "{\"application\":\"x\",", 1);
        let changes = incompatible_changes(&cfg(BASE), &cfg(&new));
        // The default control path follows the application name.
        assert_eq!(
            changes,
            ["application", "control", "proxy.port", "processes"]
        );
        assert_eq!(
            message(&changes[2..]),
            "Config changes to proxy.port, processes cannot be applied live; restart the Rollbridge daemon before deploying."
        );
    }

    #[test]
    fn removed_or_repolicied_process_is_incompatible() {
        let removed = r#"{"proxy":{"port":8182},"processes":[{"id":"web","policy":"proxied","command":"a","port":{"from":1,"to":9}}]}"#;
        assert_eq!(
            incompatible_changes(&cfg(BASE), &cfg(removed)),
            ["processes"]
        );
        let policy = BASE.replace(
            "\"command\":\"b\"",
            "\"command\":\"b\",\"policy\":\"singleton\"",
        );
        assert_eq!(
            incompatible_changes(&cfg(BASE), &cfg(&policy)),
            ["processes"]
        );
    }
}
