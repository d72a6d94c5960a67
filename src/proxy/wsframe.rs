//! Where WebSocket frames end in a byte stream, tracked while a tunnel
//! splices it, and the Close frames the proxy sends itself.
//!
//! Pure: bytes in, a position out. The tracker never buffers or unmasks
//! anything: it reads frame headers byte by byte as they pass and then
//! counts the payload down, so a chunk of payload costs O(1) whatever its
//! size. Its state is a few bytes per direction.

/// The Close status "going away" (RFC 6455 section 7.4.1).
pub const GOING_AWAY: u16 = 1001;

const OP_CLOSE: u8 = 0x8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// At a frame boundary: the next byte starts a header.
    Start,
    /// The second header byte (mask bit, 7-bit length) is next.
    Len,
    /// Extended length bytes still to come.
    Ext(u8),
    /// Masking key bytes still to come.
    Mask(u8),
    /// Payload bytes still to come (`len`).
    Payload,
}

/// One direction of a tunnel, as frames.
#[derive(Debug, Clone, Copy)]
pub struct FrameTracker {
    stage: Stage,
    opcode: u8,
    masked: bool,
    /// The length being assembled, then the payload still to come.
    len: u64,
}

impl Default for FrameTracker {
    fn default() -> Self {
        FrameTracker {
            stage: Stage::Start,
            opcode: 0,
            masked: false,
            len: 0,
        }
    }
}

impl FrameTracker {
    /// True between frames.
    pub fn at_boundary(&self) -> bool {
        self.stage == Stage::Start
    }

    /// How many bytes may pass without crossing the end of the current
    /// frame (0 at a boundary). Inside a header this is a lower bound: the
    /// header's remaining bytes known so far.
    pub fn until_boundary(&self) -> u64 {
        match self.stage {
            Stage::Start => 0,
            Stage::Len => 1,
            Stage::Ext(n) | Stage::Mask(n) => u64::from(n),
            Stage::Payload => self.len,
        }
    }

    /// The tracker's state as `[stage, count, opcode, masked, len]` (a
    /// daemon upgrade carries it to the next program).
    pub fn to_parts(self) -> [u64; 5] {
        let (stage, n) = match self.stage {
            Stage::Start => (0, 0),
            Stage::Len => (1, 0),
            Stage::Ext(n) => (2, n),
            Stage::Mask(n) => (3, n),
            Stage::Payload => (4, 0),
        };
        [
            stage,
            u64::from(n),
            u64::from(self.opcode),
            u64::from(self.masked),
            self.len,
        ]
    }

    /// The tracker [`to_parts`](Self::to_parts) described (`None` for
    /// anything it cannot have written).
    pub fn from_parts(p: [u64; 5]) -> Option<FrameTracker> {
        let n = u8::try_from(p[1]).ok()?;
        let stage = match p[0] {
            0 => Stage::Start,
            1 => Stage::Len,
            2 if (1..=8).contains(&n) => Stage::Ext(n),
            3 if (1..=4).contains(&n) => Stage::Mask(n),
            4 => Stage::Payload,
            _ => return None,
        };
        Some(FrameTracker {
            stage,
            opcode: u8::try_from(p[2]).ok()?,
            masked: p[3] != 0,
            len: p[4],
        })
    }

    /// Follows `bytes` as they pass; returns true if a Close frame ended
    /// within them.
    pub fn feed(&mut self, mut bytes: &[u8]) -> bool {
        let mut closed = false;
        while !bytes.is_empty() {
            if self.stage == Stage::Payload {
                let take = self.len.min(bytes.len() as u64);
                self.len -= take;
                bytes = &bytes[take as usize..];
                if self.len == 0 {
                    closed |= self.frame_end();
                }
                continue;
            }
            let b = bytes[0];
            bytes = &bytes[1..];
            closed |= self.header_byte(b);
        }
        closed
    }

    /// One header byte; true if it completed a Close frame (empty payload).
    fn header_byte(&mut self, b: u8) -> bool {
        match self.stage {
            Stage::Start => {
                self.opcode = b & 0x0f;
                self.stage = Stage::Len;
                false
            }
            Stage::Len => {
                self.masked = b & 0x80 != 0;
                self.len = 0;
                match b & 0x7f {
                    126 => self.stage = Stage::Ext(2),
                    127 => self.stage = Stage::Ext(8),
                    n => {
                        self.len = u64::from(n);
                        return self.after_length();
                    }
                }
                false
            }
            Stage::Ext(n) => {
                self.len = (self.len << 8) | u64::from(b);
                if n > 1 {
                    self.stage = Stage::Ext(n - 1);
                    return false;
                }
                self.after_length()
            }
            Stage::Mask(n) => {
                if n > 1 {
                    self.stage = Stage::Mask(n - 1);
                    return false;
                }
                self.payload_next()
            }
            Stage::Payload => false,
        }
    }

    fn after_length(&mut self) -> bool {
        if self.masked {
            self.stage = Stage::Mask(4);
            return false;
        }
        self.payload_next()
    }

    fn payload_next(&mut self) -> bool {
        if self.len == 0 {
            return self.frame_end();
        }
        self.stage = Stage::Payload;
        false
    }

    fn frame_end(&mut self) -> bool {
        self.stage = Stage::Start;
        self.opcode == OP_CLOSE
    }
}

/// A Close frame with `code` and no reason: unmasked toward a client, or
/// masked with `mask` toward a server (the proxy acts as its client).
/// Returns the buffer and how many of its bytes are the frame.
pub fn close_frame(code: u16, mask: Option<[u8; 4]>) -> ([u8; 8], usize) {
    let [hi, lo] = code.to_be_bytes();
    match mask {
        None => ([0x88, 0x02, hi, lo, 0, 0, 0, 0], 4),
        Some([a, b, c, d]) => ([0x88, 0x82, a, b, c, d, hi ^ a, lo ^ b], 8),
    }
}

