//! The tag-body demuxer.

use bytes::Bytes;
use camstream_protocol::{
    AacConfig, AudioConfig, AvcConfig, CodecError, MS_TO_90K, MediaEvent, MediaFrame, TrackConfig,
    TrackKind, Unwrapper, VideoConfig,
};

/// FLV `CodecID` for AVC.
const CODEC_AVC: u8 = 7;
/// FLV `CodecID` some Chinese encoders use for HEVC (never standardised).
const CODEC_HEVC_LEGACY: u8 = 12;
/// FLV `SoundFormat` for AAC.
const SOUND_AAC: u8 = 10;
/// FLV `SoundFormat` 9: enhanced RTMP `ExAudioTagHeader`.
const SOUND_EX_HEADER: u8 = 9;
/// `FrameType` 5: video info/command frame, carries no picture.
const FRAME_COMMAND: u8 = 5;

/// Why a tag body was not turned into an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FlvError {
    /// The tag is shorter than its header or its NAL unit lengths do not add up. The tag is
    /// dropped; the stream goes on.
    #[error("malformed {track:?} tag: {reason}")]
    Malformed {
        /// Which track.
        track: TrackKind,
        /// What was wrong.
        reason: &'static str,
    },
    /// A codec camstream does not carry yet. For video this ends the publish; audio in such
    /// a codec is dropped with one warning.
    #[error("unsupported {track:?} codec {codec}")]
    Unsupported {
        /// Which track.
        track: TrackKind,
        /// The codec's name.
        codec: &'static str,
    },
    /// A sequence header that could not be parsed.
    #[error("bad {track:?} sequence header: {source}")]
    BadConfig {
        /// Which track.
        track: TrackKind,
        /// The parse error.
        #[source]
        source: CodecError,
    },
}

/// Turns one stream's tag bodies into events. Feed every tag of the stream, both tracks, in
/// arrival order: timestamps of both tracks go through one [`Unwrapper`].
#[derive(Debug, Default)]
pub(crate) struct Demuxer {
    unwrapper: Unwrapper,
    avc: Option<AvcConfig>,
    aac: Option<AacConfig>,
    /// Media frames dropped because their track had no configuration yet.
    pub(crate) frames_before_config: u64,
}

impl Demuxer {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The current video configuration, if a sequence header arrived.
    #[cfg(any(test, feature = "bench"))]
    pub(crate) fn video_config(&self) -> Option<&AvcConfig> {
        self.avc.as_ref()
    }

    /// The current audio configuration, if a sequence header arrived.
    #[cfg(any(test, feature = "bench"))]
    pub(crate) fn audio_config(&self) -> Option<&AacConfig> {
        self.aac.as_ref()
    }

    /// Demuxes one video tag body with its RTMP timestamp (milliseconds).
    ///
    /// `Ok(None)`: nothing to hand on (command frames, end-of-sequence, repeated identical
    /// sequence headers, frames before the first sequence header).
    ///
    /// # Errors
    /// [`FlvError`]: malformed tags (drop and go on) or an unsupported codec.
    pub(crate) fn handle_video(
        &mut self,
        timestamp_ms: u32,
        data: Bytes,
    ) -> Result<Option<MediaEvent>, FlvError> {
        let malformed = |reason| FlvError::Malformed {
            track: TrackKind::Video,
            reason,
        };
        let first = *data.first().ok_or(malformed("empty tag"))?;
        if first & 0x80 != 0 {
            // Enhanced RTMP: [1 bit IsExHeader][3 bits FrameType][4 bits PacketType][FourCC].
            let fourcc = data
                .get(1..5)
                .ok_or(malformed("truncated ExVideoTagHeader"))?;
            let codec = match fourcc {
                b"hvc1" => "HEVC (enhanced RTMP)",
                b"av01" => "AV1 (enhanced RTMP)",
                b"vp09" => "VP9 (enhanced RTMP)",
                b"avc1" => "AVC in an enhanced RTMP header",
                _ => "unknown enhanced RTMP FourCC",
            };
            return Err(FlvError::Unsupported {
                track: TrackKind::Video,
                codec,
            });
        }
        let frame_type = first >> 4;
        match first & 0x0F {
            CODEC_AVC => {}
            CODEC_HEVC_LEGACY => {
                return Err(FlvError::Unsupported {
                    track: TrackKind::Video,
                    codec: "HEVC (FLV codec id 12)",
                });
            }
            2 => return Err(unsupported_video("Sorenson H.263")),
            4 | 5 => return Err(unsupported_video("VP6")),
            _ => return Err(unsupported_video("unknown FLV video codec")),
        }
        if frame_type == FRAME_COMMAND {
            return Ok(None);
        }
        if data.len() < 5 {
            return Err(malformed("AVC tag shorter than its 5-byte header"));
        }
        let packet_type = data[1];
        // SI24 composition time offset, milliseconds.
        let cts_ms =
            (i32::from(data[2]) << 16 | i32::from(data[3]) << 8 | i32::from(data[4])) << 8 >> 8;
        let dts_ms = self.unwrapper.unwrap(timestamp_ms, 0);
        match packet_type {
            0 => {
                let config =
                    AvcConfig::parse(data.slice(5..)).map_err(|source| FlvError::BadConfig {
                        track: TrackKind::Video,
                        source,
                    })?;
                if self.avc.as_ref().is_some_and(|c| c.record == config.record) {
                    return Ok(None);
                }
                self.avc = Some(config.clone());
                Ok(Some(MediaEvent::Config(TrackConfig::Video(
                    VideoConfig::H264(config),
                ))))
            }
            1 => {
                let Some(avc) = &self.avc else {
                    self.frames_before_config += 1;
                    return Ok(None);
                };
                let payload = data.slice(5..);
                if !nal_lengths_add_up(&payload, avc.nal_length_size) {
                    return Err(malformed("NAL unit lengths do not match the tag size"));
                }
                Ok(Some(MediaEvent::Frame(MediaFrame {
                    track: TrackKind::Video,
                    dts: dts_ms * MS_TO_90K,
                    cts: cts_ms * MS_TO_90K as i32,
                    keyframe: frame_type == 1,
                    data: payload,
                })))
            }
            2 => Ok(None), // end of sequence
            _ => Err(malformed("unknown AVCPacketType")),
        }
    }

