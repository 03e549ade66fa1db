//! Start-up repair and index rebuilding: what a crash (or power loss) leaves behind is made
//! playable again, and the fragment index is read back from the files themselves.
//!
//! A file the recorder closed ends with an `mfra` box whose `mfro` points back at it; that
//! tail is checked first and such files are left alone (a few bytes read per file). Any
//! other file is walked box by box: `ftyp`, `moov`, the `free` box with the live init (if
//! any), then `[prft] moof mdat` fragments. The first fragment's decode time need not be 0
//! (a file continuing its recording session's timeline); durations count from it. The
//! walk stops at the first thing that is not a whole, consistent fragment (a header cut off,
//! a `moof` that does not decode, an `mdat` shorter than its `trun`s say, zeros from a
//! power loss, see `torn_by_zeros`); the file is truncated there, an `mfra` appended and
//! synced. Since a file only
//! ever grows by whole fragments written in order, what is cut is at most the fragment being
//! written when the process died. Wall-clock times come from each fragment's `prft`, or from
//! the file name's start plus the media time when a fragment has none.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::event::{FileIndex, IndexEntry, RepairStatus, RepairedFile};
use super::mp4::{self, BoxHeader, TrackInfo};
use super::name;
use crate::auth::CameraId;

/// Largest `moov` or `moof` read (a 1 s fragment of 8K60 video has a `moof` of a few KiB).
const MAX_HEADER_BOX: u64 = 16 << 20;
/// A wall-clock jump larger than this between fragments marks a discontinuity.
const GAP_TOLERANCE: Duration = Duration::from_millis(100);

/// Why a file could not be read or repaired.
#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    /// The file name is not `{camera}-{YYYYMMDDTHHMMSS.mmmZ}.mp4`.
    #[error("{0}: not a recording file name")]
    Name(PathBuf),
    /// Reading, truncating or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// No complete init segment.
    #[error("{path}: no usable init segment ({reason})")]
    NoInit {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
}

/// What a walk over a file found.
struct Scan {
    init_size: u64,
    entries: Vec<IndexEntry>,
    /// (reference time, `moof` offset) of independent fragments, for the `mfra`.
    keys: Vec<(u64, u64)>,
    reference: TrackInfo,
    /// End of the last whole fragment.
    good_end: u64,
    /// A valid closing `mfra` follows `good_end` and ends the file.
    closed: bool,
}

fn read_at(f: &File, path: &Path, at: u64, len: usize) -> Result<Vec<u8>, RepairError> {
    let mut buf = vec![0u8; len];
    f.read_exact_at(&mut buf, at)
        .map_err(|source| RepairError::Io {
            path: path.to_owned(),
            source,
        })?;
    Ok(buf)
}

/// The box header at `at`, if the file holds one there.
fn header_at(f: &File, path: &Path, at: u64, len: u64) -> Result<Option<BoxHeader>, RepairError> {
    let avail = (len.saturating_sub(at)).min(16) as usize;
    if avail < 8 {
        return Ok(None);
    }
    let buf = read_at(f, path, at, avail)?;
    Ok(mp4::read_header(&buf).ok().flatten())
}

/// Reads a whole box of at most [`MAX_HEADER_BOX`] bytes.
fn box_at(
    f: &File,
    path: &Path,
    at: u64,
    h: &BoxHeader,
    len: u64,
) -> Result<Option<Vec<u8>>, RepairError> {
    if h.size > MAX_HEADER_BOX || at + h.size > len {
        return Ok(None);
    }
    read_at(f, path, at, h.size as usize).map(Some)
}

fn to_duration(t: u64, timescale: u32) -> Duration {
    let ts = u64::from(timescale.max(1));
    Duration::from_secs(t / ts) + Duration::from_nanos((t % ts) * 1_000_000_000 / ts)
}

