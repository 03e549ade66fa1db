//! H.264 access units from the AVCC layout (length-prefixed NAL units, as FLV and MP4 carry
//! them) to the Annex B byte stream MPEG-TS carries.
//!
//! Owns: walking the length prefixes (never trusting them), the access unit delimiter that
//! starts every access unit, and SPS/PPS in front of keyframes that lack them. Leaves to
//! others: the PES around it (`pes`) and the configuration record (`camstream_protocol`).
//!
//! Spec: ITU-T H.264 Annex B (byte stream), §7.3.2.4 (access unit delimiter), §7.4.1.2.3
//! (order of NAL units in an access unit); ISO/IEC 13818-1 §2.14 (H.264 in MPEG-2 systems:
//! each access unit starts with an AUD); ISO/IEC 14496-15 §5.3 (AVCC samples).

use std::ops::Range;

use bytes::Bytes;
use camstream_protocol::AvcConfig;

use super::pes::PesBuilder;

/// Annex B start code in front of every NAL unit. The 4-byte form is what most muxers use
/// in front of parameter sets and the first NAL unit; using it everywhere keeps one rule.
const START_CODE: [u8; 4] = [0, 0, 0, 1];
/// An access unit delimiter NAL unit with `primary_pic_type` 7 (any slice type may follow)
/// and its stop bit.
const AUD: [u8; 6] = [0, 0, 0, 1, 0x09, 0xF0];

const NAL_SPS: u8 = 7;
const NAL_PPS: u8 = 8;
const NAL_AUD: u8 = 9;

/// The NAL units of one AVCC sample, as ranges of it (length prefixes excluded).
///
/// Stops at the first prefix that is truncated or claims more bytes than are left: what
/// follows cannot be framed. Empty NAL units are skipped. Both count as malformed.
struct NalUnits<'a> {
    data: &'a [u8],
    pos: usize,
    length_size: usize,
    malformed: u64,
}

impl<'a> NalUnits<'a> {
    fn new(data: &'a [u8], length_size: u8) -> Self {
        let length_size = usize::from(length_size);
        let mut units = Self {
            data,
            pos: 0,
            length_size,
            malformed: 0,
        };
        if !(1..=4).contains(&length_size) {
            // The configuration record only allows 1, 2 or 4; anything else frames nothing.
            units.pos = data.len();
            units.malformed = u64::from(!data.is_empty());
        }
        units
    }
}

impl Iterator for NalUnits<'_> {
    type Item = Range<usize>;

    fn next(&mut self) -> Option<Range<usize>> {
        loop {
            let rest = &self.data[self.pos..];
            if rest.is_empty() {
                return None;
            }
            let Some(prefix) = rest.get(..self.length_size) else {
                self.malformed += 1;
                self.pos = self.data.len();
                return None;
            };
            let len = prefix
                .iter()
                .fold(0usize, |n, &b| (n << 8) | usize::from(b));
            let start = self.pos + self.length_size;
            if len > self.data.len() - start {
                self.malformed += 1;
                self.pos = self.data.len();
                return None;
            }
            self.pos = start + len;
            if len == 0 {
                self.malformed += 1;
                continue;
            }
            return Some(start..start + len);
        }
    }
}

/// The parameter sets and framing a video track's access units need.
#[derive(Debug, Clone)]
pub(super) struct VideoTrack {
    sps: Vec<Bytes>,
    pps: Vec<Bytes>,
    nal_length_size: u8,
}

/// What became of one access unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Converted {
    /// NAL units (other than AUDs) written.
    pub(super) nal_units: usize,
    /// Length prefixes that were truncated, overran the sample, or announced nothing.
    pub(super) malformed: u64,
}

impl VideoTrack {
    pub(super) fn new(config: &AvcConfig) -> Self {
        Self {
            sps: config.sps.clone(),
            pps: config.pps.clone(),
            nal_length_size: config.nal_length_size,
        }
    }

