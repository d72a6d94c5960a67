//! The daemon's side of the proxy engine: starts it from the config and
//! owns its handle. The core is the only caller (set/clear/retire/close).

use std::str::FromStr;
use std::time::Duration;

use std::net::TcpListener;

use crossbeam_channel::Receiver;

use crate::config::{AdminConfig, ProxyConfig};
use crate::proxy::{self, IpNet, ProxyEvent, ProxyHandle, ProxyOptions};

pub struct ProxyPort {
    handle: ProxyHandle,
    port: u16,
    /// The engine waiting for its listener (takeover: bound after the
    /// previous owner retires).
    pending: Option<proxy::Pending>,
}

/// The engine's options from the normalized config.
pub fn options(cfg: &ProxyConfig, admin: Option<&AdminConfig>) -> ProxyOptions {
    ProxyOptions {
        host: cfg.host.clone(),
        port: cfg.port,
        upstream_host: cfg.upstream_host.clone(),
        // Validation already checked every entry.
        trusted_proxies: cfg
            .trusted_proxies
            .iter()
            .filter_map(|s| IpNet::from_str(s).ok())
            .collect(),
        max_head_bytes: cfg.max_header_bytes,
        underscores_in_headers: cfg.underscores_in_headers,
        header_timeout: Duration::from_millis(cfg.header_timeout_ms),
        client_idle_timeout: Duration::from_millis(cfg.client_idle_timeout_ms),
        upstream_idle_timeout: Duration::from_millis(cfg.upstream_idle_timeout_ms),
        client_write_timeout: Duration::from_millis(cfg.client_write_timeout_ms),
        upstream_response_timeout: Duration::from_millis(cfg.upstream_response_timeout_ms),
        upstream_read_timeout: Duration::from_millis(cfg.upstream_read_timeout_ms),
        connect_retry: Duration::from_millis(cfg.connect_retry_ms),
        drain_timeout: Duration::from_millis(cfg.drain_timeout_ms),
        websocket_close_spread: Duration::from_millis(cfg.websocket_close_spread_ms),
        max_connections: cfg.max_connections,
        max_held_requests: cfg.max_held_requests,
        admin: admin.map(|a| (a.host.clone(), a.port)),
        access_log: cfg.access_log.as_ref().map(std::path::PathBuf::from),
    }
}

impl ProxyPort {
    /// The engine without a listener yet; [`ProxyPort::attach`] starts it.
    pub fn prepare(
        cfg: &ProxyConfig,
        admin: Option<&AdminConfig>,
    ) -> Result<(ProxyPort, Receiver<ProxyEvent>), String> {
        let (handle, pending, events) = proxy::prepare(options(cfg, admin))
            .map_err(|e| format!("cannot start the proxy for {}:{}: {e}", cfg.host, cfg.port))?;
        let port = cfg.port;
        Ok((
            ProxyPort {
                handle,
                port,
                pending: Some(pending),
            },
            events,
        ))
    }

    /// Starts serving on `listener`; returns the port it listens on.
    pub fn attach(&mut self, listener: TcpListener) -> Result<u16, String> {
        let pending = self
            .pending
            .take()
            .ok_or_else(|| "the proxy already has a listener".to_owned())?;
        let addr = self
            .handle
            .attach(pending, listener)
            .map_err(|e| format!("cannot start the proxy: {e}"))?;
        self.port = addr.port();
        Ok(self.port)
    }

    /// [`attach`](Self::attach) with the admin listener passed on by a
    /// daemon upgrade instead of bound.
    pub fn attach_with(
        &mut self,
        listener: TcpListener,
        admin: Option<TcpListener>,
    ) -> Result<u16, String> {
        let pending = self
            .pending
            .take()
            .ok_or_else(|| "the proxy already has a listener".to_owned())?;
        let addr = self
            .handle
            .attach_with(pending, listener, admin)
            .map_err(|e| format!("cannot start the proxy: {e}"))?;
        self.port = addr.port();
        Ok(self.port)
    }

    /// Binds `proxy.host:proxy.port` and starts the proxy thread.
    pub fn bind(
        cfg: &ProxyConfig,
        admin: Option<&AdminConfig>,
    ) -> Result<(ProxyPort, Receiver<ProxyEvent>), String> {
        let (mut port, events) = ProxyPort::prepare(cfg, admin)?;
        port.attach(bind_listener(cfg)?)?;
        Ok((port, events))
    }

    /// The actually bound port (differs from the configured one for 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn handle(&self) -> &ProxyHandle {
        &self.handle
    }
}

/// Binds `proxy.host:proxy.port`; the error names the address and the OS
/// reason ("address already in use").
pub fn bind_listener(cfg: &ProxyConfig) -> Result<TcpListener, String> {
    let (host, port) = (&cfg.host, cfg.port);
    proxy::bind(host, port).map_err(|e| {
        let code = crate::control::client::errno_text(&e);
        if e.raw_os_error() == Some(libc::EADDRINUSE) {
            format!("listen EADDRINUSE: address already in use {host}:{port}")
        } else {
            format!("listen {code}: cannot bind proxy to {host}:{port}: {e}")
        }
    })
}
