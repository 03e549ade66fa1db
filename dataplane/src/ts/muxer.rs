//! The segment muxer: H.264 access units and AAC frames in, MPEG-TS segments out.
//!
//! Owns: the PIDs, the continuity counters of every PID (kept across segments so a player
//! reading segment after segment sees one continuous stream), the PCR and which track
//! carries it, ADTS framing for AAC, and what is skipped (counted in [`MuxStats`]). Leaves to
//! others: where segments are cut (`hls`), the Annex B conversion (`h264`), PES packetization
//! (`pes`), the tables (`psi`).
//!
//! The PCR is the DTS of the PCR track's frame minus [`PCR_DELAY`] (0.7 s, as nginx-rtmp and
//! ffmpeg's default `max_delay` do): each PES arrives that long before it must be decoded,
//! which keeps the T-STD buffers happy and gives audio frames that trail the video in the
//! interleaving a DTS still ahead of the clock. Callers keep `dts ≥ 90 000` so the PCR is
//! never negative; all three clocks wrap together at 2^33 anyway.
//!
//! Spec: ISO/IEC 13818-1 §2.4 (transport stream), §2.4.2.2 (PCR); ISO/IEC 13818-7 §6.2
//! (ADTS); RFC 8216 §3.2 (HLS: each segment starts with PAT and PMT).

use camstream_protocol::{AacConfig, AvcConfig, MediaFrame};
use mpeg2ts::ts::{ContinuityCounter, Pid};

use super::h264::VideoTrack;
use super::packet::SegmentWriter;
use super::pes::{FirstPacket, PesBuilder, STREAM_ID_AUDIO, STREAM_ID_VIDEO, Timing};
use super::psi::{Program, Tables};
use crate::chunks::Chunks;

/// PID of the program map table.
pub(crate) const PMT_PID: u16 = 0x1000;
/// PID of the H.264 stream.
pub(crate) const VIDEO_PID: u16 = 0x100;
/// PID of the AAC stream.
pub(crate) const AUDIO_PID: u16 = 0x101;
/// How far the PCR runs behind the DTS of the PCR track, in 90 kHz ticks (0.7 s).
pub(crate) const PCR_DELAY: i64 = 63_000;
/// The largest raw AAC access unit ADTS can frame: `frame_length` has 13 bits and counts the
/// 7-byte header.
const MAX_ADTS_PAYLOAD: usize = 0x1FFF - 7;

/// What the muxer had to leave out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct MuxStats {
    /// Frames not written: empty payloads, access units with no NAL unit that could be
    /// framed, AAC frames too large for ADTS, frames of a track the muxer was not built with.
    pub(crate) skipped_frames: u64,
    /// NAL length prefixes that were truncated, overran the frame, or announced zero bytes.
    pub(crate) malformed_nals: u64,
}

/// Muxes one camera's tracks into MPEG-TS segments.
///
/// Call order: [`Muxer::begin_segment`], any number of [`Muxer::write_video`] /
/// [`Muxer::write_audio`] in decode order, [`Muxer::finish_segment`]; repeat. Writing a frame
/// with no segment open opens one.
///
/// Each segment is a [`Chunks`] of a few large slices: whole 188-byte packets written into
/// 64 KiB blocks (one copy of the media per segment, see `packet::SegmentWriter`). A steady
/// stream allocates one block per 64 KiB of output, nothing per frame.
#[derive(Debug)]
pub(crate) struct Muxer {
    video: Option<VideoTrack>,
    audio: Option<AacConfig>,
    /// Whether the PCR rides on the video PID (else on audio).
    pcr_on_video: bool,
    tables: Tables,
    video_cc: ContinuityCounter,
    audio_cc: ContinuityCounter,
    pes: PesBuilder,
    out: SegmentWriter,
    in_segment: bool,
    stats: MuxStats,
}

fn pid(value: u16) -> Pid {
    Pid::new(value).expect("PID constants are below 0x1FFF")
}

impl Muxer {
    /// A muxer for the given tracks. PIDs: PMT 0x1000, video 0x100, audio 0x101; the PCR is
    /// on video if present, else on audio.
    pub(crate) fn new(video: Option<&AvcConfig>, audio: Option<&AacConfig>) -> Self {
        let video_pid = video.map(|_| pid(VIDEO_PID));
        let audio_pid = audio.map(|_| pid(AUDIO_PID));
        let program = Program {
            pmt_pid: pid(PMT_PID),
            video_pid,
            audio_pid,
            pcr_pid: video_pid.or(audio_pid),
        };
        Self {
            video: video.map(VideoTrack::new),
            audio: audio.cloned(),
            pcr_on_video: video.is_some(),
            tables: Tables::new(&program),
            video_cc: ContinuityCounter::new(),
            audio_cc: ContinuityCounter::new(),
            pes: PesBuilder::new(),
            out: SegmentWriter::new(),
            in_segment: false,
            stats: MuxStats::default(),
        }
    }

