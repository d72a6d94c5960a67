//! The core's side of a foreground bootstrap (exposing the daemon once the
//! release is active, or failing it) and of `retire-owner` (handing the
//! proxy listener to the daemon taking over, then stopping everything).

use super::*;
use crate::daemon::bootstrap::{BootMsg, Obtained};

/// A `retire-owner` in progress (repeated calls share it).
pub(super) struct Retiring {
    attestation: String,
    waiters: Vec<ReplyTo>,
    replied: bool,
}

const OWNER_RETIRED: &str = r#"{"message":"owner retired"}"#;

impl Core {
    /// `status.bootstrap` for the daemon's life.
    pub fn set_bootstrap(&mut self, bootstrap: serde_json::Value) {
        self.bootstrap = Some(bootstrap);
    }

    pub(super) fn boot_msg(&mut self, msg: BootMsg) {
        match msg {
            BootMsg::Failed { release_id, error } => {
                // A signal already took the shutdown path: exit 0.
                if self.shutdown.is_some() {
                    return;
                }
                eprintln!("rollbridge: bootstrap activation failed: {error}");
                self.record(Event::new(
                    "bootstrap activation failed",
                    Data::new()
                        .with("releaseId", release_id)
                        .with("status", "error"),
                ));
                self.forced_exit = Some(1);
                self.begin_shutdown(None, false);
            }
            BootMsg::Expose {
                proxy,
                control,
                incoming,
            } => {
                let path = self.config.control.path.clone();
                if self.shutdown.is_some() {
                    drop(control);
                    let _ = std::fs::remove_file(&path);
                    return;
                }
                if let Some((listener, obtained)) = proxy {
                    if let Err(e) = self.proxy.attach(listener) {
                        let _ = std::fs::remove_file(&path);
                        let id = self.state.active_release_id.clone().unwrap_or_default();
                        return self.boot_msg(BootMsg::Failed {
                            release_id: id,
                            error: e,
                        });
                    }
                    let (gap, how) = match obtained {
                        Obtained::HandedOver => (Duration::ZERO, "handed over"),
                        Obtained::Bound { gap } => (gap, "bound"),
                    };
                    self.record(Event::new(
                        "proxy listening",
                        Data::new()
                            .with("host", self.config.proxy.host.as_str())
                            .with("port", self.proxy.port()),
                    ));
                    // The admin listener is bound with the proxy's.
                    if let Some(addr) = self.proxy.handle().admin_addr() {
                        self.record(Event::new(
                            "admin listening",
                            Data::new()
                                .with("host", addr.ip().to_string())
                                .with("port", addr.port()),
                        ));
                    }
                    self.record(Event::new(
                        "proxy port taken over",
                        Data::new()
                            .with("gapMs", gap.as_millis() as u64)
                            .with("gapUs", gap.as_micros() as u64)
                            .with("listener", how),
                    ));
                }
                match ControlServer::start(control, path.clone(), incoming) {
                    Ok(c) => self.set_control(c),
                    Err(e) => {
                        let _ = std::fs::remove_file(&path);
                        let id = self.state.active_release_id.clone().unwrap_or_default();
                        return self.boot_msg(BootMsg::Failed {
                            release_id: id,
                            error: format!("Cannot serve the control socket: {e}"),
                        });
                    }
                }
                self.record(Event::new(
                    "control socket listening",
                    Data::new().with("path", path.as_str()),
                ));
                let state_path = crate::daemon::statefile::location(&self.config).path;
                if let Err(e) = self.start_persistence(&state_path) {
                    self.record(Event::new(
                        "state persist failed",
                        Data::new().with("error", format!("cannot start the state writer: {e}")),
                    ));
                }
                notify::ready();
            }
        }
    }

    /// `retire-owner`: stop persisting (the file is left for the new
    /// owner), close the control socket, then hand the proxy listener over
    /// with the reply (see [`Core::hand_over`]); stops run afterwards.
    pub(super) fn retire_owner(&mut self, attestation: String, reply: ReplyTo) {
        if let Some(r) = self.retiring.as_mut() {
            if r.replied {
                reply.send(Ok(OWNER_RETIRED.into()));
            } else {
                r.waiters.push(reply);
            }
            return;
        }
        if self.shutdown.is_some() {
            self.fail(reply, "Rollbridge is shutting down".into());
            return;
        }
        notify::stopping();
        self.next_persist = None;
        if let Some(p) = self.persister.take() {
            p.stop();
        }
        for key in self.state.all_keys() {
            self.supervisor.set_crash_gate(key, false);
        }
        let keep = vec![reply.conn()];
        self.retiring = Some(Retiring {
            attestation,
            waiters: vec![reply],
            replied: false,
        });
        self.shutdown = Some(ShutdownRun {
            waiters: Vec::new(),
            errors: Vec::new(),
            by_signal: false,
        });
        let tx = self.tx.clone();
        let done = Box::new(move |error: Option<String>| {
            let _ = tx.send(CoreMsg::ControlClosed(error));
        });
        match self.control.as_ref() {
            Some(control) => control.close(keep, done),
            None => done(None),
        }
    }

    /// Once the control socket is gone: the listener goes to the first
    /// requester with the reply. The proxy then stops accepting and serves
    /// its open connections out; processes stop after it.
    pub(super) fn hand_over(&mut self) {
        let Some(r) = self.retiring.as_mut() else {
            return;
        };
        if r.replied {
            return;
        }
        r.replied = true;
        let attestation = r.attestation.clone();
        let waiters = std::mem::take(&mut r.waiters);
        self.record(Event::new(
            "external owner retired",
            Data::new()
                .with("attestation", attestation)
                .with("status", "draining"),
        ));
        let mut fd = self.proxy.handle().take_listener();
        for w in waiters {
            w.send_with_fd(Ok(OWNER_RETIRED.into()), fd.take());
        }
    }
}
