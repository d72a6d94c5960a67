//! Request ids the proxy generates: 16 lowercase hex digits, unique per
//! daemon run, cheap enough to make one for every request.
//!
//! A per-loop counter is offset by a random seed and passed through a
//! bijective 64-bit mix (the SplitMix64 finalizer), so two counter values
//! never give the same id, ids do not look sequential, and two runs start
//! from unrelated points. No lock, no allocation, no system call.

use std::hash::{BuildHasher, Hasher};

/// Length of a generated id.
pub const LEN: usize = 16;

/// The loop's id source.
#[derive(Debug)]
pub struct RequestIds {
    seed: u64,
    counter: u64,
}

impl Default for RequestIds {
    fn default() -> RequestIds {
        // `RandomState` keys come from the OS's random source once per
        // process (then differ per instance).
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(std::process::id().into());
        RequestIds::with_seed(h.finish())
    }
}

impl RequestIds {
    pub fn with_seed(seed: u64) -> RequestIds {
        RequestIds { seed, counter: 0 }
    }

    /// The next id.
    pub fn next_id(&mut self) -> [u8; LEN] {
        self.counter = self.counter.wrapping_add(1);
        hex(mix(self.seed.wrapping_add(self.counter)))
    }
}

/// SplitMix64's finalizer: a bijection on u64.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn hex(v: u64) -> [u8; LEN] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; LEN];
    for (i, slot) in out.iter_mut().enumerate() {
        let shift = 60 - 4 * i;
        *slot = DIGITS[((v >> shift) & 0xf) as usize];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn generated_ids_are_16_hex_digits_and_unique() {
        let mut ids = RequestIds::with_seed(u64::MAX - 5);
        let mut seen = HashSet::new();
        for _ in 0..100_000 {
            let id = ids.next_id();
            assert!(
                id.iter()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            );
            assert!(
                seen.insert(id),
                "duplicate {}",
                String::from_utf8_lossy(&id)
            );
        }
    }

    #[test]
    fn two_runs_start_from_different_ids() {
        let a = RequestIds::default().next_id();
        let b = RequestIds::default().next_id();
        assert_ne!(a, b);
    }

    #[test]
    fn hex_is_big_endian() {
        assert_eq!(&hex(0x0123_4567_89ab_cdef), b"0123456789abcdef");
    }
}