    /// Demuxes one audio tag body with its RTMP timestamp (milliseconds).
    ///
    /// # Errors
    /// As [`Demuxer::handle_video`].
    pub(crate) fn handle_audio(
        &mut self,
        timestamp_ms: u32,
        data: Bytes,
    ) -> Result<Option<MediaEvent>, FlvError> {
        let malformed = |reason| FlvError::Malformed {
            track: TrackKind::Audio,
            reason,
        };
        let first = *data.first().ok_or(malformed("empty tag"))?;
        let codec = match first >> 4 {
            SOUND_AAC => None,
            SOUND_EX_HEADER => Some("enhanced RTMP audio (Opus/FLAC/AC-3)"),
            0 | 3 => Some("PCM"),
            2 | 14 => Some("MP3"),
            4..=6 => Some("Nellymoser"),
            7 => Some("G.711 A-law"),
            8 => Some("G.711 mu-law"),
            11 => Some("Speex"),
            _ => Some("unknown FLV audio codec"),
        };
        if let Some(codec) = codec {
            return Err(FlvError::Unsupported {
                track: TrackKind::Audio,
                codec,
            });
        }
        if data.len() < 2 {
            return Err(malformed("AAC tag shorter than its 2-byte header"));
        }
        let dts_ms = self.unwrapper.unwrap(timestamp_ms, 0);
        match data[1] {
            0 => {
                let config =
                    AacConfig::parse(data.slice(2..)).map_err(|source| FlvError::BadConfig {
                        track: TrackKind::Audio,
                        source,
                    })?;
                if self.aac.as_ref().is_some_and(|c| c.asc == config.asc) {
                    return Ok(None);
                }
                self.aac = Some(config.clone());
                Ok(Some(MediaEvent::Config(TrackConfig::Audio(
                    AudioConfig::Aac(config),
                ))))
            }
            1 => {
                if self.aac.is_none() {
                    self.frames_before_config += 1;
                    return Ok(None);
                }
                let payload = data.slice(2..);
                if payload.is_empty() {
                    return Err(malformed("empty AAC frame"));
                }
                Ok(Some(MediaEvent::Frame(MediaFrame {
                    track: TrackKind::Audio,
                    dts: dts_ms * MS_TO_90K,
                    cts: 0,
                    keyframe: true,
                    data: payload,
                })))
            }
            _ => Err(malformed("unknown AACPacketType")),
        }
    }
}

fn unsupported_video(codec: &'static str) -> FlvError {
    FlvError::Unsupported {
        track: TrackKind::Video,
        codec,
    }
}

