//! `processes[i]`: every per-process field, in alphabetical key order.

use super::super::model::{
    DeployStrategy, GracefulStop, HealthConfig, LifecycleConfig, MemoryConfig, Policy, PortRange,
    ProcessConfig, ProxyConfig, RestartConfig, Signal,
};
use super::super::raw::Raw;
use super::rules::{Issues, fmt_num, ms};

/// A normalized process plus what the cross-process rules need to know.
pub struct Checked {
    pub config: ProcessConfig,
    /// False for non-object entries and non-string ids: they take part in
    /// no id-based rule.
    pub has_id: bool,
    /// `policy` parsed successfully as `proxied`.
    pub is_proxied: bool,
}

pub fn processes(issues: &mut Issues, raw: Option<&[Raw]>, proxy: &ProxyConfig) -> Vec<Checked> {
    raw.unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, item)| process(issues, i, item, proxy))
        .collect()
}

fn placeholder(proxy: &ProxyConfig) -> ProcessConfig {
    ProcessConfig {
        id: String::new(),
        command: String::new(),
        policy: Policy::Companion,
        cwd: None,
        env: Vec::new(),
        port: None,
        health: None,
        stop_signal: Signal::TERM,
        graceful_stop: GracefulStop::Ms(proxy.force_stop_timeout_ms),
        restart_delay_ms: 1000,
        restart: RestartConfig::default(),
        memory: None,
        lifecycle: LifecycleConfig::default(),
        non_blocking_drain: false,
        replicas: 1,
        output_lines: 50,
        deploy_strategy: DeployStrategy::Persistent,
    }
}

fn process(issues: &mut Issues, i: usize, p: &Raw, proxy: &ProxyConfig) -> Checked {
    let base = format!("processes[{i}]");
    if !matches!(p, Raw::Object(_)) {
        issues.push(
            format!("{base} must be an object"),
            "Define each process as a mapping with id, policy and command, e.g. {id: \"web\", policy: \"proxied\", command: \"node server.js\"}.",
        );
        return Checked {
            config: placeholder(proxy),
            has_id: false,
            is_proxied: false,
        };
    }
    let path = |field: &str| format!("{base}.{field}");
    let mut c = placeholder(proxy);

    c.command = issues.required_string(
        p,
        "command",
        &path("command"),
        "node server.js --port {{port}}",
    );
    c.cwd = issues
        .optional_string(p, "cwd", &path("cwd"), "{{releasePath}}")
        .filter(|s| !s.is_empty());
    c.deploy_strategy = deploy_strategy(issues, p, &path("deployStrategy"));
    c.env = env(issues, p, &path("env"));
    c.graceful_stop = graceful_stop(issues, p, &path("gracefulStopMs"), proxy);
    c.health = health(issues, p, &base, proxy);
    let (id, has_id) = match p.member("id") {
        Some(Raw::String(s)) => (s.clone(), true),
        _ => {
            issues.required_string(p, "id", &path("id"), "web");
            (String::new(), false)
        }
    };
    c.id = id;
    c.lifecycle = lifecycle(issues, p, &base);
    c.memory = memory(issues, p, &base);
    c.non_blocking_drain = issues.boolean(p, "nonBlockingDrain", &path("nonBlockingDrain"), false);
    c.output_lines =
        issues.positive_integer(p, "outputLines", &path("outputLines"), 50.0, "50") as usize;
    let (policy, is_proxied) = policy(issues, p, &path("policy"));
    c.policy = policy;
    c.port = port(issues, p, &path("port"));
    c.replicas = issues
        .positive_integer(p, "replicas", &path("replicas"), 1.0, "1 or 4")
        .min(u32::MAX as f64) as u32;
    c.restart = restart(issues, p, &base);
    c.restart_delay_ms = ms(issues.number(p, "restartDelayMs", &path("restartDelayMs"), 1000.0));
    c.stop_signal = stop_signal(issues, p, &path("stopSignal"));
    Checked {
        config: c,
        has_id,
        is_proxied,
    }
}

fn deploy_strategy(issues: &mut Issues, p: &Raw, path: &str) -> DeployStrategy {
    match p.member("deployStrategy") {
        None => DeployStrategy::Persistent,
        Some(Raw::String(s)) if s == "persistent" => DeployStrategy::Persistent,
        Some(Raw::String(s)) if s == "handoff" => DeployStrategy::Handoff,
        Some(_) => {
            issues.push(
                format!("{path} must be one of: persistent, handoff"),
                "Use deployStrategy: \"persistent\" (the default) or \"handoff\" (services only).",
            );
            DeployStrategy::Persistent
        }
    }
}

