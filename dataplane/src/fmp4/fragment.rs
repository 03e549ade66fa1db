//! One movie fragment: `moof` (`mfhd`, a `traf` per track) + `mdat`, as a gather list.
//!
//! The `moof` and the 8-byte `mdat` header are encoded into one reused buffer and frozen
//! into a single slice; each sample's payload follows as the very `Bytes` the caller passed.
//! H.264 samples are already length-prefixed NAL units and AAC samples raw access units,
//! which is exactly what `mdat` holds, so nothing is rewritten.
//!
//! Layout choices (ISO/IEC 14496-12 §8.8.7 `tfhd`, §8.8.8 `trun`, §8.8.12 `tfdt`; CMAF
//! ISO/IEC 23000-19 §7.3.2): `tfhd` sets default-base-is-moof so each `trun.data_offset`
//! counts from the `moof`'s first byte and fragments can be served or stored anywhere;
//! `tfdt` version 1 (64-bit decode time); `trun` version 1 (signed composition offsets, for
//! encoders that send negative ones) with a duration, size, flags and composition offset
//! for every sample. No defaults live in `tfhd`/`trex`, so each fragment reads on its own.

use bytes::{Bytes, BytesMut};
use mp4_atom::{Atom, BufMut, Encode, Mfhd, Moof, Tfdt, Tfhd, Traf, Trun, TrunEntry, TrunSamples};

use super::{AUDIO_TRACK_ID, Fmp4Error, VIDEO_TRACK_ID};
use crate::chunks::Chunks;

/// `sample_flags` of a sync sample: `sample_depends_on` = 2 (does not depend on others).
const SYNC_SAMPLE: u32 = 2 << 24;
/// `sample_flags` of any other sample: `sample_depends_on` = 1 and
/// `sample_is_non_sync_sample`.
const NON_SYNC_SAMPLE: u32 = (1 << 24) | (1 << 16);
/// The header buffer's allocation size. Frozen headers are slices of it; once all of a
/// block's slices are dropped it is reclaimed. A 200 ms part of 30 fps video and AAC has a
/// header of about 400 bytes, so a 16 KiB block serves dozens of parts.
const HEADER_BLOCK: usize = 16 * 1024;
/// An upper bound on the `moof` boxes besides the per-sample fields: `moof` 8 + `mfhd` 16,
/// and per `traf` 8 + `tfhd` 16 + `tfdt` 20 + `trun` 20 (+ 4 of first-sample flags): 160,
/// with room to spare.
const MOOF_FIXED: usize = 256;
/// `trun` bytes per sample: duration, size, flags, composition offset.
const TRUN_PER_SAMPLE: usize = 16;
/// `mdat` header with a 32-bit size.
const MDAT_HEADER: usize = 8;
/// The largest fragment written: every `trun.data_offset` is a signed 32-bit offset from
/// the `moof`, and `mdat` uses a 32-bit size.
const MAX_FRAGMENT: u64 = i32::MAX as u64;

/// One sample (access unit) of one track.
///
/// Only the first sample's `decode_time` is written (`tfdt`); later samples' decode times are
/// implied by the durations before them, so the caller keeps
/// `decode_time[i + 1] == decode_time[i] + duration[i]` within a fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sample {
    /// Decode time, track timescale.
    pub(crate) decode_time: u64,
    /// Duration, track timescale.
    pub(crate) duration: u32,
    /// Composition offset `pts - dts`, track timescale (non-zero with B-frames).
    pub(crate) cts: i32,
    /// A sync sample (IDR for video; every AAC frame).
    pub(crate) keyframe: bool,
    /// The payload: AVCC length-prefixed NAL units, or one raw AAC access unit.
    pub(crate) data: Bytes,
}

/// Writes fragments, reusing its header buffer and box structures between calls.
#[derive(Debug)]
pub(crate) struct FragmentWriter {
    header: BytesMut,
    video: Traf,
    audio: Traf,
}

