//! What the recorder tells the control plane: files opened, grown, closed and repaired, their
//! fragment index, gaps, drops and alerts.
//!
//! The control plane persists these (the `recordings` rows, the index the VOD playlist is
//! built from, the alerts table); the recorder keeps no database of its own. Per camera,
//! events come in the order things happened and files are reported opened in the order
//! they were opened; a file's [`FileClosed`] may come after the next file's [`FileOpened`]
//! (closing writes the `mfra` and syncs). Index entries reach the control plane only once their bytes
//! are synced to disk (or written, with fsync off), so the stored index never points past what
//! survives a crash; after a restart, [`RepairedFile`] is authoritative for the files it lists.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::auth::CameraId;

/// One fragment of a recording file: one `EXT-X-BYTERANGE` entry of a VOD playlist.
///
/// A fragment is a `prft` (32 bytes: wall-clock date) + `moof` + `mdat`; the range
/// `offset..offset + size` is self-contained and decodes after the file's init segment
/// (`0..init_size`) or after the live init segment that follows it in a `free` box
/// (`init_size + 8..` the first fragment's offset; what a VOD playlist's `EXT-X-MAP` names).
/// The bytes between a file's first and last fragment are all fragments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// Byte offset of the fragment in the file.
    pub offset: u64,
    /// Its length in bytes.
    pub size: u64,
    /// Decode time of its first sample (the reference track's `tfdt`) on its recording
    /// session's timeline: 0 at the session's first fragment, running on across the files
    /// of the session, so a file's first entry holds where it starts (0 for the first file
    /// of a session). A file's own presentation starts at 0 (its edit list).
    pub media_time: Duration,
    /// Its duration.
    pub duration: Duration,
    /// Wall-clock time of its first sample.
    pub wall_time: SystemTime,
    /// It starts with a keyframe: playback may start here.
    pub independent: bool,
    /// It follows a break inside its file: a camera reconnect (wall-clock gap, media
    /// continues) or dropped fragments (the media time jumps too). A VOD playlist puts
    /// `EXT-X-DISCONTINUITY` here. Never set on a file's first fragment: a break between
    /// files shows in their times (and in a [`RecordingGap`]).
    pub discontinuity: bool,
}

impl IndexEntry {
    /// Wall-clock end.
    pub fn wall_end(&self) -> SystemTime {
        self.wall_time + self.duration
    }

    /// Media-time end.
    pub fn media_end(&self) -> Duration {
        self.media_time + self.duration
    }
}

/// A new file has its first fragment on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileOpened {
    /// The camera.
    pub camera: CameraId,
    /// Absolute path.
    pub path: PathBuf,
    /// Wall-clock time of the first sample (also in the file name).
    pub start: SystemTime,
    /// Bytes of the init segment at the start of the file (`EXT-X-MAP` byte range).
    pub init_size: u64,
}

/// A growing file's state; sent at the progress interval while it grows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProgress {
    /// The camera.
    pub camera: CameraId,
    /// The file.
    pub path: PathBuf,
    /// Media duration so far (first fragment to the end of the last synced one).
    pub duration: Duration,
    /// Bytes synced so far.
    pub size: u64,
    /// Wall-clock end of the last synced fragment.
    pub end_time: SystemTime,
    /// Fragments synced since the previous event for this file, in order.
    pub entries: Vec<IndexEntry>,
}

/// Why a file was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The chunk duration was reached; the next file continues at the next keyframe.
    Chunk,
    /// The stream's init segment changed (codec or parameters): a file has one init.
    Reconfigured,
    /// The live timeline restarted (the camera came back after its reconnect window).
    Restarted,
    /// Recording was turned off for the camera.
    Stopped,
    /// No media arrived for the idle timeout (the camera went away).
    Idle,
    /// The server shut down.
    Shutdown,
    /// A write or sync failed in a way the file cannot continue from.
    Failed,
}

/// A file is complete: final size and duration, and the last index entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileClosed {
    /// The camera.
    pub camera: CameraId,
    /// The file.
    pub path: PathBuf,
    /// Wall-clock start.
    pub start: SystemTime,
    /// Wall-clock end of the last fragment.
    pub end_time: SystemTime,
    /// Media duration (from the first fragment's decode time to the end of the last).
    pub duration: Duration,
    /// Final size in bytes (including the closing `mfra`).
    pub size: u64,
    /// Fragments not sent in a [`FileProgress`] yet.
    pub entries: Vec<IndexEntry>,
    /// Why.
    pub reason: CloseReason,
}

/// Why the recorded timeline has a hole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GapReason {
    /// The camera was away (reconnect) or recording was off.
    NoMedia,
    /// Fragments were dropped (disk pressure or write errors).
    Dropped,
}

