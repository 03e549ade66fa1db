//! The box-level work of the recorder: rebasing a fragment's times into its file, the `prft`
//! that dates each fragment, the closing `mfra`, and reading all of it back for repair.
//!
//! The live fragments (`moof` + `mdat`, see `fmp4::fragment`) carry decode times on the live
//! timeline, which starts near 10 s and runs across reconnects. A recording session starts
//! at 0 and its files continue one another's decode times, so the recorder copies each
//! fragment's small header (`moof` + the 8-byte `mdat` header, a few hundred bytes), patches
//! every `tfdt` and the `mfhd` sequence number in the copy, and puts a `prft` in front; the
//! payload slices are written as they are.
//!
//! A file opens with its own init segment, whose edit list makes a file played alone start
//! at 0 whatever its first decode time ([`file_init`]), then a `free` box holding the live
//! init segment as it is (no edit list, the same bytes for every file of a session): the
//! `EXT-X-MAP` of VOD playlists ([`stream_init_box`]). Players that append init segments to
//! Media Source Extensions need that copy: Chromium applies an init segment's edit list to
//! the samples after it, while hls.js maps samples to the playlist's timeline from their
//! `tfdt` alone, so a file's own init would move every file after a session's first back by
//! its start.
//!
//! Spec: ISO/IEC 14496-12 §4.2 (box header), §8.8.4 `mfhd`, §8.8.6 `traf`, §8.8.7 `tfhd`,
//! §8.8.9–11 `mfra`/`tfra`/`mfro`, §8.8.12 `tfdt`, §8.16.5 `prft`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::BufMut;
use mp4_atom::{Decode, Encode, FragmentInfo, Mfra, Mfro, Moof, Moov, Tfra};

/// Bytes of the `prft` written before every `moof` (version 1: 64-bit media time).
pub(crate) const PRFT_LEN: usize = 32;
/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;
/// `sample_is_non_sync_sample` in `sample_flags`.
const NON_SYNC: u32 = 1 << 16;
/// Size of a box header with a 32-bit size.
const HEADER: usize = 8;

/// Why a box structure could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Mp4Error {
    /// A box is cut off or its size field is impossible.
    #[error("malformed {what} at byte {at}")]
    Malformed {
        /// The box or structure.
        what: &'static str,
        /// Where, counted from the start of the buffer.
        at: usize,
    },
    /// A box the structure needs is missing.
    #[error("no {0} box")]
    Missing(&'static str),
    /// `mp4-atom` could not decode or encode a box.
    #[error("{what}: {reason}")]
    Atom {
        /// The box.
        what: &'static str,
        /// `mp4-atom`'s reason.
        reason: String,
    },
}

fn atom(what: &'static str) -> impl FnOnce(mp4_atom::Error) -> Mp4Error {
    move |e| Mp4Error::Atom {
        what,
        reason: e.to_string(),
    }
}

/// A box header: type, where its body starts and its total size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BoxHeader {
    /// The FourCC.
    pub(crate) kind: [u8; 4],
    /// Header bytes: 8, or 16 with a 64-bit size.
    pub(crate) header_len: usize,
    /// Whole box, header included.
    pub(crate) size: u64,
}

/// Reads a box header from the start of `buf`. `Ok(None)` when `buf` is too short to hold
/// it. A size of 0 ("to the end of the file") is refused: the recorder never writes it, and
/// a zeroed tail after a power loss must read as torn, not as one huge box.
///
/// # Errors
/// [`Mp4Error::Malformed`] when the size is smaller than the header.
pub(crate) fn read_header(buf: &[u8]) -> Result<Option<BoxHeader>, Mp4Error> {
    let Some(head) = buf.get(..HEADER) else {
        return Ok(None);
    };
    let size32 = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    let kind = [head[4], head[5], head[6], head[7]];
    let (size, header_len) = match size32 {
        1 => {
            let Some(large) = buf.get(HEADER..16) else {
                return Ok(None);
            };
            let mut b = [0u8; 8];
            b.copy_from_slice(large);
            (u64::from_be_bytes(b), 16)
        }
        n => (u64::from(n), HEADER),
    };
    if size < header_len as u64 {
        return Err(Mp4Error::Malformed { what: "box", at: 0 });
    }
    Ok(Some(BoxHeader {
        kind,
        header_len,
        size,
    }))
}

