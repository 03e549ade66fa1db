//! An HLS playlist reader that understands Low-Latency HLS, for the viewers.
//!
//! RFC 8216 and draft-pantos-hls-rfc8216bis §4.4: media sequence numbers, segments,
//! `EXT-X-PART`, `EXT-X-PRELOAD-HINT`, `EXT-X-SERVER-CONTROL`, `EXT-X-PART-INF`,
//! `EXT-X-SKIP` (delta updates) and `EXT-X-MAP`; a multivariant playlist yields its variant
//! URIs. `m3u8-rs` does not read the LL-HLS tags (shared/CRATES.md), hence this reader.
//! Unknown tags are ignored, as the RFC asks of clients. What a viewer does with the
//! result (which part comes next, when to reload) is `viewer`'s.

use thiserror::Error;

/// Why a playlist could not be read.
#[derive(Debug, Error, PartialEq)]
pub(crate) enum PlaylistError {
    /// The first line is not `#EXTM3U`.
    #[error("not an M3U8 playlist (first line {first:?})")]
    NotM3u8 { first: String },
    /// A tag's value could not be read.
    #[error("bad {tag} value {value:?}")]
    BadValue { tag: &'static str, value: String },
    /// A part or segment tag lacks its URI.
    #[error("{tag} without URI")]
    MissingUri { tag: &'static str },
}

/// One `EXT-X-PART`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Part {
    /// Media sequence number of the segment the part belongs to.
    pub(crate) msn: u64,
    /// Index of the part in its segment, from 0.
    pub(crate) index: u32,
    pub(crate) duration: f64,
    pub(crate) uri: String,
    pub(crate) independent: bool,
}

/// One complete media segment.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Segment {
    pub(crate) msn: u64,
    pub(crate) duration: f64,
    pub(crate) uri: String,
    /// Its parts, when the playlist still lists them.
    pub(crate) parts: Vec<Part>,
}

/// A media playlist.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct MediaPlaylist {
    pub(crate) target_duration: f64,
    pub(crate) media_sequence: u64,
    /// Segments an `EXT-X-SKIP` left out of this delta update.
    pub(crate) skipped: u64,
    pub(crate) part_target: Option<f64>,
    pub(crate) can_block_reload: bool,
    pub(crate) part_hold_back: Option<f64>,
    pub(crate) can_skip_until: Option<f64>,
    pub(crate) map_uri: Option<String>,
    pub(crate) segments: Vec<Segment>,
    /// Parts of the segment still being written (its msn is [`Self::next_msn`]).
    pub(crate) trailing_parts: Vec<Part>,
    pub(crate) preload_hint: Option<String>,
    pub(crate) endlist: bool,
}

/// What a playlist URL returned.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Playlist {
    Media(MediaPlaylist),
    /// A multivariant playlist: the variant URIs, in order.
    Multivariant(Vec<String>),
}

/// Splits an attribute list (`A=1,B="x,y",C=YES`) into pairs (RFC 8216 §4.2).
fn attributes(s: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        let Some(eq) = rest.find('=') else { break };
        let key = rest[..eq].trim();
        let after = &rest[eq + 1..];
        let (value, next) = if let Some(q) = after.strip_prefix('"') {
            match q.find('"') {
                Some(end) => (&q[..end], q[end + 1..].trim_start_matches(',')),
                None => (q, ""),
            }
        } else {
            match after.find(',') {
                Some(c) => (&after[..c], &after[c + 1..]),
                None => (after, ""),
            }
        };
        out.push((key, value));
        rest = next;
    }
    out
}

fn attr<'a>(attrs: &[(&str, &'a str)], key: &str) -> Option<&'a str> {
    attrs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

fn number(tag: &'static str, v: &str) -> Result<f64, PlaylistError> {
    v.trim()
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite() && *n >= 0.0)
        .ok_or_else(|| PlaylistError::BadValue {
            tag,
            value: v.to_owned(),
        })
}

fn integer(tag: &'static str, v: &str) -> Result<u64, PlaylistError> {
    v.trim()
        .parse::<u64>()
        .map_err(|_| PlaylistError::BadValue {
            tag,
            value: v.to_owned(),
        })
}

