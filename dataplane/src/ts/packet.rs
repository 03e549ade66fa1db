//! One 188-byte transport packet's header and adaptation field, and the gather-list writer
//! every packet of a segment goes into.
//!
//! Owns: the 4-byte packet header, the adaptation field (PCR, `random_access_indicator`,
//! stuffing) and the per-segment arena. Leaves to others: what the payload is (`pes`, `psi`)
//! and when a segment starts or ends (`muxer`).
//!
//! Spec: ISO/IEC 13818-1 §2.4.3.2 (transport packet), §2.4.3.4–2.4.3.5 (adaptation field).

use bytes::{BufMut, BytesMut};
use mpeg2ts::ts::{ContinuityCounter, Pid, TsPacket};

use crate::chunks::Chunks;

/// Bytes in a transport packet.
pub(super) const PACKET_SIZE: usize = TsPacket::SIZE;
/// Bytes after the 4-byte header: adaptation field plus payload.
pub(super) const BODY_SIZE: usize = PACKET_SIZE - 4;
/// Bytes a PCR takes in the adaptation field (33-bit base, 6 reserved, 9-bit extension).
const PCR_SIZE: usize = 6;

/// 2^33: PTS, DTS and the PCR base wrap at this many 90 kHz ticks.
pub(super) const TIMESTAMP_MODULUS: i64 = 1 << 33;

/// Reduces a 64-bit 90 kHz time to the 33 bits MPEG-TS carries. Negative inputs (never
/// produced by a caller that keeps its promise of `dts ≥ 90 000`) wrap the same way.
pub(super) fn wrap33(t: i64) -> u64 {
    t.rem_euclid(TIMESTAMP_MODULUS) as u64
}

/// What goes in front of one packet's payload.
#[derive(Debug, Clone, Copy)]
pub(super) struct Header {
    pub(super) pid: Pid,
    /// `payload_unit_start_indicator`: a PES packet or PSI section starts here.
    pub(super) unit_start: bool,
    pub(super) cc: ContinuityCounter,
    /// PCR base in 90 kHz ticks, already reduced mod 2^33; the 27 MHz extension is 0.
    pub(super) pcr: Option<u64>,
    pub(super) random_access: bool,
}

impl Header {
    /// Bytes the adaptation field needs before any stuffing (0: none needed).
    fn adaptation_len(&self) -> usize {
        if self.pcr.is_none() && !self.random_access {
            return 0;
        }
        // adaptation_field_length + flags (+ PCR)
        2 + if self.pcr.is_some() { PCR_SIZE } else { 0 }
    }

    /// The most payload bytes this packet can carry.
    pub(super) fn payload_room(&self) -> usize {
        BODY_SIZE - self.adaptation_len()
    }

    /// Writes the header and adaptation field of a packet that carries `payload_len` bytes
    /// of payload; an adaptation field stuffs the packet out to 188 bytes when the payload
    /// is shorter than [`Header::payload_room`].
    ///
    /// `payload_len` must be in `1..=payload_room()` (callers split payloads so it is).
    pub(super) fn write(&self, out: &mut impl BufMut, payload_len: usize) {
        debug_assert!((1..=self.payload_room()).contains(&payload_len));
        let payload_len = payload_len.clamp(1, self.payload_room());
        let adaptation_total = BODY_SIZE - payload_len;
        let pid = self.pid.as_u16();
        out.put_u8(TsPacket::SYNC_BYTE);
        out.put_u8((u8::from(self.unit_start) << 6) | (pid >> 8) as u8);
        out.put_u8(pid as u8);
        // adaptation_field_control: 01 payload only, 11 adaptation field then payload
        let control = if adaptation_total > 0 { 0x30 } else { 0x10 };
        out.put_u8(control | self.cc.as_u8());
        if adaptation_total == 0 {
            return;
        }
        // adaptation_field_length counts the bytes after itself; 0 is a one-byte stuffing
        out.put_u8((adaptation_total - 1) as u8);
        if adaptation_total == 1 {
            return;
        }
        let flags = (u8::from(self.random_access) << 6) | (u8::from(self.pcr.is_some()) << 4);
        out.put_u8(flags);
        let mut used = 2;
        if let Some(base) = self.pcr {
            let base = base & ((1 << 33) - 1);
            out.put_u32((base >> 1) as u32);
            // last base bit, 6 reserved bits, extension (0)
            out.put_u8((((base & 1) as u8) << 7) | 0x7E);
            out.put_u8(0);
            used += PCR_SIZE;
        }
        out.put_bytes(0xFF, adaptation_total - used);
    }
}

