//! Request head: parse (httparse), validate (our own rules on top of it) and
//! re-serialize the normalized head that goes upstream.
//!
//! httparse accepts things the next hop may read differently (bare LF,
//! duplicate Content-Length, obs-fold depending on config); the semantics
//! here are ours: a request is either unambiguous or rejected (RFC 9112
//! §6.3), and the upstream only ever sees the head we rebuilt.

use super::body::BodyKind;
use super::{contains_token, eq_ci, has_bare_cr_or_lf, is_tchar, parse_content_length};
use std::fmt::Write as _;
use std::net::IpAddr;

/// Most header fields in one head (more is answered with 431).
pub const MAX_HEADERS: usize = 200;

/// Why a request head was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    /// 400: malformed or ambiguous.
    Bad(&'static str),
    /// 431: larger than the limit or too many fields.
    TooLarge,
}

/// Who sent the request and how far we trust its forwarding headers.
#[derive(Debug, Clone)]
pub struct Forwarding<'a> {
    /// The client socket's address (IPv4-mapped addresses already unmapped).
    pub peer: IpAddr,
    /// The peer is a trusted front end: its X-Forwarded-Proto/Host/Port stand.
    pub trusted: bool,
    /// `Host` to send when an HTTP/1.0 client sent none.
    pub default_host: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upgrade {
    None,
    WebSocket,
}

/// What the proxy needs to know about a parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestInfo {
    /// Bytes of the head in the input (the body starts after them).
    pub head_len: usize,
    pub is_head: bool,
    /// Safe to replay on a fresh connection if it never reached the app.
    pub idempotent: bool,
    pub http10: bool,
    /// The client wants the connection kept open after the response.
    pub keep_alive: bool,
    pub body: BodyKind,
    pub upgrade: Upgrade,
}

/// Result of feeding the head bytes seen so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadParse {
    /// Need more bytes.
    Partial,
    /// Parsed; the normalized head was appended to `out`.
    Complete(RequestInfo),
}

