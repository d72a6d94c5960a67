//! Top-level sections: presence checks, `proxy`, `control`,
//! `legacyTakeover`, `releaseRetention`, `statePath`, `adoptOrphans`.

use super::super::model::{
    AdminConfig, AutoRollback, ControlConfig, IdOrName, LegacyMatcher, LegacyTakeover, ProxyConfig,
    ReleaseRetention, WatchConfig,
};
use super::super::raw::Raw;
use super::rules::{Issues, ms};

/// The three members whose presence/type is checked before any field.
pub struct Sections<'a> {
    pub proxy: Option<&'a Raw>,
    pub control: Option<&'a Raw>,
    pub processes: Option<&'a [Raw]>,
}

pub fn presence<'a>(issues: &mut Issues, root: &'a Raw) -> Sections<'a> {
    let proxy = match root.member("proxy") {
        Some(v @ Raw::Object(_)) => Some(v),
        None => {
            issues.push(
                "proxy is required",
                "Add a proxy mapping, e.g. proxy: {host: \"127.0.0.1\", port: 8182} ({} uses every default).",
            );
            None
        }
        Some(_) => {
            issues.push(
                "proxy must be an object",
                "Make proxy a mapping, e.g. proxy: {port: 8182}.",
            );
            None
        }
    };
    let control = issues.optional_object(root, "control", "control");
    let processes = match root.get("processes") {
        Some(Raw::Array(items)) => Some(items.as_slice()),
        _ => {
            issues.push(
                "processes must be an array",
                "Set processes to a list of process definitions, e.g. processes: [{id: \"web\", policy: \"proxied\", command: \"node server.js\", port: {from: 18000, to: 18099}}].",
            );
            None
        }
    };
    Sections {
        proxy,
        control,
        processes,
    }
}

pub const DEFAULT_TRUSTED_PROXIES: [&str; 2] = ["127.0.0.0/8", "::1"];

pub fn proxy(issues: &mut Issues, raw: Option<&Raw>) -> ProxyConfig {
    let empty = Raw::Object(Vec::new());
    let p = raw.unwrap_or(&empty);
    let host = issues.defaulted_string(p, "host", "proxy.host", "127.0.0.1");
    let port = port_number(issues, p, "port", "proxy.port", 8182.0);
    let default_upstream = if host == "0.0.0.0" || host == "::" {
        "127.0.0.1".to_owned()
    } else {
        host.clone()
    };
    let upstream_host =
        issues.defaulted_string(p, "upstreamHost", "proxy.upstreamHost", &default_upstream);
    let health_path = issues.defaulted_string(p, "healthPath", "proxy.healthPath", "/ping");
    super::paths::health_path(issues, "proxy.healthPath", &health_path);
    let health_timeout_ms =
        ms(issues.non_negative(p, "healthTimeoutMs", "proxy.healthTimeoutMs", 30000.0));
    let drain_timeout_ms = ms(issues.number(p, "drainTimeoutMs", "proxy.drainTimeoutMs", 60000.0));
    let force_stop_timeout_ms =
        ms(issues.number(p, "forceStopTimeoutMs", "proxy.forceStopTimeoutMs", 10000.0));
    // Settings of this implementation beyond the original (proxy engine).
    let connect_retry_ms =
        ms(issues.non_negative(p, "connectRetryMs", "proxy.connectRetryMs", 5000.0));
    let trusted_proxies = trusted_proxies(issues, p);
    let max_header_bytes = issues.positive_integer(
        p,
        "maxHeaderBytes",
        "proxy.maxHeaderBytes",
        65536.0,
        "65536",
    ) as usize;
    let underscores_in_headers = issues.boolean(
        p,
        "underscoresInHeaders",
        "proxy.underscoresInHeaders",
        false,
    );
    let header_timeout_ms =
        ms(issues.positive_number(p, "headerTimeoutMs", "proxy.headerTimeoutMs", 15000.0));
    let client_idle_timeout_ms = ms(issues.positive_number(
        p,
        "clientIdleTimeoutMs",
        "proxy.clientIdleTimeoutMs",
        75000.0,
    ));
    let upstream_idle_timeout_ms = ms(issues.positive_number(
        p,
        "upstreamIdleTimeoutMs",
        "proxy.upstreamIdleTimeoutMs",
        4000.0,
    ));
    // Zero disables these three (non-negative, unlike the ones above).
    let client_write_timeout_ms = ms(issues.non_negative(
        p,
        "clientWriteTimeoutMs",
        "proxy.clientWriteTimeoutMs",
        60000.0,
    ));
    let upstream_response_timeout_ms = ms(issues.non_negative(
        p,
        "upstreamResponseTimeoutMs",
        "proxy.upstreamResponseTimeoutMs",
        60000.0,
    ));
    let upstream_read_timeout_ms = ms(issues.non_negative(
        p,
        "upstreamReadTimeoutMs",
        "proxy.upstreamReadTimeoutMs",
        60000.0,
    ));
    let max_connections = max_connections(issues, p);
    let max_held_requests = max_held_requests(issues, p);
    let websocket_close_spread_ms = ms(issues.non_negative(
        p,
        "websocketCloseSpreadMs",
        "proxy.websocketCloseSpreadMs",
        1000.0,
    ));
    let shutdown_delay_ms = shutdown_delay_ms(issues, p);
    let access_log = super::paths::access_log(issues, p);
    ProxyConfig {
        host,
        port,
        upstream_host,
        health_path,
        health_timeout_ms,
        drain_timeout_ms,
        force_stop_timeout_ms,
        connect_retry_ms,
        trusted_proxies,
        max_header_bytes,
        underscores_in_headers,
        header_timeout_ms,
        client_idle_timeout_ms,
        upstream_idle_timeout_ms,
        client_write_timeout_ms,
        upstream_response_timeout_ms,
        upstream_read_timeout_ms,
        max_connections,
        max_held_requests,
        websocket_close_spread_ms,
        shutdown_delay_ms,
        access_log,
    }
}

