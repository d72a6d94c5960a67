//! The prober thread: live health checks of the active release's proxied
//! process, off the proxy and core threads (a probe blocks for up to
//! `health.watchTimeoutMs`). The core sends the target whenever it changes
//! (or to re-arm after a failed replacement); the [`Watcher`] decides, and
//! the thread reports `Failing` to the core, which replaces the process.

use std::time::Instant;

use crossbeam_channel::{RecvTimeoutError, Sender, unbounded};

use super::watch::{Action, Watcher};
use crate::config::WatchConfig;
use crate::daemon::core::CoreMsg;
use crate::release::health;
use crate::supervisor::ProcKey;

/// The process to watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probed {
    pub release_id: String,
    pub id: String,
    pub key: ProcKey,
    pub host: String,
    pub port: u16,
    pub path: String,
    pub watch: WatchConfig,
}

/// From the prober to the core.
#[derive(Debug, Clone)]
pub struct Failing {
    pub target: Probed,
    pub failures: u32,
    pub last_result: String,
}

/// The core's handle: `set(Some)` (re-)arms, `set(None)` stops watching.
pub struct Prober {
    tx: Sender<Option<Probed>>,
}

impl Prober {
    /// Starts the thread; `None` if it cannot be started (no live checks).
    pub fn start(core: Sender<CoreMsg>) -> Option<Prober> {
        let (tx, rx) = unbounded::<Option<Probed>>();
        let run = move || {
            let mut current: Option<(Probed, Watcher)> = None;
            loop {
                let next = current.as_ref().and_then(|(_, w)| w.next_probe());
                let msg = match next {
                    Some(at) => rx.recv_timeout(at.saturating_duration_since(Instant::now())),
                    None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                };
                match msg {
                    Ok(target) => {
                        current = target.map(|t| {
                            let w = Watcher::new(t.watch, Instant::now());
                            (t, w)
                        })
                    }
                    Err(RecvTimeoutError::Disconnected) => return,
                    Err(RecvTimeoutError::Timeout) => {
                        let Some((t, w)) = current.as_mut() else {
                            continue;
                        };
                        let result = health::probe(&t.host, t.port, &t.path, w.probe_timeout());
                        if let Action::Failing {
                            failures,
                            last_result,
                        } = w.record(Instant::now(), result)
                        {
                            let _ = core.send(CoreMsg::Failing(Failing {
                                target: t.clone(),
                                failures,
                                last_result,
                            }));
                        }
                    }
                }
            }
        };
        std::thread::Builder::new()
            .name("health-watch".into())
            .spawn(run)
            .ok()?;
        Some(Prober { tx })
    }

    pub fn set(&self, target: Option<Probed>) {
        let _ = self.tx.send(target);
    }
}