/// Parses the request head at the start of `buf`, and on success appends the
/// head to send upstream to `out`.
pub fn parse_request(
    buf: &[u8],
    max_head: usize,
    fwd: &Forwarding<'_>,
    out: &mut Vec<u8>,
) -> Result<HeadParse, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            // A bare CR/LF seen early is refused without waiting for more.
            if buf.len() >= max_head {
                return Err(HeadError::TooLarge);
            }
            return Ok(HeadParse::Partial);
        }
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(_) => {
            if buf.len() > max_head {
                return Err(HeadError::TooLarge);
            }
            return Err(HeadError::Bad("malformed request head"));
        }
    };
    if head_len > max_head {
        return Err(HeadError::TooLarge);
    }
    if has_bare_cr_or_lf(&buf[..head_len]) {
        return Err(HeadError::Bad("bare CR or LF in request head"));
    }
    let method = req.method.ok_or(HeadError::Bad("no method"))?;
    let target = req.path.ok_or(HeadError::Bad("no request target"))?;
    let http10 = match req.version {
        Some(0) => true,
        Some(1) => false,
        _ => return Err(HeadError::Bad("unsupported HTTP version")),
    };
    if method == "CONNECT" {
        return Err(HeadError::Bad("CONNECT is not supported"));
    }
    let target = normalize_target(method, target)?;

    let mut host: Option<&[u8]> = None;
    let mut hosts = 0usize;
    let mut length: Option<u64> = None;
    let mut te_seen = false;
    let mut te_last_chunked = false;
    let mut te_codings = String::new();
    let mut conn_close = false;
    let mut conn_keep_alive = false;
    let mut conn_upgrade = false;
    let mut upgrade_ws = false;
    let mut upgrade_value: Option<&[u8]> = None;
    let mut xff: Vec<&[u8]> = Vec::new();
    let mut xf_proto: Option<&[u8]> = None;
    let mut xf_host: Option<&[u8]> = None;
    let mut xf_port: Option<&[u8]> = None;

    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        let value = trim_ows(h.value);
        if eq_ci(name, b"host") {
            hosts += 1;
            host = Some(value);
        } else if eq_ci(name, b"content-length") {
            let n = parse_content_length(value).ok_or(HeadError::Bad("invalid Content-Length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(HeadError::Bad("conflicting Content-Length"));
            }
            length = Some(n);
        } else if eq_ci(name, b"transfer-encoding") {
            for coding in value.split(|&b| b == b',') {
                let coding = trim_ows(coding);
                if coding.is_empty() || !coding.iter().all(|&b| is_tchar(b)) {
                    return Err(HeadError::Bad("invalid Transfer-Encoding"));
                }
                if te_last_chunked {
                    // chunked must be the final coding, applied once.
                    return Err(HeadError::Bad("chunked is not the final coding"));
                }
                te_last_chunked = eq_ci(coding, b"chunked");
                if !te_codings.is_empty() {
                    te_codings.push_str(", ");
                }
                for &b in coding {
                    te_codings.push(b.to_ascii_lowercase() as char);
                }
            }
            te_seen = true;
        } else if eq_ci(name, b"connection") {
            for tok in value.split(|&b| b == b',') {
                let tok = trim_ows(tok);
                conn_close |= eq_ci(tok, b"close");
                conn_keep_alive |= eq_ci(tok, b"keep-alive");
                conn_upgrade |= eq_ci(tok, b"upgrade");
            }
        } else if eq_ci(name, b"upgrade") {
            upgrade_ws |= contains_token(value, b"websocket");
            upgrade_value = Some(value);
        } else if eq_ci(name, b"x-forwarded-for") {
            xff.push(value);
        } else if eq_ci(name, b"x-forwarded-proto") {
            xf_proto.get_or_insert(value);
        } else if eq_ci(name, b"x-forwarded-host") {
            xf_host.get_or_insert(value);
        } else if eq_ci(name, b"x-forwarded-port") {
            xf_port.get_or_insert(value);
        }
    }

    if hosts > 1 {
        return Err(HeadError::Bad("more than one Host"));
    }
    if !http10 && hosts == 0 {
        return Err(HeadError::Bad("missing Host"));
    }
    if let Some(h) = host {
        if !h.iter().all(|&b| is_host_byte(b)) {
            return Err(HeadError::Bad("invalid Host"));
        }
    }
    let body = if te_seen {
        if length.is_some() {
            return Err(HeadError::Bad("both Content-Length and Transfer-Encoding"));
        }
        if http10 {
            return Err(HeadError::Bad("Transfer-Encoding in HTTP/1.0 request"));
        }
        if !te_last_chunked {
            return Err(HeadError::Bad("final transfer coding is not chunked"));
        }
        BodyKind::Chunked
    } else {
        match length {
            Some(0) | None => BodyKind::None,
            Some(n) => BodyKind::Length(n),
        }
    };
    // Only a GET asking for websocket takes the tunnel path; any other
    // Upgrade is hop-by-hop and simply not forwarded (RFC 9110 §7.8).
    let upgrade = if conn_upgrade && upgrade_ws && !http10 {
        if method != "GET" {
            return Err(HeadError::Bad("WebSocket upgrade must be GET"));
        }
        if body != BodyKind::None {
            return Err(HeadError::Bad("WebSocket upgrade with a body"));
        }
        Upgrade::WebSocket
    } else {
        Upgrade::None
    };
    let keep_alive = !conn_close && (!http10 || conn_keep_alive);

    // --- the normalized head sent upstream ---
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let connection_values: Vec<&[u8]> = req
        .headers
        .iter()
        .filter(|h| eq_ci(h.name.as_bytes(), b"connection"))
        .map(|h| h.value)
        .collect();
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        if is_hop_by_hop_request(name) {
            continue;
        }
        // Connection may declare more hop-by-hop fields, but never Host.
        if !eq_ci(name, b"host") && connection_values.iter().any(|v| contains_token(v, name)) {
            continue;
        }
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(trim_ows(h.value));
        out.extend_from_slice(b"\r\n");
    }
    if host.is_none() {
        out.extend_from_slice(b"Host: ");
        out.extend_from_slice(fwd.default_host.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match body {
        BodyKind::Length(n) => {
            let _ = write!(Appender(out), "Content-Length: {n}\r\n");
        }
        BodyKind::Chunked => {
            out.extend_from_slice(b"Transfer-Encoding: ");
            out.extend_from_slice(te_codings.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        BodyKind::None | BodyKind::CloseDelimited => {}
    }
    if upgrade == Upgrade::WebSocket {
        out.extend_from_slice(b"Connection: Upgrade\r\nUpgrade: ");
        out.extend_from_slice(upgrade_value.unwrap_or(b"websocket"));
        out.extend_from_slice(b"\r\n");
    }
    // Forwarding headers: incoming X-Forwarded-For is kept only if the
    // client did not declare it hop-by-hop; ours is always added.
    let xff_named = connection_values
        .iter()
        .any(|v| contains_token(v, b"x-forwarded-for"));
    out.extend_from_slice(b"X-Forwarded-For: ");
    if !xff_named {
        for v in &xff {
            out.extend_from_slice(v);
            out.extend_from_slice(b", ");
        }
    }
    let _ = write!(Appender(out), "{}\r\n", fwd.peer);
    let trusted = |v: Option<&'_ [u8]>, name: &[u8]| -> Option<Vec<u8>> {
        let named = connection_values.iter().any(|c| contains_token(c, name));
        v.filter(|_| fwd.trusted && !named).map(<[u8]>::to_vec)
    };
    out.extend_from_slice(b"X-Forwarded-Proto: ");
    match trusted(xf_proto, b"x-forwarded-proto") {
        Some(v) => out.extend_from_slice(&v),
        None if upgrade == Upgrade::WebSocket => out.extend_from_slice(b"ws"),
        None => out.extend_from_slice(b"http"),
    }
    out.extend_from_slice(b"\r\nX-Forwarded-Host: ");
    match trusted(xf_host, b"x-forwarded-host") {
        Some(v) => out.extend_from_slice(&v),
        None => out.extend_from_slice(host.unwrap_or(fwd.default_host.as_bytes())),
    }
    out.extend_from_slice(b"\r\nX-Forwarded-Port: ");
    match trusted(xf_port, b"x-forwarded-port") {
        Some(v) => out.extend_from_slice(&v),
        None => out.extend_from_slice(host.and_then(host_port).unwrap_or(b"80")),
    }
    out.extend_from_slice(b"\r\n\r\n");

    Ok(HeadParse::Complete(RequestInfo {
        head_len,
        is_head: method == "HEAD",
        idempotent: matches!(
            method,
            "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE"
        ),
        http10,
        keep_alive,
        body,
        upgrade,
    }))
}

/// `fmt::Write` onto a byte vector (for numbers and addresses).
struct Appender<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Appender<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// Fields that describe this hop only, plus the framing and forwarding
/// fields the proxy rebuilds itself.
fn is_hop_by_hop_request(name: &[u8]) -> bool {
    const NAMES: [&[u8]; 11] = [
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"x-forwarded-port",
    ];
    NAMES.iter().any(|n| eq_ci(n, name))
}

/// Origin-form is forwarded byte for byte; absolute-form is reduced to its
/// path and query; `*` only for OPTIONS.
fn normalize_target<'a>(method: &str, target: &'a str) -> Result<&'a str, HeadError> {
    if target.starts_with('/') {
        return Ok(target);
    }
    if target == "*" {
        return if method == "OPTIONS" {
            Ok(target)
        } else {
            Err(HeadError::Bad("asterisk-form only for OPTIONS"))
        };
    }
    let lower = target.get(..8).unwrap_or(target).to_ascii_lowercase();
    let rest = if lower.starts_with("http://") {
        &target[7..]
    } else if lower.starts_with("https://") {
        &target[8..]
    } else {
        return Err(HeadError::Bad("invalid request target"));
    };
    match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'/' => Ok(&rest[i..]),
        _ => Ok("/"),
    }
}

/// The port of a `Host` value (`host:port` or `[v6]:port`), if it has one.
pub fn host_port(host: &[u8]) -> Option<&[u8]> {
    let after = if host.first() == Some(&b'[') {
        let close = host.iter().position(|&b| b == b']')?;
        &host[close + 1..]
    } else {
        let colon = host.iter().rposition(|&b| b == b':')?;
        &host[colon..]
    };
    let digits = after.strip_prefix(b":")?;
    (!digits.is_empty() && digits.iter().all(u8::is_ascii_digit)).then_some(digits)
}

fn is_host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:%[]".contains(&b)
}

fn trim_ows(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |i| i + 1);
    &v[start..end]
}

#[cfg(test)]
mod tests;
