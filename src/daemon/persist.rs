//! Persisted state: the status object plus the event ring
//! and `persistedAt`, with every key that could carry a command line,
//! environment, working directory or captured output removed at any depth.
//! Written by a writer thread (writes are chained, never concurrent, and the
//! core loop never waits on the disk), durably: temp file, fsync, rename,
//! folder fsync. Each successful write first rotates the previous good
//! version to `<state>.prev`. Additive keys after `persistedAt`: `daemon`
//! (pid + start time of the writer), `starting` (a release whose
//! processes run but which is not active yet) and `replacing` (instances
//! of the proxied process a replacement runs besides the one its release
//! names); process entries carry
//! `pgid` and `startTime` so a recycled pid is never taken for them.

use std::collections::HashMap;
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

/// Process identities: pid -> (pgid, start time).
pub type Identities = HashMap<u32, (u32, u64)>;

/// What the state file holds beyond the status and the events.
#[derive(Debug, Default)]
pub struct Extra {
    pub identities: Identities,
    /// `{"pid", "startTime"}` of the daemon.
    pub daemon: Option<String>,
    /// `{"releaseId", "processes": [...]}` of a release still starting.
    pub starting: Option<String>,
    /// `[{"releaseId", "id", "pid", "pgid", "startTime"}]`: instances a
    /// replacement runs that their release does not name.
    pub replacing: Option<String>,
}