/// Longest `proxy.shutdownDelayMs` accepted (ten minutes).
const MAX_SHUTDOWN_DELAY_MS: f64 = 600_000.0;

/// `proxy.shutdownDelayMs`: 0 (default: stop accepting at once) up to
/// ten minutes.
fn shutdown_delay_ms(issues: &mut Issues, p: &Raw) -> u64 {
    let path = "proxy.shutdownDelayMs";
    let n = issues.non_negative(p, "shutdownDelayMs", path, 0.0);
    if n > MAX_SHUTDOWN_DELAY_MS {
        issues.push(
            format!("{path} must be at most 600000"),
            "Use a little more than your load balancer needs to take the host out, e.g. shutdownDelayMs: 15000.",
        );
        return 0;
    }
    ms(n)
}

/// `admin`: absent = no admin listener; `port` is required, `host`
/// defaults to 127.0.0.1; it must not share the proxy's port.
pub fn admin(issues: &mut Issues, root: &Raw, proxy: &ProxyConfig) -> Option<AdminConfig> {
    let a = root.member("admin")?;
    if !matches!(a, Raw::Object(_)) {
        issues.push(
            "admin must be an object",
            "Make admin a mapping, e.g. admin: {host: \"127.0.0.1\", port: 9180}.",
        );
        return None;
    }
    if a.member("port").is_none() {
        issues.push(
            "admin.port is required",
            "Add a port for the admin listener, e.g. admin: {port: 9180}.",
        );
        return None;
    }
    let host = issues.defaulted_string(a, "host", "admin.host", "127.0.0.1");
    let port = port_number(issues, a, "port", "admin.port", 0.0);
    if port != 0 && port == proxy.port {
        issues.push(
            "admin.port must differ from proxy.port",
            "Give the admin listener a port of its own, e.g. admin: {port: 9180}.",
        );
        return None;
    }
    Some(AdminConfig { host, port })
}

/// Largest `proxy.maxConnections` accepted (far beyond any descriptor limit).
const MAX_CONNECTIONS_LIMIT: f64 = 1_000_000.0;

/// `proxy.maxConnections`: a whole number, 0 (derived) up to one million.
fn max_connections(issues: &mut Issues, p: &Raw) -> usize {
    let path = "proxy.maxConnections";
    let n = issues.non_negative_integer(p, "maxConnections", path, 0.0);
    if n > MAX_CONNECTIONS_LIMIT {
        issues.push(
            format!("{path} must be at most 1000000"),
            "Use 0 (derived from the file-descriptor limit) or e.g. maxConnections: 4096.",
        );
        return 0;
    }
    n as usize
}

/// Largest `proxy.maxHeldRequests` accepted (each held request keeps its
/// connection and its head).
const MAX_HELD_LIMIT: f64 = 1_000_000.0;

