//! Which request header fields go upstream as the client sent them.
//!
//! The proxy rebuilds the framing, connection and forwarding fields itself;
//! a client's copy of those never reaches the app. Names with `_` are
//! dropped by default (as nginx's `underscores_in_headers off`): CGI, WSGI
//! and PHP map `X_Forwarded_For` and `X-Forwarded-For` to one variable, so
//! such a field would let a client spoof what the proxy controls. When they
//! are kept, one that reads as a controlled name once `_` becomes `-` is
//! still dropped.

use super::super::eq_ci;

/// Fields that describe this hop only, plus the framing and forwarding
/// fields the proxy rebuilds itself (dropped when the client sends them).
const REBUILT: [&[u8]; 13] = [
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"te",
    b"trailer",
    b"transfer-encoding",
    b"upgrade",
    b"content-length",
    b"x-forwarded-for",
    b"x-forwarded-proto",
    b"x-forwarded-host",
    b"x-forwarded-port",
    b"x-request-id",
];

/// Names an underscore spelling may never stand in for: the rebuilt ones,
/// `Host`, and the forwarding fields apps read for the client's identity.
const CONTROLLED: [&[u8]; 3] = [b"host", b"forwarded", b"x-real-ip"];
const CONTROLLED_PREFIX: &[u8] = b"x-forwarded-";

/// Longest `X-Request-ID` kept from a trusted peer.
pub const MAX_REQUEST_ID: usize = 128;

/// An `X-Request-ID` worth keeping: 1 to [`MAX_REQUEST_ID`] visible ASCII
/// characters (no space, no control byte).
pub fn valid_request_id(v: &[u8]) -> bool {
    !v.is_empty() && v.len() <= MAX_REQUEST_ID && v.iter().all(|b| (0x21..=0x7e).contains(b))
}

/// True if the client's field `name` is not sent upstream as it is (the
/// proxy drops it, or writes its own version).
pub fn is_rebuilt(name: &[u8]) -> bool {
    REBUILT.iter().any(|n| eq_ci(n, name))
}

/// True if a field whose name contains `_` is dropped.
pub fn underscore_dropped(name: &[u8], keep_underscores: bool) -> bool {
    if !name.contains(&b'_') {
        return false;
    }
    if !keep_underscores {
        return true;
    }
    REBUILT
        .iter()
        .chain(CONTROLLED.iter())
        .any(|n| eq_dashed(name, n))
        || (name.len() >= CONTROLLED_PREFIX.len()
            && eq_dashed(&name[..CONTROLLED_PREFIX.len()], CONTROLLED_PREFIX))
}

/// `name` equals the lower-case `target` once `_` reads as `-`.
fn eq_dashed(name: &[u8], target: &[u8]) -> bool {
    name.len() == target.len()
        && name.iter().zip(target).all(|(&a, &b)| {
            let a = if a == b'_' {
                b'-'
            } else {
                a.to_ascii_lowercase()
            };
            a == b
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn underscore_names_are_dropped_by_default() {
        assert!(underscore_dropped(b"X_Forwarded_For", false));
        assert!(underscore_dropped(b"My_Header", false));
        assert!(!underscore_dropped(b"My-Header", false));
    }

    #[test]
    fn kept_underscore_names_never_shadow_controlled_fields() {
        for name in [
            &b"X_Forwarded_For"[..],
            b"x_forwarded_proto",
            b"X_Forwarded_Server",
            b"X-Forwarded_Host",
            b"X_Real_IP",
            b"Content_Length",
            b"Transfer_Encoding",
            b"Proxy_Connection",
            b"Keep_Alive",
        ] {
            assert!(underscore_dropped(name, true), "{name:?}");
        }
        assert!(!underscore_dropped(b"My_Header", true));
        assert!(!underscore_dropped(b"X_Forwarded", true));
    }

    #[test]
    fn rebuilt_fields_are_matched_case_insensitively() {
        assert!(is_rebuilt(b"Transfer-Encoding"));
        assert!(is_rebuilt(b"TRAILER"));
        assert!(!is_rebuilt(b"X-Forwarded-Server"));
    }
}
