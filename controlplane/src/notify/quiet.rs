//! Quiet hours: a daily local-time window (`HH:MM`–`HH:MM` in an IANA zone, overnight when
//! the start is after the end) during which a user's non-critical notifications wait. Pure
//! functions of `now`; the zone rules come from `chrono-tz` (the IANA database compiled in).

use chrono::{DateTime, Duration, LocalResult, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// Parses `HH:MM` (00:00–23:59).
pub(crate) fn parse_hhmm(s: &str) -> Option<NaiveTime> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    NaiveTime::from_hms_opt(h.parse().ok()?, m.parse().ok()?, 0)
}

/// Parses an IANA zone name (`Europe/Berlin`).
pub(crate) fn parse_zone(s: &str) -> Option<Tz> {
    s.parse().ok()
}

/// When the quiet period that `now` (Unix ms) falls in ends, or `None` when `now` is not in
/// quiet hours (or the window is empty: start == end).
pub(crate) fn quiet_until(now: i64, start: NaiveTime, end: NaiveTime, zone: Tz) -> Option<i64> {
    if start == end {
        return None;
    }
    let utc = DateTime::<Utc>::from_timestamp_millis(now)?;
    let local = utc.with_timezone(&zone);
    let t = local.time();
    let today = local.date_naive();
    let end_date = if start < end {
        (start <= t && t < end).then_some(today)?
    } else if t >= start {
        today + Duration::days(1)
    } else if t < end {
        today
    } else {
        return None;
    };
    let naive = end_date.and_time(end);
    let at = match zone.from_local_datetime(&naive) {
        LocalResult::Single(x) => x,
        LocalResult::Ambiguous(a, _) => a,
        // The end falls in a DST gap (e.g. 02:30 on a spring-forward night): the first
        // instant after the gap.
        LocalResult::None => {
            zone.from_utc_datetime(&(naive - Duration::hours(1))) + Duration::hours(1)
        }
    };
    Some(at.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
    }

    #[test]
    fn overnight_window_in_a_zone() {
        let z = parse_zone("Europe/Berlin").unwrap();
        let (s, e) = (parse_hhmm("22:00").unwrap(), parse_hhmm("07:00").unwrap());
        // 23:30 Berlin (CET, UTC+1) = 22:30Z → ends 07:00 Berlin next day = 06:00Z.
        assert_eq!(
            quiet_until(ms("2026-12-06T22:30:00Z"), s, e, z),
            Some(ms("2026-12-07T06:00:00Z"))
        );
        // 05:00 Berlin → same day 07:00.
        assert_eq!(
            quiet_until(ms("2026-12-07T04:00:00Z"), s, e, z),
            Some(ms("2026-12-07T06:00:00Z"))
        );
        // Noon: not quiet.
        assert_eq!(quiet_until(ms("2026-12-07T11:00:00Z"), s, e, z), None);
        // Summer time (UTC+2): 07:00 Berlin = 05:00Z.
        assert_eq!(
            quiet_until(ms("2026-07-01T01:00:00Z"), s, e, z),
            Some(ms("2026-07-01T05:00:00Z"))
        );
    }

    #[test]
    fn daytime_window_and_parsing() {
        let z = parse_zone("America/New_York").unwrap();
        let (s, e) = (parse_hhmm("09:00").unwrap(), parse_hhmm("17:30").unwrap());
        assert_eq!(
            quiet_until(ms("2026-12-07T15:00:00Z"), s, e, z),
            Some(ms("2026-12-07T22:30:00Z"))
        );
        assert_eq!(quiet_until(ms("2026-12-07T23:00:00Z"), s, e, z), None);
        assert!(parse_hhmm("7:00").is_none() && parse_hhmm("24:00").is_none());
        assert!(parse_zone("Mars/Olympus").is_none());
        assert_eq!(quiet_until(0, s, s, z), None);
    }
}
