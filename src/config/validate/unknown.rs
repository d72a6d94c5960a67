//! Unknown keys: the original ignores them silently, so a typo such as
//! `gracefullStopMs` quietly falls back to a default. We keep accepting such
//! configs but warn, with a did-you-mean, for every unknown key.

use super::super::raw::Raw;
use super::Issue;
use crate::suggest::did_you_mean;

const TOP: &[&str] = &[
    "application",
    "control",
    "proxy",
    "processes",
    "releaseRetention",
    "statePath",
    "adoptOrphans",
    "legacyTakeover",
    "admin",
    "autoRollback",
];
const AUTO_ROLLBACK: &[&str] = &["windowMs"];
const ADMIN: &[&str] = &["host", "port"];
const CONTROL: &[&str] = &["path", "mode", "owner", "group"];
const PROXY: &[&str] = &[
    "host",
    "port",
    "upstreamHost",
    "healthPath",
    "healthTimeoutMs",
    "drainTimeoutMs",
    "forceStopTimeoutMs",
    "connectRetryMs",
    "trustedProxies",
    "maxHeaderBytes",
    "underscoresInHeaders",
    "headerTimeoutMs",
    "clientIdleTimeoutMs",
    "upstreamIdleTimeoutMs",
    "clientWriteTimeoutMs",
    "upstreamResponseTimeoutMs",
    "upstreamReadTimeoutMs",
    "maxConnections",
    "maxHeldRequests",
    "websocketCloseSpreadMs",
    "shutdownDelayMs",
    "accessLog",
];
const RETENTION: &[&str] = &["keep", "maxAgeMs"];
const LEGACY: &[&str] = &["screens", "processes", "forceStopTimeoutMs"];
const LEGACY_PROCESS: &[&str] = &["name", "includes"];
const PROCESS: &[&str] = &[
    "id",
    "command",
    "policy",
    "cwd",
    "env",
    "port",
    "health",
    "stopSignal",
    "gracefulStopMs",
    "restartDelayMs",
    "restart",
    "memory",
    "lifecycle",
    "nonBlockingDrain",
    "replicas",
    "outputLines",
    "deployStrategy",
];
const PORT: &[&str] = &["from", "to"];
const HEALTH: &[&str] = &[
    "path",
    "timeoutMs",
    "intervalMs",
    "startDelayMs",
    "watchIntervalMs",
    "watchTimeoutMs",
    "watchFailures",
];
const RESTART: &[&str] = &["maxRestarts", "windowMs", "backoffFactor", "maxDelayMs"];
const MEMORY: &[&str] = &["limitBytes", "warnBytes", "checkIntervalMs"];
const LIFECYCLE: &[&str] = &[
    "quietCommand",
    "drainCommand",
    "stopCommand",
    "drainTimeoutMs",
];

pub fn warnings(root: &Raw) -> Vec<Issue> {
    let mut out = Vec::new();
    check(&mut out, root, "", TOP);
    check(
        &mut out,
        root.get("control").unwrap_or(&Raw::Null),
        "control.",
        CONTROL,
    );
    check(
        &mut out,
        root.get("proxy").unwrap_or(&Raw::Null),
        "proxy.",
        PROXY,
    );
    check(
        &mut out,
        root.get("releaseRetention").unwrap_or(&Raw::Null),
        "releaseRetention.",
        RETENTION,
    );
    if let Some(admin) = root.get("admin") {
        check(&mut out, admin, "admin.", ADMIN);
    }
    if let Some(a) = root.get("autoRollback") {
        check(&mut out, a, "autoRollback.", AUTO_ROLLBACK);
    }
    if let Some(legacy) = root.get("legacyTakeover") {
        check(&mut out, legacy, "legacyTakeover.", LEGACY);
        if let Some(Raw::Array(items)) = legacy.get("processes") {
            for (i, item) in items.iter().enumerate() {
                check(
                    &mut out,
                    item,
                    &format!("legacyTakeover.processes[{i}]."),
                    LEGACY_PROCESS,
                );
            }
        }
    }
    if let Some(Raw::Array(items)) = root.get("processes") {
        for (i, p) in items.iter().enumerate() {
            let base = format!("processes[{i}].");
            check(&mut out, p, &base, PROCESS);
            let nested = [
                ("port", PORT),
                ("health", HEALTH),
                ("restart", RESTART),
                ("memory", MEMORY),
                ("lifecycle", LIFECYCLE),
            ];
            for (key, known) in nested {
                if let Some(v) = p.get(key) {
                    check(&mut out, v, &format!("{base}{key}."), known);
                }
            }
        }
    }
    out
}

fn check(out: &mut Vec<Issue>, obj: &Raw, prefix: &str, known: &[&str]) {
    let Raw::Object(members) = obj else { return };
    for (key, _) in members {
        if known.contains(&key.as_str()) {
            continue;
        }
        let fix = match did_you_mean(key, known.iter().copied()) {
            Some(s) => format!("Did you mean {prefix}{s}? Rename it; as written it is ignored."),
            None => format!(
                "Remove it or fix the spelling; known fields here are: {}.",
                known.join(", ")
            ),
        };
        out.push(Issue {
            message: format!("{prefix}{key} is not a known field and is ignored"),
            fix,
        });
    }
}
