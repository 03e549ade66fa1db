//! The recordings service: what the control plane does with the recorder's files.
//!
//! Owns: the contract with the recorder ([`RecorderHost`] to turn recording on and read a
//! file's index, [`RecorderEvent`] for what it reports; the binary adapts the data plane to
//! both, since the control plane does not depend on it), persisting events
//! ([`RecordingSink`]), start-up reconciliation of the hot tier, the fragment index codec
//! ([`index`]), VOD playlists ([`playlist`]), timelines ([`timeline`]), byte ranges
//! ([`range`]), storage tiers and the S3 archive ([`tiers`]), retention with its crash-safe
//! journal ([`retention`]) and its schedule. Leaves to others: writing and repairing files
//! (the data plane's recorder), HTTP (`api::recordings`, `api::vod`, `api::retention`).
//!
//! Spec: issue 5 ("Recordings service", "Retention and tiers"); ARCHITECTURE.md "Recording".

pub mod index;
pub mod playlist;
pub mod policy;
pub mod range;
pub mod retention;
pub mod sink;
pub mod tiers;
pub mod timeline;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

pub use index::IndexEntry;
pub use retention::{CrashPoint, Report, Retention};
pub use sink::{Reconciled, RecordingSink};
pub use tiers::{Archive, Tiers};

/// A recording file's index as read back from the file (the data plane's `read_index`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileIndex {
    /// The camera.
    pub camera: String,
    /// Absolute path.
    pub path: PathBuf,
    /// Wall-clock start.
    pub start: SystemTime,
    /// Wall-clock end of the last fragment.
    pub end_time: SystemTime,
    /// Media duration.
    pub duration: Duration,
    /// Bytes.
    pub size: u64,
    /// Init segment bytes.
    pub init_size: u64,
    /// Ends with the recorder's closing `mfra`.
    pub closed: bool,
    /// Every fragment.
    pub entries: Vec<IndexEntry>,
}

/// What the recorder reports, as the control plane takes it (the binary converts the data
/// plane's events). Events of one camera come in order; a file's index entries arrive only
/// once they are durable.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RecorderEvent {
    /// A file was opened (its first fragment is written).
    Opened {
        /// The camera.
        camera: String,
        /// Absolute path on the hot tier.
        path: PathBuf,
        /// Wall-clock time of the first sample.
        start: SystemTime,
        /// Init segment bytes.
        init_size: u64,
    },
    /// A file grew (at least every 10 s while it grows).
    Progress {
        /// The camera.
        camera: String,
        /// The file.
        path: PathBuf,
        /// Media duration so far.
        duration: Duration,
        /// Durable bytes so far.
        size: u64,
        /// Wall-clock end of the last durable fragment.
        end_time: SystemTime,
        /// Fragments made durable since the previous event, in order.
        entries: Vec<IndexEntry>,
    },
    /// A file was closed.
    Closed {
        /// The camera.
        camera: String,
        /// The file.
        path: PathBuf,
        /// Media duration.
        duration: Duration,
        /// Final bytes.
        size: u64,
        /// Wall-clock end.
        end_time: SystemTime,
        /// Fragments not reported yet.
        entries: Vec<IndexEntry>,
        /// Why (`chunk`, `idle`, `shutdown`, ...).
        reason: &'static str,
    },
    /// Start-up repair found a file whose closing never happened: the index is
    /// authoritative (or the file was removed, having nothing playable).
    Repaired {
        /// The file after repair.
        file: FileIndex,
        /// It was deleted.
        removed: bool,
        /// Bytes cut off its end.
        truncated: u64,
    },
    /// `RECORDING_FAILED` or `STORAGE_FULL`.
    Alert {
        /// The camera.
        camera: String,
        /// The alert code.
        code: &'static str,
        /// For operators.
        message: String,
        /// When.
        at: SystemTime,
    },
    /// Whole fragments were not recorded.
    Dropped {
        /// The camera.
        camera: String,
        /// How many since the last report.
        fragments: u64,
        /// Their bytes.
        bytes: u64,
        /// Why (`queue_full`, `low_space`, `disk_full`, `write_error`).
        reason: &'static str,
    },
    /// The recorded timeline has a hole.
    Gap {
        /// The camera.
        camera: String,
        /// The file after the hole.
        path: PathBuf,
        /// End of the last recorded fragment.
        from: SystemTime,
        /// Start of the next one.
        to: SystemTime,
        /// Why (`no_media`, `dropped`).
        reason: &'static str,
    },
}

/// The recorder, as the control plane drives it (implemented by the binary over the data
/// plane).
pub trait RecorderHost: Send + Sync + 'static {
    /// Turns recording of a camera on or off.
    fn set_recording(&self, camera: &str, on: bool);
    /// Replaces the set of recorded cameras.
    fn set_recorded_cameras(&self, cameras: Vec<String>);
    /// Reads a recording file's index from the file. Blocking.
    ///
    /// # Errors
    /// Not a recording file, unreadable, no init segment: the reason as text.
    fn read_index(&self, path: &Path) -> Result<FileIndex, String>;
}

/// The service state shared by handlers and tasks.
pub(crate) struct Recordings {
    pub(crate) retention: Arc<Retention>,
    host: OnceLock<Arc<dyn RecorderHost>>,
}

impl Recordings {
    pub(crate) fn new(retention: Arc<Retention>) -> Self {
        Self {
            retention,
            host: OnceLock::new(),
        }
    }

    pub(crate) fn tiers(&self) -> &Arc<Tiers> {
        self.retention.tiers()
    }

    /// Attaches the recorder (once).
    pub(crate) fn attach(&self, host: Arc<dyn RecorderHost>) -> bool {
        self.host.set(host).is_ok()
    }

    /// Tells the recorder, if one is attached, whether to record a camera.
    pub(crate) fn set_recording(&self, camera: &str, on: bool) {
        if let Some(h) = self.host.get() {
            h.set_recording(camera, on);
        }
    }
}
