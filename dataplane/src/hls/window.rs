//! The sliding window of one rendition of one camera: what viewers can fetch.
//!
//! The segmenter owns a mutable [`Window`] and publishes an immutable snapshot
//! (`Arc<Window>`) after every part or segment; HTTP handlers read snapshots and never
//! block the segmenter. Cloning a window clones a few `Arc`s (segments, parts, init
//! segments), never media bytes.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

use crate::chunks::Chunks;

/// A Partial Segment (LL-HLS): one fMP4 fragment.
#[derive(Debug)]
pub(crate) struct Part {
    /// Duration in seconds.
    pub(crate) duration: f64,
    /// Starts with a keyframe (`INDEPENDENT=YES`).
    pub(crate) independent: bool,
    /// The fragment.
    pub(crate) data: Chunks,
}

/// A complete Media Segment.
#[derive(Debug)]
pub(crate) struct Segment {
    /// Media Sequence Number.
    pub(crate) msn: u64,
    /// Duration in seconds (`EXTINF`).
    pub(crate) duration: f64,
    /// An `EXT-X-DISCONTINUITY` precedes this segment (camera reconnect, codec change).
    pub(crate) discontinuity: bool,
    /// The init segment id in effect (`EXT-X-MAP`); 0 for MPEG-TS.
    pub(crate) init: u32,
    /// Wall-clock time of the segment's first sample (`EXT-X-PROGRAM-DATE-TIME`).
    pub(crate) program_date_time: SystemTime,
    /// Its parts, in order (LL-HLS only; empty for MPEG-TS).
    pub(crate) parts: Vec<Arc<Part>>,
    /// The whole segment for fMP4 (the concatenation of its parts); empty for MPEG-TS.
    pub(crate) data: Chunks,
    /// MPEG-TS: the frames, muxed on first request (`ts::lazy`).
    pub(crate) ts: Option<crate::ts::LazySegment>,
}

impl Segment {
    /// What to send for this segment: its slices, shared by every viewer (both flavours
    /// are a few large slices, so there is nothing to flatten and no second copy). A TS
    /// segment is muxed by its first request.
    pub(crate) fn body(&self) -> Chunks {
        match &self.ts {
            Some(ts) => ts.bytes(),
            None => self.data.clone(),
        }
    }
}

/// The segment being built (LL-HLS): its parts so far.
#[derive(Debug, Clone)]
pub(crate) struct Partial {
    /// Its Media Sequence Number (the next complete segment's).
    pub(crate) msn: u64,
    /// An `EXT-X-DISCONTINUITY` precedes it.
    pub(crate) discontinuity: bool,
    /// The init segment id in effect.
    pub(crate) init: u32,
    /// Wall-clock time of its first sample.
    pub(crate) program_date_time: SystemTime,
    /// Parts so far.
    pub(crate) parts: Vec<Arc<Part>>,
}

/// Which flavour of rendition a window holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// LL-HLS with fMP4/CMAF parts.
    Fmp4,
    /// Classic HLS with MPEG-TS segments.
    Ts,
}

/// One rendition's window, as viewers see it.
#[derive(Debug, Clone)]
pub(crate) struct Window {
    /// fMP4 or TS.
    pub(crate) flavor: Flavor,
    /// Per-stream-start random prefix of every media file name, so no cache can serve a
    /// stale object after a server restart.
    pub(crate) prefix: Arc<str>,
    /// Complete segments, oldest first.
    pub(crate) segments: Vec<Arc<Segment>>,
    /// `EXT-X-DISCONTINUITY-SEQUENCE`: discontinuities before the first listed segment.
    pub(crate) discontinuity_sequence: u64,
    /// The segment in progress (LL-HLS). Its `msn` is always one past the last complete
    /// segment; for TS this is `None` and [`Window::next_msn`] says the same.
    pub(crate) partial: Option<Partial>,
    /// MSN of the next segment to complete.
    pub(crate) next_msn: u64,
    /// Init segments still referenced by the window, by id.
    pub(crate) inits: Vec<(u32, Bytes)>,
    /// `EXT-X-TARGETDURATION`, whole seconds.
    pub(crate) target_duration: u32,
    /// `PART-TARGET`, seconds (LL-HLS).
    pub(crate) part_target: f64,
    /// `PART-HOLD-BACK` in part targets (LL-HLS; RFC 8216bis: at least 2, 3 recommended).
    pub(crate) part_hold_back: f64,
    /// `CAN-SKIP-UNTIL`, seconds (LL-HLS).
    pub(crate) skip_until: f64,
    /// Segments of at most this many seconds from the end list their parts.
    pub(crate) parts_horizon: f64,
    /// The stream ended for good: `EXT-X-ENDLIST`, no preload hint.
    pub(crate) ended: bool,
    /// No video track: media is `audio/mp4`.
    pub(crate) audio_only: bool,
}

