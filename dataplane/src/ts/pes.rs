//! One PES packet: its header, its payload as a list of pieces, and its split into
//! transport packets.
//!
//! Owns: the PES header (stream id, `PES_packet_length`, PTS/DTS mod 2^33) and the
//! packetization (payload spread over 184-byte packet bodies, the PCR and random-access flag
//! in the first packet, stuffing in the last one's adaptation field, never 0xFF bytes inside
//! the PES). Leaves to others: what the payload is (`h264`, `muxer` for ADTS) and the packet
//! header bytes (`packet`).
//!
//! The payload is a list of pieces: small header bytes (start codes, AUD, SPS/PPS, ADTS)
//! written into a reused scratch buffer, and ranges of the frame's payload. Both are copied
//! into the segment's blocks right behind their packet header, so every packet is 188
//! contiguous bytes (see `packet::SegmentWriter` for why media is copied once here rather
//! than referred to).
//!
//! Spec: ISO/IEC 13818-1 §2.4.3.6–2.4.3.7 (PES packet), §2.4.3.3 (payload spread over
//! transport packets), §2.4.3.5 (stuffing).

use std::ops::Range;

use mpeg2ts::ts::{ContinuityCounter, Pid};

use super::packet::{Header, SegmentWriter, wrap33};

/// `stream_id` of the first MPEG video stream (H.264 here).
pub(super) const STREAM_ID_VIDEO: u8 = 0xE0;
/// `stream_id` of the first MPEG audio stream (AAC in ADTS here).
pub(super) const STREAM_ID_AUDIO: u8 = 0xC0;
/// Bytes of the PES header before the optional fields: start code prefix, stream id,
/// `PES_packet_length`, two flag bytes, `PES_header_data_length`.
const FIXED_HEADER_LEN: usize = 9;
/// The longest PES header written here: fixed part, PTS and DTS.
const MAX_HEADER_LEN: usize = FIXED_HEADER_LEN + 10;

#[derive(Debug, Clone)]
enum Piece {
    /// Bytes of `PesBuilder::scratch`.
    Scratch(Range<usize>),
    /// Bytes of the frame's payload.
    Media(Range<usize>),
}

/// The timing of one PES packet, in 90 kHz ticks on the 64-bit timeline.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timing {
    pub(super) pts: i64,
    /// Written only when it differs from `pts` (mod 2^33).
    pub(super) dts: i64,
}

/// What goes into the adaptation field of a PES packet's first transport packet.
#[derive(Debug, Clone, Copy)]
pub(super) struct FirstPacket {
    /// PCR base in 90 kHz ticks on the 64-bit timeline.
    pub(super) pcr: Option<i64>,
    pub(super) random_access: bool,
}

/// Assembles one PES packet at a time. Its buffers are kept between packets, so a steady
/// stream allocates nothing here once they have grown to the largest frame's needs.
#[derive(Debug, Default)]
pub(super) struct PesBuilder {
    scratch: Vec<u8>,
    pieces: Vec<Piece>,
    /// Bytes of the whole PES packet so far, header included.
    len: usize,
}

impl PesBuilder {
    pub(super) fn new() -> Self {
        Self::default()
    }

    /// Starts a PES packet with its header. `payload_len` is the length of the payload to
    /// follow when `PES_packet_length` should carry it (audio); `None` writes 0, which
    /// ISO/IEC 13818-1 allows for video in transport streams. A length that does not fit
    /// 16 bits also writes 0.
    pub(super) fn start(&mut self, stream_id: u8, timing: Timing, payload_len: Option<usize>) {
        self.scratch.clear();
        self.pieces.clear();
        self.len = 0;
        let pts = wrap33(timing.pts);
        let dts = wrap33(timing.dts);
        let with_dts = dts != pts;
        let data_len: usize = if with_dts { 10 } else { 5 };
        let packet_len = payload_len
            .map(|n| n + 3 + data_len)
            .filter(|&n| n <= usize::from(u16::MAX))
            .unwrap_or(0) as u16;
        let mut h = [0u8; MAX_HEADER_LEN];
        h[..4].copy_from_slice(&[0, 0, 1, stream_id]);
        h[4..6].copy_from_slice(&packet_len.to_be_bytes());
        // '10', not scrambled, no priority, data_alignment_indicator: the payload starts
        // with an access unit (AUD or ADTS sync word), not original.
        h[6] = 0x84;
        h[7] = if with_dts { 0xC0 } else { 0x80 };
        h[8] = data_len as u8;
        if with_dts {
            h[9..14].copy_from_slice(&timestamp(0b0011, pts));
            h[14..19].copy_from_slice(&timestamp(0b0001, dts));
        } else {
            h[9..14].copy_from_slice(&timestamp(0b0010, pts));
        }
        self.push_scratch(&h[..FIXED_HEADER_LEN + data_len]);
    }

