//! Live lines for followers (`logs --follow`, `events --follow`): the
//! supervisor and the core publish here, the control thread fans out.
//!
//! Publishing is cheap and never blocks: nothing happens unless a follower
//! exists (one atomic load), and the hand-off is a `try_send` on a bounded
//! channel whose overflow is only counted. Each follower then has its own
//! bounded queue on the control thread (see `server`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};
use mio::Waker;

use crate::events::Event;
use crate::supervisor::ProcKey;
use crate::supervisor::output::LogLine;

/// Items waiting for the control thread.
const CHANNEL: usize = 4096;

/// One published item.
pub enum FanItem {
    Event(Event),
    /// A captured output line of process `key` (instance `id`).
    Output {
        key: ProcKey,
        id: String,
        release_id: Option<String>,
        line: LogLine,
    },
    /// The `logs` source label of every known process (`release v1
    /// (active)`, `service`, `singleton`), sent when it changes.
    Sources(Vec<(ProcKey, String)>),
}

pub struct Fanout {
    active: AtomicBool,
    tx: Sender<FanItem>,
    /// Items lost because the channel was full.
    dropped: AtomicU64,
    waker: Arc<Waker>,
}

impl Fanout {
    pub fn new(waker: Arc<Waker>) -> (Arc<Fanout>, Receiver<FanItem>) {
        let (tx, rx) = bounded(CHANNEL);
        let fanout = Fanout {
            active: AtomicBool::new(false),
            tx,
            dropped: AtomicU64::new(0),
            waker,
        };
        (Arc::new(fanout), rx)
    }

    /// Whether at least one follower listens.
    pub fn active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    pub(crate) fn set_active(&self, on: bool) {
        self.active.store(on, Ordering::Relaxed);
    }

    /// Hands `item` to the control thread unless nobody follows; never
    /// blocks (a full channel drops the item and counts it).
    pub fn publish(&self, item: FanItem) {
        if !self.active() {
            return;
        }
        match self.tx.try_send(item) {
            Ok(()) => {
                let _ = self.waker.wake();
            }
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Items dropped since the last call.
    pub(crate) fn take_dropped(&self) -> u64 {
        self.dropped.swap(0, Ordering::Relaxed)
    }
}

impl crate::supervisor::OutputTap for Fanout {
    fn active(&self) -> bool {
        Fanout::active(self)
    }

    fn line(&self, key: ProcKey, id: &str, release_id: Option<&str>, line: &LogLine) {
        self.publish(FanItem::Output {
            key,
            id: id.to_owned(),
            release_id: release_id.map(str::to_owned),
            line: line.clone(),
        });
    }
}
