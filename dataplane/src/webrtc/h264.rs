//! H.264 access units from FLV's AVCC layout to the Annex-B byte stream str0m's RTP
//! packetizer (RFC 6184, single NAL unit / STAP-A / FU-A) splits, with the parameter sets
//! in front of every keyframe; and the B-frame decision.
//!
//! No decode: NAL units are copied as they come (one copy, into a reused buffer).

use camstream_protocol::{AvcConfig, MediaFrame};

const START_CODE: [u8; 4] = [0, 0, 0, 1];

/// Why an access unit could not be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum H264Error {
    /// A NAL unit length prefix runs past the end of the access unit.
    #[error("nal unit at byte {offset} claims {len} bytes, {left} left")]
    Truncated {
        /// Where the length prefix starts.
        offset: usize,
        /// The length it claims.
        len: usize,
        /// Bytes left after the prefix.
        left: usize,
    },
    /// The configuration's NAL length size is not 1, 2 or 4.
    #[error("nal length size {0} (expected 1, 2 or 4)")]
    LengthSize(u8),
}

/// Writes `frame` (AVCC: NAL units with `config.nal_length_size`-byte big-endian length
/// prefixes) into `out` as Annex-B. A keyframe is preceded by the configuration's SPS and
/// PPS, so a viewer joining there (or recovering from a PLI) can always decode it, whether
/// or not the encoder repeats them in band. `out` is cleared first.
///
/// # Errors
/// [`H264Error`] when a length prefix does not fit the access unit; `out` then holds the
/// NAL units before it and should not be sent.
pub(crate) fn to_annex_b(
    config: &AvcConfig,
    frame: &MediaFrame,
    out: &mut Vec<u8>,
) -> Result<(), H264Error> {
    out.clear();
    let size = usize::from(config.nal_length_size);
    if !matches!(size, 1 | 2 | 4) {
        return Err(H264Error::LengthSize(config.nal_length_size));
    }
    if frame.keyframe {
        for ps in config.sps.iter().chain(&config.pps) {
            out.extend_from_slice(&START_CODE);
            out.extend_from_slice(ps);
        }
    }
    let data = &frame.data[..];
    let mut at = 0;
    while at < data.len() {
        if data.len() - at < size {
            return Err(H264Error::Truncated {
                offset: at,
                len: size,
                left: data.len() - at,
            });
        }
        let len = data[at..at + size]
            .iter()
            .fold(0usize, |n, b| (n << 8) | usize::from(*b));
        let body = at + size;
        if len > data.len() - body {
            return Err(H264Error::Truncated {
                offset: at,
                len,
                left: data.len() - body,
            });
        }
        if len > 0 {
            out.extend_from_slice(&START_CODE);
            out.extend_from_slice(&data[body..body + len]);
        }
        at = body + len;
    }
    Ok(())
}

/// Whether a video frame shows picture reordering (B-frames): a composition offset other
/// than zero. Browsers' WebRTC H.264 receivers decode in arrival order and present in RTP
/// timestamp order with no reordering delay, so such a stream plays out of order; camstream
/// refuses WebRTC for it instead (docs/webrtc.md, "B-frames").
pub(crate) fn reorders(frame: &MediaFrame) -> bool {
    frame.cts != 0
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use camstream_protocol::TrackKind;

    use super::*;

    fn config(size: u8) -> AvcConfig {
        AvcConfig {
            record: Bytes::new(),
            profile: 0x42,
            compatibility: 0xe0,
            level: 0x1f,
            nal_length_size: size,
            sps: vec![Bytes::from_static(&[0x67, 1, 2])],
            pps: vec![Bytes::from_static(&[0x68, 3])],
            width: 640,
            height: 360,
        }
    }

    fn frame(keyframe: bool, data: &'static [u8]) -> MediaFrame {
        MediaFrame {
            track: TrackKind::Video,
            dts: 0,
            cts: 0,
            keyframe,
            data: Bytes::from_static(data),
        }
    }

    #[test]
    fn keyframes_get_parameter_sets_and_start_codes() {
        let mut out = Vec::new();
        let f = frame(true, &[0, 0, 0, 2, 0x65, 9, 0, 0, 0, 1, 0x06]);
        to_annex_b(&config(4), &f, &mut out).unwrap();
        assert_eq!(
            out,
            [
                0, 0, 0, 1, 0x67, 1, 2, 0, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 9, 0, 0, 0, 1, 0x06
            ]
        );
    }

    #[test]
    fn delta_frames_only_convert_and_short_prefixes_work() {
        let mut out = vec![7; 10];
        to_annex_b(&config(2), &frame(false, &[0, 2, 0x41, 5]), &mut out).unwrap();
        assert_eq!(out, [0, 0, 0, 1, 0x41, 5]);
        to_annex_b(&config(1), &frame(false, &[1, 0x41, 0]), &mut out).unwrap();
        assert_eq!(out, [0, 0, 0, 1, 0x41]);
    }

    #[test]
    fn lengths_past_the_end_are_errors() {
        let mut out = Vec::new();
        assert_eq!(
            to_annex_b(&config(4), &frame(false, &[0, 0, 0, 9, 0x41]), &mut out),
            Err(H264Error::Truncated {
                offset: 0,
                len: 9,
                left: 1
            })
        );
        assert!(to_annex_b(&config(4), &frame(false, &[0, 0]), &mut out).is_err());
        assert_eq!(
            to_annex_b(&config(3), &frame(false, &[]), &mut out),
            Err(H264Error::LengthSize(3))
        );
    }

    #[test]
    fn composition_offsets_mean_reordering() {
        let mut f = frame(false, &[]);
        assert!(!reorders(&f));
        f.cts = 3000;
        assert!(reorders(&f));
        f.cts = -3000;
        assert!(reorders(&f));
    }
}
