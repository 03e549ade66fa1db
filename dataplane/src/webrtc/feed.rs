//! One viewer's video feed: the camera's relay messages in, the access units to write out
//! (Annex-B, RTP time). Sans-IO: no socket, no clock; the session shell feeds it and drains
//! it after every input.
//!
//! Owns: the join point (the latest keyframe of the GOP the camera's relay log holds), PLI
//! answers (replay from the latest keyframe), skipping to the next keyframe when the viewer
//! falls behind, the B-frame and codec checks, and one monotonic RTP timeline across
//! replays and camera reconnects. Leaves to str0m: packetization, SRTP, NACK resends.
//!
//! Replayed frames (join, PLI) are stamped one tick apart just before the live point, not
//! at their capture times: the receiver decodes them at once and shows the live picture,
//! instead of playing the GOP out in real time and staying that far behind for good.

use std::collections::VecDeque;
use std::sync::Arc;

use camstream_protocol::relay::Message;
use camstream_protocol::{AvcConfig, MediaFrame, TrackKind, VideoConfig};

use super::h264;

/// Bytes of H.264 in one RTP packet, about (str0m packetizes to a 1,200-byte MTU).
const RTP_PAYLOAD: usize = 1100;
/// Send buffer bounds, packets: the floor covers a small camera's keyframe and a few NACKs;
/// the ceiling is str0m's default.
pub(crate) const SEND_BUFFER_MIN: usize = 128;
pub(crate) const SEND_BUFFER_MAX: usize = 1000;

/// Why a feed cannot (or can no longer) serve its viewer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FeedError {
    /// The camera sends B-frames (composition offsets), which WebRTC receivers do not
    /// reorder.
    #[error(
        "the camera's H.264 uses B-frames (composition offset {cts} ticks), which WebRTC \
         players cannot reorder; enable the camera's abrProfile (WebRTC then plays its \
         highest ABR rendition, encoded without B-frames), configure the encoder without \
         B-frames (x264: -bf 0, or the baseline profile), or watch over HLS"
    )]
    BFrames {
        /// The offset seen.
        cts: i32,
    },
    /// The camera has no video, or not H.264.
    #[error("the camera has no H.264 video track; WebRTC playback carries H.264 video only")]
    NoVideo,
    /// The camera's stream ended.
    #[error("the camera's stream ended")]
    Ended,
}

/// A frame to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Out {
    /// RTP time, 90 kHz, on the viewer's own monotonic timeline.
    pub(crate) rtp_time: i64,
    /// The access unit (AVCC, converted by [`Feed::poll_unit`]).
    pub(crate) frame: MediaFrame,
}

/// Counters a feed keeps for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct FeedStats {
    /// Video frames queued for writing.
    pub(crate) frames: u64,
    /// Frames dropped while waiting for a keyframe (lag or a broken access unit).
    pub(crate) skipped: u64,
    /// Times the feed fell behind and skipped to the next keyframe.
    pub(crate) skips: u64,
    /// Replays answered (PLI / FIR).
    pub(crate) replays: u64,
}

/// The viewer's feed state.
pub(crate) struct Feed {
    config: Option<Arc<AvcConfig>>,
    /// The frames since the latest keyframe (for PLI replays).
    gop: Vec<MediaFrame>,
    /// Drop video until a keyframe comes.
    wait_key: bool,
    out: VecDeque<Out>,
    /// Added to a frame's PTS to get its RTP time.
    offset: i64,
    last: Option<i64>,
    annex_b: Vec<u8>,
    stats: FeedStats,
}

impl Feed {
    /// A feed starting from the messages a joining relay gets (an `Init` and the frames of
    /// the segment in progress): its latest keyframe and what followed are queued for
    /// writing at once.
    ///
    /// # Errors
    /// [`FeedError::NoVideo`] without an H.264 track, [`FeedError::BFrames`] when a
    /// frame of the GOP has a composition offset.
    pub(crate) fn join(gop: Vec<Message>) -> Result<Feed, FeedError> {
        let mut feed = Feed {
            config: None,
            gop: Vec::new(),
            wait_key: true,
            out: VecDeque::new(),
            offset: 0,
            last: None,
            annex_b: Vec::new(),
            stats: FeedStats::default(),
        };
        for msg in gop {
            match msg {
                Message::Init(init) => feed.set_config(init.video.as_ref())?,
                Message::Frame(f) if f.frame.track == TrackKind::Video => {
                    check(&f.frame)?;
                    if f.frame.keyframe {
                        feed.gop.clear();
                        feed.wait_key = false;
                    }
                    if !feed.wait_key {
                        feed.gop.push(f.frame);
                    }
                }
                _ => {}
            }
        }
        if feed.config.is_none() {
            return Err(FeedError::NoVideo);
        }
        feed.start();
        Ok(feed)
    }

    fn set_config(&mut self, video: Option<&VideoConfig>) -> Result<(), FeedError> {
        match video {
            Some(VideoConfig::H264(avc)) => {
                self.config = Some(Arc::new(avc.clone()));
                Ok(())
            }
            #[allow(unreachable_patterns)] // VideoConfig grows (HEVC)
            _ => Err(FeedError::NoVideo),
        }
    }