/// Default `PART-HOLD-BACK`, in part targets. RFC 8216bis requires at least 2 and recommends
/// 3; 2.5 is what lets hls.js (which speeds up to its target only with more than a second
/// of buffer) settle under a second behind the edge with 200 ms parts, measured in
/// `tests/dataplane/browser.rs`: 1.04 s median at 3, 0.82 s at 2.5 (issue 11).
pub const DEFAULT_PART_HOLD_BACK: f64 = 2.5;

impl Window {
    /// An empty window.
    pub(crate) fn new(flavor: Flavor, prefix: Arc<str>) -> Self {
        Self {
            flavor,
            prefix,
            segments: Vec::new(),
            discontinuity_sequence: 0,
            partial: None,
            next_msn: 0,
            inits: Vec::new(),
            target_duration: 2,
            part_target: 0.2,
            part_hold_back: DEFAULT_PART_HOLD_BACK,
            skip_until: 12.0,
            parts_horizon: 6.0,
            ended: false,
            audio_only: false,
        }
    }

    /// MSN of the first listed segment (`EXT-X-MEDIA-SEQUENCE`).
    pub(crate) fn first_msn(&self) -> u64 {
        self.segments.first().map_or(self.next_msn, |s| s.msn)
    }

    /// Whether a player can start: a segment exists, or (LL-HLS) a few parts do.
    pub(crate) fn is_playable(&self, min_parts: usize) -> bool {
        !self.segments.is_empty()
            || self.ended
            || self
                .partial
                .as_ref()
                .is_some_and(|p| p.parts.len() >= min_parts)
    }

    /// The complete segment `msn`, if still in the window.
    pub(crate) fn segment(&self, msn: u64) -> Option<&Arc<Segment>> {
        let first = self.segments.first()?.msn;
        let i = usize::try_from(msn.checked_sub(first)?).ok()?;
        self.segments.get(i)
    }

    /// Part `index` of segment `msn`, complete or in progress.
    pub(crate) fn part(&self, msn: u64, index: usize) -> Option<&Arc<Part>> {
        match &self.partial {
            Some(p) if p.msn == msn => p.parts.get(index),
            _ => self.segment(msn)?.parts.get(index),
        }
    }

    /// An init segment by id.
    pub(crate) fn init(&self, id: u32) -> Option<&Bytes> {
        self.inits.iter().find(|(i, _)| *i == id).map(|(_, b)| b)
    }

    /// The newest complete part: `(msn, index)` (an `EXT-X-RENDITION-REPORT`'s LAST-MSN
    /// and LAST-PART).
    pub(crate) fn last_part(&self) -> Option<(u64, usize)> {
        if let Some(p) = self.partial.as_ref().filter(|p| !p.parts.is_empty()) {
            return Some((p.msn, p.parts.len() - 1));
        }
        let s = self.segments.last()?;
        Some((s.msn, s.parts.len().checked_sub(1)?))
    }

    /// The part the preload hint names: the next part of the segment in progress.
    pub(crate) fn next_part(&self) -> (u64, usize) {
        match &self.partial {
            Some(p) => (p.msn, p.parts.len()),
            None => (self.next_msn, 0),
        }
    }

    /// Whether a blocking playlist request for `_HLS_msn=msn` (and `_HLS_part=part`) can be
    /// answered (RFC 8216bis §6.2.5.2): segment `msn` is complete, or it is in progress and
    /// has part `part`.
    pub(crate) fn satisfies(&self, msn: u64, part: Option<usize>) -> bool {
        if self.ended || msn < self.next_msn {
            return true;
        }
        match (part, &self.partial) {
            (Some(part), Some(p)) => p.msn == msn && part < p.parts.len(),
            _ => false,
        }
    }

