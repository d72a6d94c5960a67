//! The proxy's part of a daemon upgrade: open connections as data.
//!
//! When the daemon hands over to a new program, the loop freezes: the
//! listener is deregistered (new clients wait in its backlog), no new
//! request head is read, requests in flight get a short while to finish.
//! Then every connection that can be carried on is described here with its
//! socket (an inheritable duplicate, by number) and the bytes buffered on
//! it: idle keep-alive client connections and WebSocket tunnels (both
//! sockets, the release, where the frames stand in each direction). The
//! new program's loop imports them and goes on where this one stopped.

use super::buf::BufPool;
use super::codec::BodyDecoder;
use super::conn::Conn;
use super::exchange::Upstream;
use super::release::{Kind, Owner};
use super::session::{Phase, Session, Shared, client_token, later, upstream_token};
use super::timers::Timer;
use super::tunnel::Tunnel;
use super::wsframe::FrameTracker;
use mio::net::TcpStream;
use mio::{Interest, Registry};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// One connection carried over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum ConnDoc {
    /// A client connection between requests (keep-alive). Bytes of its
    /// next request may be buffered already.
    #[serde(rename = "idle")]
    Idle { client: SocketDoc, peer: String },
    /// A WebSocket tunnel.
    #[serde(rename = "tunnel")]
    Tunnel {
        client: SocketDoc,
        upstream: SocketDoc,
        peer: String,
        #[serde(rename = "releaseId")]
        release_id: String,
        /// Frame tracker states, app → client and client → app.
        #[serde(rename = "toClient")]
        to_client: [u64; 5],
        #[serde(rename = "toApp")]
        to_app: [u64; 5],
    },
    /// A response still streaming (Server-Sent Events, a long download):
    /// the request was sent, the head forwarded, the body goes on.
    #[serde(rename = "stream")]
    Stream {
        client: SocketDoc,
        upstream: SocketDoc,
        peer: String,
        #[serde(rename = "releaseId")]
        release_id: String,
        /// The response body decoder's state.
        body: [u64; 9],
        /// The client connection closes after this response.
        #[serde(rename = "closeClient")]
        close_client: bool,
        #[serde(rename = "upstreamReusable")]
        upstream_reusable: bool,
        status: u16,
    },
}

impl ConnDoc {
    /// The descriptor numbers it names.
    pub fn fds(&self) -> Vec<i32> {
        match self {
            ConnDoc::Idle { client, .. } => vec![client.fd],
            ConnDoc::Tunnel {
                client, upstream, ..
            }
            | ConnDoc::Stream {
                client, upstream, ..
            } => vec![client.fd, upstream.fd],
        }
    }
}

/// A socket by descriptor number, with the bytes read from it and not yet
/// used, and the bytes waiting to be written to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocketDoc {
    pub fd: i32,
    pub input: Vec<u8>,
    pub output: Vec<u8>,
}

impl SocketDoc {
    fn of(conn: &Conn, fds: &mut Vec<OwnedFd>) -> std::io::Result<SocketDoc> {
        let dup = inheritable(conn.sock.as_raw_fd())?;
        let doc = SocketDoc {
            fd: dup.as_raw_fd(),
            input: conn
                .input
                .as_ref()
                .map_or(Vec::new(), |b| b.data().to_vec()),
            output: conn
                .output
                .as_ref()
                .map_or(Vec::new(), |b| b.data().to_vec()),
        };
        fds.push(dup);
        Ok(doc)
    }

    /// The socket as a connection again, buffers refilled.
    fn open(&self, bufs: &mut BufPool) -> Conn {
        set_cloexec(self.fd);
        // SAFETY: the previous program passed this descriptor to us alone,
        // named in the handover document.
        let std = unsafe { std::net::TcpStream::from_raw_fd(self.fd) };
        let _ = std.set_nonblocking(true);
        let mut conn = Conn::new(TcpStream::from_std(std));
        if !self.input.is_empty() {
            let buf = bufs.ensure(&mut conn.input);
            buf.grow(self.input.len());
            buf.push(&self.input);
        }
        if !self.output.is_empty() {
            conn.queue(bufs, &self.output);
        }
        conn
    }
}

use crate::inherit::{inheritable, set_cloexec};

impl Session {
    /// Whether a freeze can hand this session over as it stands: between
    /// requests, or a tunnel in full flow.
    pub(super) fn exportable(&self) -> bool {
        match &self.phase {
            Phase::Head { .. } => self.up.is_none(),
            Phase::Tunnel(t) => t.trackers().is_some() && self.up.is_some(),
            _ => false,
        }
    }

