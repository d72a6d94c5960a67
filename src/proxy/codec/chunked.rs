//! Strict, streaming decoder for `Transfer-Encoding: chunked` (RFC 9112 section 7.1).
//!
//! Pure: bytes in, bytes out. In [`ChunkMode::Reencode`] it writes a chunked
//! stream of its own: one chunk per run of data it moves, sized by what it
//! moved (never the sender's size line, so a chunk never exceeds the output
//! buffer), no extensions, and no trailers (they are validated, then
//! dropped, as nginx does: the stream ends with `0\r\n\r\n`). In
//! [`ChunkMode::Unwrap`] it emits only the data (for HTTP/1.0 clients).
//! Anything ambiguous — bad size, missing CRLF, bare CR/LF, obs-fold in
//! trailers, over-long lines — is an error, never a guess.

use std::fmt;

/// Longest size or trailer line accepted (including CRLF).
pub const MAX_LINE: usize = 4096;
/// Largest chunk size accepted (the largest file offset, as nginx).
pub const MAX_CHUNK_SIZE: u64 = i64::MAX as u64;
/// Output room a step needs to make progress in `Reencode` mode.
pub const MIN_OUT: usize = 21;
/// The end of a re-encoded body: last chunk, no trailer fields.
const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkMode {
    /// Re-encode as normalized chunked.
    Reencode,
    /// Emit only the payload (trailers dropped).
    Unwrap,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkError {
    BadSize,
    BadLineEnding,
    LineTooLong,
    BadTrailer,
    TrailersTooLarge,
}

impl fmt::Display for ChunkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            ChunkError::BadSize => "invalid chunk size",
            ChunkError::BadLineEnding => "invalid chunk line ending",
            ChunkError::LineTooLong => "chunk line too long",
            ChunkError::BadTrailer => "invalid trailer field",
            ChunkError::TrailersTooLarge => "trailer section too large",
        };
        f.write_str(s)
    }
}

/// Progress of one decoding step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Step {
    /// Input bytes consumed.
    pub consumed: usize,
    /// Output bytes written.
    pub produced: usize,
    /// The message body is complete.
    pub done: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Size,
    Data(u64),
    DataCrlf,
    Trailer,
    Done,
}

#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    mode: ChunkMode,
    trailer_bytes: usize,
    max_trailer_bytes: usize,
}

