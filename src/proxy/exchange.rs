//! One request routed to one release: connect (or take a pooled
//! connection, or wait for a connect retry), send the normalized head and
//! the body, parse and forward the response, then pool the upstream and
//! hand the client connection back to `Head`. Also the retry rules and the
//! 502 / cut decisions.

use super::buf::BUF_SIZE;
use super::codec::{
    BodyDecoder, BodyKind, ChunkMode, RequestInfo, RespParse, ResponseCtx, Upgrade, parse_response,
};
use super::conn::Conn;
use super::connect::{RETRY_FIRST, connect_result, stall_check};
use super::error::{ErrorKind, ProxyError};
use super::release::{Counted, Kind};
use super::session::{Phase, Session, Shared, Step, later};
use super::splice::SPLICE_MIN;
use super::timers::Clocks;
use super::transition::{Look, Reply, Transition, may_replay};
use mio::Registry;
use std::io;
use std::time::{Duration, Instant};

/// The upstream half of an exchange or tunnel.
#[derive(Debug)]
pub struct Upstream {
    pub conn: Conn,
    /// Stable id; the socket's token is `upstream_token(uid)`.
    pub uid: usize,
    pub connecting: bool,
    /// Came out of the keep-alive pool.
    pub reused: bool,
    /// Any response byte was received on it.
    pub got_bytes: bool,
    /// When it was connected or taken from the pool.
    pub since: Instant,
}

/// One request routed to one release.
#[derive(Debug)]
pub struct Exchange {
    /// The request's place in its release's count; only
    /// `Session::apply` ends it.
    pub(super) counted: Counted,
    pub info: RequestInfo,
    pub(super) req_body: BodyDecoder,
    pub(super) req_done: bool,
    pub(super) resp: Option<BodyDecoder>,
    /// Bytes of the response were queued for the client.
    pub(super) resp_started: bool,
    pub(super) close_client: bool,
    pub(super) up_reusable: bool,
    /// The serialized request, kept to replay a bodiless idempotent request
    /// on a fresh connection if a reused one turns out dead.
    pub(super) replay: Option<Vec<u8>>,
    /// Unsent request bytes kept while waiting for a connect retry.
    pub(super) held: Option<super::buf::Buf>,
    pub(super) connect_deadline: Instant,
    pub(super) backoff: Duration,
    /// Connects abandoned as stalled and started again.
    pub(super) stalls: u32,
    /// Progress instants the exchange's timers count from.
    pub(super) clocks: Clocks,
    /// When the request head was received (the latency metric's start).
    pub(super) started: Instant,
    /// The final response status sent to the client (0 until its head).
    pub(super) status: u16,
    /// A new canary assignment: the response head gets the cookie naming
    /// the release that served it.
    pub(super) set_cookie: bool,
}

impl Exchange {
    /// The release the request is routed to.
    pub fn release(&self) -> usize {
        self.counted.release()
    }

    /// An answer the proxy sends instead of the (rest of the) response.
    pub(super) fn fail(&self, err: ProxyError) -> Transition {
        Transition::Respond(Reply::closing(err).keep_alive(true))
    }
}

/// The exchange of a response carried over by a daemon upgrade: request
/// sent, head forwarded, the body at `resp`.
pub(super) fn resumed(
    counted: Counted,
    resp: BodyDecoder,
    close_client: bool,
    up_reusable: bool,
    status: u16,
    now: Instant,
) -> Exchange {
    let mut clocks = Clocks::new(now);
    clocks.sent = Some(now);
    Exchange {
        counted,
        info: RequestInfo {
            head_len: 0,
            is_head: false,
            idempotent: false,
            http10: false,
            keep_alive: !close_client,
            body: BodyKind::None,
            upgrade: Upgrade::None,
            accepts_html: false,
            spans: Default::default(),
        },
        req_body: BodyDecoder::new(BodyKind::None, ChunkMode::Reencode, 0),
        req_done: true,
        resp: Some(resp),
        resp_started: true,
        close_client,
        up_reusable,
        replay: None,
        held: None,
        connect_deadline: now,
        backoff: RETRY_FIRST,
        stalls: 0,
        clocks,
        started: now,
        status,
        set_cookie: false,
    }
}

/// Body bytes still to come when the body has a known length (0 for
/// chunked, close-delimited or none).
fn splice_left(dec: &BodyDecoder) -> usize {
    match dec.kind() {
        BodyKind::Length(_) => dec.direct_len(usize::MAX).unwrap_or(0),
        _ => 0,
    }
}

/// Pipes (descriptor pairs) the connection budget leaves room for.
fn pipe_room(sh: &Shared) -> usize {
    let open = sh.sessions_open + sh.releases.idle_count();
    sh.max_connections.saturating_sub(open)
}

