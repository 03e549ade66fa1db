//! The RFC 6381 `CODECS` attribute a master playlist announces for the fMP4 tracks.
//!
//! Spec: RFC 6381 §3.3 (`avc1.PPCCLL` from the avcC profile, constraint and level bytes;
//! `mp4a.40.N` with N the MPEG-4 audio object type); RFC 8216bis §4.4.6.2 (`CODECS`).

use std::fmt::Write as _;

use camstream_protocol::{AudioConfig, VideoConfig};

use super::Fmp4Error;

/// The `CODECS` value for the tracks an init segment from the same configurations carries,
/// video first: `"avc1.64001f,mp4a.40.2"`.
///
/// # Errors
/// [`Fmp4Error::NoTracks`] with neither track; `Unsupported*` for codecs fMP4 output does not
/// carry.
pub(crate) fn codecs(
    video: Option<&VideoConfig>,
    audio: Option<&AudioConfig>,
) -> Result<String, Fmp4Error> {
    let mut out = String::with_capacity(24);
    if let Some(video) = video {
        match video {
            VideoConfig::H264(avc) => {
                // Writing to a String cannot fail.
                let _ = write!(
                    out,
                    "avc1.{:02x}{:02x}{:02x}",
                    avc.profile, avc.compatibility, avc.level
                );
            }
            other => return Err(Fmp4Error::UnsupportedVideo(other.codec())),
        }
    }
    if let Some(audio) = audio {
        match audio {
            AudioConfig::Aac(aac) => {
                if !out.is_empty() {
                    out.push(',');
                }
                // 0x40: the MPEG-4 Audio objectTypeIndication the esds carries.
                let _ = write!(out, "mp4a.40.{}", aac.object_type);
            }
            other => return Err(Fmp4Error::UnsupportedAudio(other.codec())),
        }
    }
    if out.is_empty() {
        return Err(Fmp4Error::NoTracks);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use camstream_protocol::{AacConfig, AvcConfig};

    use super::*;

    fn avc(profile: u8, compatibility: u8, level: u8) -> VideoConfig {
        VideoConfig::H264(AvcConfig {
            record: Bytes::new(),
            profile,
            compatibility,
            level,
            nal_length_size: 4,
            sps: Vec::new(),
            pps: Vec::new(),
            width: 1280,
            height: 720,
        })
    }

    fn aac(asc: &'static [u8]) -> AudioConfig {
        AudioConfig::Aac(AacConfig::parse(Bytes::from_static(asc)).unwrap())
    }

    #[test]
    fn both_tracks_video_first() {
        let v = avc(0x64, 0x00, 0x1f);
        let a = aac(&[0x11, 0x90]); // LC 48 kHz stereo
        assert_eq!(codecs(Some(&v), Some(&a)).unwrap(), "avc1.64001f,mp4a.40.2");
    }

    #[test]
    fn single_tracks() {
        let v = avc(0x42, 0xc0, 0x0a);
        assert_eq!(codecs(Some(&v), None).unwrap(), "avc1.42c00a");
        let he = aac(&[0x2b, 0x92, 0x08, 0x00]); // object type 5 (HE-AAC), 22.05 kHz core
        assert_eq!(codecs(None, Some(&he)).unwrap(), "mp4a.40.5");
    }

    #[test]
    fn no_tracks_is_an_error() {
        assert_eq!(codecs(None, None), Err(Fmp4Error::NoTracks));
    }
}
