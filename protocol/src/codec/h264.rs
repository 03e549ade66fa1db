//! H.264 decoder configuration (ISO/IEC 14496-15 §5.3.3.1) and the SPS fields we need
//! (ITU-T H.264 §7.3.2.1.1) to report resolution and write codec strings.

use bytes::Bytes;

use super::aac::BitReader;
use super::{CodecError, Reader};

/// At most this many SPS/PPS units are kept from a record: real encoders send one each;
/// the cap bounds what a hostile record can make us hold.
const MAX_PARAMETER_SETS: usize = 16;

/// An H.264 track's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvcConfig {
    /// The AVCDecoderConfigurationRecord as the encoder sent it (goes into `avcC` unchanged).
    pub record: Bytes,
    /// `AVCProfileIndication`.
    pub profile: u8,
    /// `profile_compatibility` (the constraint flags byte).
    pub compatibility: u8,
    /// `AVCLevelIndication`.
    pub level: u8,
    /// Bytes in each NAL unit length prefix of the samples (1, 2 or 4).
    pub nal_length_size: u8,
    /// Sequence parameter sets (NAL units without length prefix or start code).
    pub sps: Vec<Bytes>,
    /// Picture parameter sets.
    pub pps: Vec<Bytes>,
    /// Displayed width in pixels (after cropping), from the first SPS.
    pub width: u32,
    /// Displayed height in pixels (after cropping), from the first SPS.
    pub height: u32,
}

impl AvcConfig {
    /// Parses an AVCDecoderConfigurationRecord.
    ///
    /// # Errors
    /// [`CodecError`] when the record is truncated, has the wrong version, holds no SPS or an
    /// SPS whose size fields cannot be read.
    pub fn parse(record: Bytes) -> Result<Self, CodecError> {
        const WHAT: &str = "AVCDecoderConfigurationRecord";
        let mut r = Reader::new(WHAT, &record);
        let version = r.u8()?;
        if version != 1 {
            return Err(CodecError::Invalid {
                what: WHAT,
                field: "configurationVersion",
                got: u64::from(version),
            });
        }
        let profile = r.u8()?;
        let compatibility = r.u8()?;
        let level = r.u8()?;
        let nal_length_size = (r.u8()? & 0x3) + 1;
        if nal_length_size == 3 {
            return Err(CodecError::Invalid {
                what: WHAT,
                field: "lengthSizeMinusOne",
                got: 2,
            });
        }
        let sps_count = usize::from(r.u8()? & 0x1F);
        let mut sps = Vec::with_capacity(sps_count.min(MAX_PARAMETER_SETS));
        for _ in 0..sps_count {
            let len = usize::from(r.u16()?);
            let unit = r.bytes(&record, len)?;
            if sps.len() < MAX_PARAMETER_SETS && !unit.is_empty() {
                sps.push(unit);
            }
        }
        let pps_count = usize::from(r.u8()?);
        let mut pps = Vec::with_capacity(pps_count.min(MAX_PARAMETER_SETS));
        for _ in 0..pps_count {
            let len = usize::from(r.u16()?);
            let unit = r.bytes(&record, len)?;
            if pps.len() < MAX_PARAMETER_SETS && !unit.is_empty() {
                pps.push(unit);
            }
        }
        let first = sps.first().ok_or(CodecError::Invalid {
            what: WHAT,
            field: "numOfSequenceParameterSets",
            got: 0,
        })?;
        if pps.is_empty() {
            return Err(CodecError::Invalid {
                what: WHAT,
                field: "numOfPictureParameterSets",
                got: 0,
            });
        }
        let (width, height) = sps_dimensions(first)?;
        Ok(Self {
            record,
            profile,
            compatibility,
            level,
            nal_length_size,
            sps,
            pps,
            width,
            height,
        })
    }

    /// The RFC 6381 codec string, e.g. `avc1.64001f`.
    pub fn codec_string(&self) -> String {
        format!(
            "avc1.{:02x}{:02x}{:02x}",
            self.profile, self.compatibility, self.level
        )
    }
}

