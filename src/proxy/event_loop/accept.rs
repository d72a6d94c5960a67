//! Taking on new clients within the connection cap: accepting, leaving
//! clients in the backlog at the cap and listening again below it, and
//! handing memory back after a busy spell.

use super::{ACCEPT_PAUSE, Loop, TRIM_AFTER_CLOSED};
use crate::proxy::budget::{self, Admit};
use crate::proxy::handle::{LISTENER, ProxyEvent};
use crate::proxy::session::{Session, client_token};
use mio::Interest;
use mio::net::TcpListener;
use std::io;
use std::sync::atomic::Ordering;

/// Sets TCP_NODELAY on a listening socket (Linux passes it on to the
/// sockets it accepts); false if that failed.
pub(super) fn set_nodelay(listener: &TcpListener) -> bool {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: a valid descriptor and a c_int option value of the given size.
    let r = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    r == 0
}

impl Loop {
    /// Puts the listener (back) in the poll; false if there is none or
    /// that failed.
    pub(super) fn register_listener(&mut self) -> bool {
        match self.listener.as_mut() {
            Some(l) => self
                .poll
                .registry()
                .register(l, LISTENER, Interest::READABLE)
                .is_ok(),
            None => false,
        }
    }

    pub(super) fn accept(&mut self) {
        if self.accept_paused_until.is_some() || !self.listening {
            return;
        }
        loop {
            let admit = budget::admit(
                self.sh.sessions_open,
                self.sh.releases.idle_count(),
                self.sh.max_connections,
            );
            if admit == Admit::Full {
                self.stop_listening();
                return;
            }
            let Some(listener) = self.listener.as_ref() else {
                return;
            };
            match listener.accept() {
                Ok((mut sock, addr)) => {
                    if admit == Admit::CloseIdle {
                        // Pooled connections give way to a waiting client.
                        self.sh.releases.close_oldest_idle(self.poll.registry());
                    }
                    if !self.nodelay_inherited {
                        let _ = sock.set_nodelay(true);
                    }
                    let idx = self.free.pop().unwrap_or_else(|| {
                        self.sessions.push(None);
                        self.sessions.len() - 1
                    });
                    if self
                        .poll
                        .registry()
                        .register(
                            &mut sock,
                            client_token(idx),
                            Interest::READABLE | Interest::WRITABLE,
                        )
                        .is_err()
                    {
                        self.free.push(idx);
                        continue;
                    }
                    self.next_serial += 1;
                    self.sh.sessions_open += 1;
                    self.peak_sessions = self.peak_sessions.max(self.sh.sessions_open);
                    let peer = addr.ip().to_canonical();
                    self.sessions[idx] =
                        Some(Session::new(idx, self.next_serial, sock, peer, &self.sh));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
                    ) =>
                {
                    // Out of descriptors: stop accepting for a moment; open
                    // connections are unaffected.
                    self.accept_paused_until = Some(self.sh.now + ACCEPT_PAUSE);
                    return;
                }
                Err(_) => {} // ECONNABORTED and friends: next one
            }
        }
    }

    /// Hands memory back once it is no longer needed: the free lists when
    /// no buffer is checked out, everything after a flood closed.
    pub(super) fn trim_memory(&mut self) {
        if self.sh.bufs.out == 0 {
            self.sh.bufs.trim();
        }
        let open = self.sh.sessions_open;
        // After a flood, or once the last connection of a busy spell is
        // gone (so idle RSS after load is idle RSS again).
        let quiet = open == 0 && self.peak_sessions > 0;
        if self.peak_sessions < open + TRIM_AFTER_CLOSED && !quiet {
            return;
        }
        self.peak_sessions = open;
        let used = self
            .sessions
            .iter()
            .rposition(Option::is_some)
            .map_or(0, |i| i + 1);
        self.sessions.truncate(used);
        self.sessions.shrink_to_fit();
        self.free.retain(|&i| i < used);
        self.free.shrink_to_fit();
        self.sh.bufs.trim();
        // Freed memory otherwise stays with the allocator's arenas.
        #[cfg(target_env = "gnu")]
        // SAFETY: malloc_trim only releases free memory; no pointers change.
        unsafe {
            libc::malloc_trim(0);
        }
    }

    /// At the cap: stop accepting. The listener is deregistered so the
    /// backlog holds new clients without waking the loop.
    pub(super) fn stop_listening(&mut self) {
        if let Some(l) = self.listener.as_mut() {
            let _ = self.poll.registry().deregister(l);
        }
        self.listening = false;
        self.gauge.at_limit.store(true, Ordering::Relaxed);
        if !self.limit_reported {
            self.limit_reported = true;
            let _ = self.sh.events.try_send(ProxyEvent::ConnectionLimit {
                reached: true,
                max_connections: self.sh.max_connections,
            });
        }
    }

    /// Once per iteration: publishes the load and resumes accepting when a
    /// connection has closed below the cap.
    pub(super) fn check_budget(&mut self) {
        let idle = self.sh.releases.idle_count();
        let open = self.sh.sessions_open + idle;
        self.gauge.open.store(open, Ordering::Relaxed);
        self.gauge
            .held
            .store(self.sh.traffic.hold.len(), Ordering::Relaxed);
        let max = self.sh.max_connections;
        if !self.listening && self.listener.is_some() && self.freezing.is_none() {
            if budget::admit(self.sh.sessions_open, idle, max) == Admit::Full {
                return;
            }
            if !self.register_listener() {
                return;
            }
            self.listening = true;
            self.gauge.at_limit.store(false, Ordering::Relaxed);
            // Edge-triggered: clients already waiting raise no new edge.
            self.accept();
        }
        // The episode ends well below the cap, so a flood hovering at it
        // does not log one event per closed connection.
        if self.limit_reported && self.listening && open <= budget::low_water(max) {
            self.limit_reported = false;
            let _ = self.sh.events.try_send(ProxyEvent::ConnectionLimit {
                reached: false,
                max_connections: max,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_sockets_inherit_nodelay_from_the_listener() {
        let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        assert!(set_nodelay(&listener));
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let sock = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        };
        assert!(sock.nodelay().unwrap());
    }
}