/// `proxy.maxHeldRequests`: a whole number, 0 (a pause holds nothing:
/// every request is answered 503) up to one million.
fn max_held_requests(issues: &mut Issues, p: &Raw) -> usize {
    let path = "proxy.maxHeldRequests";
    let n = issues.non_negative_integer(p, "maxHeldRequests", path, 10000.0);
    if n > MAX_HELD_LIMIT {
        issues.push(
            format!("{path} must be at most 1000000"),
            "Use e.g. maxHeldRequests: 10000.",
        );
        return 10000;
    }
    n as usize
}

/// A TCP port number: the generic number rule, then 0..=65535 and whole.
/// The original had no range check; a port it would accept here could never
/// be bound anyway.
fn port_number(issues: &mut Issues, obj: &Raw, key: &str, path: &str, default: f64) -> u16 {
    let n = issues.number(obj, key, path, default);
    if !(0.0..=65535.0).contains(&n) || n.fract() != 0.0 {
        issues.push(
            format!("{path} must be a whole port number between 0 and 65535"),
            format!("Use e.g. {key}: 8182 (0 lets the OS choose)."),
        );
        return default as u16;
    }
    n as u16
}

fn trusted_proxies(issues: &mut Issues, p: &Raw) -> Vec<String> {
    let default = || {
        DEFAULT_TRUSTED_PROXIES
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    match p.member("trustedProxies") {
        None => default(),
        Some(Raw::Array(items)) => {
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match item.as_str() {
                    Some(s) if valid_ip_or_cidr(s) => out.push(s.to_owned()),
                    _ => issues.push(
                        format!("proxy.trustedProxies[{i}] must be an IP address or CIDR range"),
                        "Use addresses like \"127.0.0.1\", \"10.0.0.0/8\" or \"::1\".",
                    ),
                }
            }
            out
        }
        Some(_) => {
            issues.push(
                "proxy.trustedProxies must be an array",
                "List the front ends whose X-Forwarded-* headers to trust, e.g. trustedProxies: [\"127.0.0.1\", \"::1\"].",
            );
            default()
        }
    }
}

fn valid_ip_or_cidr(s: &str) -> bool {
    let (addr, bits) = match s.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    };
    let Ok(ip) = addr.parse::<std::net::IpAddr>() else {
        return false;
    };
    match bits {
        None => true,
        Some(b) => {
            let max = if ip.is_ipv4() { 32 } else { 128 };
            b.parse::<u8>().is_ok_and(|n| n <= max)
        }
    }
}

pub fn control(issues: &mut Issues, raw: Option<&Raw>, application: &str) -> ControlConfig {
    let empty = Raw::Object(Vec::new());
    let c = raw.unwrap_or(&empty);
    let path = issues.defaulted_string(
        c,
        "path",
        "control.path",
        &format!("/tmp/rollbridge-{application}.sock"),
    );
    super::paths::socket_path(issues, &path, c.member("path").is_some());
    let mode = match c.member("mode") {
        None => None,
        Some(v) => match parse_mode(v) {
            Some(m) => Some(m),
            None => {
                issues.push(
                    "control.mode must be an octal file mode between 0 and 0o777",
                    "Use an octal string such as mode: \"660\" or the number 0o660 (a decimal 660 is too large).",
                );
                None
            }
        },
    };
    let owner = id_or_name(issues, c, "owner", "control.owner", "deploy");
    let group = id_or_name(issues, c, "group", "control.group", "deploy");
    ControlConfig {
        path,
        mode,
        owner,
        group,
    }
}

/// `control.mode`: a whole number 0..=511, or 1–4 octal digits after an
/// optional lowercase `0o`, at most 0o777.
pub fn parse_mode(v: &Raw) -> Option<u32> {
    match v {
        Raw::Number(n) if n.fract() == 0.0 && (0.0..=511.0).contains(n) => Some(*n as u32),
        Raw::String(s) => {
            let digits = s.strip_prefix("0o").unwrap_or(s);
            if digits.is_empty()
                || digits.len() > 4
                || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b))
            {
                return None;
            }
            u32::from_str_radix(digits, 8).ok().filter(|m| *m <= 0o777)
        }
        _ => None,
    }
}