/// Removes emulation prevention bytes (`00 00 03` → `00 00`, H.264 §7.4.1).
fn unescape(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// Reads the displayed picture size from an SPS NAL unit (header byte included).
fn sps_dimensions(sps: &[u8]) -> Result<(u32, u32), CodecError> {
    const WHAT: &str = "SPS";
    let bad = |field| CodecError::Invalid {
        what: WHAT,
        field,
        got: 0,
    };
    let rbsp = unescape(sps.get(1..).unwrap_or_default());
    let mut b = BitReader::new(&rbsp);
    let profile_idc = b.read(8).ok_or(bad("profile_idc"))?;
    b.read(16).ok_or(bad("level_idc"))?; // constraint flags + level
    b.read_ue().ok_or(bad("seq_parameter_set_id"))?;
    let mut chroma_format_idc = 1;
    if matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma_format_idc = b.read_ue().ok_or(bad("chroma_format_idc"))?;
        if chroma_format_idc > 3 {
            return Err(CodecError::Invalid {
                what: WHAT,
                field: "chroma_format_idc",
                got: u64::from(chroma_format_idc),
            });
        }
        if chroma_format_idc == 3 {
            b.read(1).ok_or(bad("separate_colour_plane_flag"))?;
        }
        b.read_ue().ok_or(bad("bit_depth_luma_minus8"))?;
        b.read_ue().ok_or(bad("bit_depth_chroma_minus8"))?;
        b.read(1)
            .ok_or(bad("qpprime_y_zero_transform_bypass_flag"))?;
        if b.read(1).ok_or(bad("seq_scaling_matrix_present_flag"))? == 1 {
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if b.read(1).ok_or(bad("seq_scaling_list_present_flag"))? == 1 {
                    let size = if i < 6 { 16 } else { 64 };
                    let (mut last, mut next) = (8i32, 8i32);
                    for _ in 0..size {
                        if next != 0 {
                            let delta = b.read_se().ok_or(bad("delta_scale"))?;
                            next = (last + delta.rem_euclid(256)).rem_euclid(256);
                        }
                        if next != 0 {
                            last = next;
                        }
                    }
                }
            }
        }
    }
    b.read_ue().ok_or(bad("log2_max_frame_num_minus4"))?;
    match b.read_ue().ok_or(bad("pic_order_cnt_type"))? {
        0 => {
            b.read_ue()
                .ok_or(bad("log2_max_pic_order_cnt_lsb_minus4"))?;
        }
        1 => {
            b.read(1).ok_or(bad("delta_pic_order_always_zero_flag"))?;
            b.read_se().ok_or(bad("offset_for_non_ref_pic"))?;
            b.read_se().ok_or(bad("offset_for_top_to_bottom_field"))?;
            let cycle = b
                .read_ue()
                .ok_or(bad("num_ref_frames_in_pic_order_cnt_cycle"))?;
            if cycle > 255 {
                return Err(CodecError::Invalid {
                    what: WHAT,
                    field: "num_ref_frames_in_pic_order_cnt_cycle",
                    got: u64::from(cycle),
                });
            }
            for _ in 0..cycle {
                b.read_se().ok_or(bad("offset_for_ref_frame"))?;
            }
        }
        _ => {}
    }
    b.read_ue().ok_or(bad("max_num_ref_frames"))?;
    b.read(1)
        .ok_or(bad("gaps_in_frame_num_value_allowed_flag"))?;
    let width_mbs = u64::from(b.read_ue().ok_or(bad("pic_width_in_mbs_minus1"))?) + 1;
    let height_units = u64::from(b.read_ue().ok_or(bad("pic_height_in_map_units_minus1"))?) + 1;
    let frame_mbs_only = u64::from(b.read(1).ok_or(bad("frame_mbs_only_flag"))?);
    if frame_mbs_only == 0 {
        b.read(1).ok_or(bad("mb_adaptive_frame_field_flag"))?;
    }
    b.read(1).ok_or(bad("direct_8x8_inference_flag"))?;
    let (mut crop_l, mut crop_r, mut crop_t, mut crop_b) = (0u64, 0u64, 0u64, 0u64);
    if b.read(1).ok_or(bad("frame_cropping_flag"))? == 1 {
        crop_l = u64::from(b.read_ue().ok_or(bad("frame_crop_left_offset"))?);
        crop_r = u64::from(b.read_ue().ok_or(bad("frame_crop_right_offset"))?);
        crop_t = u64::from(b.read_ue().ok_or(bad("frame_crop_top_offset"))?);
        crop_b = u64::from(b.read_ue().ok_or(bad("frame_crop_bottom_offset"))?);
    }
    let (sub_w, sub_h) = match chroma_format_idc {
        1 => (2, 2),
        2 => (2, 1),
        _ => (1, 1),
    };
    let (crop_unit_x, crop_unit_y) = if chroma_format_idc == 0 {
        (1, 2 - frame_mbs_only)
    } else {
        (sub_w, sub_h * (2 - frame_mbs_only))
    };
    let width = (width_mbs * 16).saturating_sub((crop_l + crop_r) * crop_unit_x);
    let height =
        ((2 - frame_mbs_only) * height_units * 16).saturating_sub((crop_t + crop_b) * crop_unit_y);
    if width == 0 || height == 0 || width > 16_384 || height > 16_384 {
        return Err(CodecError::Invalid {
            what: WHAT,
            field: "picture size",
            got: width.max(height),
        });
    }
    Ok((width as u32, height as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// avcC written by ffmpeg 5.1 / libx264 into FLV for `testsrc2=size=1280x720:rate=30`,
    /// `-profile:v high` (level 3.1).
    const RECORD_720P: &[u8] = &[
        0x01, 0x64, 0x00, 0x1f, 0xff, 0xe1, 0x00, 0x1a, 0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40,
        0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0,
        0xf1, 0x83, 0x19, 0x60, 0x01, 0x00, 0x06, 0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0, 0xfd, 0xf8,
        0xf8, 0x00,
    ];

    #[test]
    fn parses_x264_720p_record() {
        let c = AvcConfig::parse(Bytes::from_static(RECORD_720P)).unwrap();
        assert_eq!((c.width, c.height), (1280, 720));
        assert_eq!(c.profile, 100);
        assert_eq!(c.level, 31);
        assert_eq!(c.nal_length_size, 4);
        assert_eq!(c.sps.len(), 1);
        assert_eq!(c.pps.len(), 1);
        assert_eq!(c.codec_string(), "avc1.64001f");
    }

    #[test]
    fn rejects_bad_records() {
        assert!(matches!(
            AvcConfig::parse(Bytes::from_static(&[2, 0x64, 0, 0x1f, 0xff, 0xe1])),
            Err(CodecError::Invalid {
                field: "configurationVersion",
                ..
            })
        ));
        assert!(matches!(
            AvcConfig::parse(Bytes::from_static(&RECORD_720P[..20])),
            Err(CodecError::Truncated { .. })
        ));
        assert!(matches!(
            AvcConfig::parse(Bytes::from_static(&[1, 0x64, 0, 0x1f, 0xff, 0xe0, 0])),
            Err(CodecError::Invalid { .. })
        ));
    }

    #[test]
    fn unescapes_emulation_prevention() {
        assert_eq!(unescape(&[0, 0, 3, 1, 0, 0, 3]), vec![0, 0, 1, 0, 0]);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let _ = AvcConfig::parse(Bytes::from(data));
        }

        #[test]
        fn never_panics_on_mutated_record(i in 0usize..RECORD_720P.len(), v in proptest::prelude::any::<u8>()) {
            let mut d = RECORD_720P.to_vec();
            d[i] = v;
            let _ = AvcConfig::parse(Bytes::from(d));
        }
    }
}