/// Closes an upstream connection for good.
pub(super) fn close_upstream(mut up: Upstream, sh: &mut Shared, reg: &Registry) {
    let _ = reg.deregister(&mut up.conn.sock);
    up.conn.release_bufs(&mut sh.bufs);
    sh.releases.free_uid(up.uid);
}

impl Session {
    /// Picks the active release at this instant and starts the exchange —
    /// unless maintenance answers the request or a pause holds it.
    pub(super) fn route(
        &mut self,
        info: RequestInfo,
        sh: &mut Shared,
        reg: &Registry,
    ) -> Transition {
        let ws = info.upgrade == Upgrade::WebSocket;
        if sh.traffic.maintenance.is_some() {
            let keep = !ws && info.keep_alive && info.body == BodyKind::None;
            let look = Look::Maintenance {
                html: info.accepts_html,
            };
            let err = ProxyError::client(ErrorKind::Maintenance, String::new());
            return Transition::Respond(Reply::closing(err).keep_alive(keep).look(look));
        }
        if let Some(wait) = sh.traffic.paused {
            return self.hold(info, wait, sh, reg);
        }
        let routed = match sh.releases.canary {
            None => sh.releases.active.map(|a| (a, false)),
            Some(_) => {
                let roll = sh.rng.next_u64();
                let cookie = super::sticky::cookie_in_head(&sh.scratch);
                sh.releases.assign(cookie, roll)
            }
        };
        let Some((release, set_cookie)) = routed else {
            // Without a body to skip the connection can stay open.
            let keep = !ws && info.keep_alive && info.body == BodyKind::None;
            let look = if ws { Look::Bare } else { Look::Standard };
            let err = ProxyError::client(ErrorKind::NoActiveRelease, String::new());
            return Transition::Respond(Reply::closing(err).keep_alive(keep).look(look));
        };
        let kind = if ws { Kind::WebSocket } else { Kind::Http };
        let counted = sh.releases.begin(release, kind);
        self.deadline = None;
        let mut ex = Box::new(Exchange {
            counted,
            req_body: BodyDecoder::new(info.body, ChunkMode::Reencode, sh.opts.max_head_bytes),
            req_done: info.body == BodyKind::None,
            resp: None,
            resp_started: false,
            close_client: !info.keep_alive,
            up_reusable: false,
            replay: None,
            held: None,
            connect_deadline: later(sh.now, sh.opts.connect_retry),
            backoff: RETRY_FIRST,
            stalls: 0,
            clocks: Clocks::new(sh.now),
            started: sh.now,
            status: 0,
            set_cookie,
            info,
        });
        let mut held = sh.bufs.get();
        if held.free() < sh.scratch.len() {
            held.grow(sh.scratch.len());
        }
        held.push(&sh.scratch);
        // A request that may be replayed needs no liveness probe of a
        // pooled connection: if it turns out dead, the replay covers it.
        let probe = !may_replay(
            ex.info.idempotent,
            ex.info.body != BodyKind::None,
            true,
            false,
        );
        let reused = match self.attach(release, Some(probe), stall_check(0), sh, reg) {
            Ok(reused) => reused,
            Err(e) => {
                ex.held = Some(held);
                self.phase = Phase::Exchange(ex);
                return self.connect_failed(e, sh, reg);
            }
        };
        // The only copy kept per request, and only when it may be needed.
        if may_replay(
            ex.info.idempotent,
            ex.info.body != BodyKind::None,
            reused,
            false,
        ) {
            ex.replay = Some(sh.bufs.copy(&sh.scratch));
        }
        if let Some(up) = self.up.as_mut() {
            up.conn.output = Some(held);
        }
        self.phase = Phase::Exchange(ex);
        Transition::Continue(Step::Progress)
    }

    // ----- Exchange -----

