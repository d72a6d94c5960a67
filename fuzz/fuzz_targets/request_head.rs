//! Request-head parser: any bytes, any split point, both trust settings,
//! underscore names kept or not. Must never panic; an accepted head must
//! re-serialize into a head that itself parses (our output is valid
//! HTTP/1.1, within our own field limit) with the same framing, and that
//! head is normalized: origin-form target, exactly one Host, framing only
//! as `Content-Length` or a single `Transfer-Encoding: chunked`, no `_` in
//! names unless asked for, and then none that reads as a controlled field.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rollbridge::proxy::codec::{BodyKind, Forwarding, HeadParse, parse_request};
use std::net::{IpAddr, Ipv6Addr};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, raw)) = data.split_first() else {
        return;
    };
    let fwd = Forwarding {
        peer: IpAddr::V6(Ipv6Addr::LOCALHOST),
        trusted: flags & 1 == 1,
        default_host: "[::1]:8182",
        underscores_in_headers: flags & 0x80 != 0,
        request_id: b"0123456789abcdef",
    };
    let max = 64 + (flags as usize >> 1) * 64;
    let mut out = Vec::new();
    // Feeding a prefix must never claim more than it was given.
    let split = (flags as usize * 7) % (raw.len() + 1);
    if let Ok(HeadParse::Complete(i)) = parse_request(&raw[..split], max, &fwd, &mut out) {
        assert!(i.head_len <= split);
    }
    out.clear();
    if let Ok(HeadParse::Complete(info)) = parse_request(raw, max, &fwd, &mut out) {
        assert!(info.head_len <= raw.len());
        check_normalized(&out, info.body, fwd.underscores_in_headers);
        let mut again = Vec::new();
        let fwd2 = Forwarding { trusted: true, ..fwd };
        match parse_request(&out, usize::MAX, &fwd2, &mut again) {
            Ok(HeadParse::Complete(i2)) => {
                assert_eq!(i2.head_len, out.len());
                assert_eq!(i2.body, info.body);
                assert_eq!(i2.upgrade, info.upgrade);
            }
            other => panic!("our own head did not parse: {other:?}\n{:?}", String::from_utf8_lossy(&out)),
        }
    }
});

fn check_normalized(head: &[u8], body: BodyKind, underscores: bool) {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    let target = request_line.split(' ').nth(1).unwrap_or("");
    assert!(target.starts_with('/') || target == "*", "target {target:?}");
    let mut hosts = 0;
    let mut te = Vec::new();
    let mut cl = 0;
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').expect("field line");
        let lower = name.to_ascii_lowercase();
        let dashed = lower.replace('_', "-");
        assert!(underscores || !name.contains('_'), "underscore name {name:?}");
        if name.contains('_') {
            let controlled = [
                "host", "forwarded", "x-real-ip", "content-length", "transfer-encoding",
                "connection", "upgrade", "keep-alive", "proxy-connection", "te", "trailer",
            ];
            assert!(
                !controlled.contains(&dashed.as_str()) && !dashed.starts_with("x-forwarded-"),
                "{name:?} shadows a controlled field"
            );
        }
        match lower.as_str() {
            "host" => hosts += 1,
            "transfer-encoding" => te.push(value.trim().to_owned()),
            "content-length" => cl += 1,
            "trailer" | "te" | "keep-alive" | "proxy-connection" => panic!("{name} forwarded"),
            _ => {}
        }
    }
    assert_eq!(hosts, 1, "Host lines in {text:?}");
    match body {
        BodyKind::Chunked => assert!(te == ["chunked"] && cl == 0, "{text:?}"),
        BodyKind::Length(_) => assert!(te.is_empty() && cl == 1, "{text:?}"),
        _ => assert!(te.is_empty() && cl == 0, "{text:?}"),
    }
}
