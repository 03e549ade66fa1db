//! Just enough MPEG-TS reading (ISO/IEC 13818-1 §2.4.3) for viewers to find frame markers:
//! the payload bytes of each PID, concatenated, so a marker split by a packet boundary is
//! whole again. No PES parsing, no tables: the marker search does not need them.

use std::collections::BTreeMap;

use thiserror::Error;

const PACKET: usize = 188;
const SYNC: u8 = 0x47;

/// Why a buffer is not an MPEG-TS segment.
#[derive(Debug, Error, PartialEq, Eq)]
pub(crate) enum TsError {
    /// A packet did not start with the sync byte.
    #[error("no TS sync byte at offset {offset} (got {got:#04x})")]
    Sync { offset: usize, got: u8 },
    /// The length is not a whole number of packets.
    #[error("TS segment of {len} bytes is not a multiple of 188")]
    Length { len: usize },
}

/// Payload bytes per PID, in packet order.
pub(crate) fn pid_payloads(data: &[u8]) -> Result<BTreeMap<u16, Vec<u8>>, TsError> {
    if !data.len().is_multiple_of(PACKET) {
        return Err(TsError::Length { len: data.len() });
    }
    let mut out: BTreeMap<u16, Vec<u8>> = BTreeMap::new();
    for (i, p) in data.chunks_exact(PACKET).enumerate() {
        if p[0] != SYNC {
            return Err(TsError::Sync {
                offset: i * PACKET,
                got: p[0],
            });
        }
        let pid = u16::from(p[1] & 0x1f) << 8 | u16::from(p[2]);
        let afc = (p[3] >> 4) & 0x3;
        let start = match afc {
            0b01 => 4,
            0b11 => 5 + usize::from(p[4]),
            _ => continue, // adaptation field only, or reserved
        };
        if start < PACKET && pid != 0x1fff {
            out.entry(pid).or_default().extend_from_slice(&p[start..]);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn packet(pid: u16, adaptation: Option<usize>, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![SYNC, (pid >> 8) as u8 & 0x1f, pid as u8];
        match adaptation {
            None => p.push(0x10),
            Some(n) => {
                p.push(0x30);
                p.push(n as u8);
                p.extend(std::iter::repeat_n(0xff, n));
            }
        }
        p.extend_from_slice(payload);
        p.resize(PACKET, 0xff);
        p
    }

    #[test]
    fn joins_payloads_per_pid_across_adaptation_fields() {
        let mut seg = packet(0x100, None, &[b'a'; 184]);
        seg.extend(packet(0x101, None, &[b'x'; 184]));
        seg.extend(packet(0x100, Some(10), &[b'b'; 173]));
        let pids = pid_payloads(&seg).expect("valid TS");
        let video = &pids[&0x100];
        assert_eq!(video.len(), 184 + 173);
        assert!(video[..184].iter().all(|&b| b == b'a'));
        assert!(video[184..].iter().all(|&b| b == b'b'));
        assert_eq!(pids[&0x101].len(), 184);
    }

    #[test]
    fn rejects_lost_sync_and_partial_packets() {
        let mut seg = packet(0x100, None, &[]);
        seg.extend(vec![0u8; PACKET]);
        assert_eq!(
            pid_payloads(&seg),
            Err(TsError::Sync {
                offset: 188,
                got: 0
            })
        );
        assert_eq!(pid_payloads(&[SYNC; 10]), Err(TsError::Length { len: 10 }));
    }

    proptest! {
        #[test]
        fn never_panics(mut data: Vec<u8>, n in 0usize..4) {
            data.resize(n * PACKET, SYNC);
            let _ = pid_payloads(&data);
        }
    }
}