/// The children of a box body, as (header, range of the whole child in `body`).
fn children(
    body: &[u8],
    at: usize,
) -> impl Iterator<Item = Result<(BoxHeader, std::ops::Range<usize>), Mp4Error>> + '_ {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        if pos >= body.len() {
            return None;
        }
        let r = match read_header(&body[pos..]) {
            Ok(Some(h)) if h.size <= (body.len() - pos) as u64 => {
                let range = pos..pos + h.size as usize;
                pos = range.end;
                Ok((h, range))
            }
            _ => {
                let bad = at + pos;
                pos = body.len();
                Err(Mp4Error::Malformed {
                    what: "child box",
                    at: bad,
                })
            }
        };
        Some(r)
    })
}

/// How to move a fragment from the live timeline onto its file's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rebase {
    /// Subtracted from the video track's `tfdt` (90 kHz).
    pub(crate) video: u64,
    /// Subtracted from the audio track's `tfdt` (its sample rate).
    pub(crate) audio: u64,
    /// The `mfhd` sequence number to write (1 for a file's first fragment).
    pub(crate) sequence: u32,
}

/// What [`write_header`] learnt about the fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rebased {
    /// The reference track's rebased decode time (video if present, else audio).
    pub(crate) reference_time: u64,
    /// The reference track's id.
    pub(crate) reference_track: u32,
}

/// Appends to `out` the fragment header as it goes into a file: a `prft` dated `wall`, then
/// a copy of `header` (the live `moof` + `mdat` header) with `tfdt`s rebased and the `mfhd`
/// sequence number replaced. `video_track`/`audio_track` are the track ids.
///
/// # Errors
/// [`Mp4Error`] when `header` is not a `moof` followed by exactly an `mdat` header, or a
/// `tfdt` would go below zero. `out` is left as it was.
pub(crate) fn write_header(
    out: &mut bytes::BytesMut,
    header: &[u8],
    rebase: Rebase,
    wall: SystemTime,
) -> Result<Rebased, Mp4Error> {
    let start = out.len();
    out.reserve(PRFT_LEN + header.len());
    out.put_bytes(0, PRFT_LEN);
    out.extend_from_slice(header);
    let video = rebase.video;
    let audio = rebase.audio;
    let patched = patch(
        &mut out[start + PRFT_LEN..],
        Some(rebase.sequence),
        |is_video, t| t.checked_sub(if is_video { video } else { audio }),
    );
    let rebased = match patched {
        Ok(r) => r,
        Err(e) => {
            out.truncate(start);
            return Err(e);
        }
    };
    let prft = &mut out[start..start + PRFT_LEN];
    prft[..4].copy_from_slice(&(PRFT_LEN as u32).to_be_bytes());
    prft[4..8].copy_from_slice(b"prft");
    // Version 1, flags 0: the UTC time is when the frame at `media_time` reached the server.
    prft[8..12].copy_from_slice(&(1u32 << 24).to_be_bytes());
    prft[12..16].copy_from_slice(&rebased.reference_track.to_be_bytes());
    prft[16..24].copy_from_slice(&ntp(wall).to_be_bytes());
    prft[24..32].copy_from_slice(&rebased.reference_time.to_be_bytes());
    Ok(rebased)
}

