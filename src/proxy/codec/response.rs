//! Response head: parse the upstream's head, decide the body framing
//! (RFC 9112 section 6.3 from the response side: HEAD, 1xx, 204, 304,
//! Transfer-Encoding, Content-Length, close-delimited) and re-serialize the
//! head the client gets, with hop-by-hop fields removed and our own
//! `Connection`/framing fields.

use super::body::BodyKind;
use super::lines::Lines;
use super::{contains_token, eq_ci, is_tchar, parse_content_length};

const MAX_HEADERS: usize = 200;

/// What the client side looks like for this exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ResponseCtx {
    /// The request was HEAD (the response has no body whatever it says).
    pub request_is_head: bool,
    /// The client spoke HTTP/1.0 (no chunked, no 1xx).
    pub client_http10: bool,
    /// The client connection will close after this response.
    pub client_close: bool,
    /// The request asked for a WebSocket upgrade.
    pub upgrade_requested: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RespError {
    /// Not a valid HTTP/1.x response head (502).
    Malformed(&'static str),
    /// The head is larger than the limit (502).
    TooLarge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseInfo {
    pub head_len: usize,
    pub status: u16,
    /// 1xx other than 101: more heads follow.
    pub interim: bool,
    /// 101 to an upgrade request: the connection becomes a tunnel.
    pub switching: bool,
    /// Framing of the upstream's body.
    pub body: BodyKind,
    /// The client connection must close after this response.
    pub close_client: bool,
    /// The upstream connection can be pooled after this response.
    pub upstream_reusable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RespParse {
    Partial,
    /// Parsed; the head for the client was appended to `out` (nothing for a
    /// 1xx to an HTTP/1.0 client).
    Complete(ResponseInfo),
}

/// Parses the response head at the start of `buf`.
pub fn parse_response(
    buf: &[u8],
    max_head: usize,
    ctx: ResponseCtx,
    out: &mut Vec<u8>,
) -> Result<RespParse, RespError> {
    // Left uninitialized: httparse writes only the fields it parses.
    let mut headers = [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut resp,
        buf,
        &mut headers,
    );
    let head_len = match parsed {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= max_head => return Err(RespError::TooLarge),
        Ok(httparse::Status::Partial) => return Ok(RespParse::Partial),
        Err(httparse::Error::TooManyHeaders) => return Err(RespError::TooLarge),
        Err(_) => return Err(RespError::Malformed("malformed response head")),
    };
    if head_len > max_head {
        return Err(RespError::TooLarge);
    }
    let status = resp.code.ok_or(RespError::Malformed("no status"))?;
    if !(100..=999).contains(&status) {
        return Err(RespError::Malformed("bad status code"));
    }
    let up_http10 = resp.version == Some(0);
    let reason = resp.reason.unwrap_or("");

    let mut length: Option<u64> = None;
    let mut te_seen = false;
    let mut te_chunked = false;
    let mut up_close = false;
    let mut up_keep_alive = false;
    for h in resp.headers.iter() {
        let name = h.name.as_bytes();
        if eq_ci(name, b"content-length") {
            let n = parse_content_length(h.value)
                .ok_or(RespError::Malformed("invalid Content-Length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(RespError::Malformed("conflicting Content-Length"));
            }
            length = Some(n);
        } else if eq_ci(name, b"transfer-encoding") {
            te_seen = true;
            // Only the final coding matters for framing.
            te_chunked = h
                .value
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|c| eq_ci(c.trim_ascii(), b"chunked"));
        } else if eq_ci(name, b"connection") {
            up_close |= contains_token(h.value, b"close");
            up_keep_alive |= contains_token(h.value, b"keep-alive");
        }
    }
    let interim = (100..200).contains(&status) && status != 101;
    let switching = status == 101;
    if switching && !ctx.upgrade_requested {
        return Err(RespError::Malformed("101 without an upgrade request"));
    }

    if switching {
        // Passed through as sent: Connection/Upgrade are the handshake.
        let mut lines = Lines::new(buf, out);
        write_status_line(&mut lines, status, reason);
        for h in resp.headers.iter() {
            write_field(&mut lines, h.name.as_bytes(), h.value);
        }
        lines.put(b"\r\n");
        lines.finish();
        return Ok(RespParse::Complete(ResponseInfo {
            head_len,
            status,
            interim: false,
            switching: true,
            body: BodyKind::None,
            close_client: false,
            upstream_reusable: false,
        }));
    }

    let body = if interim || ctx.request_is_head || status == 204 || status == 304 {
        BodyKind::None
    } else if te_seen {
        if te_chunked {
            BodyKind::Chunked
        } else {
            BodyKind::CloseDelimited
        }
    } else {
        match length {
            Some(n) => BodyKind::Length(n),
            None => BodyKind::CloseDelimited,
        }
    };
    let upstream_reusable = !interim
        && !up_close
        && (!up_http10 || up_keep_alive)
        && body != BodyKind::CloseDelimited
        && (!te_seen || length.is_none());
    // A refused upgrade ends the client connection: it may already have
    // sent frames we must not read as a request.
    let close_client = !interim
        && (ctx.client_close
            || ctx.upgrade_requested
            || body == BodyKind::CloseDelimited
            || (ctx.client_http10 && body == BodyKind::Chunked));

    if interim && ctx.client_http10 {
        return Ok(RespParse::Complete(ResponseInfo {
            head_len,
            status,
            interim,
            switching,
            body,
            close_client,
            upstream_reusable,
        }));
    }
    let mut lines = Lines::new(buf, out);
    write_status_line(&mut lines, status, reason);
    let conn_values: Vec<&[u8]> = resp
        .headers
        .iter()
        .filter(|h| eq_ci(h.name.as_bytes(), b"connection"))
        .map(|h| h.value)
        .collect();
    for h in resp.headers.iter() {
        let name = h.name.as_bytes();
        if is_hop_by_hop_response(name) || conn_values.iter().any(|v| contains_token(v, name)) {
            continue;
        }
        if eq_ci(name, b"content-length") {
            continue;
        }
        write_field(&mut lines, name, h.value);
    }
    if !interim {
        // Normalized; kept for HEAD/304 as metadata, dropped under chunked.
        if let (Some(n), false, false) = (length, te_seen, status == 204) {
            lines.put(b"Content-Length: ");
            lines.number(n);
            lines.put(b"\r\n");
        }
        match body {
            BodyKind::Chunked if !ctx.client_http10 => {
                lines.put(b"Transfer-Encoding: chunked\r\n");
            }
            BodyKind::None if ctx.request_is_head && te_chunked && !ctx.client_http10 => {
                lines.put(b"Transfer-Encoding: chunked\r\n");
            }
            _ => {}
        }
        if close_client {
            lines.put(b"Connection: close\r\n");
        } else if ctx.client_http10 {
            lines.put(b"Connection: keep-alive\r\n");
        }
    }
    lines.put(b"\r\n");
    lines.finish();
    Ok(RespParse::Complete(ResponseInfo {
        head_len,
        status,
        interim,
        switching,
        body,
        close_client,
        upstream_reusable,
    }))
}

/// `status` is 100..=999 (checked by the caller).
fn write_status_line(lines: &mut Lines<'_, '_>, status: u16, reason: &str) {
    let digit = |d: u16| b'0' + (d % 10) as u8;
    let mut first = *b"HTTP/1.1 000";
    first[9..].copy_from_slice(&[digit(status / 100), digit(status / 10), digit(status)]);
    lines.line(&first, b' ', reason.as_bytes(), b"\r\n");
}

fn write_field(lines: &mut Lines<'_, '_>, name: &[u8], value: &[u8]) {
    debug_assert!(name.iter().all(|&b| is_tchar(b)));
    lines.field(name, value.trim_ascii());
}

/// RFC 9110 section 7.6.1 connection-specific fields, plus Content-Length and
/// Transfer-Encoding which the proxy rebuilds from the framing it decoded,
/// and Trailer (trailer fields are never passed on).
fn is_hop_by_hop_response(name: &[u8]) -> bool {
    const NAMES: [&[u8]; 7] = [
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    ];
    NAMES.iter().any(|n| eq_ci(n, name))
}

#[cfg(test)]
mod tests;