fn env(issues: &mut Issues, p: &Raw, path: &str) -> Vec<(String, String)> {
    let Some(obj) = issues.optional_object(p, "env", path) else {
        return Vec::new();
    };
    let Raw::Object(members) = obj else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (key, value) in members {
        match value {
            Raw::String(s) => out.push((key.clone(), s.clone())),
            Raw::Null => issues.push(
                format!("{path}.{key} is required"),
                format!("Set {path}.{key} to a string, e.g. {key}: \"production\", or remove it."),
            ),
            _ => issues.push(
                format!("{path}.{key} must be a string"),
                format!(
                    "Quote the value: environment values are strings, e.g. {key}: \"{}\".",
                    match value {
                        Raw::Number(n) => fmt_num(*n),
                        Raw::Bool(b) => b.to_string(),
                        _ => "value".to_owned(),
                    }
                ),
            ),
        }
    }
    out
}

fn graceful_stop(issues: &mut Issues, p: &Raw, path: &str, proxy: &ProxyConfig) -> GracefulStop {
    if p.member("gracefulStopMs").and_then(Raw::as_str) == Some("indefinite") {
        return GracefulStop::Indefinite;
    }
    let default = proxy.force_stop_timeout_ms as f64;
    GracefulStop::Ms(ms(issues.non_negative(p, "gracefulStopMs", path, default)))
}

fn health(issues: &mut Issues, p: &Raw, base: &str, proxy: &ProxyConfig) -> Option<HealthConfig> {
    let empty = Raw::Object(Vec::new());
    let h = match p.get("health") {
        None => &empty,
        Some(Raw::Null) | Some(Raw::Bool(false)) => return None,
        Some(v @ Raw::Object(_)) => v,
        Some(_) => {
            issues.push(
                format!("{base}.health must be an object"),
                "Use a mapping such as health: {path: \"/ping\", timeoutMs: 30000}, or health: false to disable it.",
            );
            return None;
        }
    };
    let path = |f: &str| format!("{base}.health.{f}");
    let hpath = issues.defaulted_string(h, "path", &path("path"), &proxy.health_path);
    if h.member("path").is_some() {
        super::paths::health_path(issues, &path("path"), &hpath);
    }
    let timeout_ms = ms(issues.non_negative(
        h,
        "timeoutMs",
        &path("timeoutMs"),
        proxy.health_timeout_ms as f64,
    ));
    let interval = issues.number(h, "intervalMs", &path("intervalMs"), 250.0);
    // A zero or negative interval would probe in a hot loop.
    let interval_ms = if interval <= 0.0 {
        issues.push(
            format!("{} must be a positive number", path("intervalMs")),
            "Use the time between probes in milliseconds, e.g. intervalMs: 250.",
        );
        250
    } else {
        ms(interval)
    };
    let start_delay_ms = ms(issues.non_negative(h, "startDelayMs", &path("startDelayMs"), 0.0));
    let watch = super::sections::health_watch(issues, h, &path(""));
    Some(HealthConfig {
        path: hpath,
        timeout_ms,
        interval_ms,
        start_delay_ms,
        watch,
    })
}

fn lifecycle(issues: &mut Issues, p: &Raw, base: &str) -> LifecycleConfig {
    let path = format!("{base}.lifecycle");
    let Some(l) = issues.optional_object(p, "lifecycle", &path) else {
        return LifecycleConfig::default();
    };
    let f = |name: &str| format!("{path}.{name}");
    let quiet_command = issues.optional_string(
        l,
        "quietCommand",
        &f("quietCommand"),
        "kill -TSTP -$ROLLBRIDGE_PID",
    );
    let drain_command =
        issues.optional_string(l, "drainCommand", &f("drainCommand"), "./bin/drain-jobs");
    let stop_command =
        issues.optional_string(l, "stopCommand", &f("stopCommand"), "./bin/stop-workers");
    let drain_timeout_ms = ms(issues.non_negative(l, "drainTimeoutMs", &f("drainTimeoutMs"), 0.0));
    if drain_command.as_deref().is_some_and(|c| !c.is_empty()) && drain_timeout_ms == 0 {
        issues.push(
            format!(
                "{} requires a positive {}",
                f("drainCommand"),
                f("drainTimeoutMs")
            ),
            "Set drainTimeoutMs to how long the drain command may run, e.g. drainTimeoutMs: 30000 (0 skips the drain step).",
        );
    }
    LifecycleConfig {
        quiet_command,
        drain_command,
        stop_command,
        drain_timeout_ms,
    }
}

