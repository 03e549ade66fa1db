//! The fragment index of a recording file and its compact stored form.
//!
//! The recorder reports every fragment it made durable (offset, size, media time, duration,
//! wall-clock time, keyframe and discontinuity flags); the store keeps them as chunks so VOD
//! playlists and timelines never re-parse files. A chunk is self-contained:
//! a version byte, then per entry a flags byte and LEB128 varints, each value relative to
//! the end of the previous entry of the chunk (so the usual fragment costs about ten bytes:
//! contiguous bytes and media time are implied, the wall-clock step is small).
//!
//! Times are kept in microseconds: finer than any frame, and what the playlists print.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The chunk format this module writes.
const VERSION: u8 = 1;

const INDEPENDENT: u8 = 1;
const DISCONTINUITY: u8 = 1 << 1;
/// The offset does not follow the previous fragment's end: it is written.
const OFFSET: u8 = 1 << 2;
/// The media time does not follow the previous fragment's end: it is written.
const MEDIA: u8 = 1 << 3;
const KNOWN_FLAGS: u8 = INDEPENDENT | DISCONTINUITY | OFFSET | MEDIA;

/// One fragment of a recording file: one `EXT-X-BYTERANGE` of a VOD playlist. The bytes
/// `offset..offset + size` decode after the file's init segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    /// Byte offset in the file.
    pub offset: u64,
    /// Bytes.
    pub size: u64,
    /// Decode time of the first sample on the recording session's timeline: 0 at the
    /// session's first fragment and running on across its files (files recorded before
    /// that start at 0 each).
    pub media_time: Duration,
    /// Duration.
    pub duration: Duration,
    /// Wall-clock time of the first sample.
    pub wall_time: SystemTime,
    /// Starts with a keyframe.
    pub independent: bool,
    /// Follows a break inside its file (a reconnect, dropped fragments).
    pub discontinuity: bool,
}

impl IndexEntry {
    /// Wall-clock end.
    pub fn wall_end(&self) -> SystemTime {
        self.wall_time + self.duration
    }
}

/// Why a stored chunk could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    /// The chunk was written by a newer format.
    #[error("index chunk version {0}, expected {VERSION}")]
    Version(u8),
    /// The chunk ends inside an entry.
    #[error("index chunk truncated at byte {offset}")]
    Truncated {
        /// Where.
        offset: usize,
    },
    /// A value does not fit (corrupt chunk).
    #[error("index chunk value out of range at byte {offset}")]
    Range {
        /// Where.
        offset: usize,
    },
    /// A flags byte has bits this version does not define.
    #[error("index chunk flags {flags:#04x} at byte {offset}")]
    Flags {
        /// The byte.
        flags: u8,
        /// Where.
        offset: usize,
    },
    /// The chunk is empty (not even a version byte).
    #[error("empty index chunk")]
    Empty,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Microseconds since the Unix epoch (negative before it).
fn wall_micros(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_micros()).unwrap_or(i64::MAX),
    }
}