/// Walks a recording file. `Err(NoInit)` when not even the init segment is whole.
fn scan(f: &File, path: &Path, start: SystemTime) -> Result<Scan, RepairError> {
    let len = f
        .metadata()
        .map_err(|source| RepairError::Io {
            path: path.to_owned(),
            source,
        })?
        .len();
    let no_init = |reason: &str| RepairError::NoInit {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    let ftyp = header_at(f, path, 0, len)?.ok_or_else(|| no_init("file too short"))?;
    if &ftyp.kind != b"ftyp" {
        return Err(no_init("does not start with ftyp"));
    }
    let moov_at = ftyp.size;
    let moov = header_at(f, path, moov_at, len)?.ok_or_else(|| no_init("no moov"))?;
    if &moov.kind != b"moov" {
        return Err(no_init("ftyp is not followed by moov"));
    }
    let moov_bytes =
        box_at(f, path, moov_at, &moov, len)?.ok_or_else(|| no_init("moov cut off"))?;
    let tracks = mp4::moov_tracks(&moov_bytes).map_err(|e| no_init(&e.to_string()))?;
    let reference = tracks
        .iter()
        .find(|t| t.video)
        .or(tracks.first())
        .copied()
        .ok_or_else(|| no_init("no tracks"))?;
    let init_size = moov_at + moov.size;
    // The live init segment in a `free` box (files since decode times run across files);
    // older files go straight on with their first fragment.
    let init_end = match header_at(f, path, init_size, len)? {
        Some(h) if &h.kind == b"free" && init_size + h.size <= len => init_size + h.size,
        Some(h) if &h.kind == b"free" => return Err(no_init("free box cut off")),
        _ => init_size,
    };
    let mut scan = Scan {
        init_size,
        entries: Vec::new(),
        keys: Vec::new(),
        reference,
        good_end: init_end,
        closed: false,
    };
    let mut at = init_end;
    // The first fragment's decode time: where the file starts on its session's timeline.
    let mut origin = None;
    let mut prev: Option<(u64, SystemTime)> = None; // (media end in ticks, wall end)
    while let Some(mut h) = header_at(f, path, at, len)? {
        let frag_start = at;
        let mut wall = None;
        if &h.kind == b"prft" {
            let Some(b) = box_at(f, path, at, &h, len)? else {
                break;
            };
            match mp4::read_prft(&b) {
                Ok((_, when, _)) => wall = Some(when),
                Err(_) => break,
            }
            at += h.size;
            match header_at(f, path, at, len)? {
                Some(next) => h = next,
                None => break,
            }
        }
        if h.kind == mp4::MFRA && wall.is_none() {
            if at + h.size == len
                && let Some(b) = box_at(f, path, at, &h, len)?
            {
                scan.closed = mp4::is_mfra(&b);
            }
            break;
        }
        if &h.kind != b"moof" {
            break;
        }
        let moof_at = at;
        let Some(moof) = box_at(f, path, at, &h, len)? else {
            break;
        };
        let Ok(facts) = mp4::moof_facts(&moof, reference.id) else {
            break;
        };
        let mdat_at = at + h.size;
        let Some(mdat) = header_at(f, path, mdat_at, len)? else {
            break;
        };
        let end = mdat_at + mdat.size;
        if &mdat.kind != b"mdat" || end > len || facts.data_end > h.size + mdat.size {
            break;
        }
        if torn_by_zeros(f, path, end, len)? {
            break;
        }
        let media_time = to_duration(facts.time, reference.timescale);
        let duration = to_duration(facts.duration, reference.timescale);
        let origin = *origin.get_or_insert(media_time);
        let wall = wall.unwrap_or(start + media_time.saturating_sub(origin));
        let discontinuity = prev.is_some_and(|(media_end, wall_end)| {
            facts.time > media_end
                || wall
                    .duration_since(wall_end)
                    .is_ok_and(|d| d > GAP_TOLERANCE)
        });
        scan.entries.push(IndexEntry {
            offset: frag_start,
            size: end - frag_start,
            media_time,
            duration,
            wall_time: wall,
            independent: facts.independent,
            discontinuity,
        });
        if facts.independent {
            scan.keys.push((facts.time, moof_at));
        }
        prev = Some((facts.time + facts.duration, wall + duration));
        at = end;
        scan.good_end = end;
    }
    Ok(scan)
}

/// Whether the fragment ending at `end` is the last one and ends in a zero byte: the mark of
/// a tail a power loss zeroed (the file's size made it to disk, its data did not). Both
/// codecs recorded end every sample on a non-zero byte: an H.264 NAL unit on its
/// `rbsp_stop_one_bit`, an AAC raw data block on its `ID_END` element, so a whole fragment
/// never ends in zero.
fn torn_by_zeros(f: &File, path: &Path, end: u64, len: u64) -> Result<bool, RepairError> {
    let next = header_at(f, path, end, len)?;
    let followed = next.is_some_and(|h| matches!(&h.kind, b"prft" | b"moof" | b"mfra"));
    if followed || end == 0 {
        return Ok(false);
    }
    Ok(read_at(f, path, end - 1, 1)?[0] == 0)
}

fn index(camera: CameraId, path: &Path, start: SystemTime, scan: &Scan, size: u64) -> FileIndex {
    let last = scan.entries.last();
    let origin = scan
        .entries
        .first()
        .map_or(Duration::ZERO, |e| e.media_time);
    FileIndex {
        camera,
        path: path.to_owned(),
        start,
        end_time: last.map_or(start, IndexEntry::wall_end),
        duration: last.map_or(Duration::ZERO, |e| e.media_end().saturating_sub(origin)),
        size,
        init_size: scan.init_size,
        closed: scan.closed,
        entries: scan.entries.clone(),
    }
}

fn file_name(path: &Path) -> Result<(CameraId, SystemTime), RepairError> {
    path.file_name()
        .and_then(|n| n.to_str())
        .and_then(name::parse_file_name)
        .map(|(c, s)| (CameraId::from(c.as_str()), s))
        .ok_or_else(|| RepairError::Name(path.to_owned()))
}

/// Reads a recording file's index from the file (every fragment's offset, size, times).
/// Works on a closed file and on one still growing (up to its last whole fragment).
///
/// # Errors
/// [`RepairError`] when the name is not a recording's, the file cannot be read, or it has
/// no whole init segment.
pub fn read_index(path: &Path) -> Result<FileIndex, RepairError> {
    let (camera, start) = file_name(path)?;
    let f = File::open(path).map_err(|source| RepairError::Io {
        path: path.to_owned(),
        source,
    })?;
    let s = scan(&f, path, start)?;
    let size = f.metadata().map(|m| m.len()).unwrap_or(s.good_end);
    Ok(index(camera, path, start, &s, size))
}

/// Whether the file ends with the recorder's closing `mfra`.
fn is_closed(f: &File, path: &Path) -> Result<bool, RepairError> {
    let len = f
        .metadata()
        .map_err(|source| RepairError::Io {
            path: path.to_owned(),
            source,
        })?
        .len();
    if len < 16 {
        return Ok(false);
    }
    let tail = read_at(f, path, len - 16, 16)?;
    let Some(at) = mp4::closing_mfra(&tail, len) else {
        return Ok(false);
    };
    if len - at > MAX_HEADER_BOX {
        return Ok(false);
    }
    let b = read_at(f, path, at, (len - at) as usize)?;
    Ok(mp4::is_mfra(&b))
}

/// Repairs one file whose closing never happened: cuts a torn tail, appends the `mfra`,
/// syncs. `Ok(None)` for a file that was closed cleanly.
///
/// # Errors
/// [`RepairError`] on a bad name or an I/O error (the file is left as it was found, or cut
/// to a whole fragment).
pub(crate) fn repair_file(path: &Path) -> Result<Option<RepairedFile>, RepairError> {
    let (camera, start) = file_name(path)?;
    let io_err = |source| RepairError::Io {
        path: path.to_owned(),
        source,
    };
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_err)?;
    if is_closed(&f, path)? {
        return Ok(None);
    }
    let len = f.metadata().map_err(io_err)?.len();
    let removed = |reason: String| {
        tracing::warn!(path = %path.display(), %reason, "recording file with nothing playable removed");
        let _ = std::fs::remove_file(path);
        Ok(Some(RepairedFile {
            status: RepairStatus::Removed,
            truncated: len,
            file: FileIndex {
                camera: camera.clone(),
                path: path.to_owned(),
                start,
                end_time: start,
                duration: Duration::ZERO,
                size: 0,
                init_size: 0,
                closed: false,
                entries: Vec::new(),
            },
        }))
    };
    let s = match scan(&f, path, start) {
        Ok(s) => s,
        Err(RepairError::NoInit { reason, .. }) => return removed(reason),
        Err(e) => return Err(e),
    };
    if s.entries.is_empty() {
        return removed("no whole fragment".to_owned());
    }
    if s.closed {
        // The tail check missed it but the walk found a valid final mfra.
        return Ok(None);
    }
    let truncated = len - s.good_end;
    if truncated > 0 {
        f.set_len(s.good_end).map_err(io_err)?;
    }
    let m = mp4::mfra(s.reference.id, &s.keys).map_err(|e| RepairError::Io {
        path: path.to_owned(),
        source: io::Error::other(e.to_string()),
    })?;
    f.write_all_at(&m, s.good_end).map_err(io_err)?;
    f.sync_all().map_err(io_err)?;
    let mut s = s;
    s.closed = true;
    let size = s.good_end + m.len() as u64;
    tracing::info!(path = %path.display(), truncated, fragments = s.entries.len(), "recording file repaired and closed");
    Ok(Some(RepairedFile {
        status: RepairStatus::Recovered,
        truncated,
        file: index(camera, path, start, &s, size),
    }))
}

