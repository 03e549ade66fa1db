//! MPEG-TS segments muxed when first requested, not as the media arrives.
//!
//! Most cameras of a fleet have no classic-HLS viewer most of the time. Muxing every
//! segment at ingest cost a camera CPU (the TS muxer was over half of the segmenter's time)
//! and memory (a TS copy of the media beside the frames the fMP4 window already holds). So
//! a TS segment keeps only its frames — the same `Bytes` the fMP4 parts refer to, so no media
//! is held twice — and the session's [`Muxer`] turns them into packets on the first request;
//! every later viewer shares that result (one compact copy per segment, see
//! `packet::SegmentWriter`).
//!
//! Only the newest [`CACHED_SEGMENTS`] segments of a window keep their packets
//! ([`LazySegment::release`], called by the segmenter as segments age): a steady viewer
//! fetches each segment as it appears, so keeping the packets of the whole window (8 segments
//! by default) doubled the memory of a camera with TS viewers (5.6 → 10.3 MB per camera,
//! `bench/results/ts-viewers-rss/`). An older segment asked for again (a player starting
//! three segments back, a slow one) is muxed again, ~0.2 ms for 2 s of 720p.
//!
//! Continuity counters continue in the order segments are muxed. Viewers fetch segments
//! oldest to newest, so that is the playlist order; a viewer that asks for a segment older
//! than one already muxed gets a counter jump at that segment's start, which players treat
//! like the segment boundary it is (each segment starts with PAT and PMT and whole PES
//! packets).

use std::sync::{Arc, Mutex, PoisonError};

use camstream_protocol::{AacConfig, AvcConfig, MediaFrame, TrackKind};

use super::Muxer;
use crate::chunks::Chunks;

/// Segments at the live end of a TS window that keep their muxed packets.
pub(crate) const CACHED_SEGMENTS: usize = 2;

/// One publishing session's muxer, shared by the session's segments.
#[derive(Debug)]
pub(crate) struct TsSession {
    muxer: Mutex<Muxer>,
}

impl TsSession {
    /// A session muxing the given tracks.
    pub(crate) fn new(video: Option<&AvcConfig>, audio: Option<&AacConfig>) -> Arc<Self> {
        Arc::new(Self {
            muxer: Mutex::new(Muxer::new(video, audio)),
        })
    }
}

/// A TS segment: its frames (decode order, timestamps already on the output timeline) until
/// someone asks for its bytes.
#[derive(Debug)]
pub(crate) struct LazySegment {
    session: Arc<TsSession>,
    frames: Vec<MediaFrame>,
    /// The packets once muxed, until [`Self::release`].
    out: Mutex<Option<Chunks>>,
}

impl LazySegment {
    pub(crate) fn new(session: Arc<TsSession>, frames: Vec<MediaFrame>) -> Self {
        Self {
            session,
            frames,
            out: Mutex::new(None),
        }
    }

    /// The segment's packets: muxed on the first call (or the first after a release), shared
    /// afterwards. Concurrent first requests wait for one mux.
    pub(crate) fn bytes(&self) -> Chunks {
        // A panic while muxing poisons the locks; the muxer's state is still usable (at worst
        // a counter jump), so carry on rather than fail every request.
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = out.as_ref() {
            return c.clone();
        }
        let mut m = self
            .session
            .muxer
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        m.begin_segment();
        for f in &self.frames {
            match f.track {
                TrackKind::Video => m.write_video(f),
                TrackKind::Audio => m.write_audio(f),
            }
        }
        let c = m.finish_segment();
        *out = Some(c.clone());
        c
    }

    /// Drops the muxed packets (requests in flight keep theirs); the frames stay, so a later
    /// request muxes again.
    pub(crate) fn release(&self) {
        self.out
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }

    /// The frames it is made of.
    #[cfg(test)]
    pub(crate) fn frames(&self) -> &[MediaFrame] {
        &self.frames
    }

    /// Whether the packets have been made.
    #[cfg(test)]
    pub(crate) fn is_muxed(&self) -> bool {
        self.out
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }
}
