//! The program tables: one PAT and one PMT packet at the start of every segment.
//!
//! Owns: the table contents (one program, its PMT PID, the PCR PID, the elementary streams)
//! and their continuity counters. The sections (with CRC-32) are serialized once, by
//! `mpeg2ts`, when the muxer is built; each segment copies the two 188-byte packets into its
//! arena and patches the counter. Leaves to others: when a segment starts (`muxer`).
//!
//! `mpeg2ts` pads a short section with an adaptation field full of stuffing; the packets
//! here are laid out the usual way instead (section, then 0xFF bytes: ISO/IEC 13818-1
//! §2.4.4.2), which every player and set-top box expects.
//!
//! Spec: ISO/IEC 13818-1 §2.4.4.3 (PAT), §2.4.4.8 (PMT), Table 2-34 (stream types).

use mpeg2ts::es::StreamType;
use mpeg2ts::ts::payload::{Pat, Pmt};
use mpeg2ts::ts::{
    ContinuityCounter, EsInfo, Pid, ProgramAssociation, TransportScramblingControl, TsHeader,
    TsPacket, TsPacketWriter, TsPayload, VersionNumber, WriteTsPacket,
};

use super::packet::{PACKET_SIZE, SegmentWriter};

/// The one program's number.
const PROGRAM_NUMBER: u16 = 1;
/// `transport_stream_id` (any value: a single-program stream).
const TRANSPORT_STREAM_ID: u16 = 1;

/// Which elementary streams the program has, and on which PIDs.
#[derive(Debug, Clone, Copy)]
pub(super) struct Program {
    pub(super) pmt_pid: Pid,
    pub(super) video_pid: Option<Pid>,
    pub(super) audio_pid: Option<Pid>,
    /// Carries the PCR; `None` when the program has no stream (PCR_PID 0x1FFF).
    pub(super) pcr_pid: Option<Pid>,
}

/// The two table packets, ready to copy, and their counters.
#[derive(Debug, Clone)]
pub(super) struct Tables {
    pat: [u8; PACKET_SIZE],
    pmt: [u8; PACKET_SIZE],
    pat_cc: ContinuityCounter,
    pmt_cc: ContinuityCounter,
}

impl Tables {
    pub(super) fn new(program: &Program) -> Self {
        let pat = Pat {
            transport_stream_id: TRANSPORT_STREAM_ID,
            version_number: VersionNumber::new(),
            table: vec![ProgramAssociation {
                program_num: PROGRAM_NUMBER,
                program_map_pid: program.pmt_pid,
            }],
        };
        let mut es_info = Vec::with_capacity(2);
        if let Some(pid) = program.video_pid {
            es_info.push(EsInfo {
                stream_type: StreamType::H264,
                elementary_pid: pid,
                descriptors: Vec::new(),
            });
        }
        if let Some(pid) = program.audio_pid {
            es_info.push(EsInfo {
                stream_type: StreamType::AdtsAac,
                elementary_pid: pid,
                descriptors: Vec::new(),
            });
        }
        let pmt = Pmt {
            program_num: PROGRAM_NUMBER,
            pcr_pid: program.pcr_pid,
            version_number: VersionNumber::new(),
            program_info: Vec::new(),
            es_info,
        };
        Self {
            pat: section_packet(Pid::from(0), TsPayload::Pat(pat)),
            pmt: section_packet(program.pmt_pid, TsPayload::Pmt(pmt)),
            pat_cc: ContinuityCounter::new(),
            pmt_cc: ContinuityCounter::new(),
        }
    }

    /// Writes the PAT and PMT packets with their next continuity counters.
    pub(super) fn write(&mut self, out: &mut SegmentWriter) {
        for (packet, cc) in [
            (&mut self.pat, &mut self.pat_cc),
            (&mut self.pmt, &mut self.pmt_cc),
        ] {
            packet[3] = (packet[3] & 0xF0) | cc.as_u8();
            cc.increment();
            out.reserve_packet();
            out.put_arena(&packet[..]);
        }
    }
}

