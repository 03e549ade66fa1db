//! HLS VOD playlists over recording files (RFC 8216bis): any wall-clock range of a camera,
//! spanning files, as `EXT-X-BYTERANGE` segments of the fMP4 files on disk.
//!
//! Pure: the caller hands over the files' indexes (from the store, never from the files)
//! and a function naming each file's URI. Consecutive fragments of a file are merged into
//! segments of about `target`, each starting on an independent fragment, so a 1-hour file
//! of 200 ms fragments is a playlist of ~1800 lines rather than 18000. Every segment
//! carries `EXT-X-PROGRAM-DATE-TIME` so players and the dashboard map it to wall time.
//!
//! Files of one recording session continue one another's decode times (the index's media
//! times run on across them): a file that starts where the previous one ended follows it
//! with no tag at all, on the previous `EXT-X-MAP`. `EXT-X-MAP` names the live init segment
//! the recorder keeps in a `free` box after each file's own init segment (the same bytes in
//! every file of a session, and no edit list: see `record::mp4` in the data plane), so it is
//! given once per session. Where the timeline really breaks (a new session, a hole, dropped
//! fragments, a break inside a file) comes `EXT-X-DISCONTINUITY`, and a new `EXT-X-MAP` when
//! the file changes. Files recorded before decode times ran across files (no `free` box:
//! their first fragment follows the init segment, and their media times start at 0) get
//! their own init segment as `EXT-X-MAP` and a discontinuity each.

use std::fmt::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::index::IndexEntry;

/// One file of the range, in time order.
#[derive(Debug, Clone, Copy)]
pub struct VodFile<'a> {
    /// Recording id (handed to the URI function).
    pub id: &'a str,
    /// Init segment bytes at the start of the file.
    pub init_size: u64,
    /// Its fragments, in file order: all of them, the file's first included.
    pub entries: &'a [IndexEntry],
}

/// Size of a box header (the `free` box around the live init).
const BOX_HEADER: u64 = 8;
/// Media times of consecutive fragments are kept in whole microseconds, each rounded down:
/// within this, one continues the other.
const MEDIA_SLACK: Duration = Duration::from_millis(1);

impl VodFile<'_> {
    /// The init segment players get, as (offset, length): the live init in the `free` box
    /// between the file's own init segment and its first fragment, or (older files) the
    /// file's own init segment.
    fn map(&self) -> (u64, u64) {
        let inner = self.init_size + BOX_HEADER;
        match self.entries.first() {
            Some(e) if e.offset > inner => (inner, e.offset - inner),
            _ => (0, self.init_size),
        }
    }
}

/// The bytes of one file a playlist uses, which is what its media URI should grant: the
/// span of its fragments in the range and, where the playlist's `EXT-X-MAP` points into
/// this file, the init segment. Inclusive ends, as in a `Range` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// First and last byte of the fragments used.
    pub media: (u64, u64),
    /// First and last byte of the init segment, when the playlist maps it from this file.
    pub init: Option<(u64, u64)>,
}

/// A built playlist.
#[derive(Debug, Clone, PartialEq)]
pub struct Vod {
    /// The `.m3u8` text.
    pub text: String,
    /// Media segments in it.
    pub segments: usize,
    /// Files it spans.
    pub files: usize,
    /// Sum of the segment durations.
    pub duration: Duration,
}

struct Segment {
    file: usize,
    offset: u64,
    size: u64,
    duration: Duration,
    wall: SystemTime,
    /// `EXT-X-DISCONTINUITY` before it.
    discontinuity: bool,
    /// `EXT-X-MAP` (offset, length in the segment's file) before it.
    map: Option<(u64, u64)>,
}

/// The fragments of `entries` overlapping `[from, to)`, widened back to an independent
/// fragment so decoding can start; `None` when nothing playable overlaps.
fn select(entries: &[IndexEntry], from: SystemTime, to: SystemTime) -> Option<(usize, usize)> {
    let first = entries.iter().position(|e| e.wall_end() > from)?;
    let last = entries.iter().rposition(|e| e.wall_time < to)?;
    if last < first {
        return None;
    }
    let start = match entries[..=first].iter().rposition(|e| e.independent) {
        Some(s) => s,
        // Nothing to start decoding from before the range: start at its first keyframe.
        None => first + entries[first..=last].iter().position(|e| e.independent)?,
    };
    Some((start, last))
}