/// A hole in a camera's recorded wall-clock timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingGap {
    /// The camera.
    pub camera: CameraId,
    /// The file holding the fragment after the gap.
    pub path: PathBuf,
    /// Wall-clock end of the last recorded fragment.
    pub from: SystemTime,
    /// Wall-clock start of the next one.
    pub to: SystemTime,
    /// Why.
    pub reason: GapReason,
}

/// Why fragments were not recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DropReason {
    /// The camera's write queue was full: the disk is slower than the ingest.
    QueueFull,
    /// Free space is below the threshold.
    LowSpace,
    /// A write failed with ENOSPC.
    DiskFull,
    /// A write, sync or file creation failed otherwise.
    WriteError,
}

/// Whole fragments were dropped (never part of one). Fragments after a drop that depend on
/// it are dropped too, up to the next keyframe, and counted here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FragmentsDropped {
    /// The camera.
    pub camera: CameraId,
    /// Fragments dropped since the previous event.
    pub fragments: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Fragments dropped for this camera since the recorder started.
    pub total: u64,
    /// Why.
    pub reason: DropReason,
}

/// The alert codes of the design.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AlertKind {
    /// `RECORDING_FAILED`: writes fail or cannot keep up.
    RecordingFailed,
    /// `STORAGE_FULL`: the recordings file system is (nearly) full.
    StorageFull,
}

impl AlertKind {
    /// The code as the API spells it.
    pub fn code(self) -> &'static str {
        match self {
            AlertKind::RecordingFailed => "RECORDING_FAILED",
            AlertKind::StorageFull => "STORAGE_FULL",
        }
    }
}

/// An alert for the alerts table. Repeated at most once a minute per camera and kind while
/// the condition lasts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingAlert {
    /// The camera.
    pub camera: CameraId,
    /// Which alert.
    pub kind: AlertKind,
    /// What happened, for operators.
    pub message: String,
    /// When.
    pub at: SystemTime,
}

/// A recording file's index, read back from the file itself ([`read_index`](crate::read_index),
/// repair).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileIndex {
    /// The camera (from the file name).
    pub camera: CameraId,
    /// The file.
    pub path: PathBuf,
    /// Wall-clock start (from the file name).
    pub start: SystemTime,
    /// Wall-clock end of the last fragment (`start` without fragments).
    pub end_time: SystemTime,
    /// Media duration: from the first fragment's decode time to the end of the last.
    pub duration: Duration,
    /// Size in bytes.
    pub size: u64,
    /// Bytes of the file's own init segment (`ftyp` + `moov`).
    pub init_size: u64,
    /// It ends with the `mfra` written when a file is closed.
    pub closed: bool,
    /// Every fragment, in order.
    pub entries: Vec<IndexEntry>,
}

/// What repair did to a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RepairStatus {
    /// Its closing never happened (crash, power loss): a torn last fragment, if any, was cut
    /// off, its index rebuilt, and the file closed now.
    Recovered,
    /// Nothing playable (no complete init segment or no whole fragment): deleted.
    Removed,
}

/// A file whose closing never happened, found by repair at start-up. Files that were closed
/// cleanly are not reported; the control plane rebuilds the index of one it does not know
/// with [`read_index`](crate::read_index).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairedFile {
    /// What was done.
    pub status: RepairStatus,
    /// Bytes cut off the end (a torn fragment).
    pub truncated: u64,
    /// The file after repair (for [`RepairStatus::Removed`]: what was found, no entries).
    pub file: FileIndex,
}

/// Something the control plane should persist.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordingEvent {
    /// A file was opened (its first fragment is written).
    Opened(FileOpened),
    /// A file grew.
    Progress(FileProgress),
    /// A file was closed.
    Closed(FileClosed),
    /// The recorded timeline of a camera has a hole.
    Gap(RecordingGap),
    /// Fragments were dropped.
    Dropped(FragmentsDropped),
    /// An alert (`RECORDING_FAILED`, `STORAGE_FULL`).
    Alert(RecordingAlert),
    /// Start-up repair found a file whose closing never happened.
    Repaired(RepairedFile),
}

impl RecordingEvent {
    /// The camera the event is about.
    pub fn camera(&self) -> &CameraId {
        match self {
            RecordingEvent::Opened(e) => &e.camera,
            RecordingEvent::Progress(e) => &e.camera,
            RecordingEvent::Closed(e) => &e.camera,
            RecordingEvent::Gap(e) => &e.camera,
            RecordingEvent::Dropped(e) => &e.camera,
            RecordingEvent::Alert(e) => &e.camera,
            RecordingEvent::Repaired(e) => &e.file.camera,
        }
    }
}
