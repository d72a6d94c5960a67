//! A WebSocket tunnel after a 101: bytes spliced both ways, frames never
//! parsed. Either side's EOF is passed on as a half-close; the tunnel ends
//! when both sides are done, on any error, or `CLOSE_GRACE` after the first
//! EOF, whichever comes first — a tunnel whose peer is gone never lingers.

use super::conn::{Conn, write_buf};
use super::error::{ErrorKind, ProxyError};
use super::release::Counted;
use super::session::{Shared, Step};
use std::time::{Duration, Instant};

/// How long the other side may keep sending after one side closed.
pub const CLOSE_GRACE: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct Tunnel {
    /// The tunnel's place in its release's count (taken over from the
    /// exchange that upgraded).
    pub counted: Counted,
    /// When the first side closed.
    pub closing_since: Option<Instant>,
}

impl Tunnel {
    pub fn new(counted: Counted) -> Tunnel {
        Tunnel {
            counted,
            closing_since: None,
        }
    }

    pub fn release(&self) -> usize {
        self.counted.release()
    }
}

/// Moves whatever can move; bytes read past the 101 head (already in the
/// buffers) go first.
pub fn pump(t: &mut Tunnel, client: &mut Conn, up: &mut Conn, sh: &mut Shared) -> Step {
    let mut progress = false;
    // client -> upstream
    match client.fill(&mut sh.bufs) {
        Ok(n) => progress |= n > 0,
        Err(_) => return Step::Close,
    }
    match write_buf(
        &mut up.sock,
        &mut up.writable,
        &mut client.input,
        &mut sh.bufs,
    ) {
        Ok(n) => progress |= n > 0,
        Err(e) => return upstream_error(t, sh, e),
    }
    // upstream -> client, after the 101 head still queued in client.output
    match client.flush(&mut sh.bufs) {
        Ok(n) => progress |= n > 0,
        Err(_) => return Step::Close,
    }
    if client.pending_out() == 0 {
        match up.fill(&mut sh.bufs) {
            Ok(n) => progress |= n > 0,
            Err(e) => return upstream_error(t, sh, e),
        }
        match write_buf(
            &mut client.sock,
            &mut client.writable,
            &mut up.input,
            &mut sh.bufs,
        ) {
            Ok(n) => progress |= n > 0,
            Err(_) => return Step::Close,
        }
    }
    if client.eof && client.pending_in() == 0 && !up.write_shut {
        up.shutdown_write();
        t.closing_since.get_or_insert(sh.now);
        progress = true;
    }
    if up.eof && up.pending_in() == 0 && client.pending_out() == 0 && !client.write_shut {
        client.shutdown_write();
        t.closing_since.get_or_insert(sh.now);
        progress = true;
    }
    if client.write_shut && up.write_shut {
        return Step::Close;
    }
    if progress { Step::Progress } else { Step::Idle }
}

fn upstream_error(t: &Tunnel, sh: &mut Shared, e: std::io::Error) -> Step {
    let err = ProxyError::upstream(ErrorKind::Io, format!("websocket upstream: {e}"));
    sh.error(Some(t.release()), &err);
    Step::Close
}