/// Serializes one PSI section with `mpeg2ts` and lays it out as a single packet: header
/// with `payload_unit_start_indicator`, pointer field, section, 0xFF stuffing.
///
/// # Panics
/// If `mpeg2ts` refuses the table or it does not fit one packet: the tables built in
/// [`Tables::new`] hold at most two streams and no descriptors, so they always fit.
fn section_packet(pid: Pid, payload: TsPayload) -> [u8; PACKET_SIZE] {
    let packet = TsPacket {
        header: TsHeader {
            transport_error_indicator: false,
            transport_priority: false,
            pid,
            transport_scrambling_control: TransportScramblingControl::NotScrambled,
            continuity_counter: ContinuityCounter::new(),
        },
        adaptation_field: None,
        payload: Some(payload),
    };
    let mut writer = TsPacketWriter::new(Vec::with_capacity(PACKET_SIZE));
    writer
        .write_ts_packet(&packet)
        .expect("a one-program PAT/PMT with two streams always serializes");
    let written = writer.into_stream();
    assert_eq!(written.len(), PACKET_SIZE, "mpeg2ts writes whole packets");
    // Skip whatever adaptation field mpeg2ts used for stuffing.
    let section_at = if written[3] & 0x20 != 0 {
        5 + usize::from(written[4])
    } else {
        4
    };
    // The section ends at its section_length; the bytes after it are padding.
    let section = &written[section_at..];
    let section_len = 1 + 3 + usize::from(u16::from_be_bytes([section[2], section[3]]) & 0x3FF);
    let mut out = [0xFF; PACKET_SIZE];
    out[0] = TsPacket::SYNC_BYTE;
    out[1] = 0x40 | (pid.as_u16() >> 8) as u8;
    out[2] = pid.as_u16() as u8;
    out[3] = 0x10; // payload only, counter patched per segment
    out[4..4 + section_len].copy_from_slice(&section[..section_len]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use mpeg2ts::ts::{ReadTsPacket, TsPacketReader};

    fn read_tables(program: &Program, segments: usize) -> Vec<TsPacket> {
        let mut t = Tables::new(program);
        let mut w = SegmentWriter::new();
        w.begin();
        for _ in 0..segments {
            t.write(&mut w);
        }
        let bytes = w.finish().to_bytes();
        assert_eq!(bytes.len(), segments * 2 * PACKET_SIZE);
        let mut r = TsPacketReader::new(&bytes[..]);
        let mut out = Vec::new();
        while let Some(p) = r.read_ts_packet().unwrap() {
            out.push(p);
        }
        out
    }

    #[test]
    fn pat_and_pmt_parse_with_mpeg2ts() {
        let program = Program {
            pmt_pid: Pid::new(0x1000).unwrap(),
            video_pid: Some(Pid::new(0x100).unwrap()),
            audio_pid: Some(Pid::new(0x101).unwrap()),
            pcr_pid: Some(Pid::new(0x100).unwrap()),
        };
        let packets = read_tables(&program, 18);
        assert_eq!(packets.len(), 36);
        for (i, pair) in packets.chunks(2).enumerate() {
            let (pat, pmt) = (&pair[0], &pair[1]);
            assert_eq!(pat.header.pid.as_u16(), 0);
            assert_eq!(usize::from(pat.header.continuity_counter.as_u8()), i % 16);
            assert!(pat.adaptation_field.is_none());
            let Some(TsPayload::Pat(pat)) = &pat.payload else {
                panic!("not a PAT: {pat:?}");
            };
            assert_eq!(pat.table.len(), 1);
            assert_eq!(pat.table[0].program_num, 1);
            assert_eq!(pat.table[0].program_map_pid.as_u16(), 0x1000);

            assert_eq!(pmt.header.pid.as_u16(), 0x1000);
            assert_eq!(usize::from(pmt.header.continuity_counter.as_u8()), i % 16);
            let Some(TsPayload::Pmt(pmt)) = &pmt.payload else {
                panic!("not a PMT: {pmt:?}");
            };
            assert_eq!(pmt.program_num, 1);
            assert_eq!(pmt.pcr_pid.map(|p| p.as_u16()), Some(0x100));
            let streams: Vec<_> = pmt
                .es_info
                .iter()
                .map(|e| (e.stream_type, e.elementary_pid.as_u16()))
                .collect();
            assert_eq!(
                streams,
                [(StreamType::H264, 0x100), (StreamType::AdtsAac, 0x101)]
            );
        }
    }

    #[test]
    fn audio_only_and_empty_programs() {
        let audio = Program {
            pmt_pid: Pid::new(0x1000).unwrap(),
            video_pid: None,
            audio_pid: Some(Pid::new(0x101).unwrap()),
            pcr_pid: Some(Pid::new(0x101).unwrap()),
        };
        let packets = read_tables(&audio, 1);
        let Some(TsPayload::Pmt(pmt)) = &packets[1].payload else {
            panic!("not a PMT");
        };
        assert_eq!(pmt.pcr_pid.map(|p| p.as_u16()), Some(0x101));
        assert_eq!(pmt.es_info.len(), 1);
        assert_eq!(pmt.es_info[0].stream_type, StreamType::AdtsAac);

        let empty = Program {
            video_pid: None,
            audio_pid: None,
            pcr_pid: None,
            ..audio
        };
        let packets = read_tables(&empty, 1);
        let Some(TsPayload::Pmt(pmt)) = &packets[1].payload else {
            panic!("not a PMT");
        };
        assert_eq!(pmt.pcr_pid, None);
        assert!(pmt.es_info.is_empty());
    }

    #[test]
    fn section_is_followed_by_stuffing_bytes() {
        let program = Program {
            pmt_pid: Pid::new(0x1000).unwrap(),
            video_pid: Some(Pid::new(0x100).unwrap()),
            audio_pid: None,
            pcr_pid: Some(Pid::new(0x100).unwrap()),
        };
        let t = Tables::new(&program);
        // pointer field, table_id 0, 12-bit length 13 => 3 + 13 bytes of section
        assert_eq!(&t.pat[4..7], &[0, 0, 0xB0]);
        assert_eq!(t.pat[7], 13);
        assert!(t.pat[4 + 1 + 3 + 13..].iter().all(|&b| b == 0xFF));
        assert_eq!(t.pmt[5], 2, "PMT table_id");
    }
}
