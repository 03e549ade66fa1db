//! Media playlist writers: LL-HLS (fMP4 parts) and classic HLS (MPEG-TS).
//!
//! Written by hand with `fmt::Write` because `m3u8-rs` cannot write any LL-HLS tag
//! (EXT-X-SERVER-CONTROL, PART-INF, PART, PRELOAD-HINT and SKIP are dropped or misplaced by
//! its writer; see CRATES.md). Tests parse the output back with `m3u8-rs`.
//!
//! Spec: RFC 8216bis (draft 17) §4.4.3 (media playlist tags), §4.4.4.9 (EXT-X-PART),
//! §4.4.5.2 (PRELOAD-HINT), §6.2.5.1 (delta updates), §6.2.2 (live playlists).

use std::fmt::{self, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use super::window::{Flavor, Part, Window};

/// One entry of a multivariant playlist.
#[derive(Debug, Clone)]
pub(crate) struct Variant {
    /// `None`: the camera's own stream; `Some(name)`: its ABR rendition.
    pub(crate) rendition: Option<String>,
    pub(crate) resolution: Option<(u32, u32)>,
    /// RFC 6381 codec strings.
    pub(crate) codecs: Vec<String>,
    /// Measured bits per second (0: not known yet).
    pub(crate) bandwidth: u64,
}

/// The multivariant playlist of `camera` (RFC 8216bis §4.4.6), served at
/// `/hls/{camera}/master.m3u8` (LL-HLS) or `/hls/{camera}/ts/master.m3u8`: URIs are relative
/// to it, and carry the viewer's `token`. Written with m3u8-rs, which handles every tag a
/// multivariant playlist needs here (it is the media playlists it cannot write).
pub(crate) fn master(
    camera: &str,
    variants: &[Variant],
    flavor: Flavor,
    token: Option<&str>,
) -> String {
    let q = token.map(|t| format!("?token={t}")).unwrap_or_default();
    let up = match flavor {
        Flavor::Fmp4 => "../",
        Flavor::Ts => "../../",
    };
    let leaf = match flavor {
        Flavor::Fmp4 => "playlist.m3u8",
        Flavor::Ts => "ts/playlist.m3u8",
    };
    let list = m3u8_rs::MasterPlaylist {
        version: Some(if flavor == Flavor::Fmp4 { 9 } else { 3 }),
        independent_segments: true,
        variants: variants
            .iter()
            .map(|v| m3u8_rs::VariantStream {
                uri: match &v.rendition {
                    None => format!("playlist.m3u8{q}"),
                    Some(name) => format!(
                        "{up}{camera}{}{name}/{leaf}{q}",
                        crate::abr::RENDITION_SEPARATOR
                    ),
                },
                // Peak rate: the measured average with room for the GOP's keyframes;
                // a stream too new to measure claims a modest 500 kbit/s.
                bandwidth: if v.bandwidth > 0 {
                    v.bandwidth * 6 / 5
                } else {
                    500_000
                },
                average_bandwidth: (v.bandwidth > 0).then_some(v.bandwidth),
                codecs: (!v.codecs.is_empty()).then(|| v.codecs.join(",")),
                resolution: v.resolution.map(|(w, h)| m3u8_rs::Resolution {
                    width: u64::from(w),
                    height: u64::from(h),
                }),
                ..m3u8_rs::VariantStream::default()
            })
            .collect(),
        ..m3u8_rs::MasterPlaylist::default()
    };
    let mut out = Vec::new();
    list.write_to(&mut out)
        .expect("writing to a Vec does not fail");
    String::from_utf8(out).expect("m3u8-rs writes UTF-8")
}

/// Names of the media files of a window. One place, so the playlist writer and the HTTP
/// router agree.
pub(crate) mod names {
    use std::fmt::{self, Display};

    /// `{prefix}-{msn}.m4s` or `{prefix}-{msn}.ts`.
    pub(crate) struct SegmentName<'a> {
        pub(crate) prefix: &'a str,
        pub(crate) msn: u64,
        pub(crate) ts: bool,
    }

    impl Display for SegmentName<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            let ext = if self.ts { "ts" } else { "m4s" };
            write!(f, "{}-{}.{ext}", self.prefix, self.msn)
        }
    }

    /// `{prefix}-{msn}.{part}.m4s`.
    pub(crate) struct PartName<'a> {
        pub(crate) prefix: &'a str,
        pub(crate) msn: u64,
        pub(crate) part: usize,
    }

    impl Display for PartName<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{}-{}.{}.m4s", self.prefix, self.msn, self.part)
        }
    }

    /// `{prefix}-init{id}.mp4`.
    pub(crate) struct InitName<'a> {
        pub(crate) prefix: &'a str,
        pub(crate) id: u32,
    }

    impl Display for InitName<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{}-init{}.mp4", self.prefix, self.id)
        }
    }

    /// A media file name parsed back.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) enum Parsed {
        /// A whole segment.
        Segment(u64),
        /// A part.
        Part(u64, usize),
        /// An init segment.
        Init(u32),
    }

    /// Parses a file name of a window whose prefix is `prefix`; `None` when it is not one
    /// of ours (wrong prefix included: a stale name from an earlier stream start).
    pub(crate) fn parse(name: &str, prefix: &str, ts: bool) -> Option<Parsed> {
        let rest = name.strip_prefix(prefix)?.strip_prefix('-')?;
        if ts {
            let msn = rest.strip_suffix(".ts")?;
            return digits(msn).map(Parsed::Segment);
        }
        if let Some(id) = rest.strip_prefix("init") {
            let id = id.strip_suffix(".mp4")?;
            return digits(id)
                .and_then(|i| u32::try_from(i).ok())
                .map(Parsed::Init);
        }
        let stem = rest.strip_suffix(".m4s")?;
        match stem.split_once('.') {
            None => digits(stem).map(Parsed::Segment),
            Some((msn, part)) => {
                let part = usize::try_from(digits(part)?).ok()?;
                Some(Parsed::Part(digits(msn)?, part))
            }
        }
    }

    fn digits(s: &str) -> Option<u64> {
        if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    }
}

