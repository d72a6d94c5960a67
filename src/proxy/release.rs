//! Releases as the proxy sees them: id, upstream address, live counts,
//! retirement, and the pool of idle keep-alive upstream connections.
//!
//! Owned by the event-loop thread only; the daemon reads counts through a
//! request/reply command, so no lock is ever taken per request.

use super::buf::BufPool;
use super::conn::Conn;
use super::handle::{ProxyEvent, ReleaseCounts};
use crossbeam_channel::Sender;
use mio::Registry;
use std::net::SocketAddr;
use std::time::Instant;

/// Most idle upstream connections kept per release. The pool only holds
/// connections the app already had open at once, each for at most the
/// upstream idle timeout, and idle ones give way to clients at the
/// connection cap; a small cap closed connections after every burst only
/// to open them again (against the app's listen backlog) in the next.
const MAX_IDLE_PER_RELEASE: usize = 1024;

/// Which counter a routed request uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Http,
    WebSocket,
}

#[derive(Debug)]
pub struct Release {
    pub id: String,
    /// `id` as the assignment cookie spells it.
    pub cookie: Box<str>,
    pub addr: SocketAddr,
    pub http: u64,
    pub websocket: u64,
    pub retired: bool,
    /// Set on an instance of the release that was replaced by another one
    /// (same release, new upstream): the replacement's ticket. Such a slot
    /// only drains; [`Releases::find`] never returns it.
    pub replaced: Option<u64>,
    /// Pool slots of this release's idle upstream connections (LIFO).
    pub idle: Vec<usize>,
}

/// An idle upstream connection waiting in the pool.
#[derive(Debug)]
pub struct IdleUp {
    pub conn: Conn,
    pub uid: usize,
    pub release: usize,
    pub expires: Instant,
}

/// Who currently owns an upstream socket. Upstream sockets keep one token
/// (`uid`) for life, so moving a connection in and out of the pool costs no
/// `epoll_ctl`; events are routed through this table instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// Session index.
    Session(usize),
    /// Pool slot.
    Idle(usize),
}

/// Proof that a request or tunnel is counted against a release: made only
/// by [`Releases::begin`], neither `Clone` nor `Copy`, consumed by
/// [`Releases::end`]. The exchange or tunnel that owns it is the one thing
/// that can be uncounted.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a counted request must be ended through Releases::end"]
pub struct Counted {
    release: usize,
    kind: Kind,
}

impl Counted {
    /// The release counted against.
    pub fn release(&self) -> usize {
        self.release
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }
}

/// The canary release and the share of new clients it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CanaryRoute {
    pub release: usize,
    pub percent: u8,
}

/// Pool tokens are tagged by the event loop; this is only the slab.
#[derive(Debug, Default)]
pub struct Releases {
    slots: Vec<Option<Release>>,
    pub active: Option<usize>,
    /// The canary (routed to by assignment only), while one runs.
    pub canary: Option<CanaryRoute>,
    pub idle: Vec<Option<IdleUp>>,
    idle_free: Vec<usize>,
    owners: Vec<Option<Owner>>,
    owners_free: Vec<usize>,
    /// Idle connections in the pool (they count against the cap).
    idle_open: usize,
}

impl Releases {
    /// A new upstream socket id (its token is derived from it).
    pub fn alloc_uid(&mut self, owner: Owner) -> usize {
        match self.owners_free.pop() {
            Some(uid) => {
                self.owners[uid] = Some(owner);
                uid
            }
            None => {
                self.owners.push(Some(owner));
                self.owners.len() - 1
            }
        }
    }

    pub fn free_uid(&mut self, uid: usize) {
        if let Some(o) = self.owners.get_mut(uid) {
            if o.take().is_some() {
                self.owners_free.push(uid);
            }
        }
    }

    /// Idle upstream connections parked in the pool.
    pub fn idle_count(&self) -> usize {
        self.idle_open
    }

