//! FLV audio and video tag bodies (as RTMP messages carry them) to [`MediaEvent`]s.
//!
//! Owns: codec detection (legacy FLV codec ids and the enhanced-RTMP `ExVideoTagHeader` /
//! `ExAudioTagHeader` FourCCs), sequence headers (AVCDecoderConfigurationRecord,
//! AudioSpecificConfig), composition time offsets and timestamp unwrapping. Leaves to
//! others: RTMP chunking (`rtmp`), what happens to the frames (`hls`).
//!
//! Spec: Adobe "Video File Format Specification" v10.1 §E.4.2–E.4.3; enhanced RTMP v2
//! (veovera/enhanced-rtmp) for the extended headers.

mod tag;

pub(crate) use tag::{Demuxer, FlvError};

#[cfg(test)]
pub(crate) mod file;
