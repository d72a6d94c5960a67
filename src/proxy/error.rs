//! One error taxonomy for the proxy: what went wrong, on which side, whether
//! a retry is safe, and the single place that maps it to an HTTP status.

use std::fmt;

/// Which hop an error belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Upstream,
    Internal,
}

/// What went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Malformed or forbidden request (smuggling defences, bad framing).
    BadRequest,
    /// Request head larger than `max_head_bytes` or too many fields.
    HeadTooLarge,
    /// A body or chunk larger than we accept.
    BodyTooLarge,
    /// A request feature the proxy does not implement (a transfer coding
    /// other than chunked).
    NotImplemented,
    /// No release is active.
    NoActiveRelease,
    /// The upstream connect failed (refused, unreachable).
    ConnectFailed,
    /// The upstream closed or reset before a complete response head.
    UpstreamClosed,
    /// The upstream sent something that is not valid HTTP/1.1.
    UpstreamProtocol,
    /// The upstream sent no response head within
    /// `upstream_response_timeout` of the request being sent.
    UpstreamTimeout,
    /// A timer fired (header, idle, client write or upstream read timeout).
    Timeout,
    /// Any other socket error.
    Io,
}

/// An error with its classification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyError {
    pub kind: ErrorKind,
    pub side: Side,
    /// True only when the request provably never reached the app.
    pub retryable: bool,
    pub detail: String,
}

impl ProxyError {
    pub fn new(kind: ErrorKind, side: Side, detail: impl Into<String>) -> ProxyError {
        ProxyError {
            kind,
            side,
            retryable: false,
            detail: detail.into(),
        }
    }

    pub fn client(kind: ErrorKind, detail: impl Into<String>) -> ProxyError {
        ProxyError::new(kind, Side::Client, detail)
    }

    pub fn upstream(kind: ErrorKind, detail: impl Into<String>) -> ProxyError {
        ProxyError::new(kind, Side::Upstream, detail)
    }

    pub fn retryable(mut self) -> ProxyError {
        self.retryable = true;
        self
    }

    /// The status the proxy answers with, if it answers at all.
    pub fn status(&self) -> Option<u16> {
        status_for(self.kind)
    }
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

impl std::error::Error for ProxyError {}

/// The one mapping from error kind to status code.
pub fn status_for(kind: ErrorKind) -> Option<u16> {
    match kind {
        ErrorKind::BadRequest => Some(400),
        ErrorKind::BodyTooLarge => Some(413),
        ErrorKind::HeadTooLarge => Some(431),
        ErrorKind::NotImplemented => Some(501),
        ErrorKind::ConnectFailed | ErrorKind::UpstreamClosed | ErrorKind::UpstreamProtocol => {
            Some(502)
        }
        ErrorKind::NoActiveRelease => Some(503),
        ErrorKind::UpstreamTimeout => Some(504),
        // The other timeouts close the connection without an answer
        // (slowloris, idle, a client that stopped reading, a response body
        // that stalled after its head was forwarded).
        ErrorKind::Timeout | ErrorKind::Io => None,
    }
}

/// The complete response bytes for one of the proxy's own answers.
/// `keep_alive` decides the `Connection` header.
pub fn canned_response(status: u16, keep_alive: bool) -> Vec<u8> {
    let (reason, body) = match status {
        400 => ("Bad Request", "Bad request\n"),
        413 => ("Content Too Large", "Content too large\n"),
        431 => (
            "Request Header Fields Too Large",
            "Request header fields too large\n",
        ),
        501 => ("Not Implemented", "Not implemented\n"),
        502 => ("Bad Gateway", "Bad gateway\n"),
        503 => ("Service Unavailable", "No active release\n"),
        504 => ("Gateway Timeout", "Gateway timeout\n"),
        _ => ("Internal Server Error", "Internal error\n"),
    };
    let conn = if keep_alive { "keep-alive" } else { "close" };
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: {conn}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The bare 503 a WebSocket upgrade gets when no release is active (§6).
pub const WS_NO_RELEASE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_contract_statuses() {
        assert_eq!(status_for(ErrorKind::BadRequest), Some(400));
        assert_eq!(status_for(ErrorKind::BodyTooLarge), Some(413));
        assert_eq!(status_for(ErrorKind::HeadTooLarge), Some(431));
        assert_eq!(status_for(ErrorKind::NotImplemented), Some(501));
        assert_eq!(status_for(ErrorKind::ConnectFailed), Some(502));
        assert_eq!(status_for(ErrorKind::NoActiveRelease), Some(503));
        assert_eq!(status_for(ErrorKind::UpstreamTimeout), Some(504));
        assert_eq!(status_for(ErrorKind::Timeout), None);
    }

    #[test]
    fn no_release_answer_matches_contract() {
        let r = String::from_utf8(canned_response(503, true)).unwrap();
        assert!(r.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
        assert!(r.contains("Content-Type: text/plain; charset=utf-8\r\n"));
        assert!(r.ends_with("\r\n\r\nNo active release\n"));
    }

    #[test]
    fn bad_gateway_body_matches_contract() {
        let r = String::from_utf8(canned_response(502, false)).unwrap();
        assert!(r.contains("Content-Length: 12\r\nConnection: close\r\n"));
        assert!(r.ends_with("Bad gateway\n"));
    }

    #[test]
    fn gateway_timeout_answer_is_complete() {
        let r = String::from_utf8(canned_response(504, true)).unwrap();
        assert!(r.starts_with("HTTP/1.1 504 Gateway Timeout\r\n"));
        assert!(r.contains("Content-Length: 16\r\nConnection: keep-alive\r\n"));
        assert!(r.ends_with("Gateway timeout\n"));
    }
}