impl Playlist {
    /// Reads a playlist.
    ///
    /// # Errors
    /// [`PlaylistError`] when the text is not M3U8 or a tag the viewers rely on is malformed.
    pub(crate) fn parse(text: &str) -> Result<Self, PlaylistError> {
        let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
        let first = lines.next().unwrap_or_default();
        if first != "#EXTM3U" {
            return Err(PlaylistError::NotM3u8 {
                first: first.chars().take(40).collect(),
            });
        }
        let mut p = MediaPlaylist::default();
        let mut variants = Vec::new();
        let mut expect_variant = false;
        let mut pending_duration: Option<f64> = None;
        let mut pending_parts: Vec<Part> = Vec::new();
        let mut next_msn: Option<u64> = None;
        for line in lines {
            let msn = *next_msn.get_or_insert(p.media_sequence + p.skipped);
            if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
                p.target_duration = number("EXT-X-TARGETDURATION", v)?;
            } else if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
                p.media_sequence = integer("EXT-X-MEDIA-SEQUENCE", v)?;
                next_msn = Some(p.media_sequence + p.skipped);
            } else if let Some(v) = line.strip_prefix("#EXT-X-SKIP:") {
                let a = attributes(v);
                p.skipped = integer(
                    "EXT-X-SKIP",
                    attr(&a, "SKIPPED-SEGMENTS").unwrap_or_default(),
                )?;
                next_msn = Some(p.media_sequence + p.skipped);
            } else if let Some(v) = line.strip_prefix("#EXT-X-SERVER-CONTROL:") {
                let a = attributes(v);
                p.can_block_reload = attr(&a, "CAN-BLOCK-RELOAD") == Some("YES");
                p.part_hold_back = attr(&a, "PART-HOLD-BACK")
                    .map(|v| number("PART-HOLD-BACK", v))
                    .transpose()?;
                p.can_skip_until = attr(&a, "CAN-SKIP-UNTIL")
                    .map(|v| number("CAN-SKIP-UNTIL", v))
                    .transpose()?;
            } else if let Some(v) = line.strip_prefix("#EXT-X-PART-INF:") {
                let a = attributes(v);
                p.part_target = attr(&a, "PART-TARGET")
                    .map(|v| number("PART-TARGET", v))
                    .transpose()?;
            } else if let Some(v) = line.strip_prefix("#EXT-X-MAP:") {
                let a = attributes(v);
                p.map_uri = Some(
                    attr(&a, "URI")
                        .ok_or(PlaylistError::MissingUri { tag: "EXT-X-MAP" })?
                        .to_owned(),
                );
            } else if let Some(v) = line.strip_prefix("#EXT-X-PART:") {
                let a = attributes(v);
                pending_parts.push(Part {
                    msn,
                    index: pending_parts.len() as u32,
                    duration: number("EXT-X-PART", attr(&a, "DURATION").unwrap_or_default())?,
                    uri: attr(&a, "URI")
                        .ok_or(PlaylistError::MissingUri { tag: "EXT-X-PART" })?
                        .to_owned(),
                    independent: attr(&a, "INDEPENDENT") == Some("YES"),
                });
            } else if let Some(v) = line.strip_prefix("#EXT-X-PRELOAD-HINT:") {
                let a = attributes(v);
                if attr(&a, "TYPE") == Some("PART") {
                    p.preload_hint = attr(&a, "URI").map(str::to_owned);
                }
            } else if let Some(v) = line.strip_prefix("#EXTINF:") {
                let d = v.split(',').next().unwrap_or_default();
                pending_duration = Some(number("EXTINF", d)?);
            } else if line == "#EXT-X-ENDLIST" {
                p.endlist = true;
            } else if line.starts_with("#EXT-X-STREAM-INF") {
                expect_variant = true;
            } else if line.starts_with('#') {
                // Other tags (PROGRAM-DATE-TIME, DISCONTINUITY, RENDITION-REPORT, ...) do not
                // change what a viewer fetches.
            } else if expect_variant {
                variants.push(line.to_owned());
                expect_variant = false;
            } else {
                p.segments.push(Segment {
                    msn,
                    duration: pending_duration.take().unwrap_or(p.target_duration),
                    uri: line.to_owned(),
                    parts: std::mem::take(&mut pending_parts),
                });
                next_msn = Some(msn + 1);
            }
        }
        if !variants.is_empty() {
            return Ok(Self::Multivariant(variants));
        }
        p.trailing_parts = pending_parts;
        Ok(Self::Media(p))
    }
}

impl MediaPlaylist {
    /// Media sequence number of the segment after the last complete one.
    pub(crate) fn next_msn(&self) -> u64 {
        self.media_sequence + self.skipped + self.segments.len() as u64
    }

    /// Every listed part, oldest first.
    pub(crate) fn parts(&self) -> impl Iterator<Item = &Part> {
        self.segments
            .iter()
            .flat_map(|s| s.parts.iter())
            .chain(self.trailing_parts.iter())
    }

