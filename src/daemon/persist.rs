//! Persisted state (`daemon.md` §8): the status object plus the event ring
//! and `persistedAt`, with every key that could carry a command line,
//! environment, working directory or captured output removed at any depth.
//! Written by a writer thread (writes are chained, never concurrent, and the
//! core loop never waits on the disk), temp file + fsync + rename.

use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, bounded, unbounded};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

use crate::config::raw::Raw;

/// Keys removed at any depth (event data included).
pub const SECRET_KEYS: &[&str] = &[
    "children",
    "command",
    "cwd",
    "env",
    "environment",
    "logs",
    "output",
];

/// Every how often the state is rewritten while the daemon serves.
pub const PERSIST_EVERY: std::time::Duration = std::time::Duration::from_millis(5000);

/// Builds the file content: `status` members (compact JSON object text,
/// without the `status` member), then `events` (JSON array text), then
/// `persistedAt`; secrets stripped; 2-space indent and a trailing newline.
pub fn content(status_json: &str, events_json: &str, persisted_at: &str) -> String {
    let mut members = match Raw::from_json(status_json) {
        Ok(Raw::Object(m)) => m,
        _ => Vec::new(),
    };
    members.retain(|(k, _)| k != "status");
    let events = Raw::from_json(events_json).unwrap_or(Raw::Array(Vec::new()));
    members.push(("events".into(), events));
    members.push(("persistedAt".into(), Raw::String(persisted_at.into())));
    let value = strip(Raw::Object(members));
    let mut text = serde_json::to_string_pretty(&Ordered(&value)).unwrap_or_else(|_| "{}".into());
    text.push('\n');
    text
}

/// The shutdown rewrite when prior-daemon orphans are still alive.
pub fn orphans_only(orphans_json: &str) -> String {
    let orphans = Raw::from_json(orphans_json).unwrap_or(Raw::Array(Vec::new()));
    let value = Raw::Object(vec![
        ("activeReleaseId".into(), Raw::Null),
        ("orphans".into(), orphans),
        ("releases".into(), Raw::Array(Vec::new())),
        ("services".into(), Raw::Array(Vec::new())),
        ("singletons".into(), Raw::Array(Vec::new())),
    ]);
    let mut text = serde_json::to_string_pretty(&Ordered(&value)).unwrap_or_else(|_| "{}".into());
    text.push('\n');
    text
}

/// `content` (a JSON object's text) with `key: value_json` added last.
pub fn with_member(content: &str, key: &str, value_json: &str) -> String {
    let mut members = match Raw::from_json(content) {
        Ok(Raw::Object(m)) => m,
        _ => Vec::new(),
    };
    members.retain(|(k, _)| k != key);
    members.push((key.into(), Raw::from_json(value_json).unwrap_or(Raw::Null)));
    let mut text = serde_json::to_string_pretty(&Ordered(&Raw::Object(members)))
        .unwrap_or_else(|_| "{}".into());
    text.push('\n');
    text
}

/// Removes [`SECRET_KEYS`] members everywhere.
pub fn strip(value: Raw) -> Raw {
    match value {
        Raw::Object(members) => Raw::Object(
            members
                .into_iter()
                .filter(|(k, _)| !SECRET_KEYS.contains(&k.as_str()))
                .map(|(k, v)| (k, strip(v)))
                .collect(),
        ),
        Raw::Array(items) => Raw::Array(items.into_iter().map(strip).collect()),
        other => other,
    }
}

/// Serializes a [`Raw`] keeping member order (integers stay integers).
struct Ordered<'a>(&'a Raw);

impl Serialize for Ordered<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Raw::Null | Raw::NonFinite => s.serialize_unit(),
            Raw::Bool(b) => s.serialize_bool(*b),
            Raw::Number(n) => {
                if n.fract() == 0.0 && n.abs() < 9.0e15 {
                    s.serialize_i64(*n as i64)
                } else {
                    s.serialize_f64(*n)
                }
            }
            Raw::String(text) => s.serialize_str(text),
            Raw::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&Ordered(item))?;
                }
                seq.end()
            }
            Raw::Object(members) => {
                let mut map = s.serialize_map(Some(members.len()))?;
                for (k, v) in members {
                    map.serialize_entry(k, &Ordered(v))?;
                }
                map.end()
            }
        }
    }
}

