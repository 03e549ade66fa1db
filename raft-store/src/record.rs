//! The on-disk record: `[len: u32 LE][crc: u32 LE][payload: len bytes]`, where `crc` is
//! CRC-32C (Castagnoli) over the four length bytes and the payload. Every file of the store
//! (log, vote, committed, snapshot) is a sequence of these.
//!
//! Reading stops at the first record that is incomplete, fails its checksum, has a zero or
//! oversized length: what follows cannot be trusted. For the append-only log that is the torn
//! tail of a write that was never acknowledged (every earlier write was fsynced before the next
//! began), so it is cut. A zero-filled tail (an extended file whose data never reached the
//! disk) fails the checks too: a zero length is never valid.

use crc::{CRC_32_ISCSI, Crc};

/// Length and checksum in front of every payload.
pub(crate) const HEADER_LEN: usize = 8;

/// Largest payload accepted: a snapshot of tens of thousands of cameras is a few MiB; a length
/// above this is corruption, not data.
pub(crate) const MAX_PAYLOAD: usize = 256 << 20;

const CASTAGNOLI: Crc<u32> = Crc::<u32>::new(&CRC_32_ISCSI);

fn checksum(len: [u8; 4], payload: &[u8]) -> u32 {
    let mut d = CASTAGNOLI.digest();
    d.update(&len);
    d.update(payload);
    d.finalize()
}

/// Appends one record holding `payload` to `out`.
///
/// # Panics
/// If `payload` is empty or longer than [`MAX_PAYLOAD`]; callers encode structures that are
/// never empty and bounded far below the cap.
pub(crate) fn encode(payload: &[u8], out: &mut Vec<u8>) {
    assert!(
        !payload.is_empty() && payload.len() <= MAX_PAYLOAD,
        "record payload of {} bytes",
        payload.len()
    );
    let len = u32::try_from(payload.len())
        .expect("below MAX_PAYLOAD")
        .to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&checksum(len, payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Why reading stopped before the end of the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// All bytes were whole records.
    End,
    /// The last record is cut short (a torn write).
    Truncated,
    /// A record's length is zero or above the cap.
    BadLength,
    /// A record's checksum does not match.
    BadChecksum,
}

/// The records found in a byte buffer.
#[derive(Debug)]
pub(crate) struct Scan<'a> {
    /// `(offset, payload)` of each whole, valid record, in order.
    pub(crate) records: Vec<(u64, &'a [u8])>,
    /// Bytes up to the end of the last valid record: where a log is cut.
    pub(crate) valid_len: u64,
    /// Why reading stopped.
    pub(crate) stop: Stop,
}

/// Reads records from the start of `buf` until the end or the first bad one.
pub(crate) fn scan(buf: &[u8]) -> Scan<'_> {
    let mut records = Vec::new();
    let mut at = 0usize;
    let stop = loop {
        let rest = &buf[at..];
        if rest.is_empty() {
            break Stop::End;
        }
        let Some((head, body)) = rest.split_first_chunk::<HEADER_LEN>() else {
            break Stop::Truncated;
        };
        let len_bytes = [head[0], head[1], head[2], head[3]];
        let len = u32::from_le_bytes(len_bytes) as usize;
        if len == 0 || len > MAX_PAYLOAD {
            break Stop::BadLength;
        }
        let Some(payload) = body.get(..len) else {
            break Stop::Truncated;
        };
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        if crc != checksum(len_bytes, payload) {
            break Stop::BadChecksum;
        }
        records.push((at as u64, payload));
        at += HEADER_LEN + len;
    };
    Scan {
        records,
        valid_len: at as u64,
        stop,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> (Vec<u8>, Vec<usize>) {
        let mut buf = Vec::new();
        let mut ends = Vec::new();
        for p in [&b"alpha"[..], b"b", &[7u8; 300]] {
            encode(p, &mut buf);
            ends.push(buf.len());
        }
        (buf, ends)
    }

    #[test]
    fn round_trip() {
        let (buf, ends) = three();
        let s = scan(&buf);
        assert_eq!(s.stop, Stop::End);
        assert_eq!(s.valid_len, buf.len() as u64);
        let payloads: Vec<&[u8]> = s.records.iter().map(|(_, p)| *p).collect();
        assert_eq!(payloads, vec![&b"alpha"[..], b"b", &[7u8; 300]]);
        assert_eq!(s.records[1].0, ends[0] as u64);
    }

    #[test]
    fn a_cut_at_every_offset_keeps_exactly_the_whole_records() {
        let (buf, ends) = three();
        for cut in 0..=buf.len() {
            let s = scan(&buf[..cut]);
            let whole = ends.iter().filter(|e| **e <= cut).count();
            assert_eq!(s.records.len(), whole, "cut at {cut}");
            let valid = if whole == 0 { 0 } else { ends[whole - 1] };
            assert_eq!(s.valid_len, valid as u64, "cut at {cut}");
            let expect = if cut == valid {
                Stop::End
            } else {
                Stop::Truncated
            };
            assert_eq!(s.stop, expect, "cut at {cut}");
        }
    }

    #[test]
    fn a_flipped_byte_anywhere_stops_at_its_record() {
        let (buf, ends) = three();
        for at in 0..buf.len() {
            let mut bad = buf.clone();
            bad[at] ^= 0x40;
            let s = scan(&bad);
            let before = ends.iter().filter(|e| **e <= at).count();
            assert_eq!(s.records.len(), before, "flip at {at}");
            assert_ne!(s.stop, Stop::End, "flip at {at}");
        }
    }

    #[test]
    fn zero_fill_and_huge_lengths_are_not_records() {
        assert_eq!(scan(&[0u8; 64]).stop, Stop::BadLength);
        assert_eq!(scan(&[0u8; 64]).records.len(), 0);
        let mut huge = (u32::MAX).to_le_bytes().to_vec();
        huge.extend_from_slice(&[0; 12]);
        assert_eq!(scan(&huge).stop, Stop::BadLength);
    }
}