    /// Closes the pooled connection closest to expiry (to make room for a
    /// client at the connection cap); false if the pool is empty.
    pub fn close_oldest_idle(&mut self, registry: &Registry) -> bool {
        let oldest = self
            .idle
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|s| (s.expires, i)))
            .min();
        match oldest {
            Some((_, slot)) => {
                self.close_idle(slot, registry);
                true
            }
            None => false,
        }
    }

    pub fn owner(&self, uid: usize) -> Option<Owner> {
        self.owners.get(uid).copied().flatten()
    }

    pub fn get(&self, idx: usize) -> Option<&Release> {
        self.slots.get(idx).and_then(Option::as_ref)
    }

    pub fn find(&self, id: &str) -> Option<usize> {
        self.slots.iter().position(|s| {
            s.as_ref()
                .is_some_and(|r| r.id == id && r.replaced.is_none())
        })
    }

    /// Every slot of release `id`: its current upstream and the replaced
    /// instances still draining.
    pub fn all_of(&self, id: &str) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|&i| self.get(i).is_some_and(|r| r.id == id))
            .collect()
    }

    /// The draining instance of `id` replaced under `ticket`.
    pub fn find_replaced(&self, id: &str, ticket: u64) -> Option<usize> {
        self.slots.iter().position(|s| {
            s.as_ref()
                .is_some_and(|r| r.id == id && r.replaced == Some(ticket))
        })
    }

    fn insert(&mut self, r: Release) -> usize {
        match self.slots.iter().position(Option::is_none) {
            Some(i) => {
                self.slots[i] = Some(r);
                i
            }
            None => {
                self.slots.push(Some(r));
                self.slots.len() - 1
            }
        }
    }

    /// Release `id` now has its upstream at `addr`: new requests go there
    /// (if it was active it stays active), while the requests and tunnels
    /// already on the previous upstream keep their counts on a slot of their
    /// own, which drains and then reports
    /// [`ProxyEvent::InstanceDrained`] with `ticket`. `None` (and that
    /// event at once) when the proxy does not know `id`.
    pub fn replace(
        &mut self,
        id: &str,
        addr: SocketAddr,
        ticket: u64,
        registry: &Registry,
        events: &Sender<ProxyEvent>,
    ) -> Option<usize> {
        let Some(old) = self.find(id) else {
            let _ = events.try_send(ProxyEvent::InstanceDrained {
                release_id: id.to_string(),
                ticket,
            });
            return None;
        };
        let retired = self.get(old).is_some_and(|r| r.retired);
        let new = self.insert(Release {
            cookie: super::sticky::encode(id).into(),
            id: id.to_string(),
            addr,
            http: 0,
            websocket: 0,
            retired,
            replaced: None,
            idle: Vec::new(),
        });
        if let Some(r) = self.slots[old].as_mut() {
            r.replaced = Some(ticket);
            r.retired = true;
        }
        if self.active == Some(old) {
            self.active = Some(new);
        }
        if let Some(c) = self.canary.as_mut().filter(|c| c.release == old) {
            c.release = new;
        }
        self.close_idle_of(old, registry);
        self.check_drained(old, registry, events);
        // A release already retired reports `Drained` for its new slot.
        self.check_drained(new, registry, events);
        Some(new)
    }

    /// Makes `id` the release new requests go to (a canary promoted this
    /// way stops being the canary).
    pub fn set_active(&mut self, id: String, addr: SocketAddr, registry: &Registry) -> usize {
        let idx = self.upsert(id, addr, registry);
        self.active = Some(idx);
        if self.canary.is_some_and(|c| c.release == idx) {
            self.canary = None;
        }
        idx
    }

    /// Makes `id` the canary: new clients go there with probability
    /// `percent` %, and clients assigned to it stay.
    pub fn set_canary(
        &mut self,
        id: String,
        addr: SocketAddr,
        percent: u8,
        registry: &Registry,
    ) -> usize {
        let idx = self.upsert(id, addr, registry);
        self.canary = Some(CanaryRoute {
            release: idx,
            percent,
        });
        idx
    }

    /// The slot of release `id` at `addr`, made live (not retired).
    fn upsert(&mut self, id: String, addr: SocketAddr, registry: &Registry) -> usize {
        match self.find(&id) {
            Some(idx) => {
                let changed = self.get(idx).is_some_and(|r| r.addr != addr);
                if changed {
                    self.close_idle_of(idx, registry);
                }
                if let Some(r) = self.slots[idx].as_mut() {
                    r.addr = addr;
                    r.retired = false;
                }
                idx
            }
            None => self.insert(Release {
                cookie: super::sticky::encode(&id).into(),
                id,
                addr,
                http: 0,
                websocket: 0,
                retired: false,
                replaced: None,
                idle: Vec::new(),
            }),
        }
    }

    /// New requests may go to `idx` (the active release or the canary).
    pub fn routable(&self, idx: usize) -> bool {
        self.active == Some(idx) || self.canary.is_some_and(|c| c.release == idx)
    }

    /// The release for a request while a canary runs (see
    /// [`super::sticky::assign`]), and whether its response sets the
    /// cookie. `None` when there is no active release.
    pub fn assign(&self, cookie: Option<&[u8]>, roll: u64) -> Option<(usize, bool)> {
        let active = self.active?;
        let Some(c) = self.canary else {
            return Some((active, false));
        };
        let (Some(a), Some(k)) = (self.get(active), self.get(c.release)) else {
            return Some((active, false));
        };
        let (choice, set) = super::sticky::assign(cookie, &a.cookie, &k.cookie, c.percent, roll);
        let idx = match choice {
            super::sticky::Choice::Active => active,
            super::sticky::Choice::Canary => c.release,
        };
        Some((idx, set))
    }

    /// Stops routing to `id`; reports `Drained` now if nothing is in flight.
    pub fn retire(&mut self, id: &str, registry: &Registry, events: &Sender<ProxyEvent>) {
        let Some(idx) = self.find(id) else {
            let _ = events.try_send(ProxyEvent::Drained {
                release_id: id.to_string(),
            });
            return;
        };
        if self.active == Some(idx) {
            self.active = None;
        }
        if self.canary.is_some_and(|c| c.release == idx) {
            self.canary = None;
        }
        if let Some(r) = self.slots[idx].as_mut() {
            r.retired = true;
        }
        self.close_idle_of(idx, registry);
        self.check_drained(idx, registry, events);
    }

    /// Counts a request/tunnel routed to `idx`. The returned token is the
    /// only way to uncount it, and [`Releases::end`] consumes it, so a
    /// request is uncounted at most once by construction.
    pub fn begin(&mut self, idx: usize, kind: Kind) -> Counted {
        if let Some(r) = self.slots.get_mut(idx).and_then(Option::as_mut) {
            match kind {
                Kind::Http => r.http += 1,
                Kind::WebSocket => r.websocket += 1,
            }
        }
        Counted { release: idx, kind }
    }

    /// Uncounts a request/tunnel; a retired release whose last one this
    /// was reports `Drained`.
    pub fn end(&mut self, c: Counted, registry: &Registry, events: &Sender<ProxyEvent>) {
        let Counted { release: idx, kind } = c;
        if let Some(r) = self.slots.get_mut(idx).and_then(Option::as_mut) {
            match kind {
                Kind::Http => r.http = r.http.saturating_sub(1),
                Kind::WebSocket => r.websocket = r.websocket.saturating_sub(1),
            }
        }
        self.check_drained(idx, registry, events);
    }

    /// Moves a counted request to release `to` (a connect retry that
    /// follows a newly active release): counted there, uncounted here.
    pub fn recount(
        &mut self,
        c: &mut Counted,
        to: usize,
        registry: &Registry,
        events: &Sender<ProxyEvent>,
    ) {
        let moved = self.begin(to, c.kind);
        let old = std::mem::replace(c, moved);
        self.end(old, registry, events);
    }

    fn check_drained(&mut self, idx: usize, registry: &Registry, events: &Sender<ProxyEvent>) {
        let done = self
            .get(idx)
            .is_some_and(|r| r.retired && r.http == 0 && r.websocket == 0);
        if done {
            self.close_idle_of(idx, registry);
            if let Some(r) = self.slots[idx].take() {
                let event = match r.replaced {
                    Some(ticket) => ProxyEvent::InstanceDrained {
                        release_id: r.id,
                        ticket,
                    },
                    None => ProxyEvent::Drained { release_id: r.id },
                };
                let _ = events.try_send(event);
            }
        }
    }

    /// Per release id (a replaced instance still draining adds its counts
    /// to its release's).
    pub fn counts(&self) -> Vec<ReleaseCounts> {
        let mut out: Vec<ReleaseCounts> = Vec::new();
        for r in self.slots.iter().flatten() {
            match out.iter_mut().find(|c| c.release_id == r.id) {
                Some(c) => {
                    c.http += r.http;
                    c.websocket += r.websocket;
                    if r.replaced.is_none() {
                        c.draining = r.retired;
                    }
                }
                None => out.push(ReleaseCounts {
                    release_id: r.id.clone(),
                    http: r.http,
                    websocket: r.websocket,
                    draining: r.retired,
                }),
            }
        }
        out
    }

    /// Takes a live idle connection of `idx` out of the pool for `session`;
    /// returns it with its uid.
    pub fn checkout(
        &mut self,
        idx: usize,
        session: usize,
        registry: &Registry,
        probe: bool,
    ) -> Option<(Conn, usize)> {
        loop {
            let slot = self.slots.get_mut(idx)?.as_mut()?.idle.pop()?;
            let Some(mut idle) = self.idle.get_mut(slot).and_then(Option::take) else {
                continue;
            };
            self.idle_free.push(slot);
            self.idle_open = self.idle_open.saturating_sub(1);
            // A FIN or stray bytes on an idle connection mean it is dead.
            // Without `probe` (the caller can replay the request) one
            // syscall is saved: a FIN already reported by a poll closed
            // the connection there; one not yet handled reaches the new
            // owner as an edge, and the request is replayed on a fresh
            // connection.
            let mut byte = [0u8; 1];
            let alive = !probe
                || matches!(idle.conn.sock.peek(&mut byte),
                    Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock);
            if alive {
                // Nothing is pending (peek or the poll said so): the
                // response raises a fresh edge, so no read is tried before it.
                idle.conn.readable = false;
                idle.conn.writable = true;
                self.owners[idle.uid] = Some(Owner::Session(session));
                return Some((idle.conn, idle.uid));
            }
            let _ = registry.deregister(&mut idle.conn.sock);
            self.free_uid(idle.uid);
        }
    }

    /// Parks an idle upstream connection; returns false if it was closed
    /// instead (retired release, pool full).
    pub fn checkin(
        &mut self,
        idx: usize,
        mut conn: Conn,
        uid: usize,
        expires: Instant,
        registry: &Registry,
        bufs: &mut BufPool,
    ) -> bool {
        conn.release_bufs(bufs);
        let ok = self
            .get(idx)
            .is_some_and(|r| !r.retired && r.idle.len() < MAX_IDLE_PER_RELEASE);
        if !ok {
            let _ = registry.deregister(&mut conn.sock);
            self.free_uid(uid);
            return false;
        }
        let slot = match self.idle_free.pop() {
            Some(s) => s,
            None => {
                self.idle.push(None);
                self.idle.len() - 1
            }
        };
        if let Some(o) = self.owners.get_mut(uid) {
            *o = Some(Owner::Idle(slot));
        }
        self.idle_open += 1;
        self.idle[slot] = Some(IdleUp {
            conn,
            uid,
            release: idx,
            expires,
        });
        if let Some(r) = self.slots.get_mut(idx).and_then(Option::as_mut) {
            r.idle.push(slot);
        }
        true
    }

    /// Closes one idle connection (it got an event, or expired).
    pub fn close_idle(&mut self, slot: usize, registry: &Registry) {
        if let Some(mut idle) = self.idle.get_mut(slot).and_then(Option::take) {
            self.idle_free.push(slot);
            self.idle_open = self.idle_open.saturating_sub(1);
            let _ = registry.deregister(&mut idle.conn.sock);
            self.free_uid(idle.uid);
            if let Some(r) = self.slots.get_mut(idle.release).and_then(Option::as_mut) {
                r.idle.retain(|&s| s != slot);
            }
        }
    }

    /// Closes all idle connections of a release.
    pub fn close_idle_of(&mut self, idx: usize, registry: &Registry) {
        let slots = match self.slots.get_mut(idx).and_then(Option::as_mut) {
            Some(r) => std::mem::take(&mut r.idle),
            None => return,
        };
        for slot in slots {
            self.close_idle(slot, registry);
        }
    }

    /// Closes every idle connection whose time is up.
    pub fn expire_idle(&mut self, now: Instant, registry: &Registry) {
        let expired: Vec<usize> = self
            .idle
            .iter()
            .enumerate()
            .filter(|(_, s)| s.as_ref().is_some_and(|i| i.expires <= now))
            .map(|(i, _)| i)
            .collect();
        for slot in expired {
            self.close_idle(slot, registry);
        }
    }

    /// Closes the whole pool (shutdown).
    pub fn close_all_idle(&mut self, registry: &Registry) {
        for slot in 0..self.idle.len() {
            self.close_idle(slot, registry);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::{Receiver, bounded};

    fn setup() -> (
        mio::Poll,
        Releases,
        Sender<ProxyEvent>,
        Receiver<ProxyEvent>,
    ) {
        let (tx, rx) = bounded(16);
        (mio::Poll::new().unwrap(), Releases::default(), tx, rx)
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn replaced_instance_drains_while_new_requests_go_to_the_new_upstream() {
        let (poll, mut r, tx, rx) = setup();
        let reg = poll.registry();
        let old = r.set_active("v1".into(), addr(1), reg);
        let inflight = r.begin(old, Kind::Http);
        let new = r.replace("v1", addr(2), 7, reg, &tx).unwrap();
        assert_ne!(old, new);
        assert_eq!(r.active, Some(new));
        assert_eq!(r.find("v1"), Some(new));
        assert_eq!(r.get(new).unwrap().addr, addr(2));
        assert_eq!(r.find_replaced("v1", 7), Some(old));
        assert!(rx.try_recv().is_err());
        // Status sees one release with both instances' counts.
        let fresh = r.begin(new, Kind::Http);
        let counts = r.counts();
        assert_eq!(counts.len(), 1);
        assert_eq!((counts[0].http, counts[0].draining), (2, false));
        r.end(inflight, reg, &tx);
        assert_eq!(
            rx.try_recv().unwrap(),
            ProxyEvent::InstanceDrained {
                release_id: "v1".into(),
                ticket: 7
            }
        );
        assert_eq!(r.all_of("v1"), [new]);
        r.end(fresh, reg, &tx);
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn replacing_an_idle_or_unknown_release_reports_drained_at_once() {
        let (poll, mut r, tx, rx) = setup();
        let reg = poll.registry();
        r.set_active("v1".into(), addr(1), reg);
        assert!(r.replace("v1", addr(2), 1, reg, &tx).is_some());
        assert!(matches!(
            rx.try_recv().unwrap(),
            ProxyEvent::InstanceDrained { ticket: 1, .. }
        ));
        assert!(r.replace("v9", addr(2), 2, reg, &tx).is_none());
        assert!(matches!(
            rx.try_recv().unwrap(),
            ProxyEvent::InstanceDrained { ticket: 2, .. }
        ));
    }

    #[test]
    fn a_retired_release_stays_retired_when_replaced() {
        let (poll, mut r, tx, rx) = setup();
        let reg = poll.registry();
        let old = r.set_active("v1".into(), addr(1), reg);
        let c = r.begin(old, Kind::WebSocket);
        r.retire("v1", reg, &tx);
        let new = r.replace("v1", addr(2), 3, reg, &tx).unwrap();
        assert_eq!(r.active, None);
        // The new slot had nothing in flight: drained at once.
        assert_eq!(
            rx.try_recv().unwrap(),
            ProxyEvent::Drained {
                release_id: "v1".into()
            }
        );
        assert!(r.get(new).is_none());
        r.end(c, reg, &tx);
        assert!(matches!(
            rx.try_recv().unwrap(),
            ProxyEvent::InstanceDrained { ticket: 3, .. }
        ));
    }
}
