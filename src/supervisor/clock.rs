//! Wall-clock timestamps as the contract prints them: ISO-8601 UTC with
//! milliseconds and `Z` (`2026-05-23T14:31:09.512Z`).

use std::time::{SystemTime, UNIX_EPOCH};

/// The current time, formatted.
pub fn iso_now() -> String {
    iso_from_system(SystemTime::now())
}

pub fn iso_from_system(t: SystemTime) -> String {
    let ms = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    iso_from_millis(ms)
}

/// Milliseconds since the Unix epoch, formatted.
pub fn iso_from_millis(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{milli:03}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// Howard Hinnant's days-from-civil inverse.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m as u32, d as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_is_formatted_with_millis_and_z() {
        assert_eq!(iso_from_millis(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn known_instant_round_trips() {
        // 2026-05-23T14:31:09.512Z
        assert_eq!(
            iso_from_millis(1_779_546_669_512),
            "2026-05-23T14:31:09.512Z"
        );
    }

    #[test]
    fn leap_day_is_handled() {
        // 2024-02-29T12:00:00.000Z
        assert_eq!(
            iso_from_millis(1_709_208_000_000),
            "2024-02-29T12:00:00.000Z"
        );
    }
}
