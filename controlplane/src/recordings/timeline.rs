//! A camera's recorded timeline: the wall-clock intervals covered by recorded fragments and
//! the gaps between them, within a requested window. Pure; the API adds the markers
//! (alerts, bookmarks).
//!
//! Fragments closer than [`TOLERANCE`] are one interval: wall-clock stamps of consecutive
//! fragments jitter by a few milliseconds, and a reconnect or a dropped fragment shows as a
//! real hole.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::index::IndexEntry;

/// Holes up to this long are not gaps.
pub const TOLERANCE: Duration = Duration::from_millis(500);

/// An interval in Unix ms, `start < end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Unix ms, inclusive.
    pub start: i64,
    /// Unix ms, exclusive.
    pub end: i64,
}

fn ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The covered intervals of `[from, to)` given every fragment (any order of files, each
/// file's fragments in order), merged and clipped.
pub fn covered<'a>(
    entries: impl IntoIterator<Item = &'a IndexEntry>,
    from: i64,
    to: i64,
) -> Vec<Span> {
    let tolerance = i64::try_from(TOLERANCE.as_millis()).unwrap_or(0);
    let mut raw: Vec<Span> = entries
        .into_iter()
        .map(|e| Span {
            start: ms(e.wall_time),
            end: ms(e.wall_end()),
        })
        .filter(|s| s.end > from && s.start < to)
        .collect();
    raw.sort_by_key(|s| (s.start, s.end));
    let mut out: Vec<Span> = Vec::new();
    for s in raw {
        let s = Span {
            start: s.start.max(from),
            end: s.end.min(to),
        };
        match out.last_mut() {
            Some(last) if s.start <= last.end + tolerance => last.end = last.end.max(s.end),
            _ => out.push(s),
        }
    }
    out.retain(|s| s.end > s.start);
    out
}

/// The parts of `[from, to)` not in `covered` (which must be sorted and disjoint).
pub fn gaps(covered: &[Span], from: i64, to: i64) -> Vec<Span> {
    let mut out = Vec::new();
    let mut at = from;
    for s in covered {
        if s.start > at {
            out.push(Span {
                start: at,
                end: s.start,
            });
        }
        at = at.max(s.end);
    }
    if at < to {
        out.push(Span { start: at, end: to });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(start_ms: u64, dur_ms: u64) -> IndexEntry {
        IndexEntry {
            offset: 0,
            size: 1,
            media_time: Duration::ZERO,
            duration: Duration::from_millis(dur_ms),
            wall_time: UNIX_EPOCH + Duration::from_millis(start_ms),
            independent: true,
            discontinuity: false,
        }
    }

    #[test]
    fn merges_jitter_and_reports_holes() {
        let entries = [
            e(1000, 200),
            e(1203, 200),
            e(1400, 200),
            e(5000, 200),
            e(5200, 200),
        ];
        let c = covered(&entries, 0, 10_000);
        assert_eq!(
            c,
            [
                Span {
                    start: 1000,
                    end: 1600
                },
                Span {
                    start: 5000,
                    end: 5400
                }
            ]
        );
        assert_eq!(
            gaps(&c, 0, 10_000),
            [
                Span {
                    start: 0,
                    end: 1000
                },
                Span {
                    start: 1600,
                    end: 5000
                },
                Span {
                    start: 5400,
                    end: 10_000
                }
            ]
        );
        // Clipped to the window.
        assert_eq!(
            covered(&entries, 1100, 5100),
            [
                Span {
                    start: 1100,
                    end: 1600
                },
                Span {
                    start: 5000,
                    end: 5100
                }
            ]
        );
        assert!(covered(&entries, 2000, 4000).is_empty());
        assert_eq!(
            gaps(&[], 2000, 4000),
            [Span {
                start: 2000,
                end: 4000
            }]
        );
    }
}