impl Default for FragmentWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl FragmentWriter {
    /// A writer with an empty header buffer.
    pub(crate) fn new() -> Self {
        Self {
            header: BytesMut::with_capacity(HEADER_BLOCK),
            video: track_fragment(VIDEO_TRACK_ID),
            audio: track_fragment(AUDIO_TRACK_ID),
        }
    }

    /// One `moof` + `mdat` with `video` then `audio` samples; a track without samples gets no
    /// `traf`. `sequence_number` goes in `mfhd` (start at 1, increase by one per fragment).
    ///
    /// The result's first slice is the `moof` and `mdat` header; each further slice is one
    /// sample's `data`, in order, shared, not copied. Allocates only the result's slice list
    /// (one `Vec` per fragment) and, now and then, a new header block: the box structures
    /// keep their capacity between calls, and `mp4-atom` encodes these boxes straight into
    /// the buffer (its one allocating encoder, for descriptors, is used only by `esds` in
    /// the init segment).
    ///
    /// # Errors
    /// [`Fmp4Error::TooLarge`] past 2 GiB (the writer stays usable).
    pub(crate) fn write(
        &mut self,
        sequence_number: u32,
        video: &[Sample],
        audio: &[Sample],
    ) -> Result<Chunks, Fmp4Error> {
        let video_bytes = payload_len(video);
        let payload = video_bytes + payload_len(audio);
        let header_bound = MOOF_FIXED + TRUN_PER_SAMPLE * (video.len() + audio.len());
        let bytes = payload + (header_bound + MDAT_HEADER) as u64;
        if bytes > MAX_FRAGMENT {
            return Err(Fmp4Error::TooLarge {
                bytes,
                limit: MAX_FRAGMENT,
            });
        }
        fill(&mut self.video, video);
        fill(&mut self.audio, audio);

        self.header.clear();
        self.header.reserve(header_bound + MDAT_HEADER);
        let mut traf_at = [None; 2];
        let (video_traf, audio_traf) = (&self.video, &self.audio);
        let encoded = self.header.encode_atom(Moof::KIND, |buf| {
            Mfhd { sequence_number }.encode(buf)?;
            if !video.is_empty() {
                traf_at[0] = Some(buf.len());
                video_traf.encode(buf)?;
            }
            if !audio.is_empty() {
                traf_at[1] = Some(buf.len());
                audio_traf.encode(buf)?;
            }
            Ok(())
        });
        if let Err(e) = encoded {
            self.header.clear();
            return Err(Fmp4Error::encode("moof")(e));
        }

        // The data offsets depend on the moof's size, known only now: patch them in place
        // rather than encoding twice. Bounded by MAX_FRAGMENT above, so they fit an i32.
        let moof_len = self.header.len();
        let first_payload = (moof_len + MDAT_HEADER) as u64;
        let offsets = [first_payload, first_payload + video_bytes];
        for (at, offset) in traf_at.into_iter().zip(offsets) {
            let Some(at) = at else { continue };
            let patched = i32::try_from(offset)
                .ok()
                .is_some_and(|offset| patch_data_offset(&mut self.header, at, offset));
            if !patched {
                self.header.clear();
                return Err(Fmp4Error::Encode {
                    what: "trun",
                    reason: "no data_offset field to patch".into(),
                });
            }
        }
        let mdat_size = (payload + MDAT_HEADER as u64) as u32;
        self.header.extend_from_slice(&mdat_size.to_be_bytes());
        self.header.extend_from_slice(b"mdat");

        let mut out = Chunks::with_capacity(1 + video.len() + audio.len());
        out.push(self.header.split().freeze());
        for sample in video.iter().chain(audio) {
            out.push(sample.data.clone());
        }
        Ok(out)
    }
}

fn payload_len(samples: &[Sample]) -> u64 {
    samples.iter().map(|s| s.data.len() as u64).sum()
}

fn track_fragment(track_id: u32) -> Traf {
    Traf {
        tfhd: Tfhd {
            track_id,
            default_base_is_moof: true,
            ..Tfhd::default()
        },
        tfdt: Some(Tfdt::default()),
        trun: vec![Trun {
            data_offset: Some(0),
            samples: TrunSamples::Explicit(Vec::new()),
        }],
        ..Traf::default()
    }
}