/// Builds one segment compactly: every packet (header, adaptation field and payload) is
/// written whole into fixed-size blocks, and a segment is the few block slices it spans.
///
/// Why copy the payload: a packet carries 184 payload bytes, so referring to the frame's
/// bytes instead costs two `Bytes` (header slice + payload slice, 32 B each and an atomic
/// reference count per slice, taken and dropped) per 188 bytes of output. The profile of 100
/// cameras put those reference counts at 11–14 % of the server's CPU, and HTTP then had to
/// flatten such segments into one more copy on first request (thousands of slices do not fit
/// a `writev`). Copying 184 bytes costs less than either; the window then holds exactly one
/// copy of each segment's media, shared by every viewer (issue 11).
///
/// Blocks are [`BLOCK`] bytes; a segment ends where its last packet ends and the next one
/// continues in the same block, so the only waste is under one packet per block.
///
/// Invariant: `arena` holds exactly the bytes written since the last slice was cut.
#[derive(Debug)]
pub(super) struct SegmentWriter {
    arena: BytesMut,
    chunks: Chunks,
}

/// Bytes allocated at once for packets. 64 KiB: a 2 s segment at 2 Mbit/s spans ~8 blocks
/// (one `writev`), a low-rate audio camera wastes at most one partly filled block.
pub(super) const BLOCK: usize = 64 * 1024;

impl SegmentWriter {
    pub(super) fn new() -> Self {
        Self {
            arena: BytesMut::new(),
            chunks: Chunks::with_capacity(16),
        }
    }

    /// Starts a segment (continuing in the current block).
    pub(super) fn begin(&mut self) {
        self.reserve_packet();
    }

    /// Makes sure one whole packet fits the current block: else the block's bytes so far
    /// become a slice of the segment and a fresh block is taken (the old allocation comes
    /// back when every slice of it has been dropped).
    pub(super) fn reserve_packet(&mut self) {
        if self.arena.capacity() - self.arena.len() < PACKET_SIZE {
            self.cut_arena();
            self.arena.reserve(BLOCK);
        }
    }

    /// The block, to write header bytes into (call [`SegmentWriter::reserve_packet`] first).
    pub(super) fn arena(&mut self) -> &mut BytesMut {
        &mut self.arena
    }

    /// Appends bytes of the current packet (header, PES header, payload).
    pub(super) fn put_arena(&mut self, bytes: &[u8]) {
        self.arena.extend_from_slice(bytes);
    }

    fn cut_arena(&mut self) {
        if !self.arena.is_empty() {
            self.chunks.push(self.arena.split().freeze());
        }
    }