fn from_wall_micros(us: i64) -> SystemTime {
    if us >= 0 {
        UNIX_EPOCH + Duration::from_micros(us.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_micros(us.unsigned_abs())
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Encodes entries (in file order) into one chunk.
pub fn encode(entries: &[IndexEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + entries.len() * 12);
    out.push(VERSION);
    let (mut end, mut media_end, mut wall_end) = (0u64, 0u64, 0i64);
    for e in entries {
        let media = micros(e.media_time);
        let duration = micros(e.duration);
        let wall = wall_micros(e.wall_time);
        let mut flags = 0;
        if e.independent {
            flags |= INDEPENDENT;
        }
        if e.discontinuity {
            flags |= DISCONTINUITY;
        }
        if e.offset != end {
            flags |= OFFSET;
        }
        if media != media_end {
            flags |= MEDIA;
        }
        out.push(flags);
        if flags & OFFSET != 0 {
            put_varint(&mut out, e.offset);
        }
        put_varint(&mut out, e.size);
        if flags & MEDIA != 0 {
            put_varint(&mut out, media);
        }
        put_varint(&mut out, duration);
        put_varint(&mut out, zigzag(wall.wrapping_sub(wall_end)));
        end = e.offset.saturating_add(e.size);
        media_end = media.saturating_add(duration);
        wall_end = wall.saturating_add(i64::try_from(duration).unwrap_or(i64::MAX));
    }
    out
}

/// A bounded reader over a chunk.
struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, IndexError> {
        let b = *self
            .buf
            .get(self.at)
            .ok_or(IndexError::Truncated { offset: self.at })?;
        self.at += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, IndexError> {
        let start = self.at;
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            let bits = u64::from(b & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(IndexError::Range { offset: start });
            }
            v |= bits << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(IndexError::Range { offset: start })
    }
}

/// Decodes one chunk, appending to `out`.
///
/// # Errors
/// [`IndexError`] on a chunk this version did not write or a corrupt one; `out` then holds
/// the entries before the fault.
pub fn decode_into(chunk: &[u8], out: &mut Vec<IndexEntry>) -> Result<(), IndexError> {
    let mut r = Reader { buf: chunk, at: 0 };
    match r.byte() {
        Ok(VERSION) => {}
        Ok(v) => return Err(IndexError::Version(v)),
        Err(_) => return Err(IndexError::Empty),
    }
    let (mut end, mut media_end, mut wall_end) = (0u64, 0u64, 0i64);
    while r.at < chunk.len() {
        let at = r.at;
        let flags = r.byte()?;
        if flags & !KNOWN_FLAGS != 0 {
            return Err(IndexError::Flags { flags, offset: at });
        }
        let offset = if flags & OFFSET != 0 {
            r.varint()?
        } else {
            end
        };
        let size = r.varint()?;
        let media = if flags & MEDIA != 0 {
            r.varint()?
        } else {
            media_end
        };
        let duration = r.varint()?;
        let wall = wall_end.wrapping_add(unzigzag(r.varint()?));
        let range = IndexError::Range { offset: at };
        let duration_i = i64::try_from(duration).map_err(|_| range.clone())?;
        end = offset.checked_add(size).ok_or(range.clone())?;
        media_end = media.checked_add(duration).ok_or(range.clone())?;
        wall_end = wall.checked_add(duration_i).ok_or(range)?;
        out.push(IndexEntry {
            offset,
            size,
            media_time: Duration::from_micros(media),
            duration: Duration::from_micros(duration),
            wall_time: from_wall_micros(wall),
            independent: flags & INDEPENDENT != 0,
            discontinuity: flags & DISCONTINUITY != 0,
        });
    }
    Ok(())
}

/// Decodes chunks in order into one index.
///
/// # Errors
/// The first chunk that does not decode.
pub fn decode_all(chunks: &[Vec<u8>]) -> Result<Vec<IndexEntry>, IndexError> {
    let mut out = Vec::new();
    for c in chunks {
        decode_into(c, &mut out)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(offset: u64, size: u64, media_ms: u64, dur_ms: u64, wall_ms: u64) -> IndexEntry {
        IndexEntry {
            offset,
            size,
            media_time: Duration::from_millis(media_ms),
            duration: Duration::from_millis(dur_ms),
            wall_time: UNIX_EPOCH + Duration::from_millis(wall_ms),
            independent: media_ms.is_multiple_of(2000),
            discontinuity: false,
        }
    }

    #[test]
    fn contiguous_fragments_are_small() {
        let mut entries = Vec::new();
        let mut offset = 1200;
        for i in 0..1000u64 {
            let size = 40_000 + i * 7;
            entries.push(entry(
                offset,
                size,
                i * 200,
                200,
                1_796_047_200_000 + i * 200 + i % 3,
            ));
            offset += size;
        }
        let chunk = encode(&entries);
        assert!(chunk.len() < 1000 * 10, "{} bytes", chunk.len());
        assert_eq!(decode_all(&[chunk]).unwrap(), entries);
    }

    #[test]
    fn gaps_and_flags_round_trip() {
        let mut a = entry(1000, 500, 0, 200, 5_000);
        a.independent = true;
        let mut b = entry(9000, 10, 900, 33, 4_000);
        b.discontinuity = true;
        let c = entry(9010, 10, 933, 33, 4_033);
        let chunk = encode(&[a, b, c]);
        assert_eq!(
            decode_all(&[chunk.clone(), chunk]).unwrap(),
            vec![a, b, c, a, b, c]
        );
    }

    #[test]
    fn bad_chunks_are_refused() {
        assert_eq!(decode_all(&[vec![]]), Err(IndexError::Empty));
        assert_eq!(decode_all(&[vec![9]]), Err(IndexError::Version(9)));
        assert_eq!(
            decode_all(&[vec![VERSION, 0x80]]),
            Err(IndexError::Flags {
                flags: 0x80,
                offset: 1
            })
        );
        assert_eq!(
            decode_all(&[vec![VERSION, OFFSET, 0xff]]),
            Err(IndexError::Truncated { offset: 3 })
        );
        let overlong = [
            VERSION, OFFSET, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
        ];
        assert!(matches!(
            decode_all(&[overlong.to_vec()]),
            Err(IndexError::Range { .. })
        ));
    }

    fn any_entry() -> impl Strategy<Value = IndexEntry> {
        (
            0u64..1 << 40,
            0u64..1 << 32,
            0u64..1 << 40,
            0u64..1 << 32,
            -(1i64 << 50)..1i64 << 50,
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(offset, size, media, dur, wall, i, d)| IndexEntry {
                offset,
                size,
                media_time: Duration::from_micros(media),
                duration: Duration::from_micros(dur),
                wall_time: from_wall_micros(wall),
                independent: i,
                discontinuity: d,
            })
    }

    proptest! {
        #[test]
        fn round_trips(entries in proptest::collection::vec(any_entry(), 0..50)) {
            let chunk = encode(&entries);
            prop_assert_eq!(decode_all(&[chunk]).unwrap(), entries);
        }

        #[test]
        fn junk_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut out = Vec::new();
            let _ = decode_into(&bytes, &mut out);
        }

        #[test]
        fn cut_chunks_decode_a_prefix(entries in proptest::collection::vec(any_entry(), 1..20), cut in 0usize..400) {
            let chunk = encode(&entries);
            let cut = cut.min(chunk.len());
            let mut out = Vec::new();
            let _ = decode_into(&chunk[..cut], &mut out);
            prop_assert!(out.len() <= entries.len());
            prop_assert_eq!(&entries[..out.len()], &out[..]);
        }
    }
}
