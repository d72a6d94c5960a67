//! Canary assignment with a sticky cookie: which release a request goes to
//! while a canary runs, and the cookie that keeps a client there.
//!
//! Pure functions (bytes in, bytes out) plus a tiny PRNG. Nothing here runs
//! while no canary exists: the session checks `Releases::canary` first.

/// The cookie naming the release a client is assigned to.
pub const COOKIE: &str = "rollbridge_release";

/// Attributes sent with the cookie.
const ATTRIBUTES: &str = "; Path=/; HttpOnly; SameSite=Lax";

/// Where an assigned request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    Active,
    Canary,
}

/// Routes one request while a canary runs. `cookie` is the request's
/// assignment cookie value (if any), `active`/`canary` the cookie values of
/// the two releases. A cookie naming one of them keeps the client there;
/// anything else (none, a gone release, garbage) is a new assignment: the
/// canary with probability `percent` %, decided by `roll`. The flag says
/// whether the response must carry a `Set-Cookie`.
pub fn assign(
    cookie: Option<&[u8]>,
    active: &str,
    canary: &str,
    percent: u8,
    roll: u64,
) -> (Choice, bool) {
    match cookie {
        Some(v) if v == active.as_bytes() => (Choice::Active, false),
        Some(v) if v == canary.as_bytes() => (Choice::Canary, false),
        _ if to_canary(roll, percent) => (Choice::Canary, true),
        _ => (Choice::Active, true),
    }
}

/// A new client goes to the canary when its roll lands in the first
/// `percent` of 100 buckets.
pub fn to_canary(roll: u64, percent: u8) -> bool {
    roll % 100 < u64::from(percent)
}

/// xorshift64*: cheap, good enough to split clients, not for secrets.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        // Zero is the one state xorshift never leaves.
        Rng(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    /// Seeded from the clock and the pid.
    pub fn seeded() -> Rng {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Rng::new(nanos ^ (u64::from(std::process::id()) << 32))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// The assignment cookie's value in a serialized request head (its
/// `Cookie` fields; the first occurrence wins). Other cookies are skipped.
pub fn cookie_in_head(head: &[u8]) -> Option<&[u8]> {
    // Field lines follow the request line; a field's name cannot hold ':'.
    head.split(|&b| b == b'\n').skip(1).find_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let (name, value) = split_once(line, b':')?;
        if !name.eq_ignore_ascii_case(b"cookie") {
            return None;
        }
        cookie_value(value, COOKIE.as_bytes())
    })
}

/// The value of cookie `name` in one `Cookie` field value
/// (`a=1; name=v; b=2`), DQUOTEs around it dropped.
pub fn cookie_value<'a>(field: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    field.split(|&b| b == b';').find_map(|pair| {
        let (n, v) = split_once(pair, b'=')?;
        if n.trim_ascii() != name {
            return None;
        }
        let v = v.trim_ascii();
        Some(
            v.strip_prefix(b"\"")
                .and_then(|v| v.strip_suffix(b"\""))
                .unwrap_or(v),
        )
    })
}

fn split_once(s: &[u8], sep: u8) -> Option<(&[u8], &[u8])> {
    let at = s.iter().position(|&b| b == sep)?;
    Some((&s[..at], &s[at + 1..]))
}