/// Rewrites every `tfdt` of a `moof` + `mdat` header with `map` (video track or not, old
/// time → new time; `None` refuses) and, if given, the `mfhd` sequence number.
fn patch(
    buf: &mut [u8],
    sequence: Option<u32>,
    map: impl Fn(bool, u64) -> Option<u64>,
) -> Result<Rebased, Mp4Error> {
    let moof = read_header(buf)?.ok_or(Mp4Error::Missing("moof"))?;
    if &moof.kind != b"moof" || moof.header_len != HEADER {
        return Err(Mp4Error::Missing("moof"));
    }
    let moof_len = usize::try_from(moof.size).map_err(|_| malformed("moof", 0))?;
    let mdat = buf
        .get(moof_len..)
        .filter(|rest| rest.len() == HEADER && &rest[4..8] == b"mdat")
        .ok_or(Mp4Error::Missing("mdat header"))?;
    debug_assert_eq!(mdat.len(), HEADER);
    let mut tracks: [Option<(u32, u64)>; 2] = [None, None];
    let mut at = HEADER;
    while at < moof_len {
        let child = read_header(&buf[at..moof_len])?.ok_or(malformed("moof child", at))?;
        let end = at + usize::try_from(child.size).map_err(|_| malformed("moof child", at))?;
        if end > moof_len {
            return Err(malformed("moof child", at));
        }
        match &child.kind {
            b"mfhd" if end - at >= 16 => {
                if let Some(seq) = sequence {
                    buf[at + 12..at + 16].copy_from_slice(&seq.to_be_bytes());
                }
            }
            b"traf" => {
                let t = patch_traf(&mut buf[at..end], at, &map)?;
                let slot = if t.0 == crate::fmp4::VIDEO_TRACK_ID {
                    0
                } else {
                    1
                };
                tracks[slot] = Some(t);
            }
            _ => {}
        }
        at = end;
    }
    let (reference_track, reference_time) =
        tracks[0].or(tracks[1]).ok_or(Mp4Error::Missing("traf"))?;
    Ok(Rebased {
        reference_time,
        reference_track,
    })
}

/// Rebases the `tfdt` of one `traf`; returns (track id, rebased time).
fn patch_traf(
    traf: &mut [u8],
    at: usize,
    map: &impl Fn(bool, u64) -> Option<u64>,
) -> Result<(u32, u64), Mp4Error> {
    let mut track = None;
    let mut tfdt = None;
    for child in children(&traf[HEADER..], at + HEADER) {
        let (h, range) = child?;
        let range = range.start + HEADER..range.end + HEADER;
        match &h.kind {
            b"tfhd" if range.len() >= 16 => {
                let b = &traf[range.start + 12..range.start + 16];
                track = Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            }
            b"tfdt" => tfdt = Some(range),
            _ => {}
        }
    }
    let track = track.ok_or(Mp4Error::Missing("tfhd"))?;
    let range = tfdt.ok_or(Mp4Error::Missing("tfdt"))?;
    let is_video = track == crate::fmp4::VIDEO_TRACK_ID;
    let body = &mut traf[range.clone()];
    let time = match (body.get(8), body.len()) {
        (Some(1), 20) => {
            let old = u64::from_be_bytes(body[12..20].try_into().expect("8 bytes"));
            let new = map(is_video, old).ok_or(malformed("tfdt", at + range.start))?;
            body[12..20].copy_from_slice(&new.to_be_bytes());
            new
        }
        (Some(0), 16) => {
            let old = u64::from(u32::from_be_bytes(
                body[12..16].try_into().expect("4 bytes"),
            ));
            let new = map(is_video, old)
                .filter(|t| u32::try_from(*t).is_ok())
                .ok_or(malformed("tfdt", at + range.start))?;
            body[12..16].copy_from_slice(&(new as u32).to_be_bytes());
            new
        }
        _ => return Err(malformed("tfdt", at + range.start)),
    };
    Ok((track, time))
}

