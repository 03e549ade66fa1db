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
//! Continuity counters continue in the order segments are muxed. Viewers fetch segments
//! oldest to newest, so that is the playlist order; a viewer that asks for a segment older
//! than one already muxed gets a counter jump at that segment's start, which players treat
//! like the segment boundary it is (each segment starts with PAT and PMT and whole PES
//! packets).

use std::sync::{Arc, Mutex, OnceLock};

use camstream_protocol::{AacConfig, AvcConfig, MediaFrame, TrackKind};

use super::Muxer;
use crate::chunks::Chunks;

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
    out: OnceLock<Chunks>,
}

impl LazySegment {
    pub(crate) fn new(session: Arc<TsSession>, frames: Vec<MediaFrame>) -> Self {
        Self {
            session,
            frames,
            out: OnceLock::new(),
        }
    }

    /// The segment's packets: muxed on the first call, shared afterwards.
    pub(crate) fn bytes(&self) -> Chunks {
        self.out
            .get_or_init(|| {
                // A panic while muxing poisons the lock; the muxer's state is still usable
                // (at worst a counter jump), so carry on rather than fail every request.
                let mut m = self
                    .session
                    .muxer
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                m.begin_segment();
                for f in &self.frames {
                    match f.track {
                        TrackKind::Video => m.write_video(f),
                        TrackKind::Audio => m.write_audio(f),
                    }
                }
                m.finish_segment()
            })
            .clone()
    }

    /// The frames it is made of.
    #[cfg(test)]
    pub(crate) fn frames(&self) -> &[MediaFrame] {
        &self.frames
    }

    /// Whether the packets have been made.
    #[cfg(test)]
    pub(crate) fn is_muxed(&self) -> bool {
        self.out.get().is_some()
    }
}