    /// Appends the Annex B form of one AVCC sample to `pes`: an AUD, the configuration's
    /// SPS and PPS when `keyframe` and the sample does not carry both, then every NAL unit
    /// of the sample but its own AUDs, each behind a start code. NAL unit bytes are pushed
    /// as ranges of `data` (no copy).
    ///
    /// When no NAL unit can be framed nothing is appended (`nal_units` is 0) and the caller
    /// should drop the frame and its PES header.
    pub(super) fn append_annexb(
        &self,
        pes: &mut PesBuilder,
        data: &[u8],
        keyframe: bool,
    ) -> Converted {
        let (mut has_sps, mut has_pps, mut pictures) = (false, false, 0);
        let mut scan = NalUnits::new(data, self.nal_length_size);
        for nal in scan.by_ref() {
            match data[nal.start] & 0x1F {
                NAL_SPS => has_sps = true,
                NAL_PPS => has_pps = true,
                NAL_AUD => continue,
                _ => {}
            }
            pictures += 1;
        }
        let malformed = scan.malformed;
        if pictures == 0 {
            return Converted {
                nal_units: 0,
                malformed,
            };
        }
        pes.push_scratch(&AUD);
        if keyframe && !(has_sps && has_pps) {
            for unit in self.sps.iter().chain(&self.pps) {
                pes.push_scratch(&START_CODE);
                pes.push_scratch(unit);
            }
        }
        for nal in NalUnits::new(data, self.nal_length_size) {
            if data[nal.start] & 0x1F == NAL_AUD {
                continue;
            }
            pes.push_scratch(&START_CODE);
            pes.push_media(nal);
        }
        Converted {
            nal_units: pictures,
            malformed,
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// The reference conversion the muxer's output is compared with: written the plain way
    /// (one `Vec`, no pieces), from the same rules.
    pub(crate) fn reference_annexb(config: &AvcConfig, data: &[u8], keyframe: bool) -> Vec<u8> {
        let n = usize::from(config.nal_length_size);
        let mut nals = Vec::new();
        let mut rest = data;
        while rest.len() >= n && n > 0 {
            let len = rest[..n]
                .iter()
                .fold(0usize, |a, &b| a << 8 | usize::from(b));
            if len > rest.len() - n {
                break;
            }
            if len > 0 {
                nals.push(&rest[n..n + len]);
            }
            rest = &rest[n + len..];
        }
        nals.retain(|nal| nal[0] & 0x1F != 9);
        if nals.is_empty() {
            return Vec::new();
        }
        let mut out = vec![0, 0, 0, 1, 9, 0xF0];
        let has = |t: u8| nals.iter().any(|nal| nal[0] & 0x1F == t);
        if keyframe && !(has(7) && has(8)) {
            for ps in config.sps.iter().chain(&config.pps) {
                out.extend_from_slice(&[0, 0, 0, 1]);
                out.extend_from_slice(ps);
            }
        }
        for nal in nals {
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(nal);
        }
        out
    }

    /// A configuration with recognisable (not decodable) parameter sets.
    pub(crate) fn config(nal_length_size: u8) -> AvcConfig {
        AvcConfig {
            record: Bytes::from_static(&[1, 0x64, 0, 0x1F, 0xFF]),
            profile: 0x64,
            compatibility: 0,
            level: 0x1F,
            nal_length_size,
            sps: vec![Bytes::from_static(&[0x67, 0x64, 0x00, 0x1F, 0xAC])],
            pps: vec![Bytes::from_static(&[0x68, 0xEE, 0x3C, 0x80])],
            width: 1280,
            height: 720,
        }
    }

    /// An AVCC sample from NAL units.
    pub(crate) fn avcc(length_size: u8, nals: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for nal in nals {
            let len = (nal.len() as u32).to_be_bytes();
            out.extend_from_slice(&len[4 - usize::from(length_size)..]);
            out.extend_from_slice(nal);
        }
        out
    }

    fn convert(config: &AvcConfig, data: &[u8], keyframe: bool) -> (Vec<u8>, Converted) {
        let media = Bytes::copy_from_slice(data);
        let mut pes = PesBuilder::new();
        let track = VideoTrack::new(config);
        let converted = track.append_annexb(&mut pes, &media, keyframe);
        (pes.payload_for_tests(&media), converted)
    }

    #[test]
    fn aud_first_and_parameter_sets_before_keyframes() {
        let cfg = config(4);
        let idr: &[u8] = &[0x65, 1, 2, 3];
        let sei: &[u8] = &[0x06, 5, 0x80];
        let data = avcc(4, &[sei, idr]);
        let (out, c) = convert(&cfg, &data, true);
        let mut want = vec![0, 0, 0, 1, 9, 0xF0];
        want.extend_from_slice(&[0, 0, 0, 1, 0x67, 0x64, 0, 0x1F, 0xAC]);
        want.extend_from_slice(&[0, 0, 0, 1, 0x68, 0xEE, 0x3C, 0x80]);
        want.extend_from_slice(&[0, 0, 0, 1, 0x06, 5, 0x80]);
        want.extend_from_slice(&[0, 0, 0, 1, 0x65, 1, 2, 3]);
        assert_eq!(out, want);
        assert_eq!(
            c,
            Converted {
                nal_units: 2,
                malformed: 0
            }
        );
        // Not a keyframe: no parameter sets.
        let (out, _) = convert(&cfg, &data, false);
        assert_eq!(&out[..10], &[0, 0, 0, 1, 9, 0xF0, 0, 0, 0, 1]);
        assert_eq!(out[10], 0x06);
    }

    #[test]
    fn keeps_in_band_parameter_sets_and_replaces_aud() {
        let cfg = config(2);
        let aud: &[u8] = &[0x09, 0x10];
        let sps: &[u8] = &[0x67, 9, 9];
        let pps: &[u8] = &[0x68, 8];
        let idr: &[u8] = &[0x65, 7];
        let data = avcc(2, &[aud, sps, pps, idr]);
        let (out, c) = convert(&cfg, &data, true);
        assert_eq!(
            out,
            [
                &[0, 0, 0, 1, 9, 0xF0][..],
                &[0, 0, 0, 1, 0x67, 9, 9],
                &[0, 0, 0, 1, 0x68, 8],
                &[0, 0, 0, 1, 0x65, 7]
            ]
            .concat()
        );
        assert_eq!(c.nal_units, 3);
        assert_eq!(out, reference_annexb(&cfg, &data, true));
    }

    #[test]
    fn malformed_prefixes_keep_what_is_valid() {
        let cfg = config(4);
        let good = avcc(4, &[&[0x41, 1, 2]]);
        // A prefix claiming more than is left.
        let mut data = good.clone();
        data.extend_from_slice(&[0, 0, 1, 0, 0x41, 1]);
        let (out, c) = convert(&cfg, &data, false);
        assert_eq!(c.malformed, 1);
        assert_eq!(c.nal_units, 1);
        assert_eq!(out, reference_annexb(&cfg, &good, false));
        // A truncated prefix.
        let mut data = good.clone();
        data.extend_from_slice(&[0, 0]);
        let (out, c) = convert(&cfg, &data, false);
        assert_eq!((c.malformed, c.nal_units), (1, 1));
        assert_eq!(out, reference_annexb(&cfg, &good, false));
        // Empty NAL units are skipped, the rest goes on.
        let data = [&[0, 0, 0, 0][..], &good].concat();
        let (out, c) = convert(&cfg, &data, false);
        assert_eq!((c.malformed, c.nal_units), (1, 1));
        assert_eq!(out, reference_annexb(&cfg, &good, false));
        // Nothing valid: nothing written.
        let (out, c) = convert(&cfg, &[0xFF, 0xFF, 0xFF, 0xFF, 1], true);
        assert_eq!((c.malformed, c.nal_units), (1, 0));
        assert!(out.is_empty());
        // Only an AUD: nothing to show either.
        let (out, c) = convert(&cfg, &avcc(4, &[&[0x09, 0xF0]]), true);
        assert_eq!((c.malformed, c.nal_units), (0, 0));
        assert!(out.is_empty());
        // A length size the record cannot have.
        let mut bad = config(4);
        bad.nal_length_size = 0;
        let (out, c) = convert(&bad, &good, true);
        assert_eq!((c.malformed, c.nal_units), (1, 0));
        assert!(out.is_empty());
    }

    #[test]
    fn one_byte_length_prefixes() {
        let cfg = config(1);
        let data = avcc(1, &[&[0x41; 255], &[0x01, 2]]);
        let (out, c) = convert(&cfg, &data, false);
        assert_eq!(c.nal_units, 2);
        assert_eq!(out, reference_annexb(&cfg, &data, false));
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_convert_like_the_reference(
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            size in proptest::sample::select(vec![1u8, 2, 4]),
            keyframe in proptest::prelude::any::<bool>(),
        ) {
            let cfg = config(size);
            let (out, _) = convert(&cfg, &data, keyframe);
            proptest::prop_assert_eq!(out, reference_annexb(&cfg, &data, keyframe));
        }
    }
}