    /// Feeds one live relay message.
    ///
    /// # Errors
    /// [`FeedError`] when the stream can no longer be served (B-frames appeared, the codec
    /// changed away from H.264, or the stream ended): end the session.
    pub(crate) fn handle_message(&mut self, msg: Message) -> Result<(), FeedError> {
        match msg {
            Message::Init(init) => {
                self.set_config(init.video.as_ref())?;
                // A new session of the camera (or a segment start): parameter sets may have
                // changed; its first frame is a keyframe.
                Ok(())
            }
            Message::Frame(f) if f.frame.track == TrackKind::Video => {
                check(&f.frame)?;
                self.live(f.frame);
                Ok(())
            }
            Message::End(_) => Err(FeedError::Ended),
            _ => Ok(()),
        }
    }

    fn live(&mut self, frame: MediaFrame) {
        if frame.keyframe {
            self.gop.clear();
            self.wait_key = false;
        }
        if self.wait_key {
            self.stats.skipped += 1;
            return;
        }
        self.gop.push(frame.clone());
        let mut t = frame.pts() + self.offset;
        if let Some(last) = self.last.filter(|l| t <= *l) {
            // The camera's clock went back (a reconnect): keep the viewer's going forward.
            self.offset += last + 1 - t;
            t = last + 1;
        }
        self.push(t, frame);
    }

    fn push(&mut self, rtp_time: i64, frame: MediaFrame) {
        self.last = Some(rtp_time);
        self.stats.frames += 1;
        self.out.push_back(Out { rtp_time, frame });
    }

    /// Queues the frames from the latest keyframe again, stamped just ahead of what was
    /// sent: the receiver decodes them at once and continues live.
    fn replay(&mut self) {
        let Some(latest) = self.gop.last() else {
            // Nothing to replay yet: the next keyframe serves.
            self.wait_key = true;
            return;
        };
        let n = self.gop.len() as i64;
        let mut base = latest.pts() + self.offset;
        if let Some(last) = self.last {
            base = base.max(last + n);
        }
        self.offset = base - latest.pts();
        self.out.clear();
        let frames = std::mem::take(&mut self.gop);
        for (i, f) in frames.iter().enumerate() {
            self.push(base - (n - 1 - i as i64), f.clone());
        }
        self.gop = frames;
    }

    /// The viewer asked for a keyframe (PLI or FIR): replay from the latest one.
    pub(crate) fn keyframe_request(&mut self) {
        self.replay();
        self.stats.replays += 1;
    }

    /// The connection is up (what was written before it was dropped): start over from the
    /// latest keyframe at the live point.
    /// How many RTP packets the session's send buffer should hold for this camera: three of
    /// its largest frames (a keyframe must fit whole between a write and its drain, and NACKs
    /// are answered from what is left), or a second of its rate if that is more; between
    /// [`SEND_BUFFER_MIN`] and str0m's default [`SEND_BUFFER_MAX`]. Measured from the GOP the
    /// viewer joins on. The buffer is most of a session's memory (about 1.2 KB a packet), so
    /// str0m's fixed 1,000 cost 1.75 MB per viewer of a 2 Mbit/s camera.
    pub(crate) fn send_buffer_packets(&self) -> usize {
        let packets = |bytes: usize| bytes / RTP_PAYLOAD + 1;
        let largest = self.gop.iter().map(|f| f.data.len()).max().unwrap_or(0);
        let total: usize = self.gop.iter().map(|f| f.data.len()).sum();
        // 90 kHz ticks.
        let span = match (self.gop.first(), self.gop.last()) {
            (Some(a), Some(b)) if b.dts > a.dts => (b.dts - a.dts) as usize,
            _ => 0,
        };
        let per_second = if span >= 45_000 {
            packets(total * 90_000 / span)
        } else {
            0
        };
        (3 * packets(largest))
            .max(per_second)
            .clamp(SEND_BUFFER_MIN, SEND_BUFFER_MAX)
    }

    pub(crate) fn start(&mut self) {
        self.replay();
    }

    /// The viewer fell behind the camera (its queue passed the bound): drop what is queued
    /// and everything up to the next keyframe rather than buffer.
    pub(crate) fn behind(&mut self) {
        if !self.wait_key {
            self.stats.skips += 1;
        }
        self.stats.skipped += self.out.len() as u64;
        self.out.clear();
        self.gop.clear();
        self.wait_key = true;
    }

    /// The next access unit to write, as Annex-B in a buffer reused between calls, with its
    /// RTP time and its presentation time on the camera's timeline (90 kHz). A broken access
    /// unit is dropped and the feed waits for the next keyframe.
    pub(crate) fn poll_unit(&mut self) -> Option<(i64, i64, &[u8])> {
        loop {
            let out = self.out.pop_front()?;
            let config = self.config.as_ref().expect("a feed has a configuration");
            match h264::to_annex_b(config, &out.frame, &mut self.annex_b) {
                Ok(()) => {
                    let pts = out.frame.dts + i64::from(out.frame.cts);
                    return Some((out.rtp_time, pts, &self.annex_b));
                }
                Err(e) => {
                    tracing::debug!(error = %e, "dropping a broken access unit");
                    self.behind();
                }
            }
        }
    }

    /// Counters so far.
    pub(crate) fn stats(&self) -> FeedStats {
        self.stats
    }
}

fn check(frame: &MediaFrame) -> Result<(), FeedError> {
    if h264::reorders(frame) {
        return Err(FeedError::BFrames { cts: frame.cts });
    }
    Ok(())
}

#[cfg(test)]
#[path = "feed_tests.rs"]
mod tests;
