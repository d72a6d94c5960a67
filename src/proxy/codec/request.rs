//! Request head: parse (httparse), validate (our own rules on top of it) and
//! re-serialize the normalized head that goes upstream.
//!
//! httparse accepts things the next hop may read differently (bare LF,
//! duplicate Content-Length, obs-fold depending on config); the semantics
//! here are ours: a request is either unambiguous or rejected (RFC 9112
//! section 6.3), and the upstream only ever sees the head we rebuilt.

mod coding;
mod fields;
mod target;

use super::body::BodyKind;
use super::chunked;
use super::digits::{push_ip, push_u64};
use super::lines::Lines;
use super::{contains_ci, contains_token, eq_ci, has_bare_cr_or_lf, parse_content_length};
use crate::proxy::error::ErrorKind;
use coding::Codings;
use fields::{is_rebuilt, underscore_dropped, valid_request_id};
use std::net::IpAddr;
use std::ops::Range;
use target::{is_host_byte, normalize_target};

/// Most header fields in one head, the client's or the one we send upstream
/// with our forwarding fields added (more is answered with 431).
pub const MAX_HEADERS: usize = 200;

/// Most fields the proxy writes beyond the client's: `Host` (for an
/// HTTP/1.0 request without one), the framing field, `Connection` and
/// `Upgrade`, and the five forwarding fields.
const ADDED_FIELDS: usize = 9;