/// Builds the file content: `status` members (compact JSON object text,
/// without the `status` member), then `events` (JSON array text), then
/// `persistedAt`, then the [`Extra`] keys; secrets stripped; 2-space
/// indent and a trailing newline.
pub fn content(status_json: &str, events_json: &str, persisted_at: &str, extra: &Extra) -> String {
    let mut members = match Raw::from_json(status_json) {
        Ok(Raw::Object(m)) => m,
        _ => Vec::new(),
    };
    members.retain(|(k, _)| k != "status");
    for (k, v) in members.iter_mut() {
        if matches!(
            k.as_str(),
            "releases" | "services" | "singletons" | "orphans"
        ) {
            annotate(v, &extra.identities);
        }
    }
    let events = Raw::from_json(events_json).unwrap_or(Raw::Array(Vec::new()));
    members.push(("events".into(), events));
    members.push(("persistedAt".into(), Raw::String(persisted_at.into())));
    for (key, text) in [
        ("daemon", &extra.daemon),
        ("starting", &extra.starting),
        ("replacing", &extra.replacing),
    ] {
        if let Some(Ok(v)) = text.as_deref().map(Raw::from_json) {
            members.push((key.into(), v));
        }
    }
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

/// Adds `pgid` and `startTime` beside every known `pid`.
fn annotate(value: &mut Raw, ids: &Identities) {
    match value {
        Raw::Object(members) => {
            let known = members.iter().find_map(|(k, v)| match (k.as_str(), v) {
                ("pid", Raw::Number(n)) => ids.get(&(*n as u32)).copied(),
                _ => None,
            });
            for (_, v) in members.iter_mut() {
                annotate(v, ids);
            }
            if let Some((pgid, start)) = known {
                if !members.iter().any(|(k, _)| k == "startTime") {
                    members.push(("pgid".into(), Raw::Number(pgid as f64)));
                    members.push(("startTime".into(), Raw::Number(start as f64)));
                }
            }
        }
        Raw::Array(items) => items.iter_mut().for_each(|v| annotate(v, ids)),
        _ => {}
    }
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

/// Where a write's outcome goes (write-ahead callers wait for it).
pub type Ack = Sender<Result<(), String>>;

enum Job {
    Write(String, Option<Ack>),
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

/// Receives each write's outcome (errors for the `state persist failed`
/// event and `stateError`); it must not block.
pub type OnResult = Box<dyn Fn(Result<(), String>) + Send>;

impl Persister {
    pub fn start(path: PathBuf, on_result: OnResult) -> std::io::Result<Persister> {
        let (tx, rx) = unbounded();
        let thread = std::thread::Builder::new()
            .name("persist".into())
            .spawn(move || writer(path, rx, on_result))?;
        Ok(Persister {
            tx,
            thread: Some(thread),
        })
    }

    /// Queues a write (a newer queued one supersedes it).
    pub fn write(&self, content: String) {
        let _ = self.tx.send(Job::Write(content, None));
    }

    /// Queues a write; `ack` gets its outcome once it is on disk.
    pub fn write_acked(&self, content: String, ack: Ack) {
        let _ = self.tx.send(Job::Write(content, Some(ack)));
    }

    /// Waits for any queued write, then stops; the file stays as it is
    /// (a daemon taking over reads it).
    pub fn stop(self) {
        let Persister { tx, thread } = self;
        drop(tx);
        if let Some(t) = thread {
            let _ = t.join();
        }
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

fn writer(path: PathBuf, rx: Receiver<Job>, on_result: OnResult) {
    let mut w = Writer {
        counter: 0,
        last_good: None,
        path,
    };
    while let Ok(mut job) = rx.recv() {
        // Coalesce: only the newest queued write matters; everyone who
        // waits hears its outcome.
        let mut acks = Vec::new();
        while let Job::Write(_, ack) = &mut job {
            acks.extend(ack.take());
            match rx.try_recv() {
                Ok(next) => job = next,
                Err(_) => break,
            }
        }
        match job {
            Job::Write(content, _) => {
                let result = w.write(&content);
                for ack in acks {
                    let _ = ack.send(result.clone());
                }
                on_result(result);
            }
            Job::Finalize { content, done } => {
                for ack in acks {
                    let _ = ack.send(Err("Rollbridge is shutting down".into()));
                }
                let result = match content {
                    Some(c) => w.write(&c),
                    None => crate::daemon::statefile::clear(&w.path.to_string_lossy()),
                };
                let _ = done.send(result);
                return;
            }
        }
    }
}

struct Writer {
    counter: u64,
    /// The content of the last successful write (the next `.prev`).
    last_good: Option<String>,
    path: PathBuf,
}

impl Writer {
    /// Rotates the last good version to `.prev`, then writes `content`.
    fn write(&mut self, content: &str) -> Result<(), String> {
        if self.last_good.is_none() {
            // First write: what a previous daemon left is the last good
            // version (unless unreadable).
            self.last_good = std::fs::read_to_string(&self.path).ok().filter(|t| {
                serde_json::from_str::<serde_json::Value>(t).is_ok_and(|v| v.is_object())
            });
        }
        if let Some(prev) = self.last_good.take() {
            let prev_path = PathBuf::from(crate::daemon::statefile::prev_path(
                &self.path.to_string_lossy(),
            ));
            let n = self.next();
            let result = write_state(&prev_path, &prev, n);
            self.last_good = Some(prev);
            result?;
        }
        let n = self.next();
        write_state(&self.path, content, n)?;
        self.last_good = Some(content.to_owned());
        Ok(())
    }

    fn next(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }
}

/// `<path>.<daemon pid>.<counter>.tmp`, then the durable write.
fn write_state(path: &Path, content: &str, counter: u64) -> Result<(), String> {
    let tmp = PathBuf::from(format!(
        "{}.{}.{counter}.tmp",
        path.display(),
        std::process::id()
    ));
    crate::durable::write_via(path, &tmp, content.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_removed_at_any_depth_and_order_is_kept() {
        let status = r#"{"status":"success","activeReleaseId":null,"application":"a","releases":[{"processes":[{"children":[],"command":"node x","cwd":"/r","id":"web","logs":[{"line":"secret"}],"pid":12}]}]}"#;
        let events = r#"[{"at":"t","data":{"processId":"web","command":"node x","env":{"K":"v"}},"message":"process started"}]"#;
        let mut extra = Extra::default();
        extra.identities.insert(12, (12, 345));
        extra.starting = Some(r#"{"releaseId":"v2","processes":[]}"#.into());
        let text = content(status, events, "2026-01-01T00:00:00.000Z", &extra);
        assert!(text.contains("\"startTime\": 345"), "{text}");
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
                "persistedAt",
                "starting"
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
        let (ack, done) = bounded(1);
        p.write_acked("{\"a\":2}\n".into(), ack);
        done.recv().unwrap().unwrap();
        p.finalize(Some("{\"a\":3}\n".into())).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"a\":3}\n");
        let prev = crate::daemon::statefile::prev_path(&path.to_string_lossy());
        assert_eq!(std::fs::read_to_string(&prev).unwrap(), "{\"a\":2}\n");
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