    /// The position (msn, part index) that follows part `(msn, index)`: the next part of
    /// the same segment, or the first part of the next segment once this one is complete.
    pub(crate) fn position_after(&self, msn: u64, index: u32) -> (u64, u32) {
        match self.segments.iter().find(|s| s.msn == msn) {
            Some(seg) if seg.parts.iter().all(|p| p.index <= index) => (msn + 1, 0),
            Some(_) => (msn, index + 1),
            None if msn < self.next_msn() => (msn + 1, 0),
            None => (msn, index + 1),
        }
    }

    /// The listed part at a position.
    pub(crate) fn part_at(&self, msn: u64, index: u32) -> Option<&Part> {
        self.parts().find(|p| p.msn == msn && p.index == index)
    }

    /// Whether parts at or before `msn` are still listed (a viewer there is not lost).
    pub(crate) fn lists_parts_of(&self, msn: u64) -> bool {
        self.parts().next().is_some_and(|p| p.msn <= msn)
    }

    /// The playlist's end in media time: the duration of everything listed.
    fn total_duration(&self) -> f64 {
        self.segments.iter().map(|s| s.duration).sum::<f64>()
            + self.trailing_parts.iter().map(|p| p.duration).sum::<f64>()
    }

    /// Where an LL-HLS player starts: the latest independent part that begins at least
    /// `hold_back` seconds before the end of the playlist (RFC 8216bis §6.3.3 PART-HOLD-BACK;
    /// hls.js starts there in low-latency mode). Falls back to the first listed part.
    pub(crate) fn start_part(&self, hold_back: f64) -> Option<&Part> {
        let end = self.total_duration();
        let mut t = 0.0;
        let mut best: Option<&Part> = None;
        for seg in &self.segments {
            if seg.parts.is_empty() {
                t += seg.duration;
                continue;
            }
            for p in &seg.parts {
                if p.independent && end - t >= hold_back {
                    best = Some(p);
                }
                t += p.duration;
            }
        }
        for p in &self.trailing_parts {
            if p.independent && end - t >= hold_back {
                best = Some(p);
            }
            t += p.duration;
        }
        best.or_else(|| self.parts().find(|p| p.independent))
            .or_else(|| self.parts().next())
    }
}

