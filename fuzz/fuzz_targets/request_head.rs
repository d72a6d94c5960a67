//! Request-head parser: any bytes, any split point, both trust settings.
//! Must never panic; an accepted head must re-serialize into a head that
//! itself parses (our output is valid HTTP/1.1) with the same framing.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rollbridge::proxy::codec::{Forwarding, HeadParse, parse_request};
use std::net::{IpAddr, Ipv6Addr};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, raw)) = data.split_first() else {
        return;
    };
    let fwd = Forwarding {
        peer: IpAddr::V6(Ipv6Addr::LOCALHOST),
        trusted: flags & 1 == 1,
        default_host: "[::1]:8182",
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
