//! Test support: reads muxer output back with `mpeg2ts` and checks the transport layer on the
//! way (packet size and sync, continuity counters, tables, where adaptation fields may be),
//! and runs ffmpeg/ffprobe as real peers.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use mpeg2ts::pes::{PesPacketReader, ReadPesPacket};
use mpeg2ts::ts::payload::Pmt;
use mpeg2ts::ts::{ReadTsPacket, TsPacketReader, TsPayload};

use super::PMT_PID;
use super::packet::PACKET_SIZE;

/// One PES packet as read back, with what its first transport packet said.
#[derive(Debug, Clone)]
pub(super) struct ReadPes {
    pub(super) stream_id: u8,
    pub(super) pts: Option<u64>,
    pub(super) dts: Option<u64>,
    /// `PES_packet_length` as written.
    pub(super) packet_len: u16,
    /// Bytes after the PES header.
    pub(super) data: Vec<u8>,
    /// PCR base (90 kHz) of the first packet.
    pub(super) pcr: Option<u64>,
    pub(super) random_access: bool,
}

/// A transport stream read back.
#[derive(Debug, Default)]
pub(super) struct Demuxed {
    pub(super) packets: usize,
    pub(super) pats: usize,
    pub(super) pmts: Vec<Pmt>,
    /// PES packets per PID, in order.
    pub(super) pes: HashMap<u16, Vec<ReadPes>>,
}

impl Demuxed {
    pub(super) fn on(&self, pid: u16) -> &[ReadPes] {
        self.pes.get(&pid).map_or(&[], Vec::as_slice)
    }
}

/// Reads a whole stream, asserting on the way:
/// - a whole number of 188-byte packets, each starting with 0x47;
/// - continuity counters +1 per packet on every PID (every packet here carries payload);
/// - a PAT naming program 1 on PID 0x1000 before any PMT, a PMT before any PES;
/// - adaptation fields only in the first and last packet of a PES;
/// - audio `PES_packet_length` matching the bytes that came.
///
/// # Panics
/// On any of the above: this is test support.
pub(super) fn demux(ts: &[u8]) -> Demuxed {
    assert_eq!(ts.len() % PACKET_SIZE, 0, "not whole packets");
    for (i, p) in ts.chunks(PACKET_SIZE).enumerate() {
        assert_eq!(p[0], 0x47, "sync byte of packet {i}");
    }
    let mut out = Demuxed::default();
    let mut cc: HashMap<u16, u8> = HashMap::new();
    // A PID whose last packet had an adaptation field mid-PES: its PES must end there.
    let mut must_start: HashMap<u16, bool> = HashMap::new();
    let mut reader = TsPacketReader::new(ts);
    let mut index = 0;
    while let Some(packet) = reader
        .read_ts_packet()
        .unwrap_or_else(|e| panic!("packet {index}: {e}"))
    {
        let pid = packet.header.pid.as_u16();
        let counter = packet.header.continuity_counter.as_u8();
        if let Some(prev) = cc.insert(pid, counter) {
            assert_eq!(
                counter,
                (prev + 1) % 16,
                "continuity on PID {pid:#x} at packet {index}"
            );
        }
        assert!(packet.payload.is_some(), "packet {index} without payload");
        let af = packet.adaptation_field.as_ref();
        match packet.payload {
            Some(TsPayload::Pat(pat)) => {
                out.pats += 1;
                assert_eq!(pat.table.len(), 1);
                assert_eq!(pat.table[0].program_num, 1);
                assert_eq!(pat.table[0].program_map_pid.as_u16(), PMT_PID);
            }
            Some(TsPayload::Pmt(pmt)) => {
                assert_eq!(pid, PMT_PID);
                out.pmts.push(pmt);
            }
            Some(TsPayload::PesStart(pes)) => {
                must_start.insert(pid, false);
                let h = &pes.header;
                out.pes.entry(pid).or_default().push(ReadPes {
                    stream_id: h.stream_id.as_u8(),
                    pts: h.pts.map(|t| t.as_u64()),
                    dts: h.dts.map(|t| t.as_u64()),
                    packet_len: pes.pes_packet_len,
                    data: pes.data.to_vec(),
                    pcr: af.and_then(|a| a.pcr).map(|p| {
                        assert_eq!(p.as_u64() % 300, 0, "PCR extension is 0");
                        p.as_u64() / 300
                    }),
                    random_access: af.is_some_and(|a| a.random_access_indicator),
                });
            }
            Some(TsPayload::PesContinuation(bytes)) => {
                assert!(
                    !must_start.get(&pid).copied().unwrap_or(false),
                    "adaptation field in the middle of a PES on PID {pid:#x} (packet {index})"
                );
                if let Some(a) = af {
                    assert!(a.pcr.is_none() && !a.random_access_indicator);
                    must_start.insert(pid, true);
                }
                let last = out
                    .pes
                    .get_mut(&pid)
                    .and_then(|v| v.last_mut())
                    .unwrap_or_else(|| panic!("continuation before a PES start on {pid:#x}"));
                last.data.extend_from_slice(&bytes);
            }
            other => panic!("unexpected payload {other:?}"),
        }
        index += 1;
    }
    out.packets = index;
    for pes in out.pes.values().flatten() {
        if pes.packet_len != 0 {
            let header =
                3 + 5 * usize::from(pes.pts.is_some()) + 5 * usize::from(pes.dts.is_some());
            assert_eq!(usize::from(pes.packet_len), header + pes.data.len());
        }
    }
    // Cross-check the reassembly with mpeg2ts's own PES reader.
    let mut by_stream: HashMap<u8, Vec<Vec<u8>>> = HashMap::new();
    let mut pes_reader = PesPacketReader::new(TsPacketReader::new(ts));
    while let Some(p) = pes_reader.read_pes_packet().expect("mpeg2ts PES reader") {
        by_stream
            .entry(p.header.stream_id.as_u8())
            .or_default()
            .push(p.data);
    }
    for list in out.pes.values() {
        let Some(first) = list.first() else { continue };
        let theirs = by_stream.remove(&first.stream_id).unwrap_or_default();
        let ours: Vec<_> = list.iter().map(|p| p.data.clone()).collect();
        assert_eq!(
            ours.len(),
            theirs.len(),
            "PES count for {:#x}",
            first.stream_id
        );
        assert!(
            ours == theirs,
            "PES payloads differ for {:#x}",
            first.stream_id
        );
    }
    out
}