/// A copy of a live fragment header (`moof` + `mdat` header) moved later on the live
/// timeline: `video` ticks (90 kHz) and `audio` samples added to the `tfdt`s. For
/// benchmarks and tests that replay a clip as a longer stream.
///
/// # Errors
/// [`Mp4Error`] when `header` is not a fragment header.
#[cfg(any(test, feature = "bench"))]
pub(crate) fn shift_header(header: &[u8], video: u64, audio: u64) -> Result<Vec<u8>, Mp4Error> {
    let mut out = header.to_vec();
    patch(&mut out, None, |is_video, t| {
        t.checked_add(if is_video { video } else { audio })
    })?;
    Ok(out)
}

fn malformed(what: &'static str, at: usize) -> Mp4Error {
    Mp4Error::Malformed { what, at }
}

/// A wall-clock time as a 64-bit NTP timestamp (seconds since 1900, 32.32 fixed point).
pub(crate) fn ntp(t: SystemTime) -> u64 {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    // NTP seconds wrap every 2^32 s (era 1 starts in 2036); [`from_ntp`] unwraps.
    let secs = (since.as_secs() + NTP_UNIX_OFFSET) & 0xFFFF_FFFF;
    let frac = (u64::from(since.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

/// The inverse of [`ntp`] (to within a nanosecond), for times from 1970 to 2104.
pub(crate) fn from_ntp(v: u64) -> SystemTime {
    // Times before 1970 cannot have been written: a smaller value is NTP era 1 (2036+).
    let mut secs = v >> 32;
    if secs < NTP_UNIX_OFFSET {
        secs += 1 << 32;
    }
    let secs = secs - NTP_UNIX_OFFSET;
    // Round to the nearest nanosecond so ntp → from_ntp is exact for whole nanoseconds.
    let nanos = ((v & 0xFFFF_FFFF) * 1_000_000_000 + (1 << 31)) >> 32;
    UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_nanos(nanos)
}

/// A track of an init segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TrackInfo {
    /// `track_ID`.
    pub(crate) id: u32,
    /// `mdhd` timescale.
    pub(crate) timescale: u32,
    /// A video track (`vide` handler).
    pub(crate) video: bool,
}

/// The tracks of a `moov` box (`data` is the whole box).
///
/// # Errors
/// [`Mp4Error::Atom`] when `mp4-atom` cannot decode it.
pub(crate) fn moov_tracks(data: &[u8]) -> Result<Vec<TrackInfo>, Mp4Error> {
    let mut buf = data;
    let moov = Moov::decode(&mut buf).map_err(atom("moov"))?;
    Ok(moov
        .trak
        .iter()
        .map(|t| TrackInfo {
            id: t.tkhd.track_id,
            timescale: t.mdia.mdhd.timescale,
            video: t.mdia.hdlr.handler == mp4_atom::FourCC::new(b"vide"),
        })
        .collect())
}

/// The header of the `free` box that follows a file's init segment and holds the live init
/// segment (`init_len` bytes) as it is. A player reading the file skips it; a VOD playlist
/// points its `EXT-X-MAP` at the bytes inside.
pub(crate) fn stream_init_box(init_len: usize) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    // Init segments are a few hundred bytes: far from the 32-bit size limit.
    let size = u32::try_from(HEADER + init_len).unwrap_or(u32::MAX);
    h[..4].copy_from_slice(&size.to_be_bytes());
    h[4..].copy_from_slice(b"free");
    h
}

/// A file's own copy of the live init segment with an edit list (`edts`/`elst`) per track,
/// so the file's presentation starts at 0: the earliest first presentation time among the
/// tracks of the file's first fragment (`header`, rebased with `rebase`) becomes time 0 for
/// every track, which keeps them in sync. The first decode time of a file that continues
/// its session is its start on the session's timeline (seconds to hours); the first file's
/// is 0, and the edit then only removes the B-frame delay or the audio's lead-in (tens of
/// milliseconds). One entry, `segment_duration` 0: the edit lasts to the end of the
/// (fragmented) file.
///
/// # Errors
/// [`Mp4Error`] when the init or the header does not decode.
pub(crate) fn file_init(init: &[u8], header: &[u8], rebase: Rebase) -> Result<Vec<u8>, Mp4Error> {
    let mut buf = init;
    let ftyp = mp4_atom::Ftyp::decode(&mut buf).map_err(atom("ftyp"))?;
    let mut moov = Moov::decode(&mut buf).map_err(atom("moov"))?;
    let mut h = header;
    let moof = Moof::decode(&mut h).map_err(atom("moof"))?;
    let timescale = |track: u32| {
        moov.trak
            .iter()
            .find(|t| t.tkhd.track_id == track)
            .map(|t| u64::from(t.mdia.mdhd.timescale.max(1)))
    };
    // (first presentation time, timescale) of the earliest track.
    let mut earliest: Option<(u64, u64)> = None;
    for traf in &moof.traf {
        let Some(ts) = timescale(traf.tfhd.track_id) else {
            continue;
        };
        let base = if traf.tfhd.track_id == crate::fmp4::VIDEO_TRACK_ID {
            rebase.video
        } else {
            rebase.audio
        };
        let dts = traf
            .tfdt
            .as_ref()
            .map_or(0, |t| t.base_media_decode_time)
            .saturating_sub(base);
        let cts = traf
            .trun
            .first()
            .and_then(|t| t.samples.get(0))
            .and_then(|e| e.cts)
            .unwrap_or(0);
        let pts = u64::try_from(i128::from(dts) + i128::from(cts)).unwrap_or(0);
        if earliest
            .is_none_or(|(p, t)| u128::from(pts) * u128::from(t) < u128::from(p) * u128::from(ts))
        {
            earliest = Some((pts, ts));
        }
    }
    let (pts, ts) = earliest.ok_or(Mp4Error::Missing("traf"))?;
    for trak in &mut moov.trak {
        let own = u64::from(trak.mdia.mdhd.timescale.max(1));
        let media_time = (u128::from(pts) * u128::from(own) / u128::from(ts)) as u64;
        trak.edts = Some(mp4_atom::Edts {
            elst: Some(mp4_atom::Elst {
                entries: vec![mp4_atom::ElstEntry {
                    segment_duration: 0,
                    media_time: Some(media_time),
                    media_rate: mp4_atom::FixedPoint::new(1, 0),
                }],
            }),
        });
    }
    let mut out = Vec::with_capacity(init.len() + 128);
    ftyp.encode(&mut out).map_err(atom("ftyp"))?;
    moov.encode(&mut out).map_err(atom("moov"))?;
    Ok(out)
}

/// What a fragment read back from a file says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FragmentFacts {
    /// The reference track's decode time (its timescale).
    pub(crate) time: u64,
    /// The reference track's duration (its timescale).
    pub(crate) duration: u64,
    /// The reference track's first sample is a sync sample.
    pub(crate) independent: bool,
    /// Payload bytes the `trun`s describe, from the start of the `moof`: the `mdat` must
    /// reach this far.
    pub(crate) data_end: u64,
}