    /// What was skipped so far.
    #[cfg(test)]
    pub(crate) fn stats(&self) -> MuxStats {
        self.stats
    }

    /// Starts a segment: PAT and PMT first. Continuity counters continue across segments.
    /// With a segment already open, the tables are repeated inside it.
    pub(crate) fn begin_segment(&mut self) {
        if !self.in_segment {
            self.out.begin();
            self.in_segment = true;
        }
        self.tables.write(&mut self.out);
    }

    /// Writes one H.264 access unit (AVCC payload): AUD first, the configuration's SPS and
    /// PPS before keyframes that do not carry them, PES `stream_id` 0xE0 with PTS and DTS
    /// (DTS omitted when equal) and `PES_packet_length` 0, `random_access_indicator` on
    /// keyframes, the PCR in the first packet when video carries it.
    ///
    /// Skipped (and counted): empty payloads, payloads without one NAL unit that can be
    /// framed, and every frame when the muxer has no video track. Malformed length prefixes
    /// end the walk of the frame; the NAL units before them are written.
    pub(crate) fn write_video(&mut self, frame: &MediaFrame) {
        let Some(video) = &self.video else {
            self.stats.skipped_frames += 1;
            return;
        };
        if frame.data.is_empty() {
            self.stats.skipped_frames += 1;
            return;
        }
        let timing = Timing {
            pts: frame.pts(),
            dts: frame.dts,
        };
        self.pes.start(STREAM_ID_VIDEO, timing, None);
        let converted = video.append_annexb(&mut self.pes, &frame.data, frame.keyframe);
        self.stats.malformed_nals += converted.malformed;
        if converted.nal_units == 0 {
            self.stats.skipped_frames += 1;
            return;
        }
        let first = FirstPacket {
            pcr: self.pcr_on_video.then(|| frame.dts - PCR_DELAY),
            random_access: frame.keyframe,
        };
        self.write_pes(&frame.data, pid(VIDEO_PID), first);
    }

    /// Writes one raw AAC access unit as ADTS in a PES of its own (`stream_id` 0xC0, PTS,
    /// `PES_packet_length` set). In an audio-only muxer the first packet also carries the
    /// PCR and `random_access_indicator` (every AAC frame is a random access point).
    ///
    /// Skipped (and counted): empty payloads, payloads too large for ADTS (over 8184 bytes,
    /// far beyond any real AAC frame), and every frame when the muxer has no audio track.
    pub(crate) fn write_audio(&mut self, frame: &MediaFrame) {
        let Some(aac) = &self.audio else {
            self.stats.skipped_frames += 1;
            return;
        };
        let len = frame.data.len();
        if len == 0 || len > MAX_ADTS_PAYLOAD {
            self.stats.skipped_frames += 1;
            return;
        }
        let pts = frame.pts();
        let adts = aac.adts_header(len);
        self.pes.start(
            STREAM_ID_AUDIO,
            Timing { pts, dts: pts },
            Some(adts.len() + len),
        );
        self.pes.push_scratch(&adts);
        self.pes.push_media(0..len);
        let audio_clock = !self.pcr_on_video;
        let first = FirstPacket {
            pcr: audio_clock.then(|| frame.dts - PCR_DELAY),
            random_access: audio_clock,
        };
        self.write_pes(&frame.data, pid(AUDIO_PID), first);
    }

    fn write_pes(&mut self, media: &[u8], pid: Pid, first: FirstPacket) {
        if !self.in_segment {
            self.begin_segment();
        }
        let cc = if pid.as_u16() == VIDEO_PID {
            &mut self.video_cc
        } else {
            &mut self.audio_cc
        };
        self.pes.write_packets(media, &mut self.out, pid, cc, first);
    }

    /// Ends the segment and returns it (empty when no segment was open).
    pub(crate) fn finish_segment(&mut self) -> Chunks {
        if !self.in_segment {
            return Chunks::new();
        }
        self.in_segment = false;
        self.out.finish()
    }
}

#[cfg(test)]
mod tests;
