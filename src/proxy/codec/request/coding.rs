//! A request's `Transfer-Encoding` (RFC 9112 section 6.1 and 6.3): every line is one
//! list; chunked must be the final coding, applied once (else the body
//! length is unknown: 400); any other coding is one the proxy does not
//! implement (501). What goes upstream is only ever `chunked`.

use super::super::{eq_ci, is_tchar};
use super::HeadError;

/// The transfer codings of all `Transfer-Encoding` lines, in order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Codings {
    /// At least one `Transfer-Encoding` line.
    pub seen: bool,
    last_chunked: bool,
    /// A coding other than chunked.
    other: bool,
}

impl Codings {
    /// Adds one `Transfer-Encoding` line's value.
    pub fn add(&mut self, value: &[u8]) -> Result<(), HeadError> {
        self.seen = true;
        for coding in value.split(|&b| b == b',') {
            let coding = coding.trim_ascii();
            if coding.is_empty() || !coding.iter().all(|&b| is_tchar(b)) {
                return Err(HeadError::Bad("invalid Transfer-Encoding"));
            }
            if self.last_chunked {
                return Err(HeadError::Bad("chunked is not the final coding"));
            }
            self.last_chunked = eq_ci(coding, b"chunked");
            self.other |= !self.last_chunked;
        }
        Ok(())
    }

    /// Once all lines are in: Ok if the body is plain chunked.
    pub fn check(&self) -> Result<(), HeadError> {
        if !self.last_chunked {
            return Err(HeadError::Bad("final transfer coding is not chunked"));
        }
        if self.other {
            return Err(HeadError::NotImplemented("transfer coding not implemented"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codings(lines: &[&[u8]]) -> Result<(), HeadError> {
        let mut c = Codings::default();
        for l in lines {
            c.add(l)?;
        }
        c.check()
    }

    #[test]
    fn plain_chunked_is_accepted() {
        assert_eq!(codings(&[b"chunked"]), Ok(()));
        assert_eq!(codings(&[b"Chunked"]), Ok(()));
    }

    #[test]
    fn other_codings_before_chunked_are_not_implemented() {
        for lines in [
            &[&b"identity, chunked"[..]][..],
            &[b"gzip, chunked"],
            &[b"gzip", b"chunked"],
            &[b"identity", b"chunked"],
        ] {
            assert!(
                matches!(codings(lines), Err(HeadError::NotImplemented(_))),
                "{lines:?}"
            );
        }
    }

    #[test]
    fn final_coding_not_chunked_is_bad() {
        for lines in [
            &[&b"gzip"[..]][..],
            &[b"chunked, gzip"],
            &[b"chunked", b"chunked"],
            &[b"chunked", b"gzip"],
            &[b"chunked, "],
            &[b"chunked;q=1"],
        ] {
            assert!(
                matches!(codings(lines), Err(HeadError::Bad(_))),
                "{lines:?}"
            );
        }
    }
}