/// Reads a `moof` (`data` is the whole box) for the track `reference`.
///
/// # Errors
/// [`Mp4Error`] when it does not decode or has no `traf` for the track.
pub(crate) fn moof_facts(data: &[u8], reference: u32) -> Result<FragmentFacts, Mp4Error> {
    let mut buf = data;
    let moof = Moof::decode(&mut buf).map_err(atom("moof"))?;
    let mut facts = None;
    let mut data_end = 0u64;
    for traf in &moof.traf {
        let default_duration = traf.tfhd.default_sample_duration.unwrap_or(0);
        let default_size = traf.tfhd.default_sample_size.unwrap_or(0);
        let default_flags = traf.tfhd.default_sample_flags.unwrap_or(0);
        let mut duration = 0u64;
        let mut first_flags = None;
        for trun in &traf.trun {
            let mut end = trun.data_offset.map_or(0, |o| o.max(0) as u64);
            if let mp4_atom::TrunSamples::Explicit(entries) = &trun.samples {
                for e in entries {
                    duration += u64::from(e.duration.unwrap_or(default_duration));
                    end += u64::from(e.size.unwrap_or(default_size));
                    first_flags.get_or_insert(e.flags.unwrap_or(default_flags));
                }
            }
            data_end = data_end.max(end);
        }
        if traf.tfhd.track_id == reference {
            let time = traf
                .tfdt
                .as_ref()
                .map(|t| t.base_media_decode_time)
                .ok_or(Mp4Error::Missing("tfdt"))?;
            facts = Some(FragmentFacts {
                time,
                duration,
                independent: first_flags.is_some_and(|f| f & NON_SYNC == 0),
                data_end: 0,
            });
        }
    }
    let mut facts = facts.ok_or(Mp4Error::Missing("traf"))?;
    facts.data_end = data_end;
    Ok(facts)
}