    /// Ends the segment and returns its slices.
    pub(super) fn finish(&mut self) -> Chunks {
        self.cut_arena();
        std::mem::replace(&mut self.chunks, Chunks::with_capacity(16))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mpeg2ts::ts::{ReadTsPacket, TsPacketReader, TsPayload};

    /// A PSI-free packet stream can't be parsed by `TsPacketReader` (it needs the PMT to
    /// know the PID), so these tests read the header fields by hand.
    fn packet(h: &Header, payload_len: usize) -> Vec<u8> {
        let mut out = Vec::new();
        h.write(&mut out, payload_len);
        out.resize(out.len() + payload_len, 0xAB);
        out
    }

    fn header(pcr: Option<u64>, random_access: bool) -> Header {
        Header {
            pid: Pid::new(0x100).unwrap(),
            unit_start: true,
            cc: ContinuityCounter::from_u8(7).unwrap(),
            pcr,
            random_access,
        }
    }

    #[test]
    fn every_payload_length_gives_188_bytes() {
        for (pcr, ra) in [
            (None, false),
            (None, true),
            (Some(123), false),
            (Some(5), true),
        ] {
            let h = header(pcr, ra);
            for len in 1..=h.payload_room() {
                let p = packet(&h, len);
                assert_eq!(p.len(), PACKET_SIZE, "pcr {pcr:?} ra {ra} len {len}");
                assert_eq!(p[0], 0x47);
                assert_eq!(p[1], 0x41);
                assert_eq!(p[2], 0x00);
                assert_eq!(p[3] & 0x0F, 7);
                let has_af = p[3] & 0x20 != 0;
                assert_eq!(has_af, len < BODY_SIZE);
                if has_af {
                    let af_len = usize::from(p[4]);
                    assert_eq!(4 + 1 + af_len + len, PACKET_SIZE);
                    if af_len > 0 {
                        assert_eq!(p[5] & 0x40 != 0, ra);
                        assert_eq!(p[5] & 0x10 != 0, pcr.is_some());
                    }
                }
                assert!(p[PACKET_SIZE - len..].iter().all(|&b| b == 0xAB));
            }
        }
    }

    #[test]
    fn pcr_round_trips_through_mpeg2ts() {
        let base = (1u64 << 33) - 2;
        let h = header(Some(base), true);
        let mut out = Vec::new();
        h.write(&mut out, 10);
        let af_len = usize::from(out[4]);
        assert_eq!(af_len, BODY_SIZE - 10 - 1);
        let pcr = &out[6..12];
        let got = (u64::from(pcr[0]) << 25)
            | (u64::from(pcr[1]) << 17)
            | (u64::from(pcr[2]) << 9)
            | (u64::from(pcr[3]) << 1)
            | u64::from(pcr[4] >> 7);
        assert_eq!(got, base);
        assert_eq!(pcr[4] & 0x7E, 0x7E);
        assert_eq!((u16::from(pcr[4] & 1) << 8) | u16::from(pcr[5]), 0);
        // mpeg2ts reads the null PID without a PMT, so the adaptation field parses there.
        let mut null = out.clone();
        null[1] = 0x1F;
        null[2] = 0xFF;
        null.resize(PACKET_SIZE, 0xFF);
        let mut r = TsPacketReader::new(&null[..]);
        let p = r.read_ts_packet().unwrap().unwrap();
        let af = p.adaptation_field.unwrap();
        assert!(af.random_access_indicator);
        assert_eq!(af.pcr.unwrap().as_u64(), base * 300);
        assert!(matches!(p.payload, Some(TsPayload::Null(_))));
    }

    #[test]
    fn wrap33_reduces_modulo_2_pow_33() {
        assert_eq!(wrap33(0), 0);
        assert_eq!(wrap33(TIMESTAMP_MODULUS - 1), (1 << 33) - 1);
        assert_eq!(wrap33(TIMESTAMP_MODULUS + 5), 5);
        assert_eq!(wrap33(-1), (1 << 33) - 1);
    }

    #[test]
    fn writer_packs_packets_into_few_blocks() {
        let mut w = SegmentWriter::new();
        w.begin();
        w.put_arena(b"ab");
        w.put_arena(b"cd");
        let c = w.finish();
        assert_eq!(c.slices().len(), 1);
        assert_eq!(&c.to_bytes()[..], b"abcd");
        // The next segment starts empty and continues in the same block.
        w.begin();
        assert!(w.finish().is_empty());
        w.begin();
        w.put_arena(b"ef");
        let d = w.finish();
        assert_eq!(d.slices()[0].as_ptr(), c.slices()[0][4..].as_ptr());
        // Whole packets never straddle blocks; a segment spans len / BLOCK + 1 slices.
        w.begin();
        for _ in 0..2000 {
            w.reserve_packet();
            w.put_arena(&[0x47; PACKET_SIZE]);
        }
        let e = w.finish();
        assert_eq!(e.len(), 2000 * PACKET_SIZE);
        assert!(
            e.slices().len() <= 2000 * PACKET_SIZE / BLOCK + 2,
            "{}",
            e.slices().len()
        );
        assert!(
            e.slices()
                .iter()
                .all(|s| s.len() % PACKET_SIZE == 0 && s[0] == 0x47)
        );
    }
}