/// A release id in the cookie's alphabet: bytes outside RFC 6265's
/// cookie-octet (and `%`) are percent-encoded.
pub fn encode(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        let plain =
            matches!(b, 0x21 | 0x23..=0x24 | 0x26..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E);
        if plain {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Adds `Set-Cookie: rollbridge_release=<value>; Path=/; HttpOnly;
/// SameSite=Lax` to a serialized response head (before its final CRLF).
pub fn add_set_cookie(head: &mut Vec<u8>, value: &str) {
    if !head.ends_with(b"\r\n\r\n") {
        return;
    }
    let at = head.len() - 2;
    let field = format!("Set-Cookie: {COOKIE}={value}{ATTRIBUTES}\r\n");
    head.splice(at..at, field.bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Share of `n` new clients that land on the canary.
    fn canary_share(percent: u8, seed: u64, n: u32) -> f64 {
        let mut rng = Rng::new(seed);
        let hits = (0..n)
            .filter(|_| assign(None, "v1", "v2", percent, rng.next_u64()).0 == Choice::Canary)
            .count();
        hits as f64 * 100.0 / f64::from(n)
    }

    #[test]
    fn new_clients_split_close_to_the_percent() {
        for seed in [1, 42, 0xDEAD_BEEF, Rng::seeded().next_u64()] {
            for percent in [1u8, 10, 50, 90] {
                let share = canary_share(percent, seed, 10_000);
                assert!(
                    (share - f64::from(percent)).abs() <= 2.0,
                    "P={percent} seed={seed}: {share}%"
                );
            }
        }
    }

    #[test]
    fn every_new_client_gets_the_cookie() {
        let mut rng = Rng::new(7);
        for _ in 0..100 {
            assert!(assign(None, "v1", "v2", 30, rng.next_u64()).1);
        }
    }

    #[test]
    fn cookie_naming_active_or_canary_sticks_without_a_new_cookie() {
        for roll in 0..100 {
            assert_eq!(
                assign(Some(b"v1"), "v1", "v2", 99, roll),
                (Choice::Active, false)
            );
            assert_eq!(
                assign(Some(b"v2"), "v1", "v2", 1, roll),
                (Choice::Canary, false)
            );
        }
    }

    #[test]
    fn cookie_naming_a_gone_release_is_reassigned() {
        assert_eq!(
            assign(Some(b"v0"), "v1", "v2", 50, 10),
            (Choice::Canary, true)
        );
        assert_eq!(
            assign(Some(b"v0"), "v1", "v2", 50, 60),
            (Choice::Active, true)
        );
        assert_eq!(
            assign(Some(b""), "v1", "v2", 50, 99),
            (Choice::Active, true)
        );
    }

    #[test]
    fn rng_never_sticks_at_zero() {
        let mut rng = Rng::new(0);
        assert_ne!(rng.next_u64(), 0);
    }

    #[test]
    fn cookie_is_found_among_other_cookies_and_fields() {
        let head =
            b"GET / HTTP/1.1\r\nHost: a\r\nCookie: sid=1; rollbridge_release=v2; x=y\r\n\r\n";
        assert_eq!(cookie_in_head(head), Some(&b"v2"[..]));
        let head = b"GET / HTTP/1.1\r\ncookie: a=b\r\nCOOKIE: rollbridge_release=\"v3\"\r\n\r\n";
        assert_eq!(cookie_in_head(head), Some(&b"v3"[..]));
    }

    #[test]
    fn similar_cookie_names_and_other_fields_do_not_match() {
        let head = b"GET / HTTP/1.1\r\nX-Cookie: rollbridge_release=v1\r\n\
            Cookie: my_rollbridge_release=v2; rollbridge_release_x=v3\r\n\r\n";
        assert_eq!(cookie_in_head(head), None);
        assert_eq!(
            cookie_in_head(b"GET /rollbridge_release=v1 HTTP/1.1\r\n\r\n"),
            None
        );
        assert_eq!(cookie_value(b"garbage;;=;", b"rollbridge_release"), None);
    }

    #[test]
    fn release_ids_are_encoded_into_cookie_octets() {
        assert_eq!(encode("v1.2-rc_3"), "v1.2-rc_3");
        assert_eq!(encode("a b;c,\"d\\%"), "a%20b%3Bc%2C%22d%5C%25");
        assert_eq!(encode("é"), "%C3%A9");
    }

    #[test]
    fn set_cookie_goes_before_the_end_of_the_head() {
        let mut head = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec();
        add_set_cookie(&mut head, "v2");
        assert_eq!(
            head,
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\
              Set-Cookie: rollbridge_release=v2; Path=/; HttpOnly; SameSite=Lax\r\n\r\n"
                .to_vec()
        );
        let mut partial = b"HTTP/1.1 200 OK\r\n".to_vec();
        add_set_cookie(&mut partial, "v2");
        assert_eq!(partial, b"HTTP/1.1 200 OK\r\n".to_vec());
    }
}
