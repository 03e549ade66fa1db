//! fMP4/CMAF init segments and fragments, built in memory for LL-HLS parts and recordings.
//!
//! Owns: the init segment (`ftyp` + `moov` with one `trak` per track and `mvex`), the
//! `moof` + `mdat` of each fragment, and the RFC 6381 `CODECS` string. `mp4-atom` only
//! serializes boxes; which boxes, which flags and the sample layout are decided here.
//! Leaves to others: where fragments and segments are cut, sequence numbers and timestamps
//! (`hls`), sending and storing the bytes (the HTTP layer and the recorder).
//!
//! Tracks are fixed: video is track [`VIDEO_TRACK_ID`] with a 90 kHz timescale, audio is
//! track [`AUDIO_TRACK_ID`] with its sample rate as timescale, so an init segment and the
//! fragments written after it agree without passing state around.
//!
//! Spec: ISO/IEC 14496-12 (ISO BMFF) §8.8 movie fragments; ISO/IEC 14496-15 §5.3 (`avc1`,
//! `avcC`); ISO/IEC 14496-14 §5.6 and 14496-1 §7.2.6 (`esds`); ISO/IEC 23000-19 (CMAF)
//! §7; RFC 8216bis §3.1.2 (fMP4 segments) and §4.4.4.5 (`EXT-X-MAP`); RFC 6381 §3.3.

mod codecs;
mod fragment;
mod init;
#[cfg(test)]
pub(crate) mod parse;

use camstream_protocol::{AudioCodec, VideoCodec};

pub(crate) use codecs::codecs;
pub(crate) use fragment::{FragmentWriter, Sample};
pub(crate) use init::init_segment;

/// The video track's `track_ID`.
pub(crate) const VIDEO_TRACK_ID: u32 = 1;
/// The audio track's `track_ID`.
pub(crate) const AUDIO_TRACK_ID: u32 = 2;
/// The video track's timescale: the 90 kHz clock every timestamp in camstream uses, so video
/// times need no conversion. The audio timescale is its sample rate (an AAC frame is then
/// exactly 1024 ticks).
pub(crate) const VIDEO_TIMESCALE: u32 = 90_000;

/// Why an init segment, a fragment or a codecs string could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Fmp4Error {
    /// Neither a video nor an audio configuration was given.
    #[error("an init segment needs at least one track, got none")]
    NoTracks,
    /// A video codec with no fMP4 sample entry here.
    #[error("fMP4 output does not support video codec {0:?}")]
    UnsupportedVideo(VideoCodec),
    /// An audio codec with no fMP4 sample entry here.
    #[error("fMP4 output does not support audio codec {0:?}")]
    UnsupportedAudio(AudioCodec),
    /// The fragment would not fit the 32-bit box sizes and signed 32-bit `data_offset`s a
    /// plain `moof` + `mdat` uses.
    #[error("fragment of {bytes} bytes exceeds the {limit}-byte limit")]
    TooLarge {
        /// Bytes the fragment would take (header and payload).
        bytes: u64,
        /// The largest fragment that can be written.
        limit: u64,
    },
    /// `mp4-atom` refused a box (a configuration field out of range).
    #[error("cannot encode {what}: {reason}")]
    Encode {
        /// The box.
        what: &'static str,
        /// `mp4-atom`'s reason.
        reason: String,
    },
}

impl Fmp4Error {
    fn encode(what: &'static str) -> impl FnOnce(mp4_atom::Error) -> Self {
        move |e| Fmp4Error::Encode {
            what,
            reason: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests;
