//! Real-time pacing of a looped clip, with rewritten timestamps (sans-IO).
//!
//! The publisher shell asks which tags are due at "now" (milliseconds since its stream
//! started) and sends them; this module never reads a clock. Loop `k` of the clip is due
//! `k × loop_ms` after the first, and every tag's RTMP timestamp is its due time plus the
//! connection's base timestamp, modulo 2^32 as RTMP's 32-bit millisecond clock wraps
//! (RTMP spec §5.3.1.1). So the stream's timestamps advance monotonically across loops,
//! exactly in step with the wall clock, as a live camera's do.

use std::sync::Arc;

use bytes::Bytes;

use crate::clip::{Clip, ClipTag, TagKind};

/// A tag to send now.
#[derive(Debug, Clone)]
pub(crate) struct Step {
    /// When it is due, ms since the stream started.
    pub(crate) due_ms: u64,
    /// Its RTMP timestamp (DTS), wrapping.
    pub(crate) timestamp: u32,
    pub(crate) kind: TagKind,
    pub(crate) body: Bytes,
}

/// Walks a clip in loops; see the module docs.
#[derive(Debug)]
pub(crate) struct Pacer {
    clip: Arc<Clip>,
    idx: usize,
    loops: u64,
    base_ms: u32,
}

impl Pacer {
    /// A pacer whose first tag carries timestamp `base_ms` and is due at 0.
    pub(crate) fn new(clip: Arc<Clip>, base_ms: u32) -> Self {
        Self {
            clip,
            idx: 0,
            loops: 0,
            base_ms,
        }
    }

    fn current(&self) -> &ClipTag {
        &self.clip.tags[self.idx]
    }

    /// When the next tag is due, ms since the stream started.
    pub(crate) fn next_due_ms(&self) -> u64 {
        self.loops * u64::from(self.clip.loop_ms) + u64::from(self.current().ts_ms)
    }

    /// The RTMP timestamp for something due at `due_ms`.
    pub(crate) fn timestamp_at(&self, due_ms: u64) -> u32 {
        // Truncation to 32 bits is RTMP's wrap-around.
        self.base_ms.wrapping_add(due_ms as u32)
    }

    /// Takes the next tag, whatever its due time.
    pub(crate) fn pop(&mut self) -> Step {
        let due_ms = self.next_due_ms();
        let tag = self.current();
        let step = Step {
            due_ms,
            timestamp: self.timestamp_at(due_ms),
            kind: tag.kind,
            body: tag.body.clone(),
        };
        self.idx += 1;
        if self.idx == self.clip.tags.len() {
            self.idx = 0;
            self.loops += 1;
        }
        step
    }

    /// Appends every tag due at or before `now_ms` to `out`.
    pub(crate) fn pop_due(&mut self, now_ms: u64, out: &mut Vec<Step>) {
        while self.next_due_ms() <= now_ms {
            out.push(self.pop());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clip::ClipInfo;

    /// Video every 40 ms (keyframe at 0), audio every 20 ms, a 200 ms loop.
    fn toy_clip() -> Arc<Clip> {
        let mut tags = Vec::new();
        for ms in (0..200).step_by(20) {
            if ms % 40 == 0 {
                tags.push(ClipTag {
                    kind: TagKind::Video,
                    ts_ms: ms,
                    body: Bytes::from_static(&[0x27, 1, 0, 0, 0]),
                    keyframe: ms == 0,
                });
            }
            tags.push(ClipTag {
                kind: TagKind::Audio,
                ts_ms: ms,
                body: Bytes::from_static(&[0xaf, 1]),
                keyframe: true,
            });
        }
        Arc::new(Clip {
            video_header: Bytes::new(),
            audio_header: None,
            tags,
            loop_ms: 200,
            nal_length_size: 4,
            info: ClipInfo {
                source: "toy".into(),
                width: 1,
                height: 1,
                fps: 25.0,
                duration_s: 0.2,
                video_kbps: 0.0,
                audio_kbps: 0.0,
                gop_s: 0.2,
                bframes: false,
                audio_sample_rate: 48_000,
                video_frames: 5,
            },
        })
    }

    #[test]
    fn releases_only_what_is_due() {
        let mut p = Pacer::new(toy_clip(), 0);
        let mut out = Vec::new();
        p.pop_due(0, &mut out);
        assert_eq!(out.len(), 2, "video and audio at 0");
        p.pop_due(19, &mut out);
        assert_eq!(out.len(), 2, "nothing due before 20 ms");
        p.pop_due(40, &mut out);
        assert_eq!(out.len(), 5, "audio 20, video 40, audio 40");
        assert_eq!(p.next_due_ms(), 60);
    }

    #[test]
    fn loops_continue_the_timeline_in_real_time() {
        let mut p = Pacer::new(toy_clip(), 1000);
        let steps: Vec<Step> = (0..45).map(|_| p.pop()).collect();
        // 15 tags per loop: loop 2 starts at 400 ms with a keyframe.
        assert_eq!(steps[30].due_ms, 400);
        assert_eq!(
            steps[30].kind,
            TagKind::Video,
            "the loop restarts with the first video tag"
        );
        assert_eq!(steps[30].timestamp, 1400);
        for w in steps.windows(2) {
            assert!(w[1].due_ms >= w[0].due_ms, "due times never go back");
        }
        for s in &steps {
            assert_eq!(
                u64::from(s.timestamp),
                1000 + s.due_ms,
                "timestamp = base + due"
            );
        }
        let video: Vec<u64> = steps
            .iter()
            .filter(|s| s.kind == TagKind::Video)
            .map(|s| s.due_ms)
            .collect();
        assert!(
            video.windows(2).all(|w| w[1] - w[0] == 40),
            "constant frame interval across loops: {video:?}"
        );
    }

    #[test]
    fn timestamps_wrap_like_rtmp() {
        let mut p = Pacer::new(toy_clip(), u32::MAX - 50);
        let steps: Vec<Step> = (0..20).map(|_| p.pop()).collect();
        let at_100 = steps
            .iter()
            .find(|s| s.due_ms == 100)
            .expect("a tag at 100 ms");
        assert_eq!(at_100.timestamp, 49, "u32::MAX - 50 + 100 wraps to 49");
        let wrapped = steps.iter().filter(|s| s.timestamp < 1000).count();
        assert!(wrapped > 0 && wrapped < steps.len());
    }
}
