//! The readable `status` view for a terminal: the daemon, the releases with
//! their connections, and one row per process. Built from the status object
//! (plus `daemon-info` when the daemon answers it); keys a daemon does not
//! send (`maintenance`, `paused`, `canary` on older daemons) are left out.

use serde_json::Value;

pub fn render(status: &Value, info: Option<&Value>) -> String {
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let num = |v: &Value, k: &str| v.get(k).and_then(Value::as_u64);
    let mut out = Vec::new();
    let daemon = match info {
        Some(i) => format!(
            "Daemon       pid {}, version {}, up {}",
            num(i, "pid").map_or("?".into(), |p| p.to_string()),
            text(i, "version"),
            num(i, "uptimeMs").map_or("?".into(), duration)
        ),
        None => "Daemon       running".to_owned(),
    };
    out.push(daemon);
    out.push(format!("Application  {}", text(status, "application")));
    if let Some(p) = status.get("proxy") {
        out.push(format!(
            "Proxy        {}:{}",
            text(p, "host"),
            num(p, "port").unwrap_or(0)
        ));
    }
    if let Some(m) = status.get("maintenance") {
        out.push(format!("Maintenance  {}", on_off(m, "message")));
    }
    if let Some(p) = status.get("paused") {
        out.push(format!("Paused       {}", on_off(p, "since")));
    }
    if let Some(c) = status.get("canary") {
        let canary = match c {
            Value::Null => "none".to_owned(),
            c => format!(
                "{} at {}%",
                text(c, "releaseId"),
                c.get("percent").map(Value::to_string).unwrap_or_default()
            ),
        };
        out.push(format!("Canary       {canary}"));
    }
    let empty = Vec::new();
    let releases = status
        .get("releases")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    out.push(String::new());
    if releases.is_empty() {
        out.push("No releases.".into());
    } else {
        out.push("Releases".into());
        let active = text(status, "activeReleaseId");
        for r in releases {
            let id = text(r, "releaseId");
            let mark = if id == active { "*" } else { " " };
            let c = r.get("connections").cloned().unwrap_or(Value::Null);
            out.push(format!(
                "  {mark} {id:<20} {:<9} {} http, {} websocket",
                text(r, "state"),
                num(&c, "http").unwrap_or(0),
                num(&c, "websocket").unwrap_or(0)
            ));
        }
    }
    let mut rows: Vec<(String, String, &Value)> = Vec::new();
    for r in releases {
        for p in r
            .get("processes")
            .and_then(Value::as_array)
            .unwrap_or(&empty)
        {
            rows.push((
                text(p, "id"),
                format!("release {}", text(r, "releaseId")),
                p,
            ));
        }
    }
    for (key, source) in [("services", "service"), ("singletons", "singleton")] {
        for e in status.get(key).and_then(Value::as_array).unwrap_or(&empty) {
            if let Some(p) = e.get("process") {
                rows.push((text(e, "id"), source.to_owned(), p));
            }
        }
    }
    out.push(String::new());
    if rows.is_empty() {
        out.push("No managed processes.".into());
    } else {
        out.push("Processes".into());
        out.push(format!(
            "  {:<16} {:<20} {:>8} {:<9} {:>8} {:>10} {:>10}",
            "ID", "SOURCE", "PID", "STATE", "RESTARTS", "RSS", "UPTIME"
        ));
        for (id, source, p) in rows {
            out.push(format!(
                "  {:<16} {:<20} {:>8} {:<9} {:>8} {:>10} {:>10}",
                id,
                source,
                num(p, "pid").map_or("-".into(), |v| v.to_string()),
                text(p, "state"),
                num(p, "restarts").unwrap_or(0),
                num(p, "rssBytes").map_or("-".into(), bytes),
                num(p, "uptimeMs").map_or("-".into(), duration)
            ));
        }
    }
    out.join("\n")
}

/// `off` for null, else `on` with the named detail.
fn on_off(v: &Value, detail: &str) -> String {
    match v {
        Value::Null | Value::Bool(false) => "off".into(),
        v => match v.get(detail).and_then(Value::as_str) {
            Some(d) => format!("on ({d})"),
            None => "on".into(),
        },
    }
}

/// `1h 2m`, `3m 4s`, `5s`.
pub fn duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    }
}

/// `12.3 MB`.
pub fn bytes(b: u64) -> String {
    match b {
        0..1024 => format!("{b} B"),
        1024..1048576 => format!("{:.1} KB", b as f64 / 1024.0),
        _ => format!("{:.1} MB", b as f64 / 1048576.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn view_lists_daemon_releases_and_processes() {
        let status = json!({
            "activeReleaseId": "v2", "application": "shop",
            "proxy": {"host": "127.0.0.1", "port": 8080},
            "releases": [{"releaseId": "v2", "state": "active",
                "connections": {"http": 3, "websocket": 1},
                "processes": [{"id": "web", "pid": 42, "state": "running", "restarts": 1,
                    "rssBytes": 2097152, "uptimeMs": 65000}]}],
            "services": [], "singletons": []
        });
        let info = json!({"pid": 7, "version": "1.2.3", "uptimeMs": 7_200_000});
        let v = render(&status, Some(&info));
        assert!(
            v.contains("Daemon       pid 7, version 1.2.3, up 2h 0m"),
            "{v}"
        );
        assert!(v.contains("* v2"), "{v}");
        assert!(v.contains("3 http, 1 websocket"), "{v}");
        assert!(v.contains("web"), "{v}");
        assert!(v.contains("2.0 MB") && v.contains("1m 5s"), "{v}");
        assert!(!v.contains("Maintenance"), "absent keys are left out: {v}");
    }

    #[test]
    fn traffic_control_keys_show_when_present() {
        let status = json!({"maintenance": {"message": "back soon"}, "paused": null,
            "canary": {"releaseId": "v3", "percent": 10}});
        let v = render(&status, None);
        assert!(v.contains("Maintenance  on (back soon)"), "{v}");
        assert!(v.contains("Paused       off"), "{v}");
        assert!(v.contains("Canary       v3 at 10%"), "{v}");
    }
}