enum Job {
    Write(String),
    /// Final step of a clean shutdown: rewrite (orphans only) or delete.
    Finalize {
        content: Option<String>,
        done: Sender<Result<(), String>>,
    },
}

/// The writer thread.
pub struct Persister {
    tx: Sender<Job>,
    thread: Option<JoinHandle<()>>,
}

impl Persister {
    /// `on_error` receives each failed write's message (for the
    /// `state persist failed` event); it must not block.
    pub fn start(
        path: PathBuf,
        on_error: Box<dyn Fn(String) + Send>,
    ) -> std::io::Result<Persister> {
        let (tx, rx) = unbounded();
        let thread = std::thread::Builder::new()
            .name("persist".into())
            .spawn(move || writer(path, rx, on_error))?;
        Ok(Persister {
            tx,
            thread: Some(thread),
        })
    }

    /// Queues a write (a newer queued one supersedes it).
    pub fn write(&self, content: String) {
        let _ = self.tx.send(Job::Write(content));
    }

    /// Waits for any in-flight write, then rewrites or deletes the file.
    pub fn finalize(mut self, content: Option<String>) -> Result<(), String> {
        let (done, rx) = bounded(1);
        let _ = self.tx.send(Job::Finalize { content, done });
        let result = rx
            .recv()
            .unwrap_or_else(|_| Err("state writer is gone".into()));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        result
    }
}

fn writer(path: PathBuf, rx: Receiver<Job>, on_error: Box<dyn Fn(String) + Send>) {
    let mut counter = 0u64;
    while let Ok(mut job) = rx.recv() {
        // Coalesce: only the newest queued write matters.
        while let Job::Write(_) = job {
            match rx.try_recv() {
                Ok(next) => job = next,
                Err(_) => break,
            }
        }
        match job {
            Job::Write(content) => {
                counter += 1;
                if let Err(e) = write_state(&path, &content, counter) {
                    on_error(e);
                }
            }
            Job::Finalize { content, done } => {
                let result = match content {
                    Some(c) => write_state(&path, &c, counter + 1),
                    None => match std::fs::remove_file(&path) {
                        Ok(()) => Ok(()),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                        Err(e) => Err(format!("cannot remove {}: {e}", path.display())),
                    },
                };
                let _ = done.send(result);
                return;
            }
        }
    }
}

/// `<statePath>.<daemon pid>.<counter>.tmp`, fsync, rename over the target.
fn write_state(path: &Path, content: &str, counter: u64) -> Result<(), String> {
    use std::io::Write;
    let tmp = PathBuf::from(format!(
        "{}.{}.{counter}.tmp",
        path.display(),
        std::process::id()
    ));
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(content.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot write {}: {e}", path.display())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_removed_at_any_depth_and_order_is_kept() {
        let status = r#"{"status":"success","activeReleaseId":null,"application":"a","releases":[{"processes":[{"children":[],"command":"node x","cwd":"/r","id":"web","logs":[{"line":"secret"}],"pid":12}]}]}"#;
        let events = r#"[{"at":"t","data":{"processId":"web","command":"node x","env":{"K":"v"}},"message":"process started"}]"#;
        let text = content(status, events, "2026-01-01T00:00:00.000Z");
        assert!(!text.contains("node x") && !text.contains("secret") && !text.contains("/r"));
        assert!(!text.contains("\"status\""));
        let keys: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("  \"") && !l.starts_with("   "))
            .map(|l| l.trim().split('"').nth(1).unwrap())
            .collect();
        assert_eq!(
            keys,
            [
                "activeReleaseId",
                "application",
                "releases",
                "events",
                "persistedAt"
            ]
        );
        assert!(text.contains("\"pid\": 12"));
        assert!(text.ends_with("}\n"));
    }

    #[test]
    fn writer_replaces_the_file_and_finalize_deletes_it() {
        let dir = std::env::temp_dir().join(format!("rb-persist-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        let p = Persister::start(path.clone(), Box::new(|_| {})).unwrap();
        p.write("{\"a\":1}\n".into());
        p.write("{\"a\":2}\n".into());
        p.finalize(Some("{\"a\":3}\n".into())).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"a\":3}\n");
        let p = Persister::start(path.clone(), Box::new(|_| {})).unwrap();
        p.finalize(None).unwrap();
        assert!(!path.exists());
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            0,
            "no temp files left"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
