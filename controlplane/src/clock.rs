//! Wall-clock helpers: the store keeps times as Unix milliseconds (one `BIGINT` type in both
//! databases), the API shows them as RFC 3339 UTC strings.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> i64 {
    to_ms(SystemTime::now())
}

/// Milliseconds since the Unix epoch for `t` (0 for times before the epoch).
pub(crate) fn to_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `ms` (Unix milliseconds) as RFC 3339 UTC with millisecond precision.
pub(crate) fn rfc3339(ms: i64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// Now, as RFC 3339 UTC.
pub(crate) fn rfc3339_now() -> String {
    rfc3339(now_ms())
}

/// Parses an RFC 3339 time into Unix milliseconds.
pub(crate) fn parse_rfc3339(s: &str) -> Option<i64> {
    // The `date-time` of RFC 3339 §5.6 (and of JSON Schema) has a `T`; the parser also takes
    // the space its prose allows, which the API's schema does not.
    if !matches!(s.as_bytes().get(10), Some(b'T' | b't')) {
        return None;
    }
    let t = OffsetDateTime::parse(s, &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// A duration in whole milliseconds, saturating.
pub(crate) fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The UTC calendar date (`YYYY-MM-DD`) of `ms`, for per-day analytics keys.
pub(crate) fn date(ms: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip() {
        let s = rfc3339(1_764_480_000_123);
        assert_eq!(s, "2025-11-30T05:20:00.123Z");
        assert_eq!(parse_rfc3339(&s), Some(1_764_480_000_123));
        assert_eq!(parse_rfc3339("2025-11-30 05:20:00.123Z"), None);
        assert_eq!(
            parse_rfc3339("2025-11-30t05:20:00.123z"),
            Some(1_764_480_000_123)
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
        assert_eq!(date(1_764_480_000_123), "2025-11-30");
    }
}