use names::{InitName, PartName, SegmentName};

/// How to render: the query appended to every URI (e.g. `?token=...`, or empty) and whether
/// this is a delta update (`_HLS_skip=YES`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Render<'a> {
    /// Appended verbatim to every media URI.
    pub(crate) query: &'a str,
    /// Produce a delta update (LL-HLS only).
    pub(crate) skip: bool,
}

/// Renders the media playlist of `w`.
pub(crate) fn render(w: &Window, r: Render<'_>) -> String {
    let mut out = String::with_capacity(512 + 160 * w.segments.len() * 4);
    match w.flavor {
        Flavor::Fmp4 => write_ll(&mut out, w, r),
        Flavor::Ts => write_ts(&mut out, w, r),
    }
    .expect("writing to a String cannot fail");
    out
}

/// How many leading segments a delta update may skip: those that start more than
/// `CAN-SKIP-UNTIL` seconds before the end of the playlist (§6.2.5.1).
pub(crate) fn skippable(w: &Window) -> usize {
    let mut from_end = w
        .partial
        .as_ref()
        .map_or(0.0, |p| p.parts.iter().map(|x| x.duration).sum::<f64>());
    let mut keep = 0;
    for s in w.segments.iter().rev() {
        from_end += s.duration;
        if from_end > w.skip_until {
            break;
        }
        keep += 1;
    }
    // The segment straddling the boundary is kept too (its start is within reach).
    let keep = (keep + 1).min(w.segments.len());
    w.segments.len() - keep
}