    /// This session as data (`None` when it cannot be carried over).
    pub(super) fn export(
        &self,
        sh: &Shared,
        fds: &mut Vec<OwnedFd>,
    ) -> std::io::Result<Option<ConnDoc>> {
        let peer = self.peer.to_string();
        match &self.phase {
            Phase::Head { .. } if self.up.is_none() => Ok(Some(ConnDoc::Idle {
                client: SocketDoc::of(&self.client, fds)?,
                peer,
            })),
            Phase::Tunnel(t) => {
                let (Some((to_client, to_app)), Some(up)) = (t.trackers(), self.up.as_ref()) else {
                    return Ok(None);
                };
                let Some(release) = sh.releases.get(t.release()) else {
                    return Ok(None);
                };
                Ok(Some(ConnDoc::Tunnel {
                    client: SocketDoc::of(&self.client, fds)?,
                    upstream: SocketDoc::of(&up.conn, fds)?,
                    peer,
                    release_id: release.id.clone(),
                    to_client: to_client.to_parts(),
                    to_app: to_app.to_parts(),
                }))
            }
            Phase::Exchange(ex) => {
                let (Some(body), Some(up)) = (ex.resp.as_ref(), self.up.as_ref()) else {
                    return Ok(None);
                };
                if !ex.req_done || ex.held.is_some() || up.connecting {
                    return Ok(None);
                }
                // Body bytes still in a splice pipe live in this process
                // only; reading them out would lose them if the exec fails.
                if self.client.pending_out() > self.client.output_len() {
                    return Ok(None);
                }
                let Some(release) = sh.releases.get(ex.release()) else {
                    return Ok(None);
                };
                Ok(Some(ConnDoc::Stream {
                    client: SocketDoc::of(&self.client, fds)?,
                    upstream: SocketDoc::of(&up.conn, fds)?,
                    peer,
                    release_id: release.id.clone(),
                    body: body.to_parts(),
                    close_client: ex.close_client,
                    upstream_reusable: ex.up_reusable,
                    status: ex.status,
                }))
            }
            _ => Ok(None),
        }
    }

    /// A session carried on from a previous program. `None` (its sockets
    /// closed) when its release is unknown here or registering fails.
    pub(super) fn import(
        doc: &ConnDoc,
        idx: usize,
        serial: u64,
        sh: &mut Shared,
        reg: &Registry,
    ) -> Option<Session> {
        let (client, peer) = match doc {
            ConnDoc::Idle { client, peer }
            | ConnDoc::Tunnel { client, peer, .. }
            | ConnDoc::Stream { client, peer, .. } => (client, peer),
        };
        let peer: IpAddr = peer
            .parse()
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
        let mut conn = client.open(&mut sh.bufs);
        if reg
            .register(
                &mut conn.sock,
                client_token(idx),
                Interest::READABLE | Interest::WRITABLE,
            )
            .is_err()
        {
            conn.release_bufs(&mut sh.bufs);
            return None;
        }
        let mut s = Session {
            idx,
            serial,
            client: conn,
            peer,
            trusted: sh.opts.is_trusted(peer),
            up: None,
            phase: Phase::Head { started: false },
            deadline: None,
            timer: Timer::Idle,
            // A tunnel carried over from the previous program is not logged
            // again when it closes: its request was before the upgrade.
            entry: None,
        };
        match doc {
            ConnDoc::Idle { .. } => {
                let started = s.client.pending_in() > 0;
                s.phase = Phase::Head { started };
                let (timer, wait) = if started {
                    (Timer::Header, sh.opts.header_timeout)
                } else {
                    (Timer::Idle, sh.opts.client_idle_timeout)
                };
                s.timer = timer;
                s.deadline = Some(later(sh.now, wait));
                Some(s)
            }
            ConnDoc::Tunnel {
                upstream,
                release_id,
                to_client,
                to_app,
                ..
            } => {
                let trackers =
                    FrameTracker::from_parts(*to_client).zip(FrameTracker::from_parts(*to_app));
                let (release, (to_client, to_app)) = match (sh.releases.find(release_id), trackers)
                {
                    (Some(r), Some(t)) => (r, t),
                    _ => {
                        // Its release is unknown here: nothing to splice to.
                        drop(upstream.open(&mut sh.bufs));
                        s.teardown_imported(sh, reg);
                        return None;
                    }
                };
                s.up = Some(s.register_upstream(upstream, sh, reg)?);
                let counted = sh.releases.begin(release, Kind::WebSocket);
                s.phase = Phase::Tunnel(Tunnel::resumed(counted, to_client, to_app));
                Some(s)
            }
            ConnDoc::Stream {
                upstream,
                release_id,
                body,
                close_client,
                upstream_reusable,
                status,
                ..
            } => {
                let (Some(release), Some(resp)) =
                    (sh.releases.find(release_id), BodyDecoder::from_parts(*body))
                else {
                    drop(upstream.open(&mut sh.bufs));
                    s.teardown_imported(sh, reg);
                    return None;
                };
                let up = s.register_upstream(upstream, sh, reg)?;
                s.up = Some(up);
                let counted = sh.releases.begin(release, Kind::Http);
                s.phase = Phase::Exchange(Box::new(super::exchange::resumed(
                    counted,
                    resp,
                    *close_client,
                    *upstream_reusable,
                    *status,
                    sh.now,
                )));
                s.deadline = None;
                s.arm_exchange_timer(sh);
                Some(s)
            }
        }
    }