/// A `prft` read back: (reference track, wall-clock time, media time).
///
/// # Errors
/// [`Mp4Error::Atom`] when it does not decode.
pub(crate) fn read_prft(data: &[u8]) -> Result<(u32, SystemTime, u64), Mp4Error> {
    let mut buf = data;
    let p = mp4_atom::Prft::decode(&mut buf).map_err(atom("prft"))?;
    Ok((
        p.reference_track_id,
        from_ntp(p.ntp_timestamp),
        p.media_time,
    ))
}

/// The closing `mfra` for a file: one `tfra` for the reference track listing the
/// independent fragments as (decode time, `moof` offset).
///
/// # Errors
/// [`Mp4Error::Atom`] when encoding fails.
pub(crate) fn mfra(track: u32, keys: &[(u64, u64)]) -> Result<Vec<u8>, Mp4Error> {
    let tfra = Tfra {
        track_id: track,
        entries: keys
            .iter()
            .map(|&(time, moof_offset)| FragmentInfo {
                time,
                moof_offset,
                traf_number: 1,
                trun_number: 1,
                sample_delta: 1,
            })
            .collect(),
    };
    let mut m = Mfra {
        tfra: vec![tfra],
        mfro: Mfro { parent_size: 0 },
    };
    let mut out = Vec::new();
    m.encode(&mut out).map_err(atom("mfra"))?;
    m.mfro.parent_size = u32::try_from(out.len()).map_err(|_| malformed("mfra", 0))?;
    out.clear();
    m.encode(&mut out).map_err(atom("mfra"))?;
    Ok(out)
}

/// Whether `tail` (the last bytes of a file, at least 16) ends with an `mfro` whose `mfra`
/// starts at `file_len - parent_size`; returns that start.
pub(crate) fn closing_mfra(tail: &[u8], file_len: u64) -> Option<u64> {
    let t = tail.get(tail.len().checked_sub(16)?..)?;
    if &t[4..8] != b"mfro" || u32::from_be_bytes(t[..4].try_into().ok()?) != 16 {
        return None;
    }
    let size = u64::from(u32::from_be_bytes(t[12..16].try_into().ok()?));
    file_len.checked_sub(size)
}

/// Whether `data` decodes as an `mfra`.
pub(crate) fn is_mfra(data: &[u8]) -> bool {
    let mut buf = data;
    Mfra::decode(&mut buf).is_ok() && buf.is_empty()
}

