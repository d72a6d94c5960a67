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

    /// Where the body stands, as numbers (a daemon upgrade carries a
    /// streaming response with it): `[kind, length, left, done]` then the
    /// chunked decoder's parts.
    pub fn to_parts(&self) -> [u64; 9] {
        let (kind, length) = match self.kind {
            BodyKind::None => (0, 0),
            BodyKind::Length(n) => (1, n),
            BodyKind::Chunked => (2, 0),
            BodyKind::CloseDelimited => (3, 0),
        };
        let c = self
            .chunked
            .as_ref()
            .map_or([0; 5], ChunkedDecoder::to_parts);
        [
            kind,
            length,
            self.left,
            u64::from(self.done),
            c[0],
            c[1],
            c[2],
            c[3],
            c[4],
        ]
    }

    /// The decoder [`BodyDecoder::to_parts`] described; `None` for numbers
    /// no decoder has.
    pub fn from_parts(p: [u64; 9]) -> Option<BodyDecoder> {
        let kind = match p[0] {
            0 => BodyKind::None,
            1 => BodyKind::Length(p[1]),
            2 => BodyKind::Chunked,
            3 => BodyKind::CloseDelimited,
            _ => return None,
        };
        let chunked = match kind {
            BodyKind::Chunked => Some(ChunkedDecoder::from_parts([p[4], p[5], p[6], p[7], p[8]])?),
            _ => None,
        };
        if p[3] > 1 {
            return None;
        }
        Some(BodyDecoder {
            kind,
            left: p[2],
            chunked,
            done: p[3] == 1,
        })
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

    /// Decodes `input` in one step into a roomy buffer.
    fn run(d: &mut BodyDecoder, input: &[u8]) -> (Vec<u8>, Step) {
        let mut out = vec![0u8; 256];
        let s = d.step(input, &mut out).unwrap();
        out.truncate(s.produced);
        (out, s)
    }

    #[test]
    fn a_body_resumed_from_its_parts_continues_where_it_stood() {
        let body = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
        for split in 1..body.len() {
            // Unwrapped: the data alone (re-encoded chunks follow the runs).
            let mut whole = BodyDecoder::new(BodyKind::Chunked, ChunkMode::Unwrap, 64);
            let (expect, _) = run(&mut whole, body);
            let mut first = BodyDecoder::new(BodyKind::Chunked, ChunkMode::Unwrap, 64);
            let (mut got, s) = run(&mut first, &body[..split]);
            let mut resumed = BodyDecoder::from_parts(first.to_parts()).unwrap();
            let (rest, s2) = run(&mut resumed, &body[s.consumed..]);
            got.extend(rest);
            assert!(s2.done, "split {split}");
            assert_eq!(got, expect, "split {split}");
        }
        let mut len = BodyDecoder::new(BodyKind::Length(10), ChunkMode::Unwrap, 0);
        len.advance(4);
        let back = BodyDecoder::from_parts(len.to_parts()).unwrap();
        assert_eq!(back.direct_len(100), Some(6));
        let close = BodyDecoder::new(BodyKind::CloseDelimited, ChunkMode::Reencode, 0);
        let back = BodyDecoder::from_parts(close.to_parts()).unwrap();
        assert_eq!(back.kind(), BodyKind::CloseDelimited);
        assert!(!back.is_done());
    }

    #[test]
    fn body_parts_no_decoder_has_are_refused() {
        assert!(BodyDecoder::from_parts([9, 0, 0, 0, 0, 0, 0, 0, 0]).is_none());
        assert!(BodyDecoder::from_parts([2, 0, 0, 0, 7, 0, 0, 0, 0]).is_none());
        assert!(BodyDecoder::from_parts([1, 5, 5, 2, 0, 0, 0, 0, 0]).is_none());
    }

    #[test]
    fn zero_length_is_done_at_once() {
        assert!(BodyDecoder::new(BodyKind::Length(0), ChunkMode::Reencode, 0).is_done());
        assert!(BodyDecoder::new(BodyKind::None, ChunkMode::Reencode, 0).is_done());
    }
}