impl ChunkedDecoder {
    pub fn new(mode: ChunkMode, max_trailer_bytes: usize) -> ChunkedDecoder {
        ChunkedDecoder {
            state: State::Size,
            mode,
            trailer_bytes: 0,
            max_trailer_bytes,
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The decoder's state as numbers (a daemon upgrade carries it):
    /// `[state, data left, mode, trailer bytes, trailer limit]`.
    pub fn to_parts(&self) -> [u64; 5] {
        let (state, left) = match self.state {
            State::Size => (0, 0),
            State::Data(n) => (1, n),
            State::DataCrlf => (2, 0),
            State::Trailer => (3, 0),
            State::Done => (4, 0),
        };
        let mode = match self.mode {
            ChunkMode::Reencode => 0,
            ChunkMode::Unwrap => 1,
        };
        [
            state,
            left,
            mode,
            self.trailer_bytes as u64,
            self.max_trailer_bytes as u64,
        ]
    }

    /// The decoder [`ChunkedDecoder::to_parts`] described; `None` for
    /// numbers no decoder has.
    pub fn from_parts(p: [u64; 5]) -> Option<ChunkedDecoder> {
        let state = match p[0] {
            0 => State::Size,
            1 => State::Data(p[1]),
            2 => State::DataCrlf,
            3 => State::Trailer,
            4 => State::Done,
            _ => return None,
        };
        let mode = match p[2] {
            0 => ChunkMode::Reencode,
            1 => ChunkMode::Unwrap,
            _ => return None,
        };
        Some(ChunkedDecoder {
            state,
            mode,
            trailer_bytes: usize::try_from(p[3]).ok()?,
            max_trailer_bytes: usize::try_from(p[4]).ok()?,
        })
    }

    /// Decodes as much of `input` as fits into `out`. Consumes nothing of a
    /// line that is not complete yet; the caller keeps those bytes. To be
    /// sure of progress, `out` must offer `MIN_OUT` bytes once drained.
    pub fn decode(&mut self, input: &[u8], out: &mut [u8]) -> Result<Step, ChunkError> {
        let reencode = self.mode == ChunkMode::Reencode;
        let mut step = Step::default();
        loop {
            let inp = &input[step.consumed..];
            let room = out.len() - step.produced;
            match self.state {
                State::Done => {
                    step.done = true;
                    return Ok(step);
                }
                State::Size => {
                    let Some(line_len) = find_line(inp)? else {
                        return Ok(step);
                    };
                    let size = parse_size_line(&inp[..line_len])?;
                    step.consumed += line_len;
                    self.state = if size == 0 {
                        State::Trailer
                    } else {
                        State::Data(size)
                    };
                }
                State::Data(left) => {
                    // Re-encoded, each run of data is a chunk of its own.
                    let max = if reencode {
                        room.saturating_sub(4 + hex_len(room as u64))
                    } else {
                        room
                    };
                    let n = (left.min(inp.len() as u64) as usize).min(max);
                    if n == 0 {
                        return Ok(step);
                    }
                    if reencode {
                        step.produced += write_hex_line(n as u64, &mut out[step.produced..]);
                    }
                    out[step.produced..step.produced + n].copy_from_slice(&inp[..n]);
                    step.consumed += n;
                    step.produced += n;
                    if reencode {
                        out[step.produced..step.produced + 2].copy_from_slice(b"\r\n");
                        step.produced += 2;
                    }
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        State::DataCrlf
                    } else {
                        State::Data(left)
                    };
                }
                State::DataCrlf => {
                    if inp.is_empty() {
                        return Ok(step);
                    }
                    if inp[0] != b'\r' || (inp.len() > 1 && inp[1] != b'\n') {
                        return Err(ChunkError::BadLineEnding);
                    }
                    if inp.len() < 2 {
                        return Ok(step);
                    }
                    step.consumed += 2;
                    self.state = State::Size;
                }
                State::Trailer => {
                    let Some(line_len) = find_line(inp)? else {
                        return Ok(step);
                    };
                    if line_len == 2 {
                        if reencode && room < LAST_CHUNK.len() {
                            return Ok(step);
                        }
                        if reencode {
                            out[step.produced..step.produced + LAST_CHUNK.len()]
                                .copy_from_slice(LAST_CHUNK);
                            step.produced += LAST_CHUNK.len();
                        }
                        step.consumed += 2;
                        self.state = State::Done;
                        continue;
                    }
                    // Trailer fields are checked and counted, never passed on.
                    validate_trailer(&inp[..line_len])?;
                    if self.trailer_bytes + line_len > self.max_trailer_bytes {
                        return Err(ChunkError::TrailersTooLarge);
                    }
                    self.trailer_bytes += line_len;
                    step.consumed += line_len;
                }
            }
        }
    }
}

/// Runs the chunked bytes already received through a decoder, without
/// keeping any output: an error here is an error the body will have.
pub fn check_prefix(input: &[u8], max_trailer_bytes: usize) -> Result<(), ChunkError> {
    let mut d = ChunkedDecoder::new(ChunkMode::Unwrap, max_trailer_bytes);
    let mut sink = [0u8; 4096];
    let mut at = 0;
    while at < input.len() {
        let s = d.decode(&input[at..], &mut sink)?;
        if s.done || (s.consumed == 0 && s.produced == 0) {
            break;
        }
        at += s.consumed;
    }
    Ok(())
}

/// Hex digits of `n`.
fn hex_len(n: u64) -> usize {
    (64 - n.leading_zeros() as usize).div_ceil(4).max(1)
}

/// Length of the CRLF-terminated line at the start of `inp` (CRLF included),
/// or `None` if it is not complete yet.
fn find_line(inp: &[u8]) -> Result<Option<usize>, ChunkError> {
    let window = &inp[..inp.len().min(MAX_LINE)];
    match window.iter().position(|&b| b == b'\n') {
        Some(i) => {
            if i == 0 || window[i - 1] != b'\r' {
                return Err(ChunkError::BadLineEnding);
            }
            if window[..i - 1].contains(&b'\r') {
                return Err(ChunkError::BadLineEnding);
            }
            Ok(Some(i + 1))
        }
        None if inp.len() >= MAX_LINE => Err(ChunkError::LineTooLong),
        None => Ok(None),
    }
}

/// Parses `1*HEXDIG [ chunk-ext ] CRLF`; extensions are validated and dropped.
fn parse_size_line(line: &[u8]) -> Result<u64, ChunkError> {
    let body = &line[..line.len() - 2];
    let digits = body.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(ChunkError::BadSize);
    }
    let mut size: u64 = 0;
    for &b in &body[..digits] {
        let v = (b as char).to_digit(16).ok_or(ChunkError::BadSize)? as u64;
        size = size
            .checked_mul(16)
            .and_then(|s| s.checked_add(v))
            .ok_or(ChunkError::BadSize)?;
    }
    if size > MAX_CHUNK_SIZE {
        return Err(ChunkError::BadSize);
    }
    let ext = &body[digits..];
    if !ext.is_empty() {
        let first = ext.iter().position(|&b| b != b' ' && b != b'\t');
        match first {
            Some(i) if ext[i] == b';' => {}
            _ => return Err(ChunkError::BadSize),
        }
        if ext.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(ChunkError::BadSize);
        }
    }
    Ok(size)
}

