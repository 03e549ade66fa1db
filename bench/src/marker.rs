//! The frame marker: an H.264 SEI message the publisher puts in front of every video frame,
//! carrying the camera, a frame sequence number and the capture time; viewers find it in
//! whatever container the server wraps the frame in.
//!
//! SEI `user_data_unregistered` (ITU-T H.264 §D.1.7, payload type 5): a 16-byte UUID and
//! free bytes. The payload is ASCII hex so it never holds `00 00`, which means no emulation
//! prevention bytes (§7.4.1) are needed and the marker survives the AVCC → Annex B
//! conversion an MPEG-TS muxer does, byte for byte. Servers pass SEI NAL units through
//! untouched, and decoders skip unknown SEI, so players are not affected.
//!
//! The search (`find`) works on any byte buffer: an fMP4 part, or the per-PID payload of a
//! TS segment (`ts::pid_payloads`, because a TS packet boundary may split a marker).

use bytes::{BufMut, Bytes, BytesMut};
use memchr::memmem;

/// Identifies our SEI among others (x264 writes its own). No zero bytes, on purpose.
pub(crate) const UUID: [u8; 16] = *b"camstream-bench1";
/// Hex digits after the UUID: camera (8), sequence (8), capture time in µs (16).
const HEX_LEN: usize = 32;
const SEI_PAYLOAD_LEN: usize = UUID.len() + HEX_LEN;
/// NAL header, payload type, payload size, payload, rbsp trailing bits.
const SEI_NAL_LEN: usize = 1 + 1 + 1 + SEI_PAYLOAD_LEN + 1;

/// What a marker says about its frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Marker {
    /// Index of the publishing camera in the run.
    pub(crate) camera: u32,
    /// Video frame number on this camera's connection, from 0.
    pub(crate) seq: u32,
    /// When the frame was due (its "capture"), µs on the run's clock.
    pub(crate) capture_us: u64,
}

fn hex(out: &mut BytesMut, v: u64, digits: usize) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for i in (0..digits).rev() {
        out.put_u8(DIGITS[((v >> (i * 4)) & 0xf) as usize]);
    }
}

fn unhex(s: &[u8]) -> Option<u64> {
    s.iter().try_fold(0u64, |acc, &c| {
        let d = (c as char).to_digit(16)?;
        Some(acc << 4 | u64::from(d))
    })
}

/// Returns the FLV video tag body with the marker's SEI NAL unit inserted before the
/// frame's NAL units, or `None` when the body is not an AVC NALU tag.
///
/// `nal_length_size` is the AVC record's length prefix size (1, 2 or 4 bytes).
pub(crate) fn stamp(body: &[u8], nal_length_size: u8, m: Marker) -> Option<Bytes> {
    // FLV AVC video tag: frame type/codec, AVCPacketType (1 = NALU), composition time (3).
    if body.len() < 5 || body[0] & 0x0f != 7 || body[1] != 1 {
        return None;
    }
    let mut out = BytesMut::with_capacity(body.len() + 4 + SEI_NAL_LEN);
    out.put_slice(&body[..5]);
    match nal_length_size {
        1 => out.put_u8(SEI_NAL_LEN as u8),
        2 => out.put_u16(SEI_NAL_LEN as u16),
        _ => out.put_u32(SEI_NAL_LEN as u32),
    }
    out.put_u8(0x06); // nal_unit_type 6 (SEI), nal_ref_idc 0
    out.put_u8(0x05); // user_data_unregistered
    out.put_u8(SEI_PAYLOAD_LEN as u8);
    out.put_slice(&UUID);
    hex(&mut out, u64::from(m.camera), 8);
    hex(&mut out, u64::from(m.seq), 8);
    hex(&mut out, m.capture_us, 16);
    out.put_u8(0x80); // rbsp_stop_one_bit
    out.put_slice(&body[5..]);
    Some(out.freeze())
}

/// Appends every marker found in `haystack` to `out`, in order of appearance.
///
/// A UUID match followed by anything but 32 hex digits is ignored (it is not ours).
pub(crate) fn find(haystack: &[u8], out: &mut Vec<Marker>) {
    for at in memmem::find_iter(haystack, &UUID) {
        let start = at + UUID.len();
        let Some(h) = haystack.get(start..start + HEX_LEN) else {
            continue;
        };
        let (Some(camera), Some(seq), Some(capture_us)) =
            (unhex(&h[..8]), unhex(&h[8..16]), unhex(&h[16..]))
        else {
            continue;
        };
        out.push(Marker {
            camera: camera as u32,
            seq: seq as u32,
            capture_us,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TAG: &[u8] = &[0x27, 1, 0, 0, 0x42, 0, 0, 0, 2, 0x41, 0x9a];

    #[test]
    fn stamp_inserts_one_length_prefixed_sei_before_the_frame() {
        let m = Marker {
            camera: 3,
            seq: 0x1234,
            capture_us: 987_654_321,
        };
        let out = stamp(TAG, 4, m).expect("NALU tag");
        assert_eq!(
            &out[..5],
            &TAG[..5],
            "tag header kept, composition time included"
        );
        assert_eq!(&out[5..9], &(SEI_NAL_LEN as u32).to_be_bytes());
        assert_eq!(&out[9..12], &[0x06, 0x05, 48]);
        assert_eq!(out[9 + SEI_NAL_LEN - 1], 0x80);
        assert_eq!(
            &out[9 + SEI_NAL_LEN..],
            &TAG[5..],
            "frame NAL units follow untouched"
        );
        let mut found = Vec::new();
        find(&out, &mut found);
        assert_eq!(found, vec![m]);
    }

    #[test]
    fn stamp_honours_short_length_prefixes_and_skips_headers() {
        let m = Marker {
            camera: 0,
            seq: 0,
            capture_us: 0,
        };
        assert_eq!(
            stamp(TAG, 2, m).expect("NALU")[5..7],
            [0, SEI_NAL_LEN as u8]
        );
        assert_eq!(stamp(TAG, 1, m).expect("NALU")[5], SEI_NAL_LEN as u8);
        assert_eq!(
            stamp(&[0x17, 0, 0, 0, 0, 1, 2], 4, m),
            None,
            "sequence header"
        );
        assert_eq!(stamp(&[0xaf, 1, 0, 0, 0], 4, m), None, "audio");
    }

    #[test]
    fn find_ignores_a_uuid_without_hex() {
        let mut buf = UUID.to_vec();
        buf.extend_from_slice(&[b'z'; 32]);
        buf.extend_from_slice(&UUID);
        let mut found = Vec::new();
        find(&buf, &mut found);
        assert!(found.is_empty());
    }

    proptest! {
        #[test]
        fn marker_payload_never_holds_two_zero_bytes(camera: u32, seq: u32, capture_us: u64) {
            let out = stamp(TAG, 4, Marker { camera, seq, capture_us }).expect("NALU");
            let sei = &out[9..9 + SEI_NAL_LEN];
            prop_assert!(!sei.windows(2).any(|w| w == [0, 0]));
            let mut found = Vec::new();
            find(&out, &mut found);
            prop_assert_eq!(found, vec![Marker { camera, seq, capture_us }]);
        }

        #[test]
        fn find_never_panics(data: Vec<u8>) {
            let mut found = Vec::new();
            find(&data, &mut found);
        }
    }
}
