//! UTC timestamps without a date crate: ISO-8601 with milliseconds for
//! status and events, and the 17-digit default release id.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    ms_since_epoch(SystemTime::now())
}

pub fn ms_since_epoch(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as u64
}

/// Calendar fields of a UTC instant.
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    milli: u32,
}

fn civil(ms: u64) -> Civil {
    let secs = (ms / 1000) as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    Civil {
        year,
        month,
        day,
        hour: (rem / 3600) as u32,
        minute: (rem % 3600 / 60) as u32,
        second: (rem % 60) as u32,
        milli: (ms % 1000) as u32,
    }
}

/// The current time as status and events print it.
pub fn iso_now() -> String {
    iso(now_ms())
}

/// `2026-05-22T00:00:00.000Z`.
pub fn iso(ms: u64) -> String {
    let c = civil(ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second, c.milli
    )
}

/// The ISO time with every non-digit removed: `YYYYMMDDhhmmssmmm`.
pub fn compact(ms: u64) -> String {
    iso(ms).chars().filter(char::is_ascii_digit).collect()
}

/// Parses our own [`iso`] format back to epoch milliseconds.
pub fn parse_iso(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() != 24 || b[4] != b'-' || b[10] != b'T' || b[23] != b'Z' {
        return None;
    }
    let num = |from: usize, to: usize| s.get(from..to)?.parse::<i64>().ok();
    let (y, m, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hh, mm, ss, ms) = (num(11, 13)?, num(14, 16)?, num(17, 19)?, num(20, 23)?);
    // Inverse of `civil` (days from civil, Howard Hinnant).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let total = ((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1000) + ms;
    u64::try_from(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_is_formatted() {
        assert_eq!(iso(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn known_instant_is_formatted() {
        // 2026-05-22T12:34:56.789Z
        assert_eq!(iso(1_779_453_296_789), "2026-05-22T12:34:56.789Z");
    }

    #[test]
    fn leap_day_is_formatted() {
        // 2024-02-29T23:59:59.999Z
        assert_eq!(iso(1_709_251_199_999), "2024-02-29T23:59:59.999Z");
    }

    #[test]
    fn parse_iso_inverts_iso() {
        for ms in [0, 1_709_251_199_999, 1_779_453_296_789, now_ms()] {
            assert_eq!(parse_iso(&iso(ms)), Some(ms));
        }
        assert_eq!(parse_iso("yesterday"), None);
    }

    #[test]
    fn compact_release_id_has_17_digits() {
        assert_eq!(compact(1_779_453_296_789), "20260522123456789");
        assert_eq!(compact(now_ms()).len(), 17);
    }
}