/// Resolves a URI found in a playlist against the playlist's URL (RFC 3986 §5.2, the cases
/// playlists use: absolute, absolute-path and relative-path references).
pub(crate) fn resolve(base: &str, uri: &str) -> String {
    if uri.starts_with("http://") || uri.starts_with("https://") {
        return uri.to_owned();
    }
    let base = base.split(['?', '#']).next().unwrap_or(base);
    if let Some(path) = uri.strip_prefix('/') {
        let origin_end = base.find("://").map_or(0, |i| i + 3);
        let host_end = base[origin_end..]
            .find('/')
            .map_or(base.len(), |i| origin_end + i);
        return format!("{}/{}", &base[..host_end], path);
    }
    match base.rfind('/') {
        Some(i) => format!("{}{}", &base[..=i], uri),
        None => uri.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LL: &str = "#EXTM3U
#EXT-X-VERSION:10
#EXT-X-TARGETDURATION:2
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.0,CAN-SKIP-UNTIL=12.0
#EXT-X-PART-INF:PART-TARGET=0.33334
#EXT-X-MEDIA-SEQUENCE:7
#EXT-X-MAP:URI=\"init.mp4\"
#EXTINF:2.000,
seg7.m4s
#EXT-X-PART:DURATION=0.33334,URI=\"p8.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.33334,URI=\"p8.1.m4s\"
#EXT-X-PART:DURATION=0.33334,URI=\"p8.2.m4s\"
#EXT-X-PART:DURATION=0.33334,URI=\"p8.3.m4s\"
#EXT-X-PART:DURATION=0.33334,URI=\"p8.4.m4s\"
#EXT-X-PART:DURATION=0.33330,URI=\"p8.5.m4s\"
#EXTINF:2.000,
seg8.m4s
#EXT-X-PART:DURATION=0.33334,URI=\"p9.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.33334,URI=\"p9.1.m4s\"
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p9.2.m4s\"
";

    fn media(text: &str) -> MediaPlaylist {
        match Playlist::parse(text).expect("parses") {
            Playlist::Media(m) => m,
            Playlist::Multivariant(v) => panic!("unexpected multivariant {v:?}"),
        }
    }

    #[test]
    fn reads_ll_hls_numbering_and_control() {
        let p = media(LL);
        assert_eq!(
            p.segments.iter().map(|s| s.msn).collect::<Vec<_>>(),
            vec![7, 8]
        );
        assert_eq!(p.next_msn(), 9);
        assert_eq!(p.segments[1].parts.len(), 6);
        assert_eq!((p.trailing_parts[1].msn, p.trailing_parts[1].index), (9, 1));
        assert!(p.can_block_reload);
        assert_eq!(p.part_hold_back, Some(1.0));
        assert_eq!(p.can_skip_until, Some(12.0));
        assert_eq!(p.part_target, Some(0.33334));
        assert_eq!(p.map_uri.as_deref(), Some("init.mp4"));
        assert_eq!(p.preload_hint.as_deref(), Some("p9.2.m4s"));
        assert!(p.segments[1].parts[0].independent && !p.segments[1].parts[1].independent);
    }

    #[test]
    fn positions_advance_through_parts_and_segments() {
        let p = media(LL);
        assert_eq!(p.position_after(8, 2), (8, 3));
        assert_eq!(
            p.position_after(8, 5),
            (9, 0),
            "last part of a complete segment"
        );
        assert_eq!(p.position_after(9, 1), (9, 2), "in-progress segment");
        assert_eq!(
            p.position_after(7, 0),
            (8, 0),
            "segment without listed parts"
        );
        assert_eq!(p.part_at(9, 1).map(|x| x.uri.as_str()), Some("p9.1.m4s"));
        assert!(p.lists_parts_of(8) && !p.lists_parts_of(7));
    }

    #[test]
    fn start_part_honours_hold_back() {
        let p = media(LL);
        // End is 2 + 2 + 0.67 s; 1 s back lands in segment 8, whose only independent part
        // is its first.
        assert_eq!(p.start_part(1.0).map(|x| (x.msn, x.index)), Some((8, 0)));
        assert_eq!(p.start_part(0.5).map(|x| (x.msn, x.index)), Some((9, 0)));
        assert_eq!(
            p.start_part(100.0).map(|x| (x.msn, x.index)),
            Some((8, 0)),
            "falls back"
        );
    }

    #[test]
    fn delta_update_numbers_after_the_skip() {
        let text = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:10\n#EXT-X-SKIP:SKIPPED-SEGMENTS=4\n#EXTINF:2,\ns14.ts\n#EXTINF:2,\ns15.ts\n";
        let p = media(text);
        assert_eq!(p.segments[0].msn, 14);
        assert_eq!(p.next_msn(), 16);
    }

    #[test]
    fn classic_playlist_and_multivariant() {
        let p = media(
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:3\n#EXTINF:2.002,\n3.ts\n#EXTINF:1.9,\n4.ts\n#EXT-X-ENDLIST\n",
        );
        assert_eq!(p.segments.len(), 2);
        assert_eq!((p.segments[1].msn, p.segments[1].duration), (4, 1.9));
        assert!(p.endlist && p.trailing_parts.is_empty());
        let m = Playlist::parse(
            "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1,CODECS=\"a,b\"\nlow/index.m3u8\n",
        )
        .expect("parses");
        assert_eq!(m, Playlist::Multivariant(vec!["low/index.m3u8".into()]));
    }

    #[test]
    fn rejects_garbage_and_bad_numbers() {
        assert!(matches!(
            Playlist::parse("<html>"),
            Err(PlaylistError::NotM3u8 { .. })
        ));
        assert!(matches!(
            Playlist::parse("#EXTM3U\n#EXTINF:abc,\nx.ts\n"),
            Err(PlaylistError::BadValue { tag: "EXTINF", .. })
        ));
        assert_eq!(
            Playlist::parse("#EXTM3U\n#EXT-X-PART:DURATION=1\n"),
            Err(PlaylistError::MissingUri { tag: "EXT-X-PART" })
        );
    }

    #[test]
    fn resolves_relative_references() {
        let base = "http://h:1/hls/cam/playlist.m3u8?_HLS_msn=3&_HLS_part=1";
        assert_eq!(resolve(base, "p1.m4s"), "http://h:1/hls/cam/p1.m4s");
        assert_eq!(resolve(base, "ts/1.ts"), "http://h:1/hls/cam/ts/1.ts");
        assert_eq!(resolve(base, "/x/y.ts"), "http://h:1/x/y.ts");
        assert_eq!(resolve(base, "https://o/z.ts"), "https://o/z.ts");
    }

    proptest! {
        #[test]
        fn never_panics(lines in proptest::collection::vec("#?[A-Z:=,\\-\".0-9a-z]{0,40}", 0..30)) {
            let text = format!("#EXTM3U\n{}", lines.join("\n"));
            if let Ok(Playlist::Media(p)) = Playlist::parse(&text) {
                let _ = p.start_part(1.0);
                let _ = p.position_after(0, 0);
            }
        }
    }
}