fn memory(issues: &mut Issues, p: &Raw, base: &str) -> Option<MemoryConfig> {
    let path = format!("{base}.memory");
    let m = issues.optional_object(p, "memory", &path)?;
    let f = |name: &str| format!("{path}.{name}");
    let limit = issues.number(m, "limitBytes", &f("limitBytes"), 0.0);
    let limit_bytes = if limit <= 0.0 || limit.fract() != 0.0 {
        issues.push(
            format!("{} must be a positive integer", f("limitBytes")),
            "Set the RSS limit in bytes, e.g. limitBytes: 536870912 (512 MiB).",
        );
        0
    } else {
        limit as u64
    };
    let warn_bytes = issues.non_negative_integer(m, "warnBytes", &f("warnBytes"), 0.0) as u64;
    let check_interval_ms =
        ms(issues.positive_number(m, "checkIntervalMs", &f("checkIntervalMs"), 5000.0));
    if limit_bytes > 0 && warn_bytes >= limit_bytes {
        issues.push(
            format!("{} must be less than {}", f("warnBytes"), f("limitBytes")),
            "Warn below the limit, e.g. warnBytes: 402653184 with limitBytes: 536870912, or 0 to turn warnings off.",
        );
    }
    Some(MemoryConfig {
        limit_bytes,
        warn_bytes,
        check_interval_ms,
    })
}

fn policy(issues: &mut Issues, p: &Raw, path: &str) -> (Policy, bool) {
    match p.member("policy") {
        None => (Policy::Companion, false),
        Some(Raw::String(s)) => match Policy::parse(s) {
            Some(policy) => (policy, policy == Policy::Proxied),
            None => {
                issues.push(
                    format!("{path} must be one of: proxied, companion, singleton, service"),
                    "Use policy: \"proxied\" for the web process, \"companion\" for per-release workers, \"singleton\" or \"service\".",
                );
                (Policy::Companion, false)
            }
        },
        Some(_) => {
            issues.push(
                format!("{path} must be a string"),
                "Set policy to a string, e.g. policy: \"companion\".",
            );
            (Policy::Companion, false)
        }
    }
}

fn port(issues: &mut Issues, p: &Raw, path: &str) -> Option<PortRange> {
    let bad = |issues: &mut Issues, fix: &str| {
        issues.push(
            format!("{path} must be a positive port or valid {{from, to}} range"),
            fix.to_owned(),
        );
        None
    };
    let in_range = |n: f64| (0.0..=65535.0).contains(&n) && n.fract() == 0.0;
    match p.member("port") {
        None => None,
        Some(Raw::Number(n)) if in_range(*n) => Some(PortRange {
            from: *n as u16,
            to: *n as u16,
        }),
        Some(Raw::Number(_)) | Some(Raw::NonFinite) => bad(
            issues,
            "Use a whole port number between 1 and 65535, e.g. port: 7330, or a range such as port: {from: 18000, to: 18099}.",
        ),
        Some(obj @ Raw::Object(_)) => {
            let from = issues.number(obj, "from", &format!("{path}.from"), 0.0);
            let to = issues.number(obj, "to", &format!("{path}.to"), from);
            if !in_range(from) || !in_range(to) || to < from {
                return bad(
                    issues,
                    "Use an ascending range of whole port numbers, e.g. port: {from: 18000, to: 18099}.",
                );
            }
            Some(PortRange {
                from: from as u16,
                to: to as u16,
            })
        }
        Some(_) => bad(
            issues,
            "Use a port number or range, e.g. port: 7330 or port: {from: 18000, to: 18099}.",
        ),
    }
}

fn restart(issues: &mut Issues, p: &Raw, base: &str) -> RestartConfig {
    let path = format!("{base}.restart");
    let Some(r) = issues.optional_object(p, "restart", &path) else {
        return RestartConfig::default();
    };
    let f = |name: &str| format!("{path}.{name}");
    let max_restarts = match r.member("maxRestarts") {
        None => None,
        Some(Raw::Number(n)) if *n >= 0.0 && n.fract() == 0.0 => Some(*n as u64),
        Some(_) => {
            issues.push(
                format!("{} must be a non-negative integer", f("maxRestarts")),
                "Use a whole number such as maxRestarts: 5; 0 disables restarts, omit it for unlimited.",
            );
            None
        }
    };
    let window_ms = ms(issues.non_negative(r, "windowMs", &f("windowMs"), 0.0));
    let factor = issues.number(r, "backoffFactor", &f("backoffFactor"), 1.0);
    let backoff_factor = if factor < 1.0 {
        issues.push(
            format!(
                "{} must be a number greater than or equal to 1",
                f("backoffFactor")
            ),
            "Use 1 for a constant delay or e.g. backoffFactor: 2 to double it per restart.",
        );
        1.0
    } else {
        factor
    };
    let max_delay_ms = ms(issues.non_negative(r, "maxDelayMs", &f("maxDelayMs"), 0.0));
    RestartConfig {
        max_restarts,
        window_ms,
        backoff_factor,
        max_delay_ms,
    }
}

fn stop_signal(issues: &mut Issues, p: &Raw, path: &str) -> Signal {
    match p.member("stopSignal") {
        None => Signal::TERM,
        Some(v) => match v.as_str().and_then(Signal::from_name) {
            Some(sig) => sig,
            None => {
                issues.push(
                    format!("{path} must be a valid signal name"),
                    "Use a signal name such as \"SIGTERM\", \"SIGINT\" or \"SIGQUIT\".",
                );
                Signal::TERM
            }
        },
    }
}