/// Whether `payload` is a whole number of length-prefixed NAL units, none empty.
pub(crate) fn nal_lengths_add_up(payload: &[u8], length_size: u8) -> bool {
    let n = usize::from(length_size);
    let mut rest = payload;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        if rest.len() < n {
            return false;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        rest = &rest[n..];
        if len == 0 || len > rest.len() {
            return false;
        }
        rest = &rest[len..];
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flv::file::{TagKind, test_clip};

    #[test]
    fn demuxes_the_test_clip() {
        let clip = test_clip();
        let mut d = Demuxer::new();
        let (mut video, mut audio, mut keys, mut configs, mut bframes) = (0, 0, 0, 0, 0);
        let mut last_video_dts = i64::MIN;
        for tag in &clip.tags {
            let ev = match tag.kind {
                TagKind::Video => d.handle_video(tag.timestamp, tag.body.clone()),
                TagKind::Audio => d.handle_audio(tag.timestamp, tag.body.clone()),
                TagKind::Script => continue,
            }
            .unwrap();
            match ev {
                Some(MediaEvent::Config(_)) => configs += 1,
                Some(MediaEvent::Frame(f)) if f.track == TrackKind::Video => {
                    video += 1;
                    keys += usize::from(f.keyframe);
                    bframes += usize::from(f.cts > 0);
                    assert!(f.dts > last_video_dts, "video DTS must increase");
                    last_video_dts = f.dts;
                }
                Some(MediaEvent::Frame(_)) => audio += 1,
                _ => {}
            }
        }
        assert_eq!(configs, 2);
        assert_eq!(video, clip.video_frames);
        assert!(audio > 0);
        assert_eq!(keys, clip.video_frames.div_ceil(60));
        assert!(
            bframes > 0,
            "the clip has B-frames, so some cts must be > 0"
        );
        let avc = d.video_config().unwrap();
        assert_eq!((avc.width, avc.height), (1280, 720));
        assert_eq!(d.audio_config().unwrap().sample_rate, 48_000);
    }

    #[test]
    fn frames_before_config_are_dropped() {
        let mut d = Demuxer::new();
        let body = Bytes::from_static(&[0x17, 1, 0, 0, 0, 0, 0, 0, 1, 0x65]);
        assert_eq!(d.handle_video(0, body).unwrap(), None);
        assert_eq!(d.frames_before_config, 1);
    }

    #[test]
    fn negative_composition_offsets_sign_extend() {
        let clip = test_clip();
        let mut d = Demuxer::new();
        let config = clip.tags.iter().find(|t| t.kind == TagKind::Video).unwrap();
        d.handle_video(0, config.body.clone()).unwrap();
        // cts = -2 ms as SI24
        let body = Bytes::from_static(&[0x27, 1, 0xFF, 0xFF, 0xFE, 0, 0, 0, 1, 0x41]);
        let Some(MediaEvent::Frame(f)) = d.handle_video(40, body).unwrap() else {
            panic!("expected a frame");
        };
        assert_eq!(f.cts, -180);
    }

    #[test]
    fn rejects_malformed_and_unsupported() {
        let mut d = Demuxer::new();
        assert!(matches!(
            d.handle_video(0, Bytes::new()),
            Err(FlvError::Malformed { .. })
        ));
        assert!(matches!(
            d.handle_video(0, Bytes::from_static(&[0x17, 0])),
            Err(FlvError::Malformed { .. })
        ));
        assert!(matches!(
            d.handle_video(0, Bytes::from_static(&[0x90, b'h', b'v', b'c', b'1'])),
            Err(FlvError::Unsupported { .. })
        ));
        assert!(matches!(
            d.handle_video(0, Bytes::from_static(&[0x1C, 0, 0, 0, 0])),
            Err(FlvError::Unsupported { .. })
        ));
        assert!(matches!(
            d.handle_audio(0, Bytes::from_static(&[0x72, 0])),
            Err(FlvError::Unsupported { .. })
        ));
        assert!(matches!(
            d.handle_audio(0, Bytes::from_static(&[0xAF, 0, 0x12])),
            Err(FlvError::BadConfig { .. })
        ));
    }

    #[test]
    fn nal_length_walk() {
        assert!(nal_lengths_add_up(&[0, 0, 0, 1, 9, 0, 0, 0, 2, 1, 2], 4));
        assert!(!nal_lengths_add_up(&[0, 0, 0, 3, 9], 4));
        assert!(!nal_lengths_add_up(&[0, 0, 0, 0], 4));
        assert!(!nal_lengths_add_up(&[], 4));
        assert!(nal_lengths_add_up(&[1, 9], 1));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(
            video in proptest::prelude::any::<bool>(),
            ts in proptest::prelude::any::<u32>(),
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
        ) {
            let mut d = Demuxer::new();
            let _ = if video {
                d.handle_video(ts, Bytes::from(data))
            } else {
                d.handle_audio(ts, Bytes::from(data))
            };
        }
    }
}
