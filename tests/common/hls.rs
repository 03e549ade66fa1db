//! A reader of the media playlists camstream writes (LL-HLS and MPEG-TS), cross-checked
//! against `m3u8-rs`, which parses them but drops every LL-HLS tag (CRATES.md), so the
//! parts, hints and skips are read here line by line (RFC 8216bis §4.4).

/// A partial segment (`EXT-X-PART`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PartInfo {
    pub(crate) uri: String,
    pub(crate) duration: f64,
    pub(crate) independent: bool,
}

/// A media segment (`EXTINF` + URI) and the tags before it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SegmentInfo {
    pub(crate) msn: u64,
    pub(crate) uri: String,
    pub(crate) duration: f64,
    pub(crate) parts: Vec<PartInfo>,
    pub(crate) discontinuity: bool,
    /// `EXT-X-MAP` URI in effect.
    pub(crate) map: Option<String>,
    pub(crate) program_date_time: Option<String>,
}

/// A parsed media playlist.
#[derive(Debug, Clone)]
pub(crate) struct LlPlaylist {
    pub(crate) text: String,
    pub(crate) version: Option<u64>,
    pub(crate) target_duration: u64,
    /// `EXT-X-SERVER-CONTROL` attributes, raw.
    pub(crate) server_control: Option<String>,
    pub(crate) part_target: Option<f64>,
    pub(crate) media_sequence: u64,
    pub(crate) discontinuity_sequence: u64,
    /// `EXT-X-SKIP:SKIPPED-SEGMENTS`.
    pub(crate) skipped: u64,
    pub(crate) segments: Vec<SegmentInfo>,
    /// Parts of the segment in progress (after the last `EXTINF`).
    pub(crate) trailing_parts: Vec<PartInfo>,
    /// An `EXT-X-DISCONTINUITY` precedes the segment in progress.
    pub(crate) trailing_discontinuity: bool,
    pub(crate) preload_hint: Option<String>,
    /// `EXT-X-MAP` URI in effect at the end (the segment in progress's).
    pub(crate) map: Option<String>,
    pub(crate) ended: bool,
    /// `EXT-X-RENDITION-REPORT` attribute lists (ABR renditions of the same camera).
    pub(crate) rendition_reports: Vec<String>,
}

/// The parts of a media file name: `{prefix}-{msn}.m4s`, `{prefix}-{msn}.{part}.m4s`,
/// `{prefix}-{msn}.ts`, `{prefix}-init{id}.mp4`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Name {
    pub(crate) prefix: String,
    pub(crate) msn: u64,
    pub(crate) part: Option<usize>,
}

/// Parses a media file name of ours (any query removed); `None` for init segments.
pub(crate) fn name(uri: &str) -> Name {
    let uri = uri.split('?').next().unwrap_or(uri);
    let (prefix, rest) = uri
        .split_once('-')
        .unwrap_or_else(|| panic!("no prefix in {uri}"));
    let stem = rest
        .strip_suffix(".m4s")
        .or_else(|| rest.strip_suffix(".ts"))
        .unwrap_or_else(|| panic!("not a segment or part name: {uri}"));
    let (msn, part) = match stem.split_once('.') {
        Some((m, p)) => (m, Some(p.parse().expect("part index"))),
        None => (stem, None),
    };
    Name {
        prefix: prefix.to_owned(),
        msn: msn.parse().unwrap_or_else(|_| panic!("msn in {uri}")),
        part,
    }
}

/// The value of attribute `key` in an attribute list (`A=1,B="x,y"`), quotes removed.
pub(crate) fn attr<'a>(list: &'a str, key: &str) -> Option<&'a str> {
    let mut rest = list;
    while !rest.is_empty() {
        let (k, after) = rest.split_once('=')?;
        let (value, next) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"')?;
            (&q[..end], q[end + 1..].strip_prefix(',').unwrap_or(""))
        } else {
            match after.split_once(',') {
                Some((v, n)) => (v, n),
                None => (after, ""),
            }
        };
        if k == key {
            return Some(value);
        }
        rest = next;
    }
    None
}