/// The single PMT all segments repeat, checked to be the same each time.
pub(super) fn program(d: &Demuxed) -> &Pmt {
    let first = d.pmts.first().expect("a PMT");
    assert!(d.pmts.iter().all(|p| p == first), "PMT changed");
    assert_eq!(d.pats, d.pmts.len());
    first
}

/// Fields of an ADTS header, checked for the fixed bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Adts {
    pub(super) profile: u8,
    pub(super) sampling_index: u8,
    pub(super) channels: u8,
    pub(super) frame_len: usize,
}

pub(super) fn adts(h: &[u8]) -> Adts {
    assert!(h.len() >= 7);
    assert_eq!(h[0], 0xFF, "syncword");
    assert_eq!(h[1] & 0xF6, 0xF0, "syncword, MPEG-4, layer 0");
    assert_eq!(h[1] & 1, 1, "no CRC");
    assert_eq!(h[6] & 3, 0, "one raw data block");
    Adts {
        profile: h[2] >> 6,
        sampling_index: (h[2] >> 2) & 0xF,
        channels: ((h[2] & 1) << 2) | (h[3] >> 6),
        frame_len: (usize::from(h[3] & 3) << 11)
            | (usize::from(h[4]) << 3)
            | usize::from(h[5] >> 5),
    }
}

/// Runs a tool and returns (stdout, stderr), asserting it ran and succeeded.
///
/// # Panics
/// When the tool is missing or fails: a missing peer is a test failure, never a skip.
pub(super) fn run(tool: &str, args: &[&str]) -> (String, String) {
    let out = Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{tool} must be installed for the tests: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{tool} {args:?} failed: {stderr}");
    (stdout, stderr)
}

/// A fresh directory under the system temp dir for one test's files.
pub(super) fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("camstream-ts-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// `ffprobe -show_streams -show_format` as `key=value` lines, asserting it printed no errors.
pub(super) fn probe(path: &Path) -> String {
    let p = path.to_str().expect("utf-8 path");
    let (out, err) = run(
        "ffprobe",
        &["-v", "error", "-show_streams", "-show_format", p],
    );
    assert!(err.trim().is_empty(), "ffprobe errors: {err}");
    out
}

/// Decodes everything with ffmpeg and asserts it printed nothing (no decode errors).
pub(super) fn decode_clean(path: &Path) {
    let p = path.to_str().expect("utf-8 path");
    let (_, err) = run("ffmpeg", &["-v", "error", "-i", p, "-f", "null", "-"]);
    assert!(err.trim().is_empty(), "ffmpeg decode errors: {err}");
}

/// (pts, dts) of every packet of the video stream as ffprobe reads them.
pub(super) fn video_packet_times(path: &Path) -> Vec<(i64, i64)> {
    let p = path.to_str().expect("utf-8 path");
    let (out, err) = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pts,dts",
            "-of",
            "csv=p=0",
            p,
        ],
    );
    assert!(err.trim().is_empty(), "ffprobe errors: {err}");
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            // "pts,dts," (ffprobe 5 leaves an empty field for the side data section)
            let mut fields = l.trim().split(',');
            let mut next = |what| {
                let v = fields.next().unwrap_or_default();
                v.parse()
                    .unwrap_or_else(|e| panic!("{what} {v:?} in {l:?}: {e}"))
            };
            (next("pts"), next("dts"))
        })
        .collect()
}

/// The value of `key=` in ffprobe's `-show_streams`/`-show_format` output for the stream of
/// `codec_type`, or in the format section when `codec_type` is `None`.
pub(super) fn field(probe: &str, codec_type: Option<&str>, key: &str) -> Option<String> {
    let mut section = Vec::new();
    let mut sections = Vec::new();
    for line in probe.lines() {
        match line.trim() {
            "[STREAM]" | "[FORMAT]" => section.clear(),
            "[/STREAM]" | "[/FORMAT]" => sections.push(std::mem::take(&mut section)),
            l => section.push(l.to_owned()),
        }
    }
    let wanted = codec_type.map(|t| format!("codec_type={t}"));
    sections
        .iter()
        .find(|s| match &wanted {
            Some(w) => s.contains(w),
            None => s.iter().any(|l| l.starts_with("format_name=")),
        })
        .and_then(|s| {
            s.iter()
                .find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_owned))
        })
}