/// A masking key that is hard to predict (RFC 6455 section 5.3) without a random
/// number crate: the clock's nanoseconds mixed with a per-call counter.
pub fn mask_key(seed: u64) -> [u8; 4] {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    // splitmix64 finalizer
    let mut z = seed ^ u64::from(nanos) ^ 0x9e37_79b9_7f4a_7c15;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    let b = z.to_le_bytes();
    [b[0], b[1], b[2], b[3]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracker_state_survives_its_parts() {
        let mut t = FrameTracker::default();
        // A masked text frame of 300 bytes, cut inside its payload.
        let mut frame = vec![0x81, 0x80 | 126, 0x01, 0x2c, 1, 2, 3, 4];
        frame.extend(std::iter::repeat_n(b'x', 100));
        t.feed(&frame);
        let mut back = FrameTracker::from_parts(t.to_parts()).unwrap();
        assert_eq!(back.until_boundary(), 200);
        back.feed(&[b'y'; 200]);
        assert!(back.at_boundary());
        assert!(FrameTracker::from_parts([2, 9, 0, 0, 0]).is_none());
    }

    fn frame(opcode: u8, masked: bool, len: usize) -> Vec<u8> {
        let mut f = vec![0x80 | opcode];
        let m = if masked { 0x80 } else { 0 };
        if len < 126 {
            f.push(m | len as u8);
        } else if len <= 0xffff {
            f.push(m | 126);
            f.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            f.push(m | 127);
            f.extend_from_slice(&(len as u64).to_be_bytes());
        }
        if masked {
            f.extend_from_slice(&[1, 2, 3, 4]);
        }
        f.extend(std::iter::repeat_n(0x55, len));
        f
    }

    #[test]
    fn small_unmasked_frame_ends_at_its_last_byte() {
        let f = frame(0x1, false, 5);
        let mut t = FrameTracker::default();
        assert!(t.at_boundary());
        t.feed(&f[..6]);
        assert!(!t.at_boundary());
        assert_eq!(t.until_boundary(), 1);
        t.feed(&f[6..]);
        assert!(t.at_boundary());
    }

    #[test]
    fn header_split_across_every_byte_is_followed() {
        let f = frame(0x2, true, 300);
        let mut t = FrameTracker::default();
        for b in &f[..8] {
            assert!(!t.feed(std::slice::from_ref(b)));
        }
        assert_eq!(t.until_boundary(), 300);
        t.feed(&f[8..]);
        assert!(t.at_boundary());
    }

    #[test]
    fn sixteen_bit_length_is_read() {
        let f = frame(0x2, false, 0x1234);
        let mut t = FrameTracker::default();
        t.feed(&f[..4]);
        assert_eq!(t.until_boundary(), 0x1234);
        t.feed(&f[4..f.len() - 1]);
        assert_eq!(t.until_boundary(), 1);
        t.feed(&f[f.len() - 1..]);
        assert!(t.at_boundary());
    }

    #[test]
    fn sixty_four_bit_length_is_read_without_the_payload() {
        let mut t = FrameTracker::default();
        let mut head = vec![0x82, 127];
        head.extend_from_slice(&(5_000_000_000u64).to_be_bytes());
        t.feed(&head[..5]);
        assert_eq!(t.until_boundary(), 5);
        t.feed(&head[5..]);
        assert_eq!(t.until_boundary(), 5_000_000_000);
        t.feed(&[0u8; 4096]);
        assert_eq!(t.until_boundary(), 5_000_000_000 - 4096);
    }

    #[test]
    fn masked_frame_counts_the_key_as_header() {
        let f = frame(0x1, true, 3);
        let mut t = FrameTracker::default();
        t.feed(&f[..2]);
        assert_eq!(t.until_boundary(), 4);
        t.feed(&f[2..6]);
        assert_eq!(t.until_boundary(), 3);
        t.feed(&f[6..]);
        assert!(t.at_boundary());
    }

    #[test]
    fn several_frames_in_one_chunk_end_at_a_boundary() {
        let mut bytes = frame(0x1, true, 10);
        bytes.extend(frame(0x9, true, 0));
        bytes.extend(frame(0x2, true, 70_000));
        let mut t = FrameTracker::default();
        assert!(!t.feed(&bytes));
        assert!(t.at_boundary());
    }

    #[test]
    fn close_frame_is_reported_when_it_ends() {
        let mut bytes = frame(0x1, true, 4);
        bytes.extend(frame(0x8, true, 2));
        let mut t = FrameTracker::default();
        let split = bytes.len() - 1;
        assert!(!t.feed(&bytes[..split]));
        assert!(t.feed(&bytes[split..]));
        assert!(t.at_boundary());
        let mut empty = FrameTracker::default();
        assert!(empty.feed(&frame(0x8, false, 0)));
    }

    #[test]
    fn close_frames_carry_going_away() {
        let (f, n) = close_frame(GOING_AWAY, None);
        assert_eq!(&f[..n], &[0x88, 0x02, 0x03, 0xe9]);
        let (f, n) = close_frame(GOING_AWAY, Some([0x10, 0x20, 0x30, 0x40]));
        assert_eq!(
            &f[..n],
            &[0x88, 0x82, 0x10, 0x20, 0x30, 0x40, 0x03 ^ 0x10, 0xe9 ^ 0x20]
        );
        let mut t = FrameTracker::default();
        assert!(t.feed(&f[..n]));
    }

    #[test]
    fn tracker_state_is_a_few_bytes() {
        assert!(std::mem::size_of::<FrameTracker>() <= 16);
    }
}