fn id_or_name(
    issues: &mut Issues,
    c: &Raw,
    key: &str,
    path: &str,
    example: &str,
) -> Option<IdOrName> {
    match c.member(key) {
        None => None,
        Some(Raw::Number(n)) if *n >= 0.0 && n.fract() == 0.0 && *n <= u32::MAX as f64 => {
            Some(IdOrName::Id(*n as u32))
        }
        // Kept as written: status echoes it as configured; an all-digit
        // string is resolved as an id when the daemon binds.
        Some(Raw::String(s)) if !s.is_empty() => Some(IdOrName::Name(s.clone())),
        Some(_) => {
            issues.push(
                format!("{path} must be a non-negative integer id or a name"),
                format!(
                    "Use a numeric id such as {key}: 1000 or a name such as {key}: {example:?}."
                ),
            );
            None
        }
    }
}

pub fn legacy_takeover(
    issues: &mut Issues,
    root: &Raw,
    proxy: &ProxyConfig,
) -> Option<LegacyTakeover> {
    let l = root.member("legacyTakeover")?;
    if !matches!(l, Raw::Object(_)) {
        issues.push(
            "legacyTakeover must be an object",
            "Make legacyTakeover a mapping, e.g. legacyTakeover: {screens: [\"app-web\"]}.",
        );
        return None;
    }
    let screens = string_list(issues, l, "screens", "legacyTakeover.screens", "app-web");
    let mut processes = Vec::new();
    match l.member("processes") {
        None => {}
        Some(Raw::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let path = format!("legacyTakeover.processes[{i}]");
                if !matches!(item, Raw::Object(_)) {
                    issues.push(
                        format!("{path} must be an object"),
                        format!("Define {path} as a mapping, e.g. {{name: \"old web\", includes: [\"puma\", \"/srv/app\"]}}."),
                    );
                    continue;
                }
                let includes = string_list(
                    issues,
                    item,
                    "includes",
                    &format!("{path}.includes"),
                    "/srv/app",
                );
                let name = issues.defaulted_string(
                    item,
                    "name",
                    &format!("{path}.name"),
                    &format!("legacy process {}", i + 1),
                );
                if includes.is_empty() {
                    issues.push(
                        format!("{path}.includes must contain at least one matcher"),
                        "List command-line substrings that identify the legacy process, e.g. includes: [\"puma\", \"/srv/app/current\"].",
                    );
                    continue;
                }
                processes.push(LegacyMatcher { name, includes });
            }
        }
        Some(_) => issues.push(
            "legacyTakeover.processes must be an array",
            "Use a list of matchers, e.g. processes: [{includes: [\"puma\"]}].",
        ),
    }
    let force_stop_timeout_ms = ms(issues.non_negative(
        l,
        "forceStopTimeoutMs",
        "legacyTakeover.forceStopTimeoutMs",
        proxy.force_stop_timeout_ms as f64,
    ));
    if screens.is_empty() && processes.is_empty() {
        issues.push(
            "legacyTakeover must define at least one screen or process matcher",
            "Add screens: [\"<screen session>\"] or processes: [{includes: [\"<command substring>\"]}], or remove legacyTakeover.",
        );
    }
    Some(LegacyTakeover {
        screens,
        processes,
        force_stop_timeout_ms,
    })
}

/// An array of non-empty strings; bad entries are reported and dropped.
fn string_list(
    issues: &mut Issues,
    obj: &Raw,
    key: &str,
    path: &str,
    example: &str,
) -> Vec<String> {
    match obj.member(key) {
        None => Vec::new(),
        Some(Raw::Array(items)) => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| match item {
                Raw::String(s) if !s.is_empty() => Some(s.clone()),
                _ => {
                    issues.push(
                        format!("{path}[{i}] must be a non-empty string"),
                        format!("Use a non-empty string such as {example:?}."),
                    );
                    None
                }
            })
            .collect(),
        Some(_) => {
            issues.push(
                format!("{path} must be an array"),
                format!("Use a list of strings, e.g. {key}: [{example:?}]."),
            );
            Vec::new()
        }
    }
}

pub fn release_retention(issues: &mut Issues, root: &Raw) -> ReleaseRetention {
    let empty = Raw::Object(Vec::new());
    let r = issues
        .optional_object(root, "releaseRetention", "releaseRetention")
        .unwrap_or(&empty);
    let keep = issues.non_negative_integer(r, "keep", "releaseRetention.keep", 10.0) as u64;
    let max_age_ms = ms(issues.non_negative(r, "maxAgeMs", "releaseRetention.maxAgeMs", 0.0));
    ReleaseRetention { keep, max_age_ms }
}