fn write_ll(out: &mut String, w: &Window, r: Render<'_>) -> fmt::Result {
    let prefix = &*w.prefix;
    let q = r.query;
    // Version 9: EXT-X-SKIP (delta updates); the other LL-HLS tags need 6+.
    writeln!(out, "#EXTM3U\n#EXT-X-VERSION:9")?;
    writeln!(out, "#EXT-X-TARGETDURATION:{}", w.target_duration)?;
    writeln!(
        out,
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL={:.3},PART-HOLD-BACK={:.3}",
        w.skip_until,
        w.part_hold_back * w.part_target
    )?;
    writeln!(out, "#EXT-X-PART-INF:PART-TARGET={:.3}", w.part_target)?;
    writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{}", w.first_msn())?;
    // hls.js requires DISCONTINUITY-SEQUENCE before EXT-X-SKIP in delta playlists.
    writeln!(
        out,
        "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
        w.discontinuity_sequence
    )?;
    let skipped = if r.skip && !w.ended { skippable(w) } else { 0 };
    if skipped > 0 {
        writeln!(out, "#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}")?;
    }
    // Parts are listed for segments close to the live edge only (§4.4.4.9: parts older than
    // three target durations SHOULD be removed).
    let total = w.total_duration();
    let mut start = 0.0;
    let mut map: Option<u32> = None;
    for (i, s) in w.segments.iter().enumerate() {
        let seg_start = start;
        start += s.duration;
        if i < skipped {
            continue;
        }
        if s.discontinuity && i > 0 {
            writeln!(out, "#EXT-X-DISCONTINUITY")?;
        }
        if map != Some(s.init) {
            write_map(out, prefix, s.init, q)?;
            map = Some(s.init);
        }
        write_pdt(out, s.program_date_time)?;
        if total - seg_start <= w.parts_horizon {
            for (n, p) in s.parts.iter().enumerate() {
                write_part(
                    out,
                    p,
                    &PartName {
                        prefix,
                        msn: s.msn,
                        part: n,
                    },
                    q,
                )?;
            }
        }
        writeln!(
            out,
            "#EXTINF:{:.5},\n{}{q}",
            s.duration,
            SegmentName {
                prefix,
                msn: s.msn,
                ts: false
            }
        )?;
    }
    if let Some(p) = w.partial.as_ref().filter(|p| !p.parts.is_empty()) {
        if p.discontinuity && !w.segments.is_empty() {
            writeln!(out, "#EXT-X-DISCONTINUITY")?;
        }
        if map != Some(p.init) {
            write_map(out, prefix, p.init, q)?;
        }
        write_pdt(out, p.program_date_time)?;
        for (n, part) in p.parts.iter().enumerate() {
            let name = PartName {
                prefix,
                msn: p.msn,
                part: n,
            };
            write_part(out, part, &name, q)?;
        }
    }
    if w.ended {
        writeln!(out, "#EXT-X-ENDLIST")?;
    } else {
        let (msn, part) = w.next_part();
        writeln!(
            out,
            "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{}{q}\"",
            PartName { prefix, msn, part }
        )?;
    }
    Ok(())
}

fn write_ts(out: &mut String, w: &Window, r: Render<'_>) -> fmt::Result {
    let prefix = &*w.prefix;
    writeln!(out, "#EXTM3U\n#EXT-X-VERSION:3")?;
    writeln!(out, "#EXT-X-TARGETDURATION:{}", w.target_duration)?;
    writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{}", w.first_msn())?;
    writeln!(
        out,
        "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
        w.discontinuity_sequence
    )?;
    for (i, s) in w.segments.iter().enumerate() {
        if s.discontinuity && i > 0 {
            writeln!(out, "#EXT-X-DISCONTINUITY")?;
        }
        write_pdt(out, s.program_date_time)?;
        writeln!(
            out,
            "#EXTINF:{:.5},\n{}{}",
            s.duration,
            SegmentName {
                prefix,
                msn: s.msn,
                ts: true
            },
            r.query
        )?;
    }
    if w.ended {
        writeln!(out, "#EXT-X-ENDLIST")?;
    }
    Ok(())
}

