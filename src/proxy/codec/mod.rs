//! The sans-io HTTP/1.1 codec: pure structs and functions, bytes in and
//! events/bytes out, no sockets and no clock. The event loop only moves
//! bytes between sockets and these; the fuzz targets drive them directly.

pub mod body;
pub mod chunked;
pub mod digits;
pub mod lines;
pub mod request;
pub mod response;

pub use body::{BodyDecoder, BodyKind};
pub use chunked::{ChunkError, ChunkMode, ChunkedDecoder, Step};
pub use request::{Forwarding, HeadError, HeadParse, RequestInfo, Spans, Upgrade, parse_request};
pub use response::{RespError, RespParse, ResponseCtx, ResponseInfo, parse_response};

/// RFC 9110 `tchar`.
pub fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// ASCII case-insensitive equality.
pub fn eq_ci(a: &[u8], b: &[u8]) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// True if the comma-separated `list` holds `token` (case-insensitive).
pub fn contains_token(list: &[u8], token: &[u8]) -> bool {
    list.split(|&b| b == b',').any(|t| {
        let t = t.strip_prefix(b" ").unwrap_or(t);
        eq_ci(t.trim_ascii(), token)
    })
}

/// `needle` (lowercase ASCII) occurs in `hay`, ignoring ASCII case.
pub fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| eq_ci(w, needle))
}

/// A CR not followed by LF, or an LF not preceded by CR.
pub fn has_bare_cr_or_lf(head: &[u8]) -> bool {
    head.iter().enumerate().any(|(i, &b)| match b {
        b'\r' => head.get(i + 1) != Some(&b'\n'),
        b'\n' => i == 0 || head[i - 1] != b'\r',
        _ => false,
    })
}

/// A Content-Length value: digits, or a comma list of identical digits.
pub fn parse_content_length(v: &[u8]) -> Option<u64> {
    let mut result: Option<u64> = None;
    for part in v.split(|&b| b == b',') {
        let part = part.trim_ascii();
        if part.is_empty() || part.len() > 18 || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        // At most 18 digits: cannot overflow.
        let n = part.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'));
        if result.is_some_and(|r| r != n) {
            return None;
        }
        result = Some(n);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_lf_is_detected() {
        assert!(has_bare_cr_or_lf(b"GET / HTTP/1.1\nHost: a\r\n\r\n"));
        assert!(has_bare_cr_or_lf(b"GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n"));
        assert!(!has_bare_cr_or_lf(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
    }

    #[test]
    fn content_length_lists_must_agree() {
        assert_eq!(parse_content_length(b"5"), Some(5));
        assert_eq!(parse_content_length(b"5, 5"), Some(5));
        assert_eq!(parse_content_length(b"5, 6"), None);
        assert_eq!(parse_content_length(b"+5"), None);
        assert_eq!(parse_content_length(b""), None);
        assert_eq!(parse_content_length(b"99999999999999999999"), None);
    }

    #[test]
    fn connection_tokens_are_case_insensitive() {
        assert!(contains_token(b"keep-alive, Upgrade", b"upgrade"));
        assert!(!contains_token(b"upgrades", b"upgrade"));
    }
}