    pub(super) fn step_exchange(&mut self, sh: &mut Shared, reg: &Registry) -> Transition {
        let Some(up) = self.up.as_mut() else {
            return Transition::Continue(Step::Idle); // waiting for a connect retry
        };
        if up.connecting {
            match connect_result(&up.conn.sock) {
                Ok(true) => {
                    up.connecting = false;
                    up.conn.readable = true;
                    up.conn.writable = true;
                }
                Ok(false) => {
                    up.conn.readable = false;
                    up.conn.writable = false;
                    // A replay on a fresh connection must not keep the
                    // response-head deadline of the dead pooled one.
                    self.arm_exchange_timer(sh);
                    return Transition::Continue(Step::Idle);
                }
                Err(e) => return self.connect_failed(e, sh, reg),
            }
        }
        let mut progress = false;
        let Phase::Exchange(ex) = &mut self.phase else {
            return Transition::Close;
        };

        // Request body: client -> upstream.
        if !ex.req_done {
            match self.client.fill(&mut sh.bufs) {
                Ok(n) => progress |= n > 0,
                Err(_) => return Transition::Close,
            }
            if let Some(inb) = self.client.input.as_mut() {
                let outb = sh.bufs.ensure(&mut up.conn.output);
                match ex.req_body.step(inb.data(), outb.space()) {
                    Ok(s) => {
                        inb.consume(s.consumed);
                        outb.commit(s.produced);
                        progress |= s.consumed > 0;
                        ex.req_done = s.done;
                    }
                    Err(_) => {
                        // Bad chunked framing from the client: 400 if
                        // nothing was answered yet, else cut.
                        ex.close_client = true;
                        let e = ProxyError::client(ErrorKind::BadRequest, String::new());
                        return Transition::Respond(Reply::closing(e));
                    }
                }
                sh.bufs.release_if_empty(&mut up.conn.output);
            }
            sh.bufs.release_if_empty(&mut self.client.input);
            if !ex.req_done && self.client.eof && self.client.pending_in() == 0 {
                return Transition::Close; // client aborted mid-request
            }
        }
        match up.conn.flush(&mut sh.bufs) {
            Ok(n) => progress |= n > 0,
            Err(e) => return self.upstream_failed(e, sh, reg),
        }

        // Response: upstream -> client. The rest of a long body of known
        // length is spliced (no copy); everything else is read and copied.
        let left = ex.resp.as_ref().map_or(0, splice_left);
        // A daemon upgrade is preparing (`frozen`): no new bytes go into a
        // pipe, so it empties and the body can be handed over as buffers.
        let piped = if !sh.frozen && left >= SPLICE_MIN && up.conn.pending_in() == 0 {
            let room = pipe_room(sh);
            self.client
                .pipe_from(&mut up.conn, left, &mut sh.bufs, room)
        } else {
            None
        };
        if let Some(res) = piped {
            match res {
                Ok(n) if n > 0 => {
                    progress = true;
                    up.got_bytes = true;
                    ex.clocks.upstream = sh.now;
                    if let Some(dec) = ex.resp.as_mut() {
                        dec.advance(n);
                    }
                }
                Ok(_) => {}
                Err(e) => return self.upstream_failed(e, sh, reg),
            }
        } else if self.client.pending_out() < BUF_SIZE {
            match up.conn.fill(&mut sh.bufs) {
                Ok(n) => {
                    progress |= n > 0;
                    up.got_bytes |= n > 0;
                    if n > 0 {
                        ex.clocks.upstream = sh.now;
                    }
                }
                Err(e) => return self.upstream_failed(e, sh, reg),
            }
        }
        if ex.resp.is_none() && up.conn.pending_in() > 0 {
            let ctx = ResponseCtx {
                request_is_head: ex.info.is_head,
                client_http10: ex.info.http10,
                client_close: ex.close_client || sh.shutting_down || !ex.req_done,
                upgrade_requested: ex.info.upgrade == Upgrade::WebSocket,
            };
            sh.scratch.clear();
            let data = up.conn.input.as_ref().map_or(&[][..], |b| b.data());
            match parse_response(data, sh.opts.max_head_bytes, ctx, &mut sh.scratch) {
                Ok(RespParse::Partial) => {
                    if let Some(buf) = up.conn.input.as_mut() {
                        if buf.free() == 0 && buf.capacity() <= sh.opts.max_head_bytes {
                            buf.grow(sh.opts.max_head_bytes + 1);
                            return Transition::Continue(Step::Progress);
                        }
                    }
                }
                Err(_) => {
                    let e = ProxyError::upstream(
                        ErrorKind::UpstreamProtocol,
                        "invalid response head from upstream",
                    );
                    sh.error(Some(ex.release()), &e);
                    return ex.fail(e);
                }
                Ok(RespParse::Complete(info)) => {
                    if let Some(buf) = up.conn.input.as_mut() {
                        buf.consume(info.head_len);
                    }
                    if ex.set_cookie && !info.interim && !sh.scratch.is_empty() {
                        ex.set_cookie = false;
                        if let Some(r) = sh.releases.get(ex.release()) {
                            super::sticky::add_set_cookie(&mut sh.scratch, &r.cookie);
                        }
                    }
                    if !sh.scratch.is_empty() {
                        self.client.queue(&mut sh.bufs, &sh.scratch);
                        ex.resp_started = true;
                        if let Some(e) = self.entry.as_mut() {
                            e.heads += sh.scratch.len() as u64;
                        }
                    }
                    progress = true;
                    if !info.interim {
                        ex.status = info.status;
                    }
                    if info.switching {
                        return Transition::Upgrade;
                    }
                    if !info.interim {
                        ex.close_client |= info.close_client;
                        ex.up_reusable = info.upstream_reusable;
                        let mode = if ex.info.http10 {
                            ChunkMode::Unwrap
                        } else {
                            ChunkMode::Reencode
                        };
                        ex.resp = Some(BodyDecoder::new(info.body, mode, sh.opts.max_head_bytes));
                    }
                }
            }
        }
        if let Some(dec) = ex.resp.as_mut() {
            if let Some(direct) = dec.direct_len(up.conn.pending_in()) {
                // Length/close-delimited body: written straight from the
                // upstream buffer, together with any queued head (writev).
                let body = up
                    .conn
                    .input
                    .as_ref()
                    .map_or(&[][..], |b| &b.data()[..direct]);
                match self.client.write_with(body, &mut sh.bufs) {
                    Ok((head, n)) => {
                        if head + n > 0 {
                            ex.clocks.client = sh.now;
                        }
                        dec.advance(n);
                        if let Some(inb) = up.conn.input.as_mut() {
                            inb.consume(n);
                        }
                        progress |= head + n > 0;
                    }
                    Err(_) => return Transition::Close,
                }
            } else if let Some(inb) = up.conn.input.as_mut() {
                let outb = sh.bufs.ensure(&mut self.client.output);
                match dec.step(inb.data(), outb.space()) {
                    Ok(s) => {
                        inb.consume(s.consumed);
                        outb.commit(s.produced);
                        progress |= s.consumed > 0;
                    }
                    Err(_) => {
                        let e = ProxyError::upstream(
                            ErrorKind::UpstreamProtocol,
                            "invalid chunked response body from upstream",
                        );
                        sh.error(Some(ex.release()), &e);
                        return ex.fail(e);
                    }
                }
                sh.bufs.release_if_empty(&mut self.client.output);
            }
            sh.bufs.release_if_empty(&mut up.conn.input);
        }
        if up.conn.eof && up.conn.pending_in() == 0 {
            let clean = ex.resp.as_mut().is_some_and(BodyDecoder::on_eof);
            if !clean {
                let e = io::Error::new(io::ErrorKind::UnexpectedEof, "upstream closed");
                return self.upstream_failed(e, sh, reg);
            }
        }
        match self.client.flush(&mut sh.bufs) {
            Ok(n) => {
                progress |= n > 0;
                if n > 0 {
                    ex.clocks.client = sh.now;
                }
            }
            Err(_) => return Transition::Close,
        }
        let resp_done = ex.resp.as_ref().is_some_and(BodyDecoder::is_done);
        if resp_done && self.client.pending_out() == 0 {
            // The upstream connection may be pooled when the response said
            // so and nothing is left unread or unwritten on it.
            let reusable = ex.up_reusable
                && ex.req_done
                && !up.conn.eof
                && up.conn.pending_in() == 0
                && up.conn.pending_out() == 0;
            return Transition::Done { reusable };
        }
        self.arm_exchange_timer(sh);
        Transition::Continue(if progress { Step::Progress } else { Step::Idle })
    }

