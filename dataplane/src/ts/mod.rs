//! The MPEG-TS muxer for classic HLS: H.264 and AAC frames to 188-byte transport packets,
//! built in memory without ffmpeg, each segment one compact copy of its media.
//!
//! Owns: the transport layer of a segment (PAT/PMT, PES packetization, PCR, continuity
//! counters, stuffing), AVCC to Annex B for H.264 and ADTS for AAC. Leaves to others: where
//! segments are cut and how long they live (`hls`), demuxing the ingest (`flv`), codec
//! configuration parsing (`camstream_protocol`). `mpeg2ts` serializes the tables and reads
//! the output back in tests; packets carrying PES are written here, because its writer
//! would copy every payload into a packet struct.
//!
//! Files, one concept each: [`packet`] (header, adaptation field, the segment arena), [`pes`]
//! (PES header and split into packets), [`psi`] (PAT/PMT), [`h264`] (Annex B), [`muxer`]
//! (tracks, PIDs, PCR, ADTS).
//!
//! Spec: ISO/IEC 13818-1 (MPEG-2 systems), ITU-T H.264 Annex B, ISO/IEC 13818-7 §6.2 (ADTS),
//! RFC 8216 §3.2 (MPEG-2 transport streams in HLS).

mod h264;
mod lazy;
mod muxer;
mod packet;
mod pes;
mod psi;

#[cfg(test)]
mod inspect;

pub(crate) use lazy::{CACHED_SEGMENTS, LazySegment, TsSession};
pub(crate) use muxer::Muxer;
#[cfg(test)]
pub(crate) use muxer::{AUDIO_PID, MuxStats, PCR_DELAY, PMT_PID, VIDEO_PID};
