//! The stable HTTP/1.1 + WebSocket proxy: one mio event-loop thread in
//! front of the active release (design: `docs/proxy.md`).
//!
//! ```no_run
//! use rollbridge::proxy::{self, ProxyOptions};
//! let (handle, events) = proxy::start(ProxyOptions { port: 0, ..Default::default() })?;
//! handle.set_active("v1", "127.0.0.1:3000".parse().unwrap())?;
//! // ... deploy v2:
//! handle.set_active("v2", "127.0.0.1:3001".parse().unwrap())?;
//! handle.retire("v1")?; // ProxyEvent::Drained { release_id: "v1" } follows
//! # drop(events);
//! handle.shutdown()?;
//! # Ok::<(), std::io::Error>(())
//! ```

mod access_log;
mod admin;
pub mod budget;
pub mod buf;
pub mod codec;
mod conn;
mod connect;
pub mod error;
mod event_loop;
mod exchange;
mod farewell;
mod handle;
pub mod handover;
mod history;
mod metrics;
pub mod options;
mod pause;
mod release;
mod request_id;
mod session;
mod splice;
mod sticky;
mod timers;
pub mod traffic;
mod transition;
mod tunnel;
mod wsframe;

pub use admin::{AdminSnapshot, ProcessSample};
pub use budget::{Budget, ConnectionLoad};
pub use error::{ErrorKind, ProxyError, Side};
pub use handle::{
    Pending, ProxyEvent, ProxyFreeze, ProxyFreezeParts, ProxyHandle, ReleaseCounts, bind, prepare,
    resolve, start,
};
pub use options::{IpNet, ProxyOptions};
pub use traffic::Maintenance;
