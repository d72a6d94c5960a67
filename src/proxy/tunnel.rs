//! A WebSocket tunnel after a 101: bytes spliced both ways. Frames are not
//! parsed, only followed (`wsframe.rs`: where the current frame ends, O(1)
//! per chunk), so the tunnel can be retired at a frame boundary. Either
//! side's EOF is passed on as a half-close; the tunnel ends when both sides
//! are done, on any error, or `CLOSE_GRACE` after the first EOF, whichever
//! comes first — a tunnel whose peer is gone never lingers.
//!
//! Retiring (drain deadline, graceful stop): once the frame under way to
//! the client has ended, the client gets a Close 1001 ("going away") and
//! nothing more from the app; then, at the end of the frame under way to
//! the app, the app gets a masked Close 1001. The connections close when
//! the client answers with its Close, or `CLOSE_GRACE` after ours (or after
//! the start, if the frame under way never ends).

use super::buf::{Buf, BufPool};
use super::conn::Conn;
use super::error::{ErrorKind, ProxyError};
use super::release::Counted;
use super::session::{Phase, Session, Shared, Step, Verdict};
use super::wsframe::{FrameTracker, GOING_AWAY, close_frame, mask_key};
use mio::Registry;
use std::io::{self, Write};
use std::time::{Duration, Instant};

/// How long the other side may keep sending after one side closed; also
/// how long a retiring tunnel waits for a frame to end, then for the
/// client's answer to the Close.
pub const CLOSE_GRACE: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct Tunnel {
    /// The tunnel's place in its release's count (taken over from the
    /// exchange that upgraded).
    pub counted: Counted,
    /// When the first side closed, or when the retirement's current wait
    /// began.
    pub closing_since: Option<Instant>,
    /// Frames app → client.
    to_client: FrameTracker,
    /// Frames client → app.
    to_app: FrameTracker,
    going: Option<Going>,
}

/// How far a retiring tunnel got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Going {
    /// A frame to the client is under way.
    Waiting,
    /// The client got the Close; a frame to the app may be under way.
    ClientTold,
    /// Both got the Close; waiting for the client's.
    BothTold,
}

impl Tunnel {
    pub fn new(counted: Counted) -> Tunnel {
        Tunnel {
            counted,
            closing_since: None,
            to_client: FrameTracker::default(),
            to_app: FrameTracker::default(),
            going: None,
        }
    }

    pub fn release(&self) -> usize {
        self.counted.release()
    }

    /// The frame trackers (app → client, client → app) of a tunnel in full
    /// flow; `None` once it is closing or retiring (a daemon upgrade waits
    /// for those to end).
    pub fn trackers(&self) -> Option<(FrameTracker, FrameTracker)> {
        if self.going.is_some() || self.closing_since.is_some() {
            return None;
        }
        Some((self.to_client, self.to_app))
    }

    /// A tunnel carried on from a previous program, mid-stream.
    pub fn resumed(counted: Counted, to_client: FrameTracker, to_app: FrameTracker) -> Tunnel {
        Tunnel {
            counted,
            closing_since: None,
            to_client,
            to_app,
            going: None,
        }
    }
}

impl Session {
    /// Retires a tunnel with a Close 1001; any other connection (or a
    /// tunnel already half-closed) closes at once.
    pub(super) fn go_away(&mut self, sh: &mut Shared, reg: &Registry) -> Verdict {
        let Phase::Tunnel(t) = &mut self.phase else {
            return Verdict::Close;
        };
        if t.going.is_some() {
            return Verdict::Keep;
        }
        if t.closing_since.is_some() {
            return Verdict::Close;
        }
        t.going = Some(Going::Waiting);
        t.closing_since = Some(sh.now);
        self.drive(sh, reg)
    }
}