fn write_map(out: &mut String, prefix: &str, id: u32, q: &str) -> fmt::Result {
    writeln!(out, "#EXT-X-MAP:URI=\"{}{q}\"", InitName { prefix, id })
}

fn write_part(out: &mut String, p: &Part, name: &PartName<'_>, q: &str) -> fmt::Result {
    write!(
        out,
        "#EXT-X-PART:DURATION={:.5},URI=\"{name}{q}\"",
        p.duration
    )?;
    if p.independent {
        out.push_str(",INDEPENDENT=YES");
    }
    out.push('\n');
    Ok(())
}

fn write_pdt(out: &mut String, t: SystemTime) -> fmt::Result {
    writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", Rfc3339Millis(t))
}

/// Formats a time as `2026-11-30T05:23:16.123Z`.
pub(crate) struct Rfc3339Millis(pub(crate) SystemTime);

impl fmt::Display for Rfc3339Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = d.as_secs();
        let days = (secs / 86_400) as i64;
        let rem = secs % 86_400;
        // Civil-from-days (H. Hinnant's algorithm), proleptic Gregorian calendar.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
            rem / 3_600,
            rem % 3_600 / 60,
            rem % 60,
            d.subsec_millis()
        )
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::names::{Parsed, parse};
    use super::*;
    use crate::hls::window::tests::window;

    fn parse_media(text: &str) -> m3u8_rs::MediaPlaylist {
        match m3u8_rs::parse_playlist_res(text.as_bytes()) {
            Ok(m3u8_rs::Playlist::MediaPlaylist(p)) => p,
            other => panic!("not a media playlist: {other:?}\n{text}"),
        }
    }

    #[test]
    fn ll_playlist_has_every_tag_and_parses() {
        let mut w = window(5, 4, 3);
        w.target_duration = 2;
        w.part_target = 0.22;
        let text = render(&w, Render::default());
        let p = parse_media(&text);
        assert_eq!(p.media_sequence, 5);
        assert_eq!(p.segments.len(), 4);
        assert_eq!(p.segments[0].uri, "abcd-5.m4s");
        assert!(text.contains(
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12.000,PART-HOLD-BACK=0.550"
        ));
        assert!(text.contains("#EXT-X-PART-INF:PART-TARGET=0.220"));
        assert!(text.contains("#EXT-X-PART:DURATION=0.20000,URI=\"abcd-9.0.m4s\",INDEPENDENT=YES"));
        assert!(text.contains("#EXT-X-PART:DURATION=0.20000,URI=\"abcd-9.2.m4s\"\n"));
        assert!(text.ends_with("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"abcd-9.3.m4s\"\n"));
        assert!(text.contains("#EXT-X-MAP:URI=\"abcd-init1.mp4\""));
        assert!(text.contains("#EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:00:00.000Z"));
        assert!(!text.contains("ENDLIST"));
    }

    #[test]
    fn parts_only_near_the_live_edge() {
        let mut w = window(0, 10, 0);
        w.parts_horizon = 4.0; // each test segment is 2 s
        let text = render(&w, Render::default());
        assert!(!text.contains("abcd-7.0.m4s"));
        assert!(text.contains("abcd-8.0.m4s"));
        assert!(text.contains("abcd-9.9.m4s"));
    }

    #[test]
    fn token_query_goes_on_every_uri() {
        let w = window(0, 2, 1);
        let text = render(
            &w,
            Render {
                query: "?token=t1",
                skip: false,
            },
        );
        for line in text.lines() {
            if let Some(i) = line.find("URI=\"") {
                assert!(line[i..].contains("?token=t1\""), "{line}");
            } else if !line.starts_with('#') {
                assert!(line.ends_with("?token=t1"), "{line}");
            }
        }
    }

    #[test]
    fn delta_update_skips_old_segments() {
        let mut w = window(100, 10, 2);
        w.skip_until = 6.0;
        let full = parse_media(&render(&w, Render::default()));
        let text = render(
            &w,
            Render {
                query: "",
                skip: true,
            },
        );
        // 0.4 s of parts + 2 s segments: 108 and 109 end within 6 s of the end, 107
        // straddles the boundary and is kept too, so 100..=106 are skipped.
        assert_eq!(skippable(&w), 7);
        assert!(text.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=7\n"));
        let ds = text.find("#EXT-X-DISCONTINUITY-SEQUENCE").unwrap();
        assert!(ds < text.find("#EXT-X-SKIP").unwrap());
        let delta = parse_media(&text);
        assert_eq!(delta.media_sequence, full.media_sequence);
        assert_eq!(delta.segments.len(), 3);
        assert_eq!(delta.segments[0].uri, full.segments[7].uri);
        // The map still comes before the first listed segment.
        assert!(text.find("#EXT-X-MAP").unwrap() < text.find("abcd-107.m4s").unwrap());
    }

    #[test]
    fn ended_playlist_has_endlist_and_no_hint() {
        let mut w = window(0, 3, 0);
        w.partial = None;
        w.ended = true;
        let text = render(
            &w,
            Render {
                query: "",
                skip: true,
            },
        );
        assert!(text.ends_with("#EXT-X-ENDLIST\n"));
        assert!(!text.contains("PRELOAD-HINT"));
        assert!(parse_media(&text).end_list);
    }

    #[test]
    fn discontinuities_are_marked() {
        let mut w = window(0, 3, 1);
        let s = std::sync::Arc::get_mut(&mut w.segments[2]).unwrap();
        s.discontinuity = true;
        s.init = 2;
        w.inits.push((2, bytes::Bytes::from_static(b"i2")));
        w.partial.as_mut().unwrap().init = 2;
        let text = render(&w, Render::default());
        let p = parse_media(&text);
        assert!(p.segments[2].discontinuity);
        assert!(!p.segments[1].discontinuity);
        assert_eq!(text.matches("#EXT-X-MAP").count(), 2);
        assert!(text.contains("abcd-init2.mp4"));
    }

    #[test]
    fn ts_playlist_parses() {
        let mut w = window(3, 2, 0);
        w.flavor = Flavor::Ts;
        w.partial = None;
        let text = render(&w, Render::default());
        let p = parse_media(&text);
        assert_eq!(p.version, Some(3));
        assert_eq!(p.media_sequence, 3);
        assert_eq!(p.segments[1].uri, "abcd-4.ts");
        assert!(!text.contains("EXT-X-PART"));
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(parse("ab-12.m4s", "ab", false), Some(Parsed::Segment(12)));
        assert_eq!(parse("ab-12.3.m4s", "ab", false), Some(Parsed::Part(12, 3)));
        assert_eq!(parse("ab-init2.mp4", "ab", false), Some(Parsed::Init(2)));
        assert_eq!(parse("ab-7.ts", "ab", true), Some(Parsed::Segment(7)));
        assert_eq!(parse("zz-12.m4s", "ab", false), None);
        assert_eq!(parse("ab-12.m4s", "ab", true), None);
        assert_eq!(parse("ab-1x.m4s", "ab", false), None);
        assert_eq!(parse("ab-.m4s", "ab", false), None);
        assert_eq!(parse("ab-99999999999999999999.m4s", "ab", false), None);
        let name = PartName {
            prefix: "ab",
            msn: 4,
            part: 2,
        }
        .to_string();
        assert_eq!(parse(&name, "ab", false), Some(Parsed::Part(4, 2)));
    }

    #[test]
    fn rfc3339() {
        let t = UNIX_EPOCH + Duration::from_millis(1_796_016_196_123);
        assert_eq!(Rfc3339Millis(t).to_string(), "2026-11-30T05:23:16.123Z");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400); // leap day
        assert_eq!(Rfc3339Millis(t).to_string(), "2000-02-29T00:00:00.000Z");
    }
}
