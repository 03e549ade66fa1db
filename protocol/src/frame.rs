//! Media frames and the events an ingest session produces.
//!
//! A [`MediaFrame`] is one access unit of one track. Its payload is a [`Bytes`] slice of the
//! buffer the ingest copied off the socket: every output refers to it, none copies it.

use bytes::Bytes;

use crate::codec::TrackConfig;

/// Which track of a camera a frame belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrackKind {
    /// The video track.
    Video,
    /// The audio track.
    Audio,
}

/// One access unit of one track.
///
/// Timestamps are in 90 kHz ticks on the stream's unwrapped 64-bit timeline (see
/// [`crate::Unwrapper`]): monotonic per track, never wrapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaFrame {
    /// The track this frame belongs to.
    pub track: TrackKind,
    /// Decode timestamp, 90 kHz ticks.
    pub dts: i64,
    /// Composition offset `pts - dts`, 90 kHz ticks (B-frames make it positive; some encoders
    /// send negative offsets, which are kept as they come).
    pub cts: i32,
    /// A random access point: an IDR frame for video; every AAC frame is one.
    pub keyframe: bool,
    /// The payload. H.264/H.265: length-prefixed NAL units (the AVCC/HVCC layout FLV carries,
    /// with the length size from the codec configuration). AAC: one raw access unit (no ADTS).
    pub data: Bytes,
}

impl MediaFrame {
    /// Presentation timestamp, 90 kHz ticks.
    pub fn pts(&self) -> i64 {
        self.dts + i64::from(self.cts)
    }
}

/// Stream-level metadata an encoder announces (`@setDataFrame onMetaData` in RTMP).
///
/// Every field is optional: encoders send what they like, and nothing here is trusted over
/// what the codec configuration records say.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamMetadata {
    /// Announced video codec id (FLV numbering: 7 = AVC, 12 = HEVC).
    pub video_codec_id: Option<u32>,
    /// Announced audio codec id (FLV numbering: 10 = AAC).
    pub audio_codec_id: Option<u32>,
    /// Announced width in pixels.
    pub width: Option<u32>,
    /// Announced height in pixels.
    pub height: Option<u32>,
    /// Announced frame rate.
    pub frame_rate: Option<f32>,
    /// Announced video bitrate, kbit/s.
    pub video_bitrate_kbps: Option<u32>,
    /// Announced audio bitrate, kbit/s.
    pub audio_bitrate_kbps: Option<u32>,
    /// Encoder name, as the encoder writes it.
    pub encoder: Option<String>,
}

impl StreamMetadata {
    /// Whether the metadata announces a video track.
    pub fn has_video(&self) -> Option<bool> {
        self.video_codec_id.map(|id| id != 0)
    }

    /// Whether the metadata announces an audio track.
    pub fn has_audio(&self) -> Option<bool> {
        self.audio_codec_id.map(|id| id != 0)
    }
}

/// What a demuxer hands to the rest of the data plane, in stream order.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum MediaEvent {
    /// The encoder announced metadata.
    Metadata(StreamMetadata),
    /// A track's codec configuration arrived or changed.
    Config(TrackConfig),
    /// A media frame.
    Frame(MediaFrame),
}
