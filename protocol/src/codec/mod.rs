//! Codec identities and configuration records.
//!
//! The codec enums are `#[non_exhaustive]`: H.264 and AAC are carried end to end today;
//! HEVC (enhanced RTMP) and Opus are recognised so the ingest can refuse them with a clear
//! reason instead of producing broken output, and so adding them later is additive.

mod aac;
mod h264;

pub use aac::AacConfig;
pub use h264::AvcConfig;

use bytes::Bytes;

/// Video codecs camstream knows of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum VideoCodec {
    /// H.264 / AVC: ingested and segmented.
    H264,
    /// H.265 / HEVC (enhanced RTMP): recognised, not yet segmented.
    H265,
}

/// Audio codecs camstream knows of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AudioCodec {
    /// AAC (any object type the decoder config describes): ingested and segmented.
    Aac,
    /// Opus (enhanced RTMP): recognised, not yet segmented.
    Opus,
}

/// A video track's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum VideoConfig {
    /// H.264 with its decoder configuration record.
    H264(AvcConfig),
}

impl VideoConfig {
    /// The codec of this configuration.
    pub fn codec(&self) -> VideoCodec {
        match self {
            VideoConfig::H264(_) => VideoCodec::H264,
        }
    }

    /// Coded picture size in pixels, when the configuration tells it.
    pub fn dimensions(&self) -> (u32, u32) {
        match self {
            VideoConfig::H264(c) => (c.width, c.height),
        }
    }
}

/// An audio track's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AudioConfig {
    /// AAC with its AudioSpecificConfig.
    Aac(AacConfig),
}

impl AudioConfig {
    /// The codec of this configuration.
    pub fn codec(&self) -> AudioCodec {
        match self {
            AudioConfig::Aac(_) => AudioCodec::Aac,
        }
    }

    /// Samples per second.
    pub fn sample_rate(&self) -> u32 {
        match self {
            AudioConfig::Aac(c) => c.sample_rate,
        }
    }
}

/// A track configuration as a demuxer reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrackConfig {
    /// Video configuration.
    Video(VideoConfig),
    /// Audio configuration.
    Audio(AudioConfig),
}

/// A configuration record that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The record ended before a field.
    #[error("{what}: record truncated at byte {offset} (needed {needed} more)")]
    Truncated {
        /// Which record.
        what: &'static str,
        /// Where it ended.
        offset: usize,
        /// How many more bytes the field needed.
        needed: usize,
    },
    /// A field held a value the format does not allow.
    #[error("{what}: invalid {field}: {got}")]
    Invalid {
        /// Which record.
        what: &'static str,
        /// Which field.
        field: &'static str,
        /// The value that came.
        got: u64,
    },
    /// The stream uses a feature camstream does not carry.
    #[error("{what}: unsupported {feature}")]
    Unsupported {
        /// Which record.
        what: &'static str,
        /// What is not supported.
        feature: &'static str,
    },
}

/// A bounded big-endian reader over a configuration record.
struct Reader<'a> {
    what: &'static str,
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(what: &'static str, data: &'a [u8]) -> Self {
        Self { what, data, pos: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let rest = &self.data[self.pos..];
        if rest.len() < n {
            return Err(CodecError::Truncated {
                what: self.what,
                offset: self.pos,
                needed: n - rest.len(),
            });
        }
        self.pos += n;
        Ok(&rest[..n])
    }

    fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, CodecError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// Takes `n` bytes as a slice of `whole` (which must be the buffer this reader reads).
    fn bytes(&mut self, whole: &Bytes, n: usize) -> Result<Bytes, CodecError> {
        let start = self.pos;
        self.take(n)?;
        Ok(whole.slice(start..start + n))
    }
}
