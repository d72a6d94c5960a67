//! Proxy settings (mapped by the daemon from the `proxy.*` config keys) and
//! the trusted-front-end address list.

use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

/// Everything the proxy engine needs to know at start.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// `proxy.host`: listen address (default `127.0.0.1`).
    pub host: String,
    /// `proxy.port`: listen port; 0 picks a free one (default 8182).
    pub port: u16,
    /// `proxy.upstreamHost`: where releases listen (may be IPv6, e.g. `::1`).
    pub upstream_host: String,
    /// `proxy.trustedProxies`: peers whose X-Forwarded-Proto/Host/Port are
    /// kept (default loopback: `127.0.0.0/8`, `::1`).
    pub trusted_proxies: Vec<IpNet>,
    /// `proxy.maxHeaderBytes`: request head limit, else 431 (default 64 KiB).
    pub max_head_bytes: usize,
    /// `proxy.underscoresInHeaders`: forward header fields whose names
    /// contain `_` (default false: dropped, like nginx).
    pub underscores_in_headers: bool,
    /// `proxy.headerTimeoutMs`: a request head must arrive within this
    /// (slowloris defence; default 15 s).
    pub header_timeout: Duration,
    /// `proxy.clientIdleTimeoutMs`: idle keep-alive client connections
    /// close after this (default 75 s, longer than nginx's upstream keepalive).
    pub client_idle_timeout: Duration,
    /// `proxy.upstreamIdleTimeoutMs`: pooled upstream connections close
    /// after this (default 4 s, shorter than Node's 5 s keep-alive).
    pub upstream_idle_timeout: Duration,
    /// `proxy.clientWriteTimeoutMs`: a connection with response bytes
    /// waiting for the client that makes no write progress for this long is
    /// closed, with its upstream (default 60 s; zero disables).
    pub client_write_timeout: Duration,
    /// `proxy.upstreamResponseTimeoutMs`: the response head must arrive
    /// within this after the request was fully sent upstream, else 504
    /// (default 60 s; zero disables).
    pub upstream_response_timeout: Duration,
    /// `proxy.upstreamReadTimeoutMs`: a response body that receives nothing
    /// for this long is cut (default 60 s, like nginx's
    /// `proxy_read_timeout`; zero disables).
    pub upstream_read_timeout: Duration,
    /// `proxy.connectRetryMs`: how long a refused connect is retried before
    /// 502 (default 5 s; zero disables).
    pub connect_retry: Duration,
    /// `proxy.drainTimeoutMs`: the bound on a graceful stop (default 60 s).
    pub drain_timeout: Duration,
    /// `proxy.websocketCloseSpreadMs`: tunnels still open at a drain
    /// deadline or a graceful stop get their Close 1001 spread evenly over
    /// this long (default 1 s; zero closes them all at once).
    pub websocket_close_spread: Duration,
    /// `proxy.maxConnections`: most open connections; 0 derives it from
    /// the descriptor limit (see `budget.rs`), larger values are clamped.
    pub max_connections: usize,
    /// `proxy.maxHeldRequests`: most requests held while traffic is
    /// paused; beyond that a new request is answered 503 at once
    /// (default 10000).
    pub max_held_requests: usize,
    /// The admin listener's `host` and `port` (`None`: no admin listener).
    pub admin: Option<(String, u16)>,
    /// `proxy.accessLog`: one JSON line per finished request is appended
    /// to this file (`None`: no access log).
    pub access_log: Option<std::path::PathBuf>,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        ProxyOptions {
            host: "127.0.0.1".into(),
            port: 8182,
            upstream_host: "127.0.0.1".into(),
            trusted_proxies: vec![
                IpNet::from_str("127.0.0.0/8").unwrap_or(IpNet::LOOPBACK_V4),
                IpNet::from_str("::1").unwrap_or(IpNet::LOOPBACK_V4),
            ],
            max_head_bytes: 64 * 1024,
            underscores_in_headers: false,
            header_timeout: Duration::from_secs(15),
            client_idle_timeout: Duration::from_secs(75),
            upstream_idle_timeout: Duration::from_secs(4),
            client_write_timeout: Duration::from_secs(60),
            upstream_response_timeout: Duration::from_secs(60),
            upstream_read_timeout: Duration::from_secs(60),
            connect_retry: Duration::from_millis(5000),
            drain_timeout: Duration::from_secs(60),
            websocket_close_spread: Duration::from_millis(1000),
            max_connections: 0,
            max_held_requests: 10_000,
            admin: None,
            access_log: None,
        }
    }
}

impl ProxyOptions {
    /// The contract's default `proxy.upstreamHost` for a listen host: the
    /// host itself, except `127.0.0.1` for the wildcards `0.0.0.0` and `::`.
    pub fn default_upstream_host(listen_host: &str) -> String {
        match listen_host.trim_start_matches('[').trim_end_matches(']') {
            "0.0.0.0" | "::" => "127.0.0.1".into(),
            other => other.into(),
        }
    }

    /// True if `peer` is listed in `trusted_proxies`.
    pub fn is_trusted(&self, peer: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|n| n.contains(peer))
    }
}

/// An IP network (`10.0.0.0/8`, `::1`, `fd00::/8`); a bare address is /32 or /128.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl IpNet {
    const LOOPBACK_V4: IpNet = IpNet {
        addr: IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        prefix: 8,
    };

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for IpNet {
    type Err = String;

    fn from_str(s: &str) -> Result<IpNet, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("invalid IP address in {s:?}"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= max)
                .ok_or_else(|| format!("invalid prefix length in {s:?}"))?,
            None => max,
        };
        Ok(IpNet {
            addr: addr.to_canonical(),
            prefix,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_trusts_loopback_only() {
        let o = ProxyOptions::default();
        assert!(o.is_trusted("127.0.0.1".parse().unwrap()));
        assert!(o.is_trusted("127.9.9.9".parse().unwrap()));
        assert!(o.is_trusted("::1".parse().unwrap()));
        assert!(o.is_trusted("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!o.is_trusted("10.0.0.1".parse().unwrap()));
        assert!(!o.is_trusted("::2".parse().unwrap()));
    }

    #[test]
    fn wildcard_listen_host_defaults_upstream_to_loopback() {
        assert_eq!(ProxyOptions::default_upstream_host("0.0.0.0"), "127.0.0.1");
        assert_eq!(ProxyOptions::default_upstream_host("::"), "127.0.0.1");
        assert_eq!(ProxyOptions::default_upstream_host("[::]"), "127.0.0.1");
        assert_eq!(ProxyOptions::default_upstream_host("::1"), "::1");
        assert_eq!(
            ProxyOptions::default_upstream_host("127.0.0.1"),
            "127.0.0.1"
        );
    }

    #[test]
    fn cidr_parsing_rejects_garbage() {
        assert!("10.0.0.0/33".parse::<IpNet>().is_err());
        assert!("nope".parse::<IpNet>().is_err());
        let n: IpNet = "fd00::/8".parse().unwrap();
        assert!(n.contains("fd12::1".parse().unwrap()));
        let all: IpNet = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
    }
}