/// Repairs every recording under `dir` (`{dir}/{camera}/{day}/*.mp4`) whose closing never
/// happened, and reports them. Call before any recording starts: a file being written looks
/// exactly like a crashed one. Files that cannot be repaired are logged and skipped.
///
/// Blocking: call from a blocking thread.
pub fn repair(dir: &Path) -> Vec<RepairedFile> {
    let mut out = Vec::new();
    for path in recording_files(dir) {
        match repair_file(&path) {
            Ok(Some(r)) => out.push(r),
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "cannot repair a recording file"),
        }
    }
    out
}

/// Every `{dir}/{camera}/{day}/{camera}-{stamp}.mp4`, sorted.
fn recording_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(cameras) = std::fs::read_dir(dir) else {
        return out;
    };
    for cam in cameras.flatten() {
        let cam_name = cam.file_name();
        let Some(cam_name) = cam_name.to_str().map(str::to_owned) else {
            continue;
        };
        let Ok(days) = std::fs::read_dir(cam.path()) else {
            continue;
        };
        for day in days.flatten() {
            let Ok(files) = std::fs::read_dir(day.path()) else {
                continue;
            };
            for file in files.flatten() {
                let p = file.path();
                let ours = p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(name::parse_file_name)
                    .is_some_and(|(c, _)| c == cam_name);
                if ours && file.file_type().is_ok_and(|t| t.is_file()) {
                    out.push(p);
                }
            }
        }
    }
    out.sort();
    out
}