fn write_hex_line(size: u64, out: &mut [u8]) -> usize {
    let mut tmp = [0u8; 16];
    let mut n = size;
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b"0123456789abcdef"[(n & 0xf) as usize];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    let digits = &tmp[i..];
    out[..digits.len()].copy_from_slice(digits);
    out[digits.len()..digits.len() + 2].copy_from_slice(b"\r\n");
    digits.len() + 2
}

/// A trailer line: `token ":" OWS value OWS CRLF`, no obs-fold, no CTLs.
fn validate_trailer(line: &[u8]) -> Result<(), ChunkError> {
    let body = &line[..line.len() - 2];
    let colon = body
        .iter()
        .position(|&b| b == b':')
        .ok_or(ChunkError::BadTrailer)?;
    let name = &body[..colon];
    if name.is_empty() || !name.iter().all(|&b| super::is_tchar(b)) {
        return Err(ChunkError::BadTrailer);
    }
    if body[colon + 1..]
        .iter()
        .any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f)
    {
        return Err(ChunkError::BadTrailer);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(mode: ChunkMode, input: &[u8], split: usize) -> Result<(Vec<u8>, bool), ChunkError> {
        let mut d = ChunkedDecoder::new(mode, 1024);
        let mut out = vec![0u8; 64 * 1024];
        let mut produced = 0;
        let mut pending: Vec<u8> = Vec::new();
        for piece in input.chunks(split.max(1)) {
            pending.extend_from_slice(piece);
            let s = d.decode(&pending, &mut out[produced..])?;
            pending.drain(..s.consumed);
            produced += s.produced;
        }
        out.truncate(produced);
        Ok((out, d.is_done()))
    }

    #[test]
    fn chunked_is_normalized() {
        let input = b"005;ext=1\r\nhello\r\n0\r\n\r\n";
        let (out, done) = run(ChunkMode::Reencode, input, 100).unwrap();
        assert_eq!(out, b"5\r\nhello\r\n0\r\n\r\n");
        assert!(done);
    }

    #[test]
    fn byte_by_byte_gives_same_result() {
        let input = b"3\r\nabc\r\nA\r\n0123456789\r\n0\r\nX-Sum: 1\r\n\r\n";
        let a = run(ChunkMode::Unwrap, input, 1).unwrap();
        let b = run(ChunkMode::Unwrap, input, 1000).unwrap();
        assert_eq!(a, b);
        let (one, _) = run(ChunkMode::Reencode, input, 1).unwrap();
        assert_eq!(run(ChunkMode::Unwrap, &one, 1000).unwrap(), a);
        let (all, _) = run(ChunkMode::Reencode, input, 1000).unwrap();
        assert_eq!(all, b"3\r\nabc\r\na\r\n0123456789\r\n0\r\n\r\n");
    }

    #[test]
    fn trailers_are_dropped_when_reencoding() {
        let input =
            b"2\r\nhi\r\n0\r\nContent-Length: 5\r\nX-Forwarded-For: 6.6.6.6\r\nA: b\r\n\r\n";
        let (out, done) = run(ChunkMode::Reencode, input, 100).unwrap();
        assert_eq!(out, b"2\r\nhi\r\n0\r\n\r\n");
        assert!(done);
        let (out, done) = run(ChunkMode::Reencode, input, 1).unwrap();
        assert_eq!(out, b"1\r\nh\r\n1\r\ni\r\n0\r\n\r\n");
        assert!(done);
    }

    #[test]
    fn client_chunk_sizes_are_not_echoed() {
        let (out, done) = run(ChunkMode::Reencode, b"7fffffffffffffff\r\nhello", 100).unwrap();
        assert_eq!(out, b"5\r\nhello\r\n");
        assert!(!done);
    }

    #[test]
    fn chunks_are_bounded_by_the_output_buffer() {
        let mut input = b"1000\r\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 0x1000));
        input.extend_from_slice(b"\r\n0\r\n\r\n");
        let mut d = ChunkedDecoder::new(ChunkMode::Reencode, 1024);
        let mut out = [0u8; 1000];
        let mut at = 0;
        let mut encoded = Vec::new();
        while !d.is_done() {
            let s = d.decode(&input[at..], &mut out).unwrap();
            assert!(s.produced > 0);
            at += s.consumed;
            encoded.extend_from_slice(&out[..s.produced]);
        }
        // Every size line is ours, each chunk fits one output buffer.
        let mut rest = &encoded[..];
        let mut payload = 0;
        loop {
            let eol = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let size =
                usize::from_str_radix(std::str::from_utf8(&rest[..eol]).unwrap(), 16).unwrap();
            assert!(size < out.len());
            payload += size;
            if size == 0 {
                assert_eq!(&rest[eol..], b"\r\n\r\n");
                break;
            }
            rest = &rest[eol + 2 + size + 2..];
        }
        assert_eq!(payload, 0x1000);
    }

    #[test]
    fn chunk_size_above_max_is_rejected() {
        assert_eq!(
            run(ChunkMode::Reencode, b"ffffffffffffffff\r\n", 100),
            Err(ChunkError::BadSize)
        );
        assert_eq!(
            run(ChunkMode::Unwrap, b"8000000000000000\r\n", 100),
            Err(ChunkError::BadSize)
        );
    }

    #[test]
    fn unwrap_mode_emits_only_data() {
        let (out, done) = run(ChunkMode::Unwrap, b"2\r\nhi\r\n0\r\nA: b\r\n\r\n", 5).unwrap();
        assert_eq!(out, b"hi");
        assert!(done);
    }

    #[test]
    fn bad_chunk_size_is_rejected() {
        for bad in [
            &b"x\r\n"[..],
            b"-1\r\n",
            b"+5\r\n",
            b"5 \r\n",
            b"0x5\r\n",
            b"11111111111111111\r\n",
            b"\r\n",
        ] {
            assert!(run(ChunkMode::Reencode, bad, 100).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bare_lf_in_chunk_line_is_rejected() {
        assert_eq!(
            run(ChunkMode::Reencode, b"5\nhello", 100),
            Err(ChunkError::BadLineEnding)
        );
        assert_eq!(
            run(ChunkMode::Reencode, b"5\r\nhelloXY", 100),
            Err(ChunkError::BadLineEnding)
        );
    }

    #[test]
    fn obs_fold_in_trailer_is_rejected() {
        assert_eq!(
            run(ChunkMode::Reencode, b"0\r\nA: b\r\n c\r\n\r\n", 100),
            Err(ChunkError::BadTrailer)
        );
    }

    #[test]
    fn over_long_size_line_is_rejected() {
        let mut input = b"5;".to_vec();
        input.extend(std::iter::repeat_n(b'a', MAX_LINE));
        assert_eq!(
            run(ChunkMode::Reencode, &input, 100_000),
            Err(ChunkError::LineTooLong)
        );
    }

    #[test]
    fn trailer_section_is_capped() {
        let mut input = b"0\r\n".to_vec();
        for _ in 0..200 {
            input.extend_from_slice(b"X-Pad: 0123456789\r\n");
        }
        assert_eq!(
            run(ChunkMode::Reencode, &input, 64),
            Err(ChunkError::TrailersTooLarge)
        );
    }

    /// Fuzz regression (chunked, crash-810505d0): both modes must reject
    /// this input the same way. (The harness had used a 20-byte output,
    /// smaller than one valid trailer line, so re-encoding stalled; a
    /// caller must offer at least `MAX_LINE` bytes of output, as the
    /// proxy's buffers do.)
    #[test]
    fn trailer_error_wins_over_full_output() {
        let input = b"0\r\nA: \r\nA:\xff\xff\xff\xff\xff\xff\xff\xff\xff\xb7\xff\xfe\xff\xff\xff\xff \x32\x36\x31\r\nA\xff\xff:\"Ar\r\nbh";
        for mode in [ChunkMode::Reencode, ChunkMode::Unwrap] {
            let mut d = ChunkedDecoder::new(mode, 4096);
            let mut out = [0u8; MAX_LINE + 2];
            let mut pending = input.to_vec();
            let mut result = Ok(Step::default());
            for _ in 0..10 {
                result = d.decode(&pending, &mut out);
                match result {
                    Ok(s) => {
                        pending.drain(..s.consumed);
                    }
                    Err(_) => break,
                }
            }
            assert_eq!(result, Err(ChunkError::BadTrailer), "{mode:?}");
        }
    }

    #[test]
    fn small_output_makes_progress() {
        let mut d = ChunkedDecoder::new(ChunkMode::Reencode, 1024);
        let mut out = [0u8; 16];
        let s = d.decode(b"a\r\n0123456789\r\n0\r\n\r\n", &mut out).unwrap();
        assert_eq!(&out[..s.produced], b"a\r\n0123456789\r\n");
        assert!(!s.done);
    }
}