/// Why a request head was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    /// 400: malformed or ambiguous.
    Bad(&'static str),
    /// 431: larger than the limit or too many fields.
    TooLarge,
    /// 501: a transfer coding the proxy does not implement.
    NotImplemented(&'static str),
}

impl HeadError {
    /// Its place in the proxy's error taxonomy.
    pub fn kind(&self) -> ErrorKind {
        match self {
            HeadError::Bad(_) => ErrorKind::BadRequest,
            HeadError::TooLarge => ErrorKind::HeadTooLarge,
            HeadError::NotImplemented(_) => ErrorKind::NotImplemented,
        }
    }
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
    /// Keep header fields whose names contain `_` (those that would read as
    /// a field the proxy controls are dropped all the same).
    pub underscores_in_headers: bool,
    /// The `X-Request-ID` sent upstream unless a trusted peer sent a valid
    /// one (which is kept instead).
    pub request_id: &'a [u8],
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
    /// `Accept` names `text/html` (a browser): the proxy's own pages are
    /// sent as HTML.
    pub accepts_html: bool,
    /// Where the request line's parts sit in the parsed bytes.
    pub spans: Spans,
}

/// Byte ranges in the buffer given to [`parse_request`] (for the access
/// log, which copies them only when it is on).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Spans {
    pub method: Range<usize>,
    /// The request target as received (query included).
    pub target: Range<usize>,
    /// The `X-Request-ID` kept from a trusted peer; `None`: the generated
    /// one (`Forwarding::request_id`) went upstream.
    pub request_id: Option<Range<usize>>,
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
/// head to send upstream to `out`. Chunked body bytes already in `buf` are
/// checked too, so a bad first chunk is refused before anything goes
/// upstream.
pub fn parse_request(
    buf: &[u8],
    max_head: usize,
    fwd: &Forwarding<'_>,
    out: &mut Vec<u8>,
) -> Result<HeadParse, HeadError> {
    // Left uninitialized: httparse writes only the fields it parses.
    let mut headers = [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let head_len = match req.parse_with_uninit_headers(buf, &mut headers) {
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
    let method_span = span(buf, method.as_bytes());
    let target_span = span(buf, target.as_bytes());
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
    let mut codings = Codings::default();
    let mut conn_close = false;
    let mut conn_keep_alive = false;
    let mut conn_upgrade = false;
    let mut upgrade_ws = false;
    let mut upgrade_value: Option<&[u8]> = None;
    let mut accepts_html = false;
    let mut xff: Vec<&[u8]> = Vec::new();
    let mut xf_proto: Option<&[u8]> = None;
    let mut xf_host: Option<&[u8]> = None;
    let mut xf_port: Option<&[u8]> = None;
    let mut request_id: Option<&[u8]> = None;

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
            codings.add(value)?;
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
        } else if eq_ci(name, b"accept") {
            accepts_html |= contains_ci(value, b"text/html");
        } else if eq_ci(name, b"x-forwarded-for") {
            xff.push(value);
        } else if eq_ci(name, b"x-forwarded-proto") {
            xf_proto.get_or_insert(value);
        } else if eq_ci(name, b"x-forwarded-host") {
            xf_host.get_or_insert(value);
        } else if eq_ci(name, b"x-forwarded-port") {
            xf_port.get_or_insert(value);
        } else if eq_ci(name, b"x-request-id") {
            request_id.get_or_insert(value);
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
    // An absolute-form target's authority replaces Host (RFC 9112 section 3.2.2).
    let host = target.authority.map(str::as_bytes).or(host);
    let body = if codings.seen {
        if length.is_some() {
            return Err(HeadError::Bad("both Content-Length and Transfer-Encoding"));
        }
        if http10 {
            return Err(HeadError::Bad("Transfer-Encoding in HTTP/1.0 request"));
        }
        codings.check()?;
        BodyKind::Chunked
    } else {
        match length {
            Some(0) | None => BodyKind::None,
            Some(n) => BodyKind::Length(n),
        }
    };
    if body == BodyKind::Chunked && chunked::check_prefix(&buf[head_len..], max_head).is_err() {
        return Err(HeadError::Bad("invalid chunked body"));
    }
    // Only a GET asking for websocket takes the tunnel path; any other
    // Upgrade is hop-by-hop and simply not forwarded (RFC 9110 section 7.8).
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
    let start = out.len();
    // Lines the client sent exactly as we write them are copied as runs.
    let mut lines = Lines::new(&buf[..head_len], out);
    let path = target.path.as_bytes();
    lines.line(method.as_bytes(), b' ', path, b" HTTP/1.1\r\n");
    let connection_values: Vec<&[u8]> = req
        .headers
        .iter()
        .filter(|h| eq_ci(h.name.as_bytes(), b"connection"))
        .map(|h| h.value)
        .collect();
    let host_value = host.unwrap_or(fwd.default_host.as_bytes());
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        if eq_ci(name, b"host") {
            // Connection may declare more hop-by-hop fields, but never Host.
            let spelled = if name == b"Host" { name } else { b"Host" };
            lines.field(spelled, host_value);
            continue;
        }
        if is_rebuilt(name)
            || underscore_dropped(name, fwd.underscores_in_headers)
            || connection_values.iter().any(|v| contains_token(v, name))
        {
            continue;
        }
        lines.field(name, trim_ows(h.value));
    }
    if hosts == 0 {
        lines.field(b"Host", host_value);
    }
    lines.finish();
    match body {
        BodyKind::Length(n) => {
            out.extend_from_slice(b"Content-Length: ");
            push_u64(out, n);
            out.extend_from_slice(b"\r\n");
        }
        BodyKind::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
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
    push_ip(out, fwd.peer);
    out.extend_from_slice(b"\r\n");
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
        None => out.extend_from_slice(host_value),
    }
    out.extend_from_slice(b"\r\nX-Forwarded-Port: ");
    match trusted(xf_port, b"x-forwarded-port") {
        Some(v) => out.extend_from_slice(&v),
        None => out.extend_from_slice(host.and_then(host_port).unwrap_or(b"80")),
    }
    // The request id: a trusted peer's valid one is kept, else ours.
    let rid_named = connection_values
        .iter()
        .any(|c| contains_token(c, b"x-request-id"));
    let kept_id = request_id.filter(|v| fwd.trusted && !rid_named && valid_request_id(v));
    out.extend_from_slice(b"\r\nX-Request-ID: ");
    out.extend_from_slice(kept_id.unwrap_or(fwd.request_id));
    out.extend_from_slice(b"\r\n\r\n");
    // The fields we add count against the limit too: the head we send
    // must be one we would accept ourselves. Counted only when it can
    // matter: we add at most `ADDED_FIELDS` to the client's.
    if req.headers.len() + ADDED_FIELDS > MAX_HEADERS && field_count(&out[start..]) > MAX_HEADERS {
        out.truncate(start);
        return Err(HeadError::TooLarge);
    }

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
        accepts_html,
        spans: Spans {
            method: method_span,
            target: target_span,
            request_id: kept_id.map(|v| span(buf, v)),
        },
    }))
}

/// Where `part` (a subslice of `buf`) sits in `buf`.
fn span(buf: &[u8], part: &[u8]) -> Range<usize> {
    let start = (part.as_ptr() as usize)
        .saturating_sub(buf.as_ptr() as usize)
        .min(buf.len());
    start..(start + part.len()).min(buf.len())
}

/// Header fields in a serialized head (every line but the request line and
/// the final empty one; values never hold CR or LF).
fn field_count(head: &[u8]) -> usize {
    head.windows(2)
        .filter(|w| w == b"\r\n")
        .count()
        .saturating_sub(2)
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