/// `adoptOrphans` (default false): only meaningful with a state file.
pub fn adopt_orphans(issues: &mut Issues, root: &Raw, has_state_path: bool) -> bool {
    let on = issues.boolean(root, "adoptOrphans", "adoptOrphans", false);
    if on && !has_state_path {
        issues.push(
            "adoptOrphans needs statePath",
            "Set statePath (e.g. statePath: \"/var/lib/rollbridge/app-state.json\") so a new daemon can find the processes to adopt, or remove adoptOrphans.",
        );
        return false;
    }
    on
}

pub fn state_path(issues: &mut Issues, root: &Raw) -> Option<String> {
    match root.member("statePath") {
        None => None,
        Some(Raw::String(s)) => Some(s.clone()),
        Some(_) => {
            issues.push(
                "statePath must be a string",
                "Set statePath to a file path, e.g. statePath: \"/var/lib/rollbridge/app-state.json\", or remove it.",
            );
            None
        }
    }
}

/// Longest `health.watchIntervalMs` / `autoRollback.windowMs`: a day / a week.
const MAX_WATCH_INTERVAL_MS: f64 = 86_400_000.0;
const MAX_WATCH_TIMEOUT_MS: f64 = 600_000.0;
const MAX_WATCH_FAILURES: f64 = 100.0;
const MAX_ROLLBACK_WINDOW_MS: f64 = 604_800_000.0;

/// `health.watchIntervalMs` (0 = off, else 100 ms to a day),
/// `watchTimeoutMs` (1 ms to 10 minutes), `watchFailures` (1 to 100);
/// `base` is the `processes[i].health.` prefix. Bad values fall back to
/// the default.
pub fn health_watch(issues: &mut Issues, h: &Raw, base: &str) -> WatchConfig {
    let d = WatchConfig::default();
    let path = format!("{base}watchIntervalMs");
    let n = issues.non_negative(h, "watchIntervalMs", &path, d.interval_ms as f64);
    let interval_ms = if n != 0.0 && !(100.0..=MAX_WATCH_INTERVAL_MS).contains(&n) {
        issues.push(
            format!("{path} must be 0 (off) or between 100 and 86400000"),
            "Use the time between live checks in milliseconds, e.g. watchIntervalMs: 10000.",
        );
        d.interval_ms
    } else {
        ms(n)
    };
    let path = format!("{base}watchTimeoutMs");
    let n = issues.positive_number(h, "watchTimeoutMs", &path, d.timeout_ms as f64);
    let timeout_ms = if n > MAX_WATCH_TIMEOUT_MS {
        issues.push(
            format!("{path} must be at most 600000"),
            "Bound each live check by a few seconds, e.g. watchTimeoutMs: 2000.",
        );
        d.timeout_ms
    } else {
        ms(n)
    };
    let path = format!("{base}watchFailures");
    let n = issues.positive_integer(h, "watchFailures", &path, d.failures as f64, "3");
    let failures = if n > MAX_WATCH_FAILURES {
        issues.push(
            format!("{path} must be at most 100"),
            "Use the failed live checks in a row that replace the process, e.g. watchFailures: 3.",
        );
        d.failures
    } else {
        n as u32
    };
    WatchConfig {
        interval_ms,
        timeout_ms,
        failures,
    }
}

/// `autoRollback`: absent = off; `windowMs` is required, 1 ms to a week.
pub fn auto_rollback(issues: &mut Issues, root: &Raw) -> Option<AutoRollback> {
    let a = root.member("autoRollback")?;
    if matches!(a, Raw::Null) {
        return None;
    }
    if !matches!(a, Raw::Object(_)) {
        issues.push(
            "autoRollback must be an object",
            "Make autoRollback a mapping, e.g. autoRollback: {windowMs: 300000}.",
        );
        return None;
    }
    if a.member("windowMs").is_none() {
        issues.push(
            "autoRollback.windowMs is required",
            "Add how long after a deploy a failure rolls back, e.g. autoRollback: {windowMs: 300000}.",
        );
        return None;
    }
    let path = "autoRollback.windowMs";
    let n = issues.positive_number(a, "windowMs", path, 300_000.0);
    if n > MAX_ROLLBACK_WINDOW_MS {
        issues.push(
            format!("{path} must be at most 604800000"),
            "Use a window of minutes, e.g. autoRollback: {windowMs: 300000}.",
        );
        return None;
    }
    Some(AutoRollback { window_ms: ms(n) })
}
