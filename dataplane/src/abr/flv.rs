//! FLV out: the camera's frames as an FLV byte stream for the transcoder's stdin (ffmpeg
//! reads `-f flv -i pipe:0`). Tag bodies are what RTMP carries (Adobe FLV v10.1 §E.4): a
//! sequence header when a track's configuration arrives or changes, then one tag per
//! frame. Timestamps are milliseconds from the first frame written.

use bytes::{BufMut, Bytes, BytesMut};
use camstream_protocol::{AudioConfig, MediaFrame, TrackKind, VideoConfig};

const AUDIO: u8 = 8;
const VIDEO: u8 = 9;

/// Writes FLV: [`FlvOut::header`] once, then configurations and frames.
#[derive(Debug, Default)]
pub(crate) struct FlvOut {
    /// The first frame's decode time (90 kHz): FLV time 0.
    base: Option<i64>,
    /// The last configurations written (a new one is written when it changes).
    video: Option<Bytes>,
    audio: Option<Bytes>,
    /// The last timestamp written (FLV timestamps must not go back).
    last_ms: u32,
}

impl FlvOut {
    /// The FLV file header (audio and video flags set) and the zero first tag size.
    pub(crate) fn header() -> Bytes {
        Bytes::from_static(b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00")
    }

    /// Sequence headers for configurations that are new or changed, appended to `out`.
    pub(crate) fn configs(
        &mut self,
        video: Option<&VideoConfig>,
        audio: Option<&AudioConfig>,
        out: &mut BytesMut,
    ) {
        if let Some(VideoConfig::H264(c)) = video
            && self.video.as_ref() != Some(&c.record)
        {
            self.video = Some(c.record.clone());
            let ms = self.last_ms;
            tag(out, VIDEO, ms, &[0x17, 0, 0, 0, 0], &c.record);
        }
        if let Some(AudioConfig::Aac(c)) = audio
            && self.audio.as_ref() != Some(&c.asc)
        {
            self.audio = Some(c.asc.clone());
            let ms = self.last_ms;
            tag(out, AUDIO, ms, &[0xAF, 0], &c.asc);
        }
    }

    /// One frame, appended to `out`. Frames of a track with no configuration written yet
    /// are skipped (a decoder could not use them); returns whether it was written.
    pub(crate) fn frame(&mut self, f: &MediaFrame, out: &mut BytesMut) -> bool {
        let base = *self.base.get_or_insert(f.dts);
        let ms = u32::try_from((f.dts - base).max(0) / 90)
            .unwrap_or(u32::MAX)
            .max(self.last_ms);
        match f.track {
            TrackKind::Video if self.video.is_some() => {
                let cts = (f.cts / 90).clamp(-(1 << 23), (1 << 23) - 1);
                let c = cts.to_be_bytes();
                let kind = if f.keyframe { 0x17 } else { 0x27 };
                tag(out, VIDEO, ms, &[kind, 1, c[1], c[2], c[3]], &f.data);
            }
            TrackKind::Audio if self.audio.is_some() => {
                tag(out, AUDIO, ms, &[0xAF, 1], &f.data);
            }
            _ => return false,
        }
        self.last_ms = ms;
        true
    }
}

fn tag(out: &mut BytesMut, kind: u8, ms: u32, head: &[u8], body: &[u8]) {
    let size = head.len() + body.len();
    out.reserve(11 + size + 4);
    out.put_u8(kind);
    out.put_uint(size as u64, 3);
    out.put_uint(u64::from(ms & 0x00FF_FFFF), 3);
    out.put_u8((ms >> 24) as u8);
    out.put_uint(0, 3);
    out.put_slice(head);
    out.put_slice(body);
    out.put_u32((11 + size) as u32);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flv::Demuxer;
    use crate::flv::file::{TagKind, read_tags, test_clip};
    use camstream_protocol::{MediaEvent, TrackConfig};

    fn demux(tags: impl IntoIterator<Item = (TagKind, u32, Bytes)>) -> Vec<MediaEvent> {
        let mut d = Demuxer::new();
        let mut out = Vec::new();
        for (kind, ts, body) in tags {
            let ev = match kind {
                TagKind::Video => d.handle_video(ts, body),
                TagKind::Audio => d.handle_audio(ts, body),
                TagKind::Script => continue,
            };
            out.extend(ev.expect("demuxes"));
        }
        out
    }

    /// The test clip through the demuxer and back out as FLV reads back, tag for tag, as
    /// the same frames: what ffmpeg is fed.
    #[test]
    fn frames_written_as_flv_read_back_the_same() {
        let events = demux(
            test_clip()
                .tags
                .iter()
                .map(|t| (t.kind, t.timestamp, t.body.clone())),
        );
        let mut out = BytesMut::new();
        out.extend_from_slice(&FlvOut::header());
        let mut flv = FlvOut::default();
        let (mut video, mut audio) = (None, None);
        let mut frames = Vec::new();
        for ev in events {
            match ev {
                MediaEvent::Config(TrackConfig::Video(v)) => video = Some(v),
                MediaEvent::Config(TrackConfig::Audio(a)) => audio = Some(a),
                MediaEvent::Frame(f) => {
                    flv.configs(video.as_ref(), audio.as_ref(), &mut out);
                    if flv.frame(&f, &mut out) {
                        frames.push(f);
                    }
                }
                _ => {}
            }
        }
        assert!(frames.len() > 100, "{}", frames.len());
        let again: Vec<MediaFrame> = demux(
            read_tags(&out)
                .into_iter()
                .map(|t| (t.kind, t.timestamp, t.body)),
        )
        .into_iter()
        .filter_map(|e| match e {
            MediaEvent::Frame(f) => Some(f),
            _ => None,
        })
        .collect();
        assert_eq!(again.len(), frames.len());
        let (base, base2) = (frames[0].dts, again[0].dts);
        for (a, b) in frames.iter().zip(&again) {
            assert_eq!(
                (a.track, a.keyframe, &a.data),
                (b.track, b.keyframe, &b.data)
            );
            assert_eq!((a.dts - base) / 90, (b.dts - base2) / 90, "ms timing kept");
            assert_eq!(a.cts / 90, b.cts / 90);
        }
    }
}