/// Moves whatever can move; bytes read past the 101 head (already in the
/// buffers) go first.
pub fn pump(t: &mut Tunnel, client: &mut Conn, up: &mut Conn, sh: &mut Shared) -> Step {
    if let Some(going) = t.going {
        return pump_going(t, going, client, up, sh);
    }
    let mut progress = false;
    // client -> upstream
    match client.fill(&mut sh.bufs) {
        Ok(n) => progress |= n > 0,
        Err(_) => return Step::Close,
    }
    match relay(up, &mut client.input, &mut sh.bufs, &mut t.to_app, false) {
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
        match relay(client, &mut up.input, &mut sh.bufs, &mut t.to_client, false) {
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

/// A retiring tunnel: frames under way end, then the Closes go out.
fn pump_going(
    t: &mut Tunnel,
    going: Going,
    client: &mut Conn,
    up: &mut Conn,
    sh: &mut Shared,
) -> Step {
    let mut progress = false;
    match client.flush(&mut sh.bufs) {
        Ok(n) => progress |= n > 0,
        Err(_) => return Step::Close,
    }
    // The app may be gone by now: its Close is a courtesy.
    progress |= up.flush(&mut sh.bufs).unwrap_or(0) > 0;

    // app -> client: the frame under way, then the Close.
    if going == Going::Waiting {
        if client.pending_out() == 0 {
            match up.fill(&mut sh.bufs) {
                Ok(n) => progress |= n > 0,
                Err(_) => return Step::Close,
            }
            match relay(client, &mut up.input, &mut sh.bufs, &mut t.to_client, true) {
                Ok(n) => progress |= n > 0,
                Err(_) => return Step::Close,
            }
        }
        if t.to_client.at_boundary() {
            let (frame, n) = close_frame(GOING_AWAY, None);
            client.queue(&mut sh.bufs, &frame[..n]);
            if client.flush(&mut sh.bufs).is_err() {
                return Step::Close;
            }
            t.going = Some(Going::ClientTold);
            t.closing_since = Some(sh.now);
            progress = true;
        } else if up.eof && up.pending_in() == 0 {
            // The app left in the middle of a frame: it never ends.
            return Step::Close;
        }
    } else {
        // The client was told: what the app sends now is dropped.
        progress |= up.fill(&mut sh.bufs).unwrap_or(0) > 0;
        discard(&mut up.input, &mut sh.bufs);
    }

    // client -> app
    match client.fill(&mut sh.bufs) {
        Ok(n) => progress |= n > 0,
        Err(_) => return Step::Close,
    }
    if t.going == Some(Going::Waiting) {
        let sent = relay(up, &mut client.input, &mut sh.bufs, &mut t.to_app, false);
        if sent.is_err() {
            // The app is gone; the client still gets its Close.
            discard(&mut client.input, &mut sh.bufs);
        }
    } else if t.going == Some(Going::ClientTold) {
        let sent = relay(up, &mut client.input, &mut sh.bufs, &mut t.to_app, true);
        if sent.is_err() || t.to_app.at_boundary() {
            if sent.is_ok() {
                let seed = t as *const Tunnel as u64;
                let (frame, n) = close_frame(GOING_AWAY, Some(mask_key(seed)));
                up.queue(&mut sh.bufs, &frame[..n]);
                let _ = up.flush(&mut sh.bufs);
            }
            t.going = Some(Going::BothTold);
            progress = true;
        }
    }
    if t.going == Some(Going::BothTold) {
        // Only the client's answer matters now.
        let answered = client
            .input
            .as_ref()
            .is_some_and(|b| t.to_app.feed(b.data()));
        discard(&mut client.input, &mut sh.bufs);
        if answered {
            return Step::Close;
        }
    }
    if client.eof {
        return Step::Close;
    }
    if progress { Step::Progress } else { Step::Idle }
}

/// Writes `src`'s bytes to `dst` until empty or `WouldBlock`, following
/// them as frames; `bounded` stops at the end of the current frame.
fn relay(
    dst: &mut Conn,
    src: &mut Option<Buf>,
    bufs: &mut BufPool,
    frames: &mut FrameTracker,
    bounded: bool,
) -> io::Result<usize> {
    // Bytes queued for `dst` (the 101 head, our Close) go first.
    if dst.pending_out() > 0 {
        return Ok(0);
    }
    let mut total = 0;
    if let Some(buf) = src.as_mut() {
        while dst.writable && !buf.is_empty() {
            let room = if bounded {
                let left = frames.until_boundary();
                if left == 0 {
                    break;
                }
                usize::try_from(left).map_or(buf.len(), |l| l.min(buf.len()))
            } else {
                buf.len()
            };
            let data = &buf.data()[..room];
            match dst.sock.write(data) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    frames.feed(&data[..n]);
                    buf.consume(n);
                    total += n;
                    dst.sent += n as u64;
                    if n < room {
                        // The send buffer is full: wait for the next edge.
                        dst.writable = false;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => dst.writable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
    bufs.release_if_empty(src);
    Ok(total)
}

fn discard(slot: &mut Option<Buf>, bufs: &mut BufPool) {
    if let Some(b) = slot.as_mut() {
        let len = b.len();
        b.consume(len);
    }
    bufs.release_if_empty(slot);
}

fn upstream_error(t: &Tunnel, sh: &mut Shared, e: std::io::Error) -> Step {
    let err = ProxyError::upstream(ErrorKind::Io, format!("websocket upstream: {e}"));
    sh.error(Some(t.release()), &err);
    Step::Close
}