/// What an export of a range reads: the init segment and byte spans of files, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportPlan {
    /// (file index, offset, length) of the init segment players get (the first file's).
    pub init: (usize, u64, u64),
    /// (file index, offset, length) of consecutive fragments, in order.
    pub spans: Vec<(usize, u64, u64)>,
    /// Wall-clock end of the last fragment exported.
    pub end: SystemTime,
    /// The export stopped before the range's end at a break of the timeline (a new
    /// session, a hole, dropped fragments, a change of init): one file holds one timeline.
    pub stopped: bool,
}

/// Plans the export of `[from, to)` over `files` as one fragmented MP4: the first used
/// file's init segment (the session's live init, which has no edit list), then its
/// fragments and those of the files continuing the same session, up to the first break.
/// `None` when no fragment overlaps.
pub fn export_plan(files: &[VodFile<'_>], from: SystemTime, to: SystemTime) -> Option<ExportPlan> {
    let mut plan: Option<ExportPlan> = None;
    // The map of the previous file used and the media end of its last fragment.
    let mut previous: Option<((u64, u64), Duration)> = None;
    'files: for (fi, f) in files.iter().enumerate() {
        let Some((start, last)) = select(f.entries, from, to) else {
            continue;
        };
        let map = f.map();
        let first = &f.entries[start];
        if let (Some((prev_map, media_end)), Some(p)) = (previous, plan.as_mut()) {
            let same_session = prev_map.0 > 0
                && map.0 > 0
                && prev_map.1 == map.1
                && first.independent
                && !first.discontinuity
                && first.media_time.abs_diff(media_end) <= MEDIA_SLACK;
            if !same_session {
                p.stopped = true;
                break;
            }
        }
        let p = plan.get_or_insert_with(|| ExportPlan {
            init: (fi, map.0, map.1),
            spans: Vec::new(),
            end: first.wall_time,
            stopped: false,
        });
        let mut span: Option<(u64, u64)> = None;
        for (i, e) in f.entries[start..=last].iter().enumerate() {
            if i > 0 && e.discontinuity {
                if let Some((a, b)) = span {
                    p.spans.push((fi, a, b - a));
                }
                p.stopped = true;
                break 'files;
            }
            span = match span {
                Some((a, b)) if b == e.offset => Some((a, e.offset + e.size)),
                Some((a, b)) => {
                    p.spans.push((fi, a, b - a));
                    Some((e.offset, e.offset + e.size))
                }
                None => Some((e.offset, e.offset + e.size)),
            };
            p.end = e.wall_end();
        }
        if let Some((a, b)) = span {
            p.spans.push((fi, a, b - a));
        }
        let last_entry = &f.entries[last];
        previous = Some((map, last_entry.media_time + last_entry.duration));
    }
    plan
}

fn seconds(d: Duration) -> String {
    format!("{}.{:03}", d.as_secs(), d.subsec_millis())
}

fn date(t: SystemTime) -> String {
    let ms = t
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    crate::clock::rfc3339(ms)
}

