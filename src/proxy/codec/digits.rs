//! Numbers and addresses written into a head by hand: `core::fmt` costs
//! hundreds of instructions per call (and `String` building an allocation),
//! which showed up as a tenth of the proxy's own work per request.

use std::net::IpAddr;

/// Appends `n` in decimal.
pub fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// Appends `ip` as `Display` writes it (dotted quad; IPv6 through `fmt`,
/// which is rare enough not to matter).
pub fn push_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            let mut text = [0u8; 15];
            let mut len = 0;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    text[len] = b'.';
                    len += 1;
                }
                if octet >= 100 {
                    text[len] = b'0' + octet / 100;
                    len += 1;
                }
                if octet >= 10 {
                    text[len] = b'0' + octet / 10 % 10;
                    len += 1;
                }
                text[len] = b'0' + octet % 10;
                len += 1;
            }
            out.extend_from_slice(&text[..len]);
        }
        IpAddr::V6(v6) => {
            use std::io::Write as _;
            let _ = write!(out, "{v6}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn decimal_digits_match_display() {
        let mut cases = vec![0, 1, 9, 10, 99, 100, 101, 999, 1000, 65535, u64::MAX];
        cases.extend((0..64).map(|s| 1u64 << s));
        cases.extend((0..20).map(|e| 10u64.pow(e)));
        cases.extend((1..20).map(|e| 10u64.pow(e) - 1));
        for n in cases {
            let mut out = b"x".to_vec();
            push_u64(&mut out, n);
            assert_eq!(out, format!("x{n}").into_bytes());
        }
    }

    #[test]
    fn ipv4_digits_match_display() {
        for a in [0u8, 1, 9, 10, 42, 99, 100, 127, 199, 200, 255] {
            for b in [0u8, 7, 10, 100, 255] {
                let ip = IpAddr::V4(Ipv4Addr::new(a, b, 255 - b, a / 3));
                let mut out = Vec::new();
                push_ip(&mut out, ip);
                assert_eq!(out, ip.to_string().into_bytes());
            }
        }
    }

    #[test]
    fn ipv6_is_written_as_display_does() {
        for ip in [
            Ipv6Addr::LOCALHOST,
            Ipv6Addr::UNSPECIFIED,
            "2001:db8::8a2e:370:7334".parse().unwrap(),
            "::ffff:1.2.3.4".parse().unwrap(),
        ] {
            let mut out = Vec::new();
            push_ip(&mut out, IpAddr::V6(ip));
            assert_eq!(out, ip.to_string().into_bytes());
        }
    }
}
