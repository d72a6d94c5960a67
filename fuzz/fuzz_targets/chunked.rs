//! Chunked decoder: arbitrary input fed in arbitrary pieces into arbitrary
//! output sizes. Never panics; re-encoded output decodes again to the same
//! payload, every chunk in it fits one output buffer (the sender's sizes
//! are never echoed) and it carries no trailer fields; consumption never
//! exceeds input.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rollbridge::proxy::codec::chunked::MIN_OUT;
use rollbridge::proxy::codec::{ChunkMode, ChunkedDecoder};

fn run(mode: ChunkMode, input: &[u8], piece: usize, out_size: usize) -> Option<(Vec<u8>, bool)> {
    let mut d = ChunkedDecoder::new(mode, 4096);
    let mut out = vec![0u8; out_size];
    let mut result = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut fed = 0;
    let mut stalls = 0;
    loop {
        if fed < input.len() {
            let end = (fed + piece).min(input.len());
            pending.extend_from_slice(&input[fed..end]);
            fed = end;
        }
        let s = d.decode(&pending, &mut out).ok()?;
        assert!(s.consumed <= pending.len());
        assert!(s.produced <= out.len());
        result.extend_from_slice(&out[..s.produced]);
        pending.drain(..s.consumed);
        if s.done {
            return Some((result, true));
        }
        if s.consumed == 0 && s.produced == 0 {
            if fed == input.len() {
                stalls += 1;
                if stalls > 2 {
                    return Some((result, false));
                }
            }
        } else {
            stalls = 0;
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&cfg, input)) = data.split_first() else {
        return;
    };
    let piece = 1 + (cfg & 0x0f) as usize * 17;
    // Any room from the least that guarantees progress upwards.
    let out_size = MIN_OUT + (cfg >> 4) as usize * 300;
    let Some((encoded, done)) = run(ChunkMode::Reencode, input, piece, out_size) else {
        return;
    };
    let (payload, done2) = run(ChunkMode::Unwrap, input, piece, out_size).expect("unwrap mode disagrees");
    assert_eq!(done, done2);
    if done {
        // Our normalized encoding must decode to the same payload.
        let (again, ok) = run(ChunkMode::Unwrap, &encoded, 4096, 8192).expect("own output rejected");
        assert!(ok);
        assert_eq!(again, payload);
        check_own_chunks(&encoded, out_size);
    }
});

/// Walks our re-encoded stream: bare hex sizes, each chunk within one
/// output buffer, ending in `0\r\n\r\n` with nothing in between.
fn check_own_chunks(mut rest: &[u8], out_size: usize) {
    loop {
        let eol = rest.windows(2).position(|w| w == b"\r\n").expect("size line");
        let digits = std::str::from_utf8(&rest[..eol]).expect("ascii size");
        assert!(!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_hexdigit()));
        let size = usize::from_str_radix(digits, 16).expect("size");
        assert!(size < out_size, "chunk of {size} from a {out_size}-byte buffer");
        if size == 0 {
            assert_eq!(&rest[eol..], b"\r\n\r\n", "trailers forwarded");
            return;
        }
        assert!(digits.as_bytes()[0] != b'0', "leading zero");
        rest = &rest[eol + 2 + size..];
        assert!(rest.starts_with(b"\r\n"));
        rest = &rest[2..];
    }
}