    /// Appends header-like bytes (start codes, parameter sets, ADTS) to the payload.
    pub(super) fn push_scratch(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let start = self.scratch.len();
        self.scratch.extend_from_slice(bytes);
        self.len += bytes.len();
        match self.pieces.last_mut() {
            Some(Piece::Scratch(r)) if r.end == start => r.end = self.scratch.len(),
            _ => self.pieces.push(Piece::Scratch(start..self.scratch.len())),
        }
    }

    /// Appends a range of the frame's payload (copied when the packets are written).
    pub(super) fn push_media(&mut self, range: Range<usize>) {
        if range.is_empty() {
            return;
        }
        self.len += range.len();
        match self.pieces.last_mut() {
            Some(Piece::Media(r)) if r.end == range.start => r.end = range.end,
            _ => self.pieces.push(Piece::Media(range)),
        }
    }

    /// Bytes of the whole PES packet (header included).
    fn total_len(&self) -> usize {
        self.len
    }

    /// Splits the PES packet into transport packets on `pid` and writes them to `out`.
    /// Media ranges are read from `media`.
    ///
    /// # Panics
    /// If a media range lies outside `media`: callers push ranges they took from the same
    /// buffer after checking them against its length.
    pub(super) fn write_packets(
        &self,
        media: &[u8],
        out: &mut SegmentWriter,
        pid: Pid,
        cc: &mut ContinuityCounter,
        first: FirstPacket,
    ) {
        let mut remaining = self.total_len();
        let mut pieces = self.pieces.iter().cloned();
        let mut current: Option<Piece> = None;
        let mut header = Header {
            pid,
            unit_start: true,
            cc: *cc,
            pcr: first.pcr.map(wrap33),
            random_access: first.random_access,
        };
        while remaining > 0 {
            header.cc = *cc;
            let payload = remaining.min(header.payload_room());
            out.reserve_packet();
            header.write(out.arena(), payload);
            let mut want = payload;
            while want > 0 {
                let piece = match current.take().or_else(|| pieces.next()) {
                    Some(p) => p,
                    None => break,
                };
                let (range, is_media) = match piece {
                    Piece::Scratch(r) => (r, false),
                    Piece::Media(r) => (r, true),
                };
                let take = range.len().min(want);
                let (now, rest) = (
                    range.start..range.start + take,
                    range.start + take..range.end,
                );
                if is_media {
                    out.put_arena(&media[now]);
                } else {
                    out.put_arena(&self.scratch[now]);
                }
                if !rest.is_empty() {
                    current = Some(if is_media {
                        Piece::Media(rest)
                    } else {
                        Piece::Scratch(rest)
                    });
                }
                want -= take;
            }
            debug_assert_eq!(want, 0, "pieces must add up to the PES length");
            remaining -= payload;
            cc.increment();
            header.unit_start = false;
            header.pcr = None;
            header.random_access = false;
        }
    }
}

#[cfg(test)]
impl PesBuilder {
    /// Every byte pushed so far, in order (header included if started).
    pub(super) fn payload_for_tests(&self, media: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len);
        for piece in &self.pieces {
            match piece {
                Piece::Scratch(r) => out.extend_from_slice(&self.scratch[r.clone()]),
                Piece::Media(r) => out.extend_from_slice(&media[r.clone()]),
            }
        }
        out
    }
}