/// Refills `traf` for `samples`, keeping the entry vector's capacity.
fn fill(traf: &mut Traf, samples: &[Sample]) {
    traf.tfdt = Some(Tfdt {
        base_media_decode_time: samples.first().map_or(0, |s| s.decode_time),
    });
    if traf.trun.is_empty() {
        traf.trun.push(Trun::default());
    }
    traf.trun.truncate(1);
    for trun in &mut traf.trun {
        trun.data_offset = Some(0);
        let mut entries = match std::mem::take(&mut trun.samples) {
            TrunSamples::Explicit(entries) => entries,
            TrunSamples::Inherited { .. } => Vec::new(),
        };
        entries.clear();
        entries.extend(samples.iter().map(|s| TrunEntry {
            duration: Some(s.duration),
            // Bounded by MAX_FRAGMENT before this runs.
            size: Some(s.data.len() as u32),
            flags: Some(if s.keyframe {
                SYNC_SAMPLE
            } else {
                NON_SYNC_SAMPLE
            }),
            cts: Some(i64::from(s.cts)),
        }));
        trun.samples = TrunSamples::Explicit(entries);
    }
}

/// Writes `offset` into the `data_offset` of the first `trun` inside the `traf` starting at
/// `traf_at`. `false` when there is no such field (the encoder changed its layout).
fn patch_data_offset(buf: &mut [u8], traf_at: usize, offset: i32) -> bool {
    let box_size = |buf: &[u8], at: usize| -> Option<usize> {
        let b = buf.get(at..at + 4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let Some(end) = box_size(buf, traf_at).map(|size| traf_at + size) else {
        return false;
    };
    let mut at = traf_at + 8;
    while at + 8 <= end {
        let Some(size) = box_size(buf, at).filter(|&s| s >= 8) else {
            return false;
        };
        if &buf[at + 4..at + 8] == b"trun" {
            // [size 4][type 4][version 1][flags 3][sample_count 4][data_offset 4]
            let data_offset_present = buf[at + 11] & 1 == 1;
            if !data_offset_present || at + 20 > end {
                return false;
            }
            buf[at + 16..at + 20].copy_from_slice(&offset.to_be_bytes());
            return true;
        }
        at += size;
    }
    false
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::fmp4::parse::{Fragment, find_box, parse_fragment};

    fn sample(decode_time: u64, duration: u32, cts: i32, keyframe: bool, data: &[u8]) -> Sample {
        Sample {
            decode_time,
            duration,
            cts,
            keyframe,
            data: Bytes::copy_from_slice(data),
        }
    }

    /// Checks every field the writer sets against the samples it was given.
    fn assert_round_trip(seq: u32, video: &[Sample], audio: &[Sample], out: &Chunks) {
        let bytes = out.to_bytes();
        let f = parse_fragment(&bytes);
        assert_eq!(f.moof.mfhd.sequence_number, seq);
        let tracks: Vec<(u32, &[Sample])> = [(VIDEO_TRACK_ID, video), (AUDIO_TRACK_ID, audio)]
            .into_iter()
            .filter(|(_, s)| !s.is_empty())
            .collect();
        assert_eq!(f.moof.traf.len(), tracks.len());
        let mut next_payload = f.mdat.start;
        for (traf, (track_id, samples)) in f.moof.traf.iter().zip(tracks) {
            assert_eq!(traf.tfhd.track_id, track_id);
            assert!(traf.tfhd.default_base_is_moof);
            assert_eq!(traf.tfhd.base_data_offset, None);
            assert_eq!(traf.tfhd.default_sample_duration, None);
            assert_eq!(traf.tfhd.default_sample_size, None);
            assert_eq!(traf.tfhd.default_sample_flags, None);
            assert_eq!(
                traf.tfdt.as_ref().map(|t| t.base_media_decode_time),
                Some(samples[0].decode_time)
            );
            assert_eq!(traf.trun.len(), 1);
            let trun = &traf.trun[0];
            assert_eq!(trun.samples.len(), samples.len());
            for (e, s) in trun.samples.iter().zip(samples) {
                assert_eq!(e.duration, Some(s.duration));
                assert_eq!(e.size, Some(s.data.len() as u32));
                let flags = e.flags.expect("flags");
                let depends_on = (flags >> 24) & 3;
                let non_sync = (flags >> 16) & 1;
                if s.keyframe {
                    assert_eq!((depends_on, non_sync), (2, 0));
                } else {
                    assert_eq!((depends_on, non_sync), (1, 1));
                }
                assert_eq!(e.cts, Some(i64::from(s.cts)));
            }
            // data_offset (from the moof's first byte) points at this track's first payload
            // byte, right after the previous track's.
            let ranges = Fragment::sample_ranges(traf);
            assert_eq!(ranges[0].start, next_payload);
            for (r, s) in ranges.iter().zip(samples) {
                assert_eq!(&bytes[r.clone()], &s.data[..]);
            }
            next_payload = ranges.last().unwrap().end;
        }
        assert_eq!(next_payload, bytes.len());
        // Version 1 of tfdt (64-bit time) and trun (signed offsets).
        if !video.is_empty() || !audio.is_empty() {
            assert_eq!(find_box(&bytes, b"tfdt").unwrap()[0], 1);
            assert_eq!(find_box(&bytes, b"trun").unwrap()[0], 1);
        }
    }

    #[test]
    fn fields_round_trip() {
        // I P B B with composition offsets, and two AAC frames.
        let video = [
            sample(900_000, 3000, 3000, true, &[0, 0, 0, 2, 0x65, 0x88]),
            sample(903_000, 3000, 9000, false, &[0, 0, 0, 1, 0x41]),
            sample(906_000, 3000, -3000, false, &[0, 0, 0, 1, 0x01]),
            sample(909_000, 3000, 0, false, &[0, 0, 0, 2, 0x01, 0x02]),
        ];
        let audio = [
            sample(480_000, 1024, 0, true, &[0x21, 0x10, 0x05]),
            sample(481_024, 1024, 0, true, &[0x21, 0x10]),
        ];
        let mut w = FragmentWriter::new();
        let out = w.write(7, &video, &audio).unwrap();
        assert_round_trip(7, &video, &audio, &out);
        assert_eq!(out.slices().len(), 1 + video.len() + audio.len());

        let f = parse_fragment(&out.to_bytes());
        let v = &f.moof.traf[0].trun[0];
        assert_eq!(v.data_offset, Some((f.moof_len + 8) as i32));
        let flags: Vec<_> = v.samples.iter().map(|e| e.flags.unwrap()).collect();
        assert_eq!(flags, [0x0200_0000, 0x0101_0000, 0x0101_0000, 0x0101_0000]);
        let a = &f.moof.traf[1].trun[0];
        assert_eq!(a.data_offset, Some((f.moof_len + 8 + 6 + 5 + 5 + 6) as i32));
    }

    #[test]
    fn one_track_or_none() {
        let video = [sample(1, 3000, 0, true, b"\0\0\0\x01\x65")];
        let audio = [sample(2, 1024, 0, true, b"\x21")];
        let mut w = FragmentWriter::new();
        assert_round_trip(1, &video, &[], &w.write(1, &video, &[]).unwrap());
        assert_round_trip(2, &[], &audio, &w.write(2, &[], &audio).unwrap());
        let empty = w.write(3, &[], &[]).unwrap();
        assert_round_trip(3, &[], &[], &empty);
        assert_eq!(empty.slices().len(), 1);
    }

    #[test]
    fn payloads_are_shared_not_copied() {
        let buf = Bytes::from(vec![7u8; 1000]);
        let video = [
            Sample {
                data: buf.slice(0..400),
                ..sample(0, 3000, 0, true, b"")
            },
            Sample {
                data: buf.slice(400..700),
                ..sample(3000, 3000, 0, false, b"")
            },
        ];
        let audio = [Sample {
            data: buf.slice(700..1000),
            ..sample(0, 1024, 0, true, b"")
        }];
        let out = FragmentWriter::new().write(1, &video, &audio).unwrap();
        let slices = out.slices();
        let range = buf.as_ptr_range();
        for (slice, s) in slices[1..].iter().zip(video.iter().chain(&audio)) {
            assert_eq!(slice.as_ptr_range(), s.data.as_ptr_range());
            assert!(range.contains(&slice.as_ptr()));
        }
        assert!(!range.contains(&slices[0].as_ptr()));
    }

    #[test]
    fn header_buffer_is_reused() {
        let video = [sample(0, 3000, 0, true, b"\0\0\0\x01\x65")];
        let mut w = FragmentWriter::new();
        let first = w.write(1, &video, &[]).unwrap();
        let second = w.write(2, &video, &[]).unwrap();
        let (a, b) = (&first.slices()[0], &second.slices()[0]);
        // While the first header is still alive, the second is carved from the same block
        // right after it: no allocation.
        assert_eq!(a.as_ptr_range().end, b.as_ptr());
        assert_round_trip(2, &video, &[], &second);
    }

    #[test]
    fn too_large_is_refused_and_writer_recovers() {
        // 2048 samples sharing one 1 MiB buffer: 2 GiB of payload, no memory.
        let mib = Bytes::from(vec![0u8; 1 << 20]);
        let huge: Vec<Sample> = (0..2048)
            .map(|i| Sample {
                decode_time: i * 3000,
                duration: 3000,
                cts: 0,
                keyframe: i == 0,
                data: mib.clone(),
            })
            .collect();
        let mut w = FragmentWriter::new();
        assert!(matches!(
            w.write(1, &huge, &[]),
            Err(Fmp4Error::TooLarge { limit, .. }) if limit == i32::MAX as u64
        ));
        // Just under the limit still works and points past 2 GiB - 1 MiB of video.
        let audio = [sample(0, 1024, 0, true, b"\x21\x10")];
        let out = w.write(2, &huge[..2040], &audio).unwrap();
        assert_eq!(
            out.len() as u64,
            out.slices()[0].len() as u64 + 2040 * (1 << 20) + 2
        );
        let header = &out.slices()[0];
        let mut rest = &header[..];
        let moof = <Moof as mp4_atom::Decode>::decode(&mut rest).unwrap();
        assert_eq!(
            moof.traf[1].trun[0].data_offset,
            Some((header.len() + 2040 * (1 << 20)) as i32)
        );
        assert_eq!(
            u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize,
            8 + 2040 * (1 << 20) + 2
        );
    }

    fn arb_samples(max: usize) -> impl Strategy<Value = Vec<Sample>> {
        (
            any::<u32>(),
            prop::collection::vec(
                (
                    any::<u32>(),
                    any::<i32>(),
                    any::<bool>(),
                    prop::collection::vec(any::<u8>(), 1..300),
                ),
                0..max,
            ),
        )
            .prop_map(|(start, specs)| {
                let mut t = u64::from(start) << 8;
                specs
                    .into_iter()
                    .map(|(duration, cts, keyframe, data)| {
                        let s = Sample {
                            decode_time: t,
                            duration,
                            cts,
                            keyframe,
                            data: Bytes::from(data),
                        };
                        t += u64::from(duration);
                        s
                    })
                    .collect()
            })
    }

    proptest! {
        #[test]
        fn random_fragments_round_trip(
            seq in any::<u32>(),
            video in arb_samples(40),
            audio in arb_samples(40),
            again in any::<bool>(),
        ) {
            let mut w = FragmentWriter::new();
            if again {
                // A previous, larger fragment must not leak into this one.
                let big: Vec<Sample> = video.iter().chain(&audio).chain(&video).cloned().collect();
                w.write(seq.wrapping_sub(1), &big, &big).unwrap();
            }
            let out = w.write(seq, &video, &audio).unwrap();
            assert_round_trip(seq, &video, &audio, &out);
        }
    }
}
