//! The loop's side of a daemon upgrade: freeze, export, and either stand
//! still until the program is replaced or thaw and carry on; and, in the
//! new program, import the connections handed over.

use super::*;
use crate::inherit::inheritable;
use crate::proxy::handle::ProxyFreezeParts;
use crate::proxy::handover::ConnDoc;
use crate::proxy::session::later;
use std::os::fd::AsRawFd;

pub(super) struct FreezeRun {
    deadline: Instant,
    reply: Sender<Result<ProxyFreezeParts, String>>,
    thaw: Receiver<()>,
}

impl Loop {
    /// Stops taking on new work: the listener leaves the poll (clients
    /// wait in the backlog) and no new request head is read. Requests in
    /// flight get until `within` to finish.
    pub(super) fn begin_freeze(
        &mut self,
        within: Duration,
        reply: Sender<Result<ProxyFreezeParts, String>>,
        thaw: Receiver<()>,
    ) {
        if self.shutdown.is_some() || self.freezing.is_some() {
            let _ = reply.send(Err("the proxy is stopping".into()));
            return;
        }
        if let Some(l) = self.listener.as_mut() {
            if self.listening {
                let _ = self.poll.registry().deregister(l);
            }
        }
        self.listening = false;
        self.sh.frozen = true;
        self.freezing = Some(FreezeRun {
            deadline: later(self.sh.now, within),
            reply,
            thaw,
        });
    }

    /// Once every connection can be carried over (or the wait is over):
    /// exports them, then blocks until thawed or replaced.
    pub(super) fn check_freeze(&mut self) {
        let Some(run) = self.freezing.as_ref() else {
            return;
        };
        let settled = self.sessions.iter().flatten().all(Session::exportable);
        if !settled && self.sh.now < run.deadline {
            return;
        }
        let Some(run) = self.freezing.take() else {
            return;
        };
        match self.export() {
            Ok(parts) => {
                if run.reply.send(Ok(parts)).is_ok() {
                    // Until the exec fails (thaw) or replaces this program.
                    let _ = run.thaw.recv();
                }
            }
            Err(e) => {
                let _ = run.reply.send(Err(e));
            }
        }
        self.thaw();
    }

    fn export(&mut self) -> Result<ProxyFreezeParts, String> {
        let failed = |e: std::io::Error| format!("cannot pass on a proxy socket: {e}");
        let listener = match self.listener.as_ref() {
            Some(l) => inheritable(l.as_raw_fd()).map_err(failed)?,
            None => return Err("the proxy has no listener".into()),
        };
        let admin = match self.admin.as_ref() {
            Some(a) => Some(inheritable(a.listener_fd()).map_err(failed)?),
            None => None,
        };
        let mut fds = Vec::new();
        let mut conns = Vec::new();
        let mut left = 0;
        for s in self.sessions.iter().flatten() {
            match s.export(&self.sh, &mut fds).map_err(failed)? {
                Some(doc) => conns.push(doc),
                None => left += 1,
            }
        }
        let active = self
            .sh
            .releases
            .active
            .and_then(|i| self.sh.releases.get(i))
            .map(|r| (r.id.clone(), r.addr.to_string()));
        Ok(ProxyFreezeParts {
            active,
            listener,
            admin,
            conns,
            fds,
            left_behind: left,
        })
    }

    /// Back to normal: listening again, heads read again.
    fn thaw(&mut self) {
        self.sh.frozen = false;
        let registered = self.register_listener();
        self.listening = registered;
        if registered {
            self.accept();
        }
        self.again.extend(
            self.sessions
                .iter()
                .enumerate()
                .filter(|(_, s)| s.is_some())
                .map(|(i, _)| i),
        );
    }

    /// Takes on the connections a previous program handed over; returns
    /// how many could be carried on.
    pub(super) fn import(&mut self, conns: Vec<ConnDoc>) -> usize {
        let mut n = 0;
        for doc in conns {
            let idx = self.free.pop().unwrap_or_else(|| {
                self.sessions.push(None);
                self.sessions.len() - 1
            });
            self.next_serial += 1;
            match Session::import(
                &doc,
                idx,
                self.next_serial,
                &mut self.sh,
                self.poll.registry(),
            ) {
                Some(s) => {
                    self.sessions[idx] = Some(s);
                    self.sh.sessions_open += 1;
                    self.again.push(idx);
                    n += 1;
                }
                None => self.free.push(idx),
            }
        }
        self.peak_sessions = self.peak_sessions.max(self.sh.sessions_open);
        n
    }
}