/// The FourCC of `mfra`.
pub(crate) const MFRA: [u8; 4] = *b"mfra";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fmp4::{FragmentWriter, Sample};
    use bytes::{Bytes, BytesMut};
    use proptest::prelude::*;

    fn sample(t: u64, d: u32, key: bool, len: usize) -> Sample {
        Sample {
            decode_time: t,
            duration: d,
            cts: 0,
            keyframe: key,
            data: Bytes::from(vec![7u8; len]),
        }
    }

    fn fragment(video_t: u64, audio_t: u64) -> crate::chunks::Chunks {
        let mut w = FragmentWriter::new();
        let v = [
            sample(video_t, 3000, true, 100),
            sample(video_t + 3000, 3000, false, 50),
        ];
        let a = [sample(audio_t, 1024, true, 20)];
        w.write(9, &v, &a).unwrap()
    }

    #[test]
    fn rebases_tfdts_and_dates_the_fragment() {
        let chunks = fragment(900_000, 480_000);
        let header = &chunks.slices()[0];
        let mut out = BytesMut::new();
        let wall = UNIX_EPOCH + Duration::from_millis(1_800_000_000_123);
        let r = write_header(
            &mut out,
            header,
            Rebase {
                video: 890_000,
                audio: 474_666,
                sequence: 1,
            },
            wall,
        )
        .unwrap();
        assert_eq!(r.reference_time, 10_000);
        assert_eq!(r.reference_track, 1);
        assert_eq!(out.len(), PRFT_LEN + header.len());
        let (track, when, media) = read_prft(&out[..PRFT_LEN]).unwrap();
        assert_eq!((track, media), (1, 10_000));
        assert_eq!(when, wall);
        let mut body = &out[PRFT_LEN..];
        let moof = Moof::decode(&mut body).unwrap();
        assert_eq!(moof.mfhd.sequence_number, 1);
        let times: Vec<_> = moof
            .traf
            .iter()
            .map(|t| t.tfdt.as_ref().unwrap().base_media_decode_time)
            .collect();
        assert_eq!(times, vec![10_000, 480_000 - 474_666]);
        let facts = moof_facts(&out[PRFT_LEN..PRFT_LEN + header.len() - 8], 1).unwrap();
        assert_eq!(facts.time, 10_000);
        assert_eq!(facts.duration, 6000);
        assert!(facts.independent);
        assert_eq!(facts.data_end as usize, header.len() + 170);
    }

    #[test]
    fn refuses_a_rebase_below_zero_and_leaves_the_buffer() {
        let chunks = fragment(100, 100);
        let mut out = BytesMut::from(&b"keep"[..]);
        let err = write_header(
            &mut out,
            &chunks.slices()[0],
            Rebase {
                video: 101,
                audio: 0,
                sequence: 1,
            },
            SystemTime::now(),
        )
        .unwrap_err();
        assert!(matches!(err, Mp4Error::Malformed { what: "tfdt", .. }));
        assert_eq!(&out[..], b"keep");
    }

    #[test]
    fn mfra_round_trips_and_marks_the_end() {
        let m = mfra(1, &[(0, 1000), (180_000, 50_000)]).unwrap();
        assert!(is_mfra(&m));
        let mut file = vec![0u8; 5000];
        file.extend_from_slice(&m);
        assert_eq!(closing_mfra(&file, file.len() as u64), Some(5000));
        assert_eq!(
            closing_mfra(&file[..file.len() - 1], 4999 + m.len() as u64),
            None
        );
    }

    proptest! {
        #[test]
        fn ntp_round_trips(ms in 0u64..4_000_000_000_000) {
            let t = UNIX_EPOCH + Duration::from_millis(ms);
            prop_assert_eq!(from_ntp(ntp(t)), t);
        }

        /// Any cut of a header is refused without a panic.
        #[test]
        fn truncated_headers_are_refused(cut in 0usize..400) {
            let chunks = fragment(5000, 5000);
            let header = &chunks.slices()[0];
            let cut = cut.min(header.len() - 1);
            let mut out = BytesMut::new();
            let r = write_header(&mut out, &header[..cut], Rebase { video: 0, audio: 0, sequence: 1 }, UNIX_EPOCH);
            prop_assert!(r.is_err());
            prop_assert!(out.is_empty());
        }

        /// Box headers: any bytes either parse to a size at least the header or are refused.
        #[test]
        fn box_headers_never_panic(data in proptest::collection::vec(any::<u8>(), 0..24)) {
            if let Ok(Some(h)) = read_header(&data) {
                prop_assert!(h.size >= h.header_len as u64);
            }
        }
    }
}
