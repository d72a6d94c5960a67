//! The request target (RFC 9112 section 3.2): the origin-form path sent upstream,
//! and for an absolute-form target the authority it names, which replaces
//! the `Host` header (RFC 9112 section 3.2.2).

use super::HeadError;
use std::borrow::Cow;

/// A normalized request target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target<'a> {
    /// Origin-form path and query (or `*` for OPTIONS).
    pub path: Cow<'a, str>,
    /// The authority of an absolute-form target; it wins over `Host`.
    pub authority: Option<&'a str>,
}

/// Origin-form is forwarded byte for byte; absolute-form is reduced to its
/// path and query (`http://h?q` becomes `/?q`) and its authority kept for
/// `Host`; userinfo (`http://u:p@h/`) is refused; `*` only for OPTIONS.
pub fn normalize_target<'a>(method: &str, target: &'a str) -> Result<Target<'a>, HeadError> {
    if target.starts_with('/') {
        return Ok(Target {
            path: Cow::Borrowed(target),
            authority: None,
        });
    }
    if target == "*" {
        return if method == "OPTIONS" {
            Ok(Target {
                path: Cow::Borrowed(target),
                authority: None,
            })
        } else {
            Err(HeadError::Bad("asterisk-form only for OPTIONS"))
        };
    }
    let rest = strip_scheme(target).ok_or(HeadError::Bad("invalid request target"))?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    if authority.contains('@') {
        return Err(HeadError::Bad("userinfo in request target"));
    }
    if authority.is_empty() || !authority.bytes().all(is_host_byte) {
        return Err(HeadError::Bad("invalid authority in request target"));
    }
    let tail = &rest[end..];
    let path = match tail.as_bytes().first() {
        Some(b'/') => Cow::Borrowed(tail),
        Some(b'?') => Cow::Owned(format!("/{tail}")),
        // Empty path, or only a fragment (never sent on the wire).
        _ => Cow::Borrowed("/"),
    };
    Ok(Target {
        path,
        authority: Some(authority),
    })
}

/// The part after `http://` or `https://` (scheme case-insensitive).
fn strip_scheme(target: &str) -> Option<&str> {
    ["http://", "https://"].iter().find_map(|scheme| {
        let head = target.get(..scheme.len())?;
        head.eq_ignore_ascii_case(scheme)
            .then(|| &target[scheme.len()..])
    })
}

/// Bytes allowed in a `Host` value or a target's authority (no `@`).
pub fn is_host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:%[]".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(t: &str) -> Result<(String, Option<&str>), HeadError> {
        normalize_target("GET", t).map(|t| (t.path.into_owned(), t.authority))
    }

    #[test]
    fn absolute_form_keeps_path_query_and_authority() {
        assert_eq!(
            norm("http://evil.example/x?q=1"),
            Ok(("/x?q=1".into(), Some("evil.example")))
        );
        assert_eq!(norm("HTTPS://h:8443/"), Ok(("/".into(), Some("h:8443"))));
    }

    #[test]
    fn absolute_form_without_path_keeps_its_query() {
        assert_eq!(
            norm("http://evil.example?q=1"),
            Ok(("/?q=1".into(), Some("evil.example")))
        );
        assert_eq!(norm("http://h"), Ok(("/".into(), Some("h"))));
        assert_eq!(norm("http://h#frag"), Ok(("/".into(), Some("h"))));
    }

    #[test]
    fn userinfo_in_target_is_rejected() {
        assert!(norm("http://u:p@host/").is_err());
        assert!(norm("http://u@host").is_err());
        assert!(norm("http://host?next=http://a@b").is_ok());
    }

    #[test]
    fn empty_or_invalid_authority_is_rejected() {
        assert!(norm("http:///x").is_err());
        assert!(norm("http://?q").is_err());
        assert!(norm("http://a\"b/").is_err());
        assert!(norm("ftp://x/").is_err());
    }

    #[test]
    fn origin_form_is_borrowed_unchanged() {
        let t = normalize_target("GET", "//a?b").unwrap();
        assert!(matches!(t.path, Cow::Borrowed("//a?b")));
        assert_eq!(t.authority, None);
    }
}