    /// The upstream failed or closed before the response was complete.
    fn upstream_failed(&mut self, err: io::Error, sh: &mut Shared, reg: &Registry) -> Transition {
        let Some(up) = self.up.as_ref() else {
            return Transition::Close;
        };
        let Phase::Exchange(ex) = &mut self.phase else {
            return Transition::Close;
        };
        let body = ex.info.body != BodyKind::None;
        let got_response = up.got_bytes || ex.resp.is_some();
        if may_replay(ex.info.idempotent, body, up.reused, got_response) {
            if let Some(replay) = ex.replay.take() {
                // A stale pooled connection: the request never reached the
                // app (idempotent, no body, no response byte); go again on
                // a fresh connection.
                let release = ex.release();
                let stall = stall_check(ex.stalls);
                ex.clocks.sent = None;
                self.drop_upstream(sh, reg);
                return match self.attach(release, None, stall, sh, reg) {
                    Ok(_) => {
                        if let Some(up) = self.up.as_mut() {
                            up.conn.queue(&mut sh.bufs, &replay);
                        }
                        sh.bufs.put_copy(replay);
                        Transition::Continue(Step::Progress)
                    }
                    Err(e) => self.connect_failed(e, sh, reg),
                };
            }
        }
        let addr = sh.releases.get(ex.release()).map(|r| r.addr);
        let e = ProxyError::upstream(
            ErrorKind::UpstreamClosed,
            format!(
                "upstream {}: {err}",
                addr.map_or_else(|| "?".into(), |a| a.to_string())
            ),
        );
        sh.error(Some(ex.release()), &e);
        ex.fail(e)
    }
}
