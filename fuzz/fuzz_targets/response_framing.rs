//! Response framing: an arbitrary upstream byte stream for an arbitrary
//! request shape (HEAD, HTTP/1.0 client, upgrade), split at arbitrary
//! points, driven through head parsing and body decoding like the proxy
//! does. Never panics, never consumes more than given, output bounded.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rollbridge::proxy::codec::{BodyDecoder, ChunkMode, RespParse, ResponseCtx, parse_response};

fuzz_target!(|data: &[u8]| {
    let Some((&cfg, stream)) = data.split_first() else {
        return;
    };
    let ctx = ResponseCtx {
        request_is_head: cfg & 1 != 0,
        client_http10: cfg & 2 != 0,
        client_close: cfg & 4 != 0,
        upgrade_requested: cfg & 8 != 0,
    };
    let piece = 1 + (cfg >> 4) as usize * 13;
    let mut pending: Vec<u8> = Vec::new();
    let mut fed = 0;
    let mut out = Vec::new();
    let mut body: Option<BodyDecoder> = None;
    let mut buf = vec![0u8; 512];
    let mut idle_rounds = 0;
    while idle_rounds < 3 {
        if fed < stream.len() {
            let end = (fed + piece).min(stream.len());
            pending.extend_from_slice(&stream[fed..end]);
            fed = end;
        }
        let mut moved = false;
        match body.as_mut() {
            None => {
                out.clear();
                match parse_response(&pending, 4096, ctx, &mut out) {
                    Ok(RespParse::Partial) => {}
                    Err(_) => return,
                    Ok(RespParse::Complete(info)) => {
                        assert!(info.head_len <= pending.len());
                        pending.drain(..info.head_len);
                        moved = true;
                        if info.switching {
                            assert!(ctx.upgrade_requested);
                            return;
                        }
                        if !info.interim {
                            let mode = if ctx.client_http10 { ChunkMode::Unwrap } else { ChunkMode::Reencode };
                            body = Some(BodyDecoder::new(info.body, mode, 1024));
                        }
                    }
                }
            }
            Some(d) => {
                if d.is_done() {
                    return;
                }
                match d.step(&pending, &mut buf) {
                    Ok(s) => {
                        assert!(s.consumed <= pending.len() && s.produced <= buf.len());
                        pending.drain(..s.consumed);
                        moved = s.consumed > 0 || s.produced > 0 || s.done;
                    }
                    Err(_) => return,
                }
            }
        }
        if !moved && fed == stream.len() {
            idle_rounds += 1;
        }
    }
    if let Some(d) = body.as_mut() {
        let _ = d.on_eof();
    }
});
