//! Where recordings live and what they are called:
//! `{dir}/{camera}/{YYYY-MM-DD}/{camera}-{YYYYMMDDTHHMMSS.mmmZ}.mp4`, the day and the time
//! being the UTC wall-clock time of the file's first sample.
//!
//! The name is the one piece of metadata that survives anything: repair reads a file's start
//! time back from it when the file's own `prft` boxes are unusable. UTC calendar arithmetic
//! is done here (Howard Hinnant's civil-date algorithms) rather than pulling in a date crate
//! for two conversions.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::auth::is_valid_camera_id;

/// Length of the time stamp in a file name: `20261130T143000.123Z`.
const STAMP_LEN: usize = 20;

/// Days since 1970-01-01 → (year, month 1–12, day 1–31).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) → days since 1970-01-01.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// UTC calendar fields of a time (before 1970 counts as 1970-01-01).
struct Utc {
    year: i64,
    month: u32,
    day: u32,
    hour: u64,
    minute: u64,
    second: u64,
    millis: u32,
}

fn utc(t: SystemTime) -> Utc {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let of_day = secs % 86_400;
    Utc {
        year,
        month,
        day,
        hour: of_day / 3600,
        minute: of_day / 60 % 60,
        second: of_day % 60,
        millis: since.subsec_millis(),
    }
}

/// The day folder name: `2026-11-30`.
pub(crate) fn day(t: SystemTime) -> String {
    let u = utc(t);
    format!("{:04}-{:02}-{:02}", u.year, u.month, u.day)
}

/// The compact UTC stamp: `20261130T143000.123Z` (milliseconds kept).
pub(crate) fn stamp(t: SystemTime) -> String {
    let u = utc(t);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}.{:03}Z",
        u.year, u.month, u.day, u.hour, u.minute, u.second, u.millis
    )
}

/// Parses [`stamp`]'s output.
pub(crate) fn parse_stamp(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() != STAMP_LEN || b[8] != b'T' || b[15] != b'.' || b[19] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = s.get(r)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let (year, month, day) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hour, minute, second, millis) = (num(9..11)?, num(11..13)?, num(13..15)?, num(16..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 60 || year < 1970 {
        return None;
    }
    let days = days_from_civil(i64::from(year), month, day);
    let secs = u64::try_from(days).ok()? * 86_400
        + u64::from(hour) * 3600
        + u64::from(minute) * 60
        + u64::from(second);
    Some(UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(u64::from(millis)))
}

/// The path of a camera's file starting at `start`.
pub(crate) fn file_path(dir: &Path, camera: &str, start: SystemTime) -> PathBuf {
    dir.join(camera)
        .join(day(start))
        .join(format!("{camera}-{}.mp4", stamp(start)))
}

/// (camera, start) from a file name made by [`file_path`].
pub(crate) fn parse_file_name(name: &str) -> Option<(String, SystemTime)> {
    let stem = name.strip_suffix(".mp4")?;
    let split = stem.len().checked_sub(STAMP_LEN + 1)?;
    let (camera, rest) = stem.split_at(split);
    let start = parse_stamp(rest.strip_prefix('-')?)?;
    is_valid_camera_id(camera).then(|| (camera.to_owned(), start))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_dates() {
        let t = UNIX_EPOCH + Duration::from_millis(1_796_047_200_123); // 2026-11-30T14:00:00.123Z
        assert_eq!(day(t), "2026-11-30");
        assert_eq!(stamp(t), "20261130T140000.123Z");
        assert_eq!(day(UNIX_EPOCH), "1970-01-01");
        // A leap day.
        let leap = UNIX_EPOCH + Duration::from_secs(days_from_civil(2028, 2, 29) as u64 * 86_400);
        assert_eq!(day(leap), "2028-02-29");
        assert_eq!(
            file_path(Path::new("/r"), "cam-1", t),
            PathBuf::from("/r/cam-1/2026-11-30/cam-1-20261130T140000.123Z.mp4")
        );
    }

    #[test]
    fn file_names_parse_back() {
        let t = UNIX_EPOCH + Duration::from_millis(1_796_047_200_123);
        let p = file_path(Path::new("/r"), "a-b.c", t);
        let name = p.file_name().unwrap().to_str().unwrap();
        assert_eq!(parse_file_name(name), Some(("a-b.c".to_owned(), t)));
        for bad in [
            "x.mp4",
            "cam-20261130T140000.123Z.mov",
            "cam-20261330T140000.123Z.mp4",
            "cam_20261130T140000.123Z.mp4",
            "-20261130T140000.123Z.mp4",
            "..-20261130T140000.123Z.mp4",
            "cam-2026113OT140000.123Z.mp4",
        ] {
            assert_eq!(parse_file_name(bad), None, "{bad}");
        }
    }

    proptest! {
        #[test]
        fn stamps_round_trip(ms in 0u64..8_000_000_000_000) {
            let t = UNIX_EPOCH + Duration::from_millis(ms);
            prop_assert_eq!(parse_stamp(&stamp(t)), Some(t));
            let days = (ms / 86_400_000) as i64;
            let (y, m, d) = civil_from_days(days);
            prop_assert_eq!(days_from_civil(y, m, d), days);
        }

        #[test]
        fn any_name_parses_without_panic(s in "\\PC{0,40}") {
            let _ = parse_file_name(&s);
        }
    }
}