impl LlPlaylist {
    /// Parses `text`, panicking with the text on anything malformed, and checks that
    /// `m3u8-rs` reads the same segments.
    pub(crate) fn parse(text: &str) -> Self {
        let fail = |why: &str| -> ! { panic!("{why} in playlist:\n{text}") };
        let mut lines = text.lines();
        if lines.next() != Some("#EXTM3U") {
            fail("no #EXTM3U");
        }
        let mut p = LlPlaylist {
            text: text.to_owned(),
            version: None,
            target_duration: 0,
            server_control: None,
            part_target: None,
            media_sequence: 0,
            discontinuity_sequence: 0,
            skipped: 0,
            segments: Vec::new(),
            trailing_parts: Vec::new(),
            trailing_discontinuity: false,
            preload_hint: None,
            map: None,
            ended: false,
            rendition_reports: Vec::new(),
        };
        let mut parts = Vec::new();
        let mut discontinuity = false;
        let mut map = None;
        let mut pdt = None;
        let mut extinf: Option<f64> = None;
        let num = |v: &str| -> f64 { v.parse().unwrap_or_else(|_| fail("bad number")) };
        for line in lines {
            if let Some(duration) = extinf.take() {
                if line.starts_with('#') || line.is_empty() {
                    fail("EXTINF not followed by a URI");
                }
                let msn = p.media_sequence + p.skipped + p.segments.len() as u64;
                p.segments.push(SegmentInfo {
                    msn,
                    uri: line.to_owned(),
                    duration,
                    parts: std::mem::take(&mut parts),
                    discontinuity: std::mem::take(&mut discontinuity),
                    map: map.clone(),
                    program_date_time: pdt.take(),
                });
                continue;
            }
            let (tag, value) = line.split_once(':').unwrap_or((line, ""));
            match tag {
                "#EXT-X-VERSION" => p.version = Some(num(value) as u64),
                "#EXT-X-TARGETDURATION" => p.target_duration = num(value) as u64,
                "#EXT-X-SERVER-CONTROL" => p.server_control = Some(value.to_owned()),
                "#EXT-X-PART-INF" => {
                    p.part_target = attr(value, "PART-TARGET").map(num);
                }
                "#EXT-X-MEDIA-SEQUENCE" => p.media_sequence = num(value) as u64,
                "#EXT-X-DISCONTINUITY-SEQUENCE" => p.discontinuity_sequence = num(value) as u64,
                "#EXT-X-SKIP" => {
                    p.skipped = attr(value, "SKIPPED-SEGMENTS")
                        .map(num)
                        .unwrap_or_else(|| fail("SKIP without SKIPPED-SEGMENTS"))
                        as u64;
                }
                "#EXT-X-DISCONTINUITY" => discontinuity = true,
                "#EXT-X-MAP" => map = attr(value, "URI").map(str::to_owned),
                "#EXT-X-PROGRAM-DATE-TIME" => pdt = Some(value.to_owned()),
                "#EXT-X-PART" => parts.push(PartInfo {
                    uri: attr(value, "URI")
                        .unwrap_or_else(|| fail("PART without URI"))
                        .to_owned(),
                    duration: attr(value, "DURATION")
                        .map(num)
                        .unwrap_or_else(|| fail("PART without DURATION")),
                    independent: attr(value, "INDEPENDENT") == Some("YES"),
                }),
                "#EXTINF" => {
                    extinf = Some(num(value.split(',').next().unwrap_or_default()));
                }
                "#EXT-X-PRELOAD-HINT" => {
                    assert_eq!(attr(value, "TYPE"), Some("PART"), "{text}");
                    p.preload_hint = attr(value, "URI").map(str::to_owned);
                }
                "#EXT-X-ENDLIST" => p.ended = true,
                "#EXT-X-RENDITION-REPORT" => p.rendition_reports.push(value.to_owned()),
                "" => {}
                t if t.starts_with('#') => fail(&format!("unexpected tag {t}")),
                _ => fail(&format!("URI without EXTINF: {line}")),
            }
        }
        if extinf.is_some() {
            fail("EXTINF at the end");
        }
        p.trailing_parts = parts;
        p.trailing_discontinuity = discontinuity;
        p.map = map;
        p.cross_check();
        p
    }

    /// `m3u8-rs` must parse the playlist as a media playlist with the same segments.
    fn cross_check(&self) {
        let parsed = match m3u8_rs::parse_playlist_res(self.text.as_bytes()) {
            Ok(m3u8_rs::Playlist::MediaPlaylist(m)) => m,
            other => panic!(
                "m3u8-rs does not read a media playlist: {other:?}\n{}",
                self.text
            ),
        };
        assert_eq!(parsed.media_sequence, self.media_sequence, "{}", self.text);
        assert_eq!(
            parsed.target_duration, self.target_duration,
            "{}",
            self.text
        );
        assert_eq!(
            parsed.discontinuity_sequence, self.discontinuity_sequence,
            "{}",
            self.text
        );
        assert_eq!(parsed.end_list, self.ended, "{}", self.text);
        let theirs: Vec<(&str, bool)> = parsed
            .segments
            .iter()
            .map(|s| (s.uri.as_str(), s.discontinuity))
            .collect();
        let ours: Vec<(&str, bool)> = self
            .segments
            .iter()
            .map(|s| (s.uri.as_str(), s.discontinuity))
            .collect();
        assert_eq!(
            theirs, ours,
            "m3u8-rs disagrees on segments:\n{}",
            self.text
        );
        for (a, b) in parsed.segments.iter().zip(&self.segments) {
            assert!(
                (f64::from(a.duration) - b.duration).abs() < 1e-3,
                "{}",
                self.text
            );
        }
    }

    /// The per-stream-start prefix of the media names.
    pub(crate) fn prefix(&self) -> String {
        let uri = self
            .segments
            .first()
            .map(|s| s.uri.clone())
            .or_else(|| self.trailing_parts.first().map(|p| p.uri.clone()))
            .or_else(|| self.preload_hint.clone())
            .unwrap_or_else(|| panic!("empty playlist:\n{}", self.text));
        name(&uri).prefix
    }

    /// The preload hint's (msn, part).
    pub(crate) fn hint(&self) -> (u64, usize) {
        let uri = self
            .preload_hint
            .as_deref()
            .unwrap_or_else(|| panic!("no preload hint:\n{}", self.text));
        let n = name(uri);
        (n.msn, n.part.expect("the hint names a part"))
    }

    /// MSN of the last complete segment listed.
    pub(crate) fn last_msn(&self) -> Option<u64> {
        self.segments.last().map(|s| s.msn)
    }

    /// The last part listed (complete segments included): (msn, index, info).
    pub(crate) fn last_part(&self) -> Option<(u64, usize, &PartInfo)> {
        if let Some(p) = self.trailing_parts.last() {
            let n = name(&p.uri);
            return Some((n.msn, n.part.expect("part index"), p));
        }
        let s = self.segments.last()?;
        let p = s.parts.last()?;
        Some((s.msn, s.parts.len() - 1, p))
    }
}
