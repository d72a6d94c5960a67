//! Message-body framing (RFC 9112 section 6): how many bytes belong to the message
//! and where it ends. Pure: bytes in, bytes out.

use super::chunked::{ChunkError, ChunkMode, ChunkedDecoder, Step};

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No body (GET without framing, HEAD response, 1xx/204/304).
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Until the sender closes (responses only).
    CloseDelimited,
}

/// Streams one body through, enforcing its framing.
#[derive(Debug, Clone)]
pub struct BodyDecoder {
    kind: BodyKind,
    left: u64,
    chunked: Option<ChunkedDecoder>,
    done: bool,
}

impl BodyDecoder {
    pub fn new(kind: BodyKind, mode: ChunkMode, max_trailer_bytes: usize) -> BodyDecoder {
        let (left, done) = match kind {
            BodyKind::None => (0, true),
            BodyKind::Length(n) => (n, n == 0),
            _ => (0, false),
        };
        BodyDecoder {
            kind,
            left,
            chunked: (kind == BodyKind::Chunked)
                .then(|| ChunkedDecoder::new(mode, max_trailer_bytes)),
            done,
        }
    }

    pub fn kind(&self) -> BodyKind {
        self.kind
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Moves body bytes from `input` to `out`. Bytes after the end of the
    /// body are never consumed: they belong to the next message.
    pub fn step(&mut self, input: &[u8], out: &mut [u8]) -> Result<Step, ChunkError> {
        if self.done {
            return Ok(Step {
                done: true,
                ..Step::default()
            });
        }
        let step = match self.kind {
            BodyKind::None => Step {
                done: true,
                ..Step::default()
            },
            BodyKind::Length(_) => {
                let n = (self.left.min(input.len() as u64) as usize).min(out.len());
                out[..n].copy_from_slice(&input[..n]);
                self.left -= n as u64;
                Step {
                    consumed: n,
                    produced: n,
                    done: self.left == 0,
                }
            }
            BodyKind::CloseDelimited => {
                let n = input.len().min(out.len());
                out[..n].copy_from_slice(&input[..n]);
                Step {
                    consumed: n,
                    produced: n,
                    done: false,
                }
            }
            BodyKind::Chunked => match self.chunked.as_mut() {
                Some(c) => c.decode(input, out)?,
                None => Step::default(),
            },
        };
        self.done = step.done;
        Ok(step)
    }

    /// For bodies forwarded verbatim (length or close-delimited): how many
    /// of `available` input bytes are body. `None` for chunked (decode
    /// with [`BodyDecoder::step`]) and for no body.
    pub fn direct_len(&self, available: usize) -> Option<usize> {
        match self.kind {
            BodyKind::Length(_) => Some(self.left.min(available as u64) as usize),
            BodyKind::CloseDelimited if !self.done => Some(available),
            _ => None,
        }
    }

    /// Records `n` body bytes forwarded verbatim (see `direct_len`).
    pub fn advance(&mut self, n: usize) {
        if let BodyKind::Length(_) = self.kind {
            self.left = self.left.saturating_sub(n as u64);
            self.done = self.left == 0;
        }
    }

    /// The sender closed. Returns true if that ends the body cleanly.
    pub fn on_eof(&mut self) -> bool {
        if self.kind == BodyKind::CloseDelimited {
            self.done = true;
        }
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_body_stops_at_its_end() {
        let mut d = BodyDecoder::new(BodyKind::Length(3), ChunkMode::Reencode, 0);
        let mut out = [0u8; 10];
        let s = d.step(b"abcGET /", &mut out).unwrap();
        assert_eq!((s.consumed, s.done), (3, true));
        assert_eq!(&out[..3], b"abc");
    }

    #[test]
    fn close_delimited_ends_only_at_eof() {
        let mut d = BodyDecoder::new(BodyKind::CloseDelimited, ChunkMode::Reencode, 0);
        let mut out = [0u8; 4];
        let s = d.step(b"abcdef", &mut out).unwrap();
        assert_eq!((s.consumed, s.done), (4, false));
        assert!(d.on_eof());
    }

    #[test]
    fn eof_truncates_length_body() {
        let mut d = BodyDecoder::new(BodyKind::Length(10), ChunkMode::Reencode, 0);
        let mut out = [0u8; 4];
        d.step(b"ab", &mut out).unwrap();
        assert!(!d.on_eof());
    }

    #[test]
    fn direct_forwarding_stops_at_length() {
        let mut d = BodyDecoder::new(BodyKind::Length(5), ChunkMode::Reencode, 0);
        assert_eq!(d.direct_len(8), Some(5));
        d.advance(3);
        assert_eq!(d.direct_len(8), Some(2));
        d.advance(2);
        assert!(d.is_done());
        let c = BodyDecoder::new(BodyKind::Chunked, ChunkMode::Reencode, 0);
        assert_eq!(c.direct_len(8), None);
    }

    #[test]
    fn zero_length_is_done_at_once() {
        assert!(BodyDecoder::new(BodyKind::Length(0), ChunkMode::Reencode, 0).is_done());
        assert!(BodyDecoder::new(BodyKind::None, ChunkMode::Reencode, 0).is_done());
    }
}