/// A 33-bit PTS or DTS with its 4-bit prefix and marker bits (§2.4.3.7).
fn timestamp(prefix: u8, t: u64) -> [u8; 5] {
    [
        (prefix << 4) | (((t >> 29) & 0x0E) as u8) | 1,
        (t >> 22) as u8,
        (((t >> 14) & 0xFE) as u8) | 1,
        (t >> 7) as u8,
        (((t << 1) & 0xFE) as u8) | 1,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ts::packet::{BODY_SIZE, PACKET_SIZE};

    fn parse_ts(t: &[u8]) -> u64 {
        (u64::from(t[0] >> 1) & 7) << 30
            | u64::from(t[1]) << 22
            | u64::from(t[2] >> 1) << 15
            | u64::from(t[3]) << 7
            | u64::from(t[4] >> 1)
    }

    #[test]
    fn timestamps_encode_33_bits_with_markers() {
        for t in [0u64, 1, 90_000, (1 << 32) + 12_345, (1 << 33) - 1] {
            let b = timestamp(0b0011, t);
            assert_eq!(b[0] >> 4, 0b0011);
            assert_eq!(b[0] & 1, 1);
            assert_eq!(b[2] & 1, 1);
            assert_eq!(b[4] & 1, 1);
            assert_eq!(parse_ts(&b), t);
        }
    }

    #[test]
    fn header_omits_dts_when_equal_and_sets_audio_length() {
        let mut p = PesBuilder::new();
        p.start(STREAM_ID_AUDIO, Timing { pts: 100, dts: 100 }, Some(50));
        assert_eq!(&p.scratch[..4], &[0, 0, 1, 0xC0]);
        assert_eq!(u16::from_be_bytes([p.scratch[4], p.scratch[5]]), 50 + 8);
        assert_eq!(p.scratch[7], 0x80);
        assert_eq!(p.scratch[8], 5);
        assert_eq!(p.total_len(), 14);

        p.start(STREAM_ID_VIDEO, Timing { pts: 300, dts: 100 }, None);
        assert_eq!(&p.scratch[4..6], &[0, 0]);
        assert_eq!(p.scratch[7], 0xC0);
        assert_eq!(parse_ts(&p.scratch[9..14]), 300);
        assert_eq!(parse_ts(&p.scratch[14..19]), 100);
        assert_eq!(p.total_len(), 19);

        // Equal mod 2^33 counts as equal.
        p.start(
            STREAM_ID_VIDEO,
            Timing {
                pts: 5 + (1 << 33),
                dts: 5,
            },
            None,
        );
        assert_eq!(p.total_len(), 14);
    }

    #[test]
    fn splits_into_full_packets_with_stuffing_only_in_the_last() {
        let media = (0..=255u8).cycle().take(1000).collect::<Vec<_>>();
        for len in [0usize, 1, 169, 170, 171, 184, 353, 354, 355, 1000] {
            let mut p = PesBuilder::new();
            p.start(STREAM_ID_VIDEO, Timing { pts: 9, dts: 9 }, None);
            p.push_scratch(&[0, 0, 0, 1]);
            p.push_media(0..len);
            let mut w = SegmentWriter::new();
            w.begin();
            let mut cc = ContinuityCounter::new();
            let first = FirstPacket {
                pcr: Some(1),
                random_access: true,
            };
            p.write_packets(&media, &mut w, Pid::new(0x100).unwrap(), &mut cc, first);
            let out = w.finish().to_bytes();
            assert_eq!(out.len() % PACKET_SIZE, 0, "len {len}");
            let n = out.len() / PACKET_SIZE;
            assert_eq!(usize::from(cc.as_u8()), n % 16);
            let mut body = Vec::new();
            for (i, pkt) in out.chunks(PACKET_SIZE).enumerate() {
                assert_eq!(pkt[0], 0x47);
                assert_eq!(pkt[1] & 0x40 != 0, i == 0, "unit start only on the first");
                assert_eq!(usize::from(pkt[3] & 0x0F), i % 16);
                let payload_at = if pkt[3] & 0x20 != 0 {
                    let af_len = usize::from(pkt[4]);
                    if i != 0 && i != n - 1 {
                        panic!("adaptation field in a middle packet (len {len})");
                    }
                    if i == 0 && af_len > 0 {
                        assert_eq!(pkt[5] & 0x50, 0x50, "PCR and random access first");
                    }
                    5 + af_len
                } else {
                    4
                };
                body.extend_from_slice(&pkt[payload_at..]);
            }
            assert_eq!(body.len(), 14 + 4 + len);
            assert_eq!(&body[18..], &media[..len]);
            assert!(n == 1 || body.len() > BODY_SIZE);
        }
    }
}
