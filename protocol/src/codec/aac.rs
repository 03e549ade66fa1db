//! AAC AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1).

use bytes::Bytes;

use super::CodecError;

/// Sampling frequencies by `samplingFrequencyIndex`.
const SAMPLE_RATES: [u32; 13] = [
    96_000, 88_200, 64_000, 48_000, 44_100, 32_000, 24_000, 22_050, 16_000, 12_000, 11_025, 8_000,
    7_350,
];

/// An AAC track's configuration, parsed from its AudioSpecificConfig.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AacConfig {
    /// The AudioSpecificConfig as the encoder sent it (goes into `esds` unchanged).
    pub asc: Bytes,
    /// Audio object type (2 = AAC-LC, 5 = HE-AAC/SBR, 29 = HE-AACv2/PS).
    pub object_type: u8,
    /// `samplingFrequencyIndex` (15 when an explicit rate was given).
    pub sampling_frequency_index: u8,
    /// Output sample rate of the core decoder, Hz.
    pub sample_rate: u32,
    /// `channelConfiguration` (1 = mono, 2 = stereo, ...; 0 = defined in-band).
    pub channel_config: u8,
}

impl AacConfig {
    /// Samples per AAC access unit (1024 for every object type we accept).
    pub const SAMPLES_PER_FRAME: u32 = 1024;

    /// Parses an AudioSpecificConfig.
    ///
    /// # Errors
    /// [`CodecError`] when the record is shorter than two bytes or names a reserved rate.
    pub fn parse(asc: Bytes) -> Result<Self, CodecError> {
        const WHAT: &str = "AudioSpecificConfig";
        let mut bits = BitReader::new(&asc);
        let truncated = |offset| CodecError::Truncated {
            what: WHAT,
            offset,
            needed: 1,
        };
        let mut object_type = bits.read(5).ok_or_else(|| truncated(0))? as u8;
        if object_type == 31 {
            object_type = 32 + bits.read(6).ok_or_else(|| truncated(0))? as u8;
        }
        let index = bits.read(4).ok_or_else(|| truncated(bits.byte_pos()))? as u8;
        let sample_rate = match index {
            15 => bits.read(24).ok_or_else(|| truncated(bits.byte_pos()))?,
            i if usize::from(i) < SAMPLE_RATES.len() => SAMPLE_RATES[usize::from(i)],
            i => {
                return Err(CodecError::Invalid {
                    what: WHAT,
                    field: "samplingFrequencyIndex",
                    got: u64::from(i),
                });
            }
        };
        if sample_rate == 0 {
            return Err(CodecError::Invalid {
                what: WHAT,
                field: "samplingFrequency",
                got: 0,
            });
        }
        let channel_config = bits.read(4).ok_or_else(|| truncated(bits.byte_pos()))? as u8;
        Ok(Self {
            asc,
            object_type,
            sampling_frequency_index: index,
            sample_rate,
            channel_config,
        })
    }

    /// Channel count for `channelConfiguration` (a best effort for 0, which is in-band).
    pub fn channels(&self) -> u16 {
        match self.channel_config {
            0 | 2 => 2,
            7 => 8,
            c => u16::from(c),
        }
    }

    /// The 7-byte ADTS header for an access unit of `payload_len` bytes (MPEG-TS carries AAC
    /// as ADTS, ISO/IEC 13818-7 §6.2).
    pub fn adts_header(&self, payload_len: usize) -> [u8; 7] {
        let frame_len = (payload_len + 7).min(0x1FFF) as u32;
        // ADTS profile is object type - 1 and has two bits: SBR/PS streams are signalled as
        // AAC-LC, which is what every decoder expects for implicit HE-AAC in ADTS.
        let profile = u32::from(self.object_type.saturating_sub(1).min(3));
        let index = u32::from(if self.sampling_frequency_index == 15 {
            nearest_index(self.sample_rate)
        } else {
            self.sampling_frequency_index
        });
        let channels = u32::from(self.channel_config & 0x7);
        [
            0xFF,
            0xF1, // MPEG-4, layer 0, no CRC
            ((profile << 6) | (index << 2) | (channels >> 2)) as u8,
            (((channels & 3) << 6) | (frame_len >> 11)) as u8,
            ((frame_len >> 3) & 0xFF) as u8,
            (((frame_len & 7) << 5) | 0x1F) as u8,
            0xFC,
        ]
    }
}