    /// Whether a blocking request asks too far ahead: more than the last segment plus two,
    /// or more than three parts past the last one (RFC 8216bis §6.2.5.2 "400 Bad Request").
    pub(crate) fn too_far_ahead(&self, msn: u64, part: Option<usize>) -> bool {
        // The last complete segment is next_msn - 1, so "plus two" is next_msn + 1.
        if msn > self.next_msn + 1 {
            return true;
        }
        let (hint_msn, hint_part) = self.next_part();
        matches!(part, Some(p) if msn == hint_msn && p > hint_part + 3)
    }

    /// Whether a blocking request asks for something already evicted.
    pub(crate) fn is_behind(&self, msn: u64) -> bool {
        msn < self.first_msn()
    }

    /// Media time covered by complete segments plus the parts in progress, seconds.
    pub(crate) fn total_duration(&self) -> f64 {
        self.segments.iter().map(|s| s.duration).sum::<f64>()
            + self
                .partial
                .as_ref()
                .map_or(0.0, |p| p.parts.iter().map(|x| x.duration).sum())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn part(duration: f64, independent: bool) -> Arc<Part> {
        Arc::new(Part {
            duration,
            independent,
            data: Chunks::from(Bytes::from_static(b"part")),
        })
    }

    pub(crate) fn segment(msn: u64, parts: usize) -> Arc<Segment> {
        let parts: Vec<_> = (0..parts).map(|i| part(0.2, i == 0)).collect();
        let mut data = Chunks::new();
        for p in &parts {
            data.extend(&p.data);
        }
        Arc::new(Segment {
            msn,
            duration: 0.2 * parts.len() as f64,
            discontinuity: false,
            init: 1,
            program_date_time: SystemTime::UNIX_EPOCH,
            parts,
            data,
            ts: None,
        })
    }

    pub(crate) fn window(first: u64, complete: u64, partial_parts: usize) -> Window {
        let mut w = Window::new(Flavor::Fmp4, Arc::from("abcd"));
        w.segments = (first..first + complete).map(|m| segment(m, 10)).collect();
        w.next_msn = first + complete;
        w.partial = Some(Partial {
            msn: w.next_msn,
            discontinuity: false,
            init: 1,
            program_date_time: SystemTime::UNIX_EPOCH,
            parts: (0..partial_parts).map(|i| part(0.2, i == 0)).collect(),
        });
        w.inits = vec![(1, Bytes::from_static(b"init"))];
        w
    }

    #[test]
    fn lookups() {
        let w = window(5, 3, 2);
        assert_eq!(w.first_msn(), 5);
        assert!(w.segment(4).is_none());
        assert_eq!(w.segment(7).unwrap().msn, 7);
        assert!(w.segment(8).is_none());
        assert!(w.part(8, 1).is_some());
        assert!(w.part(8, 2).is_none());
        assert!(w.part(6, 9).is_some());
        assert_eq!(w.next_part(), (8, 2));
        assert!(w.init(1).is_some());
        assert!(w.init(2).is_none());
    }

    #[test]
    fn blocking_conditions() {
        let w = window(5, 3, 2);
        assert!(w.satisfies(7, None));
        assert!(!w.satisfies(8, None));
        assert!(w.satisfies(8, Some(1)));
        assert!(!w.satisfies(8, Some(2)));
        assert!(
            w.satisfies(7, Some(15)),
            "a complete segment answers any part of it"
        );
        assert!(!w.too_far_ahead(9, Some(0)));
        assert!(w.too_far_ahead(10, None));
        assert!(w.too_far_ahead(8, Some(6)));
        assert!(!w.too_far_ahead(8, Some(5)));
        assert!(w.is_behind(4));
        assert!(!w.is_behind(5));
    }

    #[test]
    fn playable_after_a_few_parts() {
        let w = window(0, 0, 2);
        assert!(!w.is_playable(3));
        let w = window(0, 0, 3);
        assert!(w.is_playable(3));
        let w = window(0, 1, 0);
        assert!(w.is_playable(3));
    }
}