/// Builds the playlist of `[from, to)` over `files`; `None` when no fragment overlaps.
/// `uri(id, grant)` names a file's media URI (relative to the playlist, token included),
/// given the bytes of the file the playlist uses.
pub fn build(
    files: &[VodFile<'_>],
    from: SystemTime,
    to: SystemTime,
    target: Duration,
    uri: &dyn Fn(&str, Grant) -> String,
) -> Option<Vod> {
    let mut segments: Vec<Segment> = Vec::new();
    let mut used_files = 0;
    // The previous file used: its init in the playlist and its last fragment's media end.
    let mut previous: Option<((u64, u64), Duration)> = None;
    for (fi, f) in files.iter().enumerate() {
        let Some((start, last)) = select(f.entries, from, to) else {
            continue;
        };
        used_files += 1;
        let map = f.map();
        let first = &f.entries[start];
        // The same session going on: the same kind of init (a live init, same length),
        // decoding on from where the previous file stopped.
        let same_session = previous.is_some_and(|(prev_map, media_end)| {
            prev_map.0 > 0
                && map.0 > 0
                && prev_map.1 == map.1
                && first.independent
                && !first.discontinuity
                && first.media_time.abs_diff(media_end) <= MEDIA_SLACK
        });
        let last_entry = &f.entries[last];
        previous = Some((map, last_entry.media_time + last_entry.duration));
        let mut file_start = true;
        let mut end = 0u64;
        for e in &f.entries[start..=last] {
            let segment_full =
                e.independent && segments.last().is_some_and(|s| s.duration >= target);
            let breaks = file_start || e.discontinuity || e.offset != end || segment_full;
            let continues = !breaks;
            if continues && let Some(s) = segments.last_mut() {
                s.size += e.size;
                s.duration += e.duration;
            } else {
                segments.push(Segment {
                    file: fi,
                    offset: e.offset,
                    size: e.size,
                    duration: e.duration,
                    wall: e.wall_time,
                    discontinuity: (file_start && !segments.is_empty() && !same_session)
                        || (!file_start && (e.discontinuity || e.offset != end)),
                    map: (file_start && !same_session).then_some(map),
                });
            }
            end = e.offset + e.size;
            file_start = false;
        }
    }
    if segments.is_empty() {
        return None;
    }
    let longest = segments
        .iter()
        .map(|s| s.duration)
        .max()
        .unwrap_or_default();
    let target_s = longest.as_secs() + u64::from(longest.subsec_nanos() > 0);
    let mut text = String::with_capacity(128 + segments.len() * 160);
    let _ = write!(
        text,
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:{}\n#EXT-X-MEDIA-SEQUENCE:0\n\
         #EXT-X-PLAYLIST-TYPE:VOD\n",
        target_s.max(1)
    );
    let mut grants: Vec<Option<Grant>> = vec![None; files.len()];
    for s in &segments {
        let last = s.offset + s.size.max(1) - 1;
        let g = grants[s.file].get_or_insert(Grant {
            media: (s.offset, last),
            init: None,
        });
        g.media = (g.media.0.min(s.offset), g.media.1.max(last));
        if let Some((offset, len)) = s.map {
            g.init = Some((offset, offset + len.max(1) - 1));
        }
    }
    let uris: Vec<Option<String>> = files
        .iter()
        .zip(&grants)
        .map(|(f, g)| g.map(|g| uri(f.id, g)))
        .collect();
    let mut total = Duration::ZERO;
    for s in &segments {
        let u = uris[s.file].as_deref().unwrap_or_default();
        if s.discontinuity {
            text.push_str("#EXT-X-DISCONTINUITY\n");
        }
        if let Some((offset, len)) = s.map {
            let _ = writeln!(text, "#EXT-X-MAP:URI=\"{u}\",BYTERANGE=\"{len}@{offset}\"");
        }
        let _ = write!(
            text,
            "#EXT-X-PROGRAM-DATE-TIME:{}\n#EXTINF:{},\n#EXT-X-BYTERANGE:{}@{}\n{u}\n",
            date(s.wall),
            seconds(s.duration),
            s.size,
            s.offset
        );
        total += s.duration;
    }
    text.push_str("#EXT-X-ENDLIST\n");
    Some(Vod {
        text,
        segments: segments.len(),
        files: used_files,
        duration: total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_796_047_200_000;

    /// A file of `n` 200 ms fragments starting at `wall_ms`, keyframe every 2 s, 1000 bytes
    /// each after a 700-byte init.
    fn file(n: usize, wall_ms: u64) -> Vec<IndexEntry> {
        (0..n)
            .map(|i| IndexEntry {
                offset: 700 + i as u64 * 1000,
                size: 1000,
                media_time: Duration::from_millis(i as u64 * 200),
                duration: Duration::from_millis(200),
                wall_time: UNIX_EPOCH + Duration::from_millis(wall_ms + i as u64 * 200),
                independent: i.is_multiple_of(10),
                discontinuity: false,
            })
            .collect()
    }

    fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(ms)
    }

    fn lines(v: &Vod) -> Vec<&str> {
        v.text.lines().collect()
    }

    #[test]
    fn spans_two_files_with_discontinuity_and_maps() {
        let a = file(50, T0); // 10 s
        let b = file(50, T0 + 10_000);
        let files = [
            VodFile {
                id: "a",
                init_size: 700,
                entries: &a,
            },
            VodFile {
                id: "b",
                init_size: 700,
                entries: &b,
            },
        ];
        let v = build(
            &files,
            at(T0 + 5_000),
            at(T0 + 15_000),
            Duration::from_secs(2),
            &|id, _| format!("{id}.mp4?token=t"),
        )
        .unwrap();
        assert_eq!(v.files, 2);
        assert_eq!(v.segments, 6, "{}", v.text);
        assert_eq!(v.duration, Duration::from_secs(11));
        let l = lines(&v);
        assert_eq!(l[0], "#EXTM3U");
        assert!(l.contains(&"#EXT-X-TARGETDURATION:2"));
        assert_eq!(l.last(), Some(&"#EXT-X-ENDLIST"));
        let maps: Vec<_> = l.iter().filter(|x| x.starts_with("#EXT-X-MAP")).collect();
        assert_eq!(
            maps,
            [
                &"#EXT-X-MAP:URI=\"a.mp4?token=t\",BYTERANGE=\"700@0\"",
                &"#EXT-X-MAP:URI=\"b.mp4?token=t\",BYTERANGE=\"700@0\""
            ]
        );
        assert_eq!(
            l.iter().filter(|x| **x == "#EXT-X-DISCONTINUITY").count(),
            1
        );
        // The range starts at the keyframe at 4 s of file a: fragment 20, 10 fragments.
        let first = l
            .iter()
            .position(|x| x.starts_with("#EXT-X-BYTERANGE"))
            .unwrap();
        assert_eq!(l[first], "#EXT-X-BYTERANGE:10000@20700");
        assert_eq!(l[first - 1], "#EXTINF:2.000,");
        assert_eq!(
            l[first - 2],
            "#EXT-X-PROGRAM-DATE-TIME:2026-11-30T14:00:04Z"
        );
        // The discontinuity comes right before b's map.
        let d = l.iter().position(|x| *x == "#EXT-X-DISCONTINUITY").unwrap();
        assert!(l[d + 1].starts_with("#EXT-X-MAP:URI=\"b.mp4"));
    }

    #[test]
    fn each_file_is_granted_the_bytes_the_playlist_uses() {
        let a = file(50, T0); // 10 s
        let b = file(50, T0 + 10_000);
        let files = [
            VodFile {
                id: "a",
                init_size: 700,
                entries: &a,
            },
            VodFile {
                id: "b",
                init_size: 700,
                entries: &b,
            },
        ];
        let v = build(
            &files,
            at(T0 + 5_000),
            at(T0 + 12_000),
            Duration::from_secs(2),
            &|id, g| {
                let init = g
                    .init
                    .map_or(String::new(), |(a, b)| format!("&init={a}-{b}"));
                format!("{id}.mp4?bytes={}-{}{init}", g.media.0, g.media.1)
            },
        )
        .unwrap();
        let l = lines(&v);
        // a: from the keyframe at 4 s (fragment 20) to its end; b: its first 2 s (fragments
        // 0..10, the last one starting before 12 s); each with its own init.
        assert!(
            l.contains(&"a.mp4?bytes=20700-50699&init=0-699"),
            "{}",
            v.text
        );
        assert!(
            l.contains(&"b.mp4?bytes=700-10699&init=0-699"),
            "{}",
            v.text
        );
        assert!(
            l.iter()
                .filter(|x| !x.starts_with('#'))
                .all(|x| x.starts_with("a.mp4?bytes=20700-50699")
                    || x.starts_with("b.mp4?bytes=700-10699")),
            "{}",
            v.text
        );
    }

    /// A file as the recorder writes it since decode times run across files: a 700-byte
    /// init, the 600-byte live init in a `free` box, then `n` fragments whose media times
    /// start at `media_ms` on the session's timeline.
    fn session_file(n: usize, wall_ms: u64, media_ms: u64) -> Vec<IndexEntry> {
        let mut e = file(n, wall_ms);
        for x in &mut e {
            x.offset += 608;
            x.media_time += Duration::from_millis(media_ms);
        }
        e
    }

    #[test]
    fn an_export_spans_a_session_and_stops_at_a_break() {
        let a = session_file(50, T0, 0);
        let b = session_file(50, T0 + 10_000, 10_000);
        // A new session after a hole: its timeline starts at 0 again.
        let c = session_file(50, T0 + 25_000, 0);
        let vf = |id, entries| VodFile {
            id,
            init_size: 700,
            entries,
        };
        let files = [vf("a", &a[..]), vf("b", &b), vf("c", &c)];
        // 6 s into a to 4 s into b: the keyframe at 6 s (fragment 30) to the fragment
        // ending at 4.2 s of b (fragment 20); one init (a's live init), one span per file.
        let p = export_plan(&files, at(T0 + 6_000), at(T0 + 14_100)).unwrap();
        assert_eq!(p.init, (0, 708, 600));
        assert_eq!(
            p.spans,
            [(0, 1308 + 30 * 1000, 20 * 1000), (1, 1308, 21 * 1000)]
        );
        assert_eq!(p.end, at(T0 + 14_200));
        assert!(!p.stopped);
        // Across the new session: the export ends with b.
        let p = export_plan(&files, at(T0 + 12_000), at(T0 + 30_000)).unwrap();
        assert_eq!(p.spans.last().unwrap().0, 1);
        assert_eq!(p.end, at(T0 + 20_000));
        assert!(p.stopped);
        // A break inside a file stops there too.
        let mut d = session_file(50, T0, 0);
        d[25].discontinuity = true;
        let files = [vf("d", &d[..])];
        let p = export_plan(&files, at(T0), at(T0 + 10_000)).unwrap();
        assert_eq!(p.spans, [(0, 1308, 25 * 1000)]);
        assert!(p.stopped);
        // Nothing in the range.
        assert!(export_plan(&files, at(T0 + 60_000), at(T0 + 70_000)).is_none());
    }

    #[test]
    fn a_session_across_files_plays_on_one_map_without_discontinuity() {
        let a = session_file(50, T0, 0);
        let b = session_file(50, T0 + 10_000, 10_000);
        let c = session_file(50, T0 + 20_000, 20_000);
        // A new session after a 5 s hole: its timeline starts at 0 again.
        let d = session_file(50, T0 + 35_000, 0);
        let vf = |id, entries| VodFile {
            id,
            init_size: 700,
            entries,
        };
        let files = [vf("a", &a[..]), vf("b", &b), vf("c", &c), vf("d", &d)];
        let v = build(
            &files,
            at(T0 + 5_000),
            at(T0 + 40_000),
            Duration::from_secs(2),
            &|id, _| format!("{id}.mp4"),
        )
        .unwrap();
        let l = lines(&v);
        let maps: Vec<_> = l.iter().filter(|x| x.starts_with("#EXT-X-MAP")).collect();
        assert_eq!(
            maps,
            [
                &"#EXT-X-MAP:URI=\"a.mp4\",BYTERANGE=\"600@708\"",
                &"#EXT-X-MAP:URI=\"d.mp4\",BYTERANGE=\"600@708\""
            ],
            "{}",
            v.text
        );
        // Only the new session breaks the timeline.
        let d_first = l.iter().position(|x| *x == "d.mp4").unwrap();
        let breaks: Vec<_> = l
            .iter()
            .enumerate()
            .filter(|(_, x)| **x == "#EXT-X-DISCONTINUITY")
            .map(|(i, _)| i)
            .collect();
        assert_eq!(breaks.len(), 1, "{}", v.text);
        assert!(l[breaks[0] + 1].starts_with("#EXT-X-MAP:URI=\"d.mp4"));
        assert!(breaks[0] < d_first);
        // b and c follow on a's map: their first segments come with no tag but the date.
        for id in ["b", "c"] {
            let i = l.iter().position(|x| *x == format!("{id}.mp4")).unwrap();
            assert_eq!(l[i - 1], "#EXT-X-BYTERANGE:10000@1308");
            assert!(l[i - 3].starts_with("#EXT-X-PROGRAM-DATE-TIME"));
            assert!(l[i - 4].ends_with(".mp4"), "{}", l[i - 4]);
        }
        assert_eq!(v.duration, Duration::from_secs(31));

        // A hole in the media (fragments dropped at the cut) breaks the timeline too.
        let mut late = session_file(50, T0 + 10_400, 10_400);
        late[0].independent = true;
        let files = [vf("a", &a[..]), vf("b", &late)];
        let v = build(
            &files,
            at(0),
            at(u64::MAX / 4),
            Duration::from_secs(2),
            &|id, _| id.into(),
        )
        .unwrap();
        assert_eq!(v.text.matches("#EXT-X-DISCONTINUITY").count(), 1);
        assert_eq!(v.text.matches("#EXT-X-MAP").count(), 2);
        // An older file (no live init copy) next to a new one: its own init, and a break.
        let old = file(50, T0 - 10_000);
        let files = [vf("old", &old[..]), vf("a", &a)];
        let v = build(
            &files,
            at(0),
            at(u64::MAX / 4),
            Duration::from_secs(2),
            &|id, _| id.into(),
        )
        .unwrap();
        assert!(
            v.text
                .contains("#EXT-X-MAP:URI=\"old\",BYTERANGE=\"700@0\"")
        );
        assert!(
            v.text
                .contains("#EXT-X-MAP:URI=\"a\",BYTERANGE=\"600@708\"")
        );
        assert_eq!(v.text.matches("#EXT-X-DISCONTINUITY").count(), 1);
    }

    #[test]
    fn breaks_inside_a_file_and_empty_ranges() {
        let mut a = file(20, T0);
        // A reconnect at fragment 10: the wall clock jumps, the bytes continue.
        for e in &mut a[10..] {
            e.wall_time += Duration::from_secs(30);
        }
        a[10].discontinuity = true;
        let files = [VodFile {
            id: "a",
            init_size: 700,
            entries: &a,
        }];
        let v = build(
            &files,
            at(0),
            at(u64::MAX / 4),
            Duration::from_secs(6),
            &|id, _| id.into(),
        )
        .unwrap();
        assert_eq!(v.segments, 2);
        assert_eq!(v.text.matches("#EXT-X-DISCONTINUITY").count(), 1);
        assert_eq!(v.text.matches("#EXT-X-MAP").count(), 1);
        assert!(
            build(
                &files,
                at(T0 + 100_000),
                at(T0 + 200_000),
                Duration::from_secs(6),
                &|id, _| id.into()
            )
            .is_none()
        );
        assert!(
            build(&[], at(0), at(1), Duration::from_secs(6), &|id, _| id
                .into())
            .is_none()
        );
    }

    #[test]
    fn without_a_keyframe_before_the_range_it_starts_at_the_next() {
        let mut a = file(30, T0);
        a[0].independent = false;
        let files = [VodFile {
            id: "a",
            init_size: 700,
            entries: &a,
        }];
        let v = build(
            &files,
            at(T0 + 500),
            at(T0 + 6_000),
            Duration::from_secs(2),
            &|id, _| id.into(),
        )
        .unwrap();
        assert!(
            v.text.contains("#EXT-X-BYTERANGE:10000@10700"),
            "{}",
            v.text
        );
    }
}