fn nearest_index(rate: u32) -> u8 {
    SAMPLE_RATES
        .iter()
        .enumerate()
        .min_by_key(|(_, r)| r.abs_diff(rate))
        .map(|(i, _)| i as u8)
        .unwrap_or(4)
}

/// A minimal MSB-first bit reader over a byte slice.
pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    bit: usize,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Self { data, bit: 0 }
    }

    pub(crate) fn byte_pos(&self) -> usize {
        self.bit / 8
    }

    /// Reads `n` (≤ 32) bits, or `None` past the end.
    pub(crate) fn read(&mut self, n: u32) -> Option<u32> {
        let mut v: u32 = 0;
        for _ in 0..n {
            let byte = *self.data.get(self.bit / 8)?;
            let b = (byte >> (7 - (self.bit % 8))) & 1;
            v = (v << 1) | u32::from(b);
            self.bit += 1;
        }
        Some(v)
    }

    /// Reads one unsigned Exp-Golomb code (ITU-T H.264 §9.1), capped at 31 leading zeros.
    pub(crate) fn read_ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.read(1)? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        if zeros == 0 {
            return Some(0);
        }
        let rest = self.read(zeros)?;
        Some(((1u64 << zeros) - 1 + u64::from(rest)).min(u64::from(u32::MAX)) as u32)
    }

    /// Reads one signed Exp-Golomb code.
    pub(crate) fn read_se(&mut self) -> Option<i32> {
        let k = self.read_ue()?;
        let v = k.div_ceil(2) as i32;
        Some(if k % 2 == 1 { v } else { -v })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lc_44100_stereo() {
        let c = AacConfig::parse(Bytes::from_static(&[0x12, 0x10])).unwrap();
        assert_eq!(c.object_type, 2);
        assert_eq!(c.sample_rate, 44_100);
        assert_eq!(c.channel_config, 2);
        assert_eq!(c.channels(), 2);
    }

    #[test]
    fn parses_lc_48000_mono() {
        let c = AacConfig::parse(Bytes::from_static(&[0x11, 0x88])).unwrap();
        assert_eq!(c.sample_rate, 48_000);
        assert_eq!(c.channel_config, 1);
    }

    #[test]
    fn rejects_truncated_and_reserved() {
        assert!(matches!(
            AacConfig::parse(Bytes::from_static(&[0x12])),
            Err(CodecError::Truncated { .. })
        ));
        // index 13 is reserved
        assert!(matches!(
            AacConfig::parse(Bytes::from_static(&[0x16, 0x90])),
            Err(CodecError::Invalid { .. })
        ));
    }

    #[test]
    fn adts_header_encodes_length_and_rate() {
        let c = AacConfig::parse(Bytes::from_static(&[0x12, 0x10])).unwrap();
        let h = c.adts_header(100);
        assert_eq!(h[0], 0xFF);
        assert_eq!(h[1] & 0xF0, 0xF0);
        assert_eq!((h[2] >> 6) & 3, 1); // LC
        assert_eq!((h[2] >> 2) & 0xF, 4); // 44100
        let len = (u32::from(h[3] & 3) << 11) | (u32::from(h[4]) << 3) | (u32::from(h[5]) >> 5);
        assert_eq!(len, 107);
    }

    #[test]
    fn exp_golomb() {
        // 1 | 010 | 011 | 00100 -> 0, 1, 2, 3
        let data = [0b1010_0110, 0b0100_0000];
        let mut r = BitReader::new(&data);
        assert_eq!(r.read_ue(), Some(0));
        assert_eq!(r.read_ue(), Some(1));
        assert_eq!(r.read_ue(), Some(2));
        assert_eq!(r.read_ue(), Some(3));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..8)) {
            let _ = AacConfig::parse(Bytes::from(data));
        }
    }
}
