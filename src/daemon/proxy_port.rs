//! Placeholder for the proxy listener until the proxy engine is merged: it
//! binds `proxy.host:proxy.port` (so start order, bind errors and the real
//! port in `status.proxy.port` already behave) and holds the socket.

use std::net::TcpListener;

pub struct ProxyPort {
    listener: Option<TcpListener>,
    host: String,
    port: u16,
}

impl ProxyPort {
    pub fn bind(host: &str, port: u16) -> Result<ProxyPort, String> {
        let listener = TcpListener::bind((host, port)).map_err(|e| {
            let code = crate::control::client::errno_text(&e);
            if e.raw_os_error() == Some(libc::EADDRINUSE) {
                format!("listen EADDRINUSE: address already in use {host}:{port}")
            } else {
                format!("listen {code}: cannot bind proxy to {host}:{port}: {e}")
            }
        })?;
        let bound = listener.local_addr().map(|a| a.port()).unwrap_or(port);
        Ok(ProxyPort {
            listener: Some(listener),
            host: host.to_owned(),
            port: bound,
        })
    }

    /// The actually bound port (differs from the configured one for 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// Stops listening (idempotent).
    pub fn close(&mut self) {
        self.listener = None;
    }
}
