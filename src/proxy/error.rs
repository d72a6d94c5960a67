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
    /// Maintenance is on: the proxy answers every new request itself.
    Maintenance,
    /// Traffic is paused and the request was held longer than the pause
    /// allows.
    HeldTooLong,
    /// Traffic is paused and `max_held_requests` are already held.
    HoldQueueFull,
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
        ErrorKind::NoActiveRelease
        | ErrorKind::Maintenance
        | ErrorKind::HeldTooLong
        | ErrorKind::HoldQueueFull => Some(503),
        ErrorKind::UpstreamTimeout => Some(504),
        // The other timeouts close the connection without an answer
        // (slowloris, idle, a client that stopped reading, a response body
        // that stalled after its head was forwarded).
        ErrorKind::Timeout | ErrorKind::Io => None,
    }
}

/// What the body of one of the proxy's own answers looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page<'a> {
    /// The short text of the status (`Bad gateway`, `No active release`...).
    Standard,
    /// The status line alone: the 503 a WebSocket upgrade gets when no
    /// release is active.
    Bare,
    /// An operator's own page (maintenance): its message as a small HTML
    /// page or as text, `Retry-After` when given, never cached.
    Own {
        message: &'a str,
        retry_after: Option<u64>,
        html: bool,
    },
}

/// The complete response bytes for one of the proxy's own answers, or
/// `None` when the error's kind has no answer (the connection is closed).
/// The status comes from [`ProxyError::status`], the one mapping;
/// `keep_alive` decides the `Connection` header.
pub fn canned_response(err: &ProxyError, keep_alive: bool, page: Page<'_>) -> Option<Vec<u8>> {
    let status = err.status()?;
    let (reason, text) = match status {
        400 => ("Bad Request", "Bad request\n"),
        413 => ("Content Too Large", "Content too large\n"),
        431 => (
            "Request Header Fields Too Large",
            "Request header fields too large\n",
        ),
        501 => ("Not Implemented", "Not implemented\n"),
        502 => ("Bad Gateway", "Bad gateway\n"),
        503 => ("Service Unavailable", unavailable_text(err.kind)),
        504 => ("Gateway Timeout", "Gateway timeout\n"),
        _ => ("Internal Server Error", "Internal error\n"),
    };
    let conn = if keep_alive { "keep-alive" } else { "close" };
    let mut extra = String::new();
    let body = match page {
        Page::Bare => return Some(format!("HTTP/1.1 {status} {reason}\r\n\r\n").into_bytes()),
        Page::Standard => {
            extra.push_str("Content-Type: text/plain; charset=utf-8\r\n");
            text.to_string()
        }
        Page::Own {
            message,
            retry_after,
            html,
        } => {
            if let Some(secs) = retry_after {
                extra.push_str(&format!("Retry-After: {secs}\r\n"));
            }
            extra.push_str("Cache-Control: no-store\r\n");
            if html {
                extra.push_str("Content-Type: text/html; charset=utf-8\r\n");
                html_page(reason, message)
            } else {
                extra.push_str("Content-Type: text/plain; charset=utf-8\r\n");
                format!("{message}\n")
            }
        }
    };
    Some(
        format!(
            "HTTP/1.1 {status} {reason}\r\n{extra}Content-Length: {}\r\nConnection: {conn}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

/// The text of a standard 503, by cause.
fn unavailable_text(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Maintenance => "Service temporarily unavailable for maintenance\n",
        ErrorKind::HeldTooLong => "Service paused; the request waited too long\n",
        ErrorKind::HoldQueueFull => "Service paused; too many requests waiting\n",
        _ => "No active release\n",
    }
}

/// A small self-contained HTML page around `message` (escaped).
fn html_page(title: &str, message: &str) -> String {
    let mut esc = String::with_capacity(message.len());
    for c in message.chars() {
        match c {
            '&' => esc.push_str("&amp;"),
            '<' => esc.push_str("&lt;"),
            '>' => esc.push_str("&gt;"),
            '"' => esc.push_str("&quot;"),
            '\'' => esc.push_str("&#39;"),
            c => esc.push(c),
        }
    }
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>\n\
         <body><h1>{title}</h1><p>{esc}</p></body></html>\n"
    )
}

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
        assert_eq!(status_for(ErrorKind::Maintenance), Some(503));
        assert_eq!(status_for(ErrorKind::HeldTooLong), Some(503));
        assert_eq!(status_for(ErrorKind::HoldQueueFull), Some(503));
    }

    fn answer(kind: ErrorKind, keep: bool, page: Page<'_>) -> String {
        let e = ProxyError::new(kind, Side::Internal, "");
        String::from_utf8(canned_response(&e, keep, page).unwrap()).unwrap()
    }

    #[test]
    fn a_kind_without_status_has_no_answer() {
        let e = ProxyError::client(ErrorKind::Timeout, "");
        assert_eq!(canned_response(&e, true, Page::Standard), None);
    }

    #[test]
    fn websocket_without_release_gets_a_bare_503() {
        let r = answer(ErrorKind::NoActiveRelease, false, Page::Bare);
        assert_eq!(r, "HTTP/1.1 503 Service Unavailable\r\n\r\n");
    }

    #[test]
    fn maintenance_page_as_text_with_retry_after() {
        let page = Page::Own {
            message: "back soon",
            retry_after: Some(120),
            html: false,
        };
        let r = answer(ErrorKind::Maintenance, true, page);
        assert!(r.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
        assert!(r.contains("Retry-After: 120\r\n"));
        assert!(r.contains("Cache-Control: no-store\r\n"));
        assert!(r.contains("Content-Type: text/plain; charset=utf-8\r\n"));
        assert!(r.contains("Content-Length: 10\r\nConnection: keep-alive\r\n"));
        assert!(r.ends_with("\r\n\r\nback soon\n"));
    }

    #[test]
    fn maintenance_page_as_html_escapes_the_message() {
        let page = Page::Own {
            message: "<b>soon</b> & done",
            retry_after: None,
            html: true,
        };
        let r = answer(ErrorKind::Maintenance, false, page);
        assert!(!r.contains("Retry-After"));
        assert!(r.contains("Content-Type: text/html; charset=utf-8\r\n"));
        assert!(r.contains("<p>&lt;b&gt;soon&lt;/b&gt; &amp; done</p>"));
        let (head, body) = r.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}\r\n", body.len())));
    }

    #[test]
    fn no_release_answer_matches_contract() {
        let r = answer(ErrorKind::NoActiveRelease, true, Page::Standard);
        assert!(r.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
        assert!(r.contains("Content-Type: text/plain; charset=utf-8\r\n"));
        assert!(r.ends_with("\r\n\r\nNo active release\n"));
    }

    #[test]
    fn bad_gateway_body_matches_contract() {
        let r = answer(ErrorKind::ConnectFailed, false, Page::Standard);
        assert!(r.contains("Content-Length: 12\r\nConnection: close\r\n"));
        assert!(r.ends_with("Bad gateway\n"));
    }

    #[test]
    fn gateway_timeout_answer_is_complete() {
        let r = answer(ErrorKind::UpstreamTimeout, true, Page::Standard);
        assert!(r.starts_with("HTTP/1.1 504 Gateway Timeout\r\n"));
        assert!(r.contains("Content-Length: 16\r\nConnection: keep-alive\r\n"));
        assert!(r.ends_with("Gateway timeout\n"));
    }
}