    /// The upstream socket of a carried session, registered (`None`, the
    /// session torn down, when that fails).
    fn register_upstream(
        &mut self,
        upstream: &SocketDoc,
        sh: &mut Shared,
        reg: &Registry,
    ) -> Option<Upstream> {
        let mut up = upstream.open(&mut sh.bufs);
        let uid = sh.releases.alloc_uid(Owner::Session(self.idx));
        if reg
            .register(
                &mut up.sock,
                upstream_token(uid),
                Interest::READABLE | Interest::WRITABLE,
            )
            .is_err()
        {
            sh.releases.free_uid(uid);
            up.release_bufs(&mut sh.bufs);
            self.teardown_imported(sh, reg);
            return None;
        }
        Some(Upstream {
            conn: up,
            uid,
            connecting: false,
            reused: false,
            got_bytes: true,
            since: sh.now,
        })
    }

    /// Drops a half-imported session (nothing counted yet).
    fn teardown_imported(&mut self, sh: &mut Shared, reg: &Registry) {
        let _ = reg.deregister(&mut self.client.sock);
        self.client.release_bufs(&mut sh.bufs);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample_idle() -> ConnDoc {
        ConnDoc::Idle {
            client: SocketDoc {
                fd: 20,
                input: b"GET / HT".to_vec(),
                output: Vec::new(),
            },
            peer: "127.0.0.1".into(),
        }
    }

    pub(crate) fn sample_tunnel() -> ConnDoc {
        ConnDoc::Tunnel {
            client: SocketDoc {
                fd: 21,
                input: Vec::new(),
                output: vec![0x81, 0x02, b'h'],
            },
            upstream: SocketDoc {
                fd: 22,
                input: Vec::new(),
                output: Vec::new(),
            },
            peer: "::1".into(),
            release_id: "v1".into(),
            to_client: FrameTracker::default().to_parts(),
            to_app: [4, 0, 1, 1, 17],
        }
    }

    pub(crate) fn sample_stream() -> ConnDoc {
        let mut body = BodyDecoder::new(
            crate::proxy::codec::BodyKind::Chunked,
            crate::proxy::codec::ChunkMode::Reencode,
            8192,
        );
        let mut out = [0u8; 64];
        let _ = body.step(b"5\r\nda", &mut out);
        ConnDoc::Stream {
            client: SocketDoc {
                fd: 23,
                input: Vec::new(),
                output: b"7\r\ndata: 1".to_vec(),
            },
            upstream: SocketDoc {
                fd: 24,
                input: b"ta\r\n".to_vec(),
                output: Vec::new(),
            },
            peer: "127.0.0.1".into(),
            release_id: "v1".into(),
            body: body.to_parts(),
            close_client: false,
            upstream_reusable: true,
            status: 200,
        }
    }

    #[test]
    fn connection_docs_are_tagged_by_kind() {
        let text = serde_json::to_string(&sample_tunnel()).unwrap();
        assert!(
            text.starts_with(r#"{"kind":"tunnel","client":{"fd":21"#),
            "{text}"
        );
        assert!(text.contains(r#""releaseId":"v1""#), "{text}");
        let back: ConnDoc = serde_json::from_str(&text).unwrap();
        assert_eq!(back, sample_tunnel());
    }
}
