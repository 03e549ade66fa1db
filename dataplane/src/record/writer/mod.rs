//! The writer core of one recorder thread: which file each fragment goes to, the rebased
//! fragment headers, the per-file write queue, fsync timing, the index, drops and events.
//!
//! It owns no thread and no ring: the thread loop (`super::run_writer`) feeds it fragments,
//! ticks and completions and hands it the thread's [`Io`]. File rules:
//! - a file starts on an independent fragment and holds one init segment; it is cut at the
//!   first independent fragment at least `chunk` (wall clock) after its start, when the init
//!   changes (codec change, reconnect with other parameters: [`CloseReason::Reconfigured`]) or
//!   when the live timeline goes back (a new stream after the reconnect window:
//!   [`CloseReason::Restarted`]);
//! - a reconnect inside a chunk with the same init continues the file: the media timeline
//!   runs on (the segmenter continues it), the wall-clock gap is a [`RecordingGap`] and the
//!   next index entry is marked `discontinuity`;
//! - one write in flight per file (fragments queued meanwhile go out together in the next
//!   `writev`), so a failed write is cut back to the end of the last whole fragment and the
//!   file stays a valid prefix; fragments depending on a dropped one are dropped until the
//!   next keyframe;
//! - closing writes an `mfra` (the clean-close marker repair looks for) and syncs.
//!
//! Decode times (`tfdt`) run on across the files of one recording session: a file cut for
//! its length ([`CloseReason::Chunk`]) hands its timeline to the next file when that one
//! starts exactly where it ended (same init, no live discontinuity, no wall-clock gap, no
//! dropped fragment in between). Anything else starts a new session at 0. Each file's edit
//! list starts its own presentation at 0 (see `mp4::file_init`), and a copy of the live init
//! (no edit list) follows the file's `moov` in a `free` box for HLS players (see
//! `mp4::stream_init_box`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use bytes::{Bytes, BytesMut};
use camstream_protocol::TICKS_PER_SECOND;

use super::RecordedFragment;
use super::event::{
    AlertKind, CloseReason, DropReason, FileClosed, FileOpened, FileProgress, FragmentsDropped,
    GapReason, IndexEntry, RecordingAlert, RecordingEvent, RecordingGap,
};
use super::io::{Completion, FileId, Io};
use super::mp4::{self, PRFT_LEN, Rebase};
use super::name;
use super::queue::{Budget, CameraQueue};
use crate::auth::CameraId;

mod disk;
mod upkeep;

/// Most slices in one `writev` (`IOV_MAX` is 1024).
const MAX_IOVECS: usize = 512;
/// A wall-clock jump between consecutive fragments larger than this is a gap.
const GAP_TOLERANCE: Duration = Duration::from_millis(100);
/// Free space is checked this often.
const SPACE_CHECK: Duration = Duration::from_secs(1);
/// An alert repeats at most this often per camera and kind.
const ALERT_REPEAT: Duration = Duration::from_secs(60);
/// Drop counts are reported at most this often per camera.
const DROP_REPORT: Duration = Duration::from_secs(1);
/// Events kept while the control plane does not take them; beyond this they are lost
/// (logged): memory stays bounded when nobody listens.
const MAX_PENDING_EVENTS: usize = 4096;
/// Periodic work (timers, drop reports, stopped cameras) runs at most this often.
const MIN_TICK: Duration = Duration::from_millis(10);
/// Attempts at a free file name when one is taken (each 1 ms later).
const NAME_ATTEMPTS: u32 = 16;

/// Settings every writer thread shares.
#[derive(Debug)]
pub(crate) struct Settings {
    /// Recordings root (absolute).
    pub(crate) dir: PathBuf,
    /// Chunk duration.
    pub(crate) chunk: Duration,
    /// `fdatasync` interval per open file; `None`: never (page cache only); zero: after every
    /// write.
    pub(crate) fsync: Option<Duration>,
    /// Below this many free bytes, fragments are dropped. Atomic so an operator (or a test)
    /// can change it at run time.
    pub(crate) min_free: AtomicU64,
    /// Progress events per growing file at most this often.
    pub(crate) progress: Duration,
    /// A file with no media for this long is closed.
    pub(crate) idle_close: Duration,
}

enum ItemKind {
    Init,
    Fragment {
        entry: IndexEntry,
        /// (rebased reference time, `moof` offset) for the `mfra` of a keyframe fragment.
        key: Option<(u64, u64)>,
        _budget: Budget,
    },
    Mfra,
}

struct Item {
    bufs: Vec<Bytes>,
    len: u64,
    kind: ItemKind,
}

/// Where a closing file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closing {
    No,
    Draining(CloseReason),
    MfraDone(CloseReason),
}

struct OpenFile {
    camera: CameraId,
    path: PathBuf,
    id: FileId,
    init: Bytes,
    /// Bytes of the file's own init segment (`ftyp` + `moov`).
    init_size: u64,
    /// End of the init area: the init segment and the `free` box with the live init.
    init_end: u64,
    start: SystemTime,
    /// Live media time (90 kHz) of the recording session's first fragment: decode time 0.
    base: i64,
    /// The file's first decode time on its session's timeline.
    origin: Duration,
    rebase: Rebase,
    reference_track: u32,
    /// Live media time after the last queued fragment.
    media_end: i64,
    queued_end: u64,
    written: u64,
    synced: u64,
    queue: VecDeque<Item>,
    writing: Option<Vec<Item>>,
    syncing: bool,
    last_sync: Instant,
    unreported: VecDeque<IndexEntry>,
    keys: Vec<(u64, u64)>,
    fragments: u64,
    /// End of the last written fragment: (media, wall).
    last_end: Option<(Duration, SystemTime)>,
    last_progress: Instant,
    closing: Closing,
    /// The camera's previous file while it exists: this file's writes wait until that one
    /// has its first fragment on disk, so a camera's files are reported opened in order.
    after: Option<u64>,
    /// The camera's next file, to wake when this one progresses.
    next: Option<u64>,
}

impl OpenFile {
    fn busy(&self) -> bool {
        self.writing.is_some() || self.syncing
    }
}

#[derive(Default)]
struct PendingDrop {
    fragments: u64,
    bytes: u64,
    reason: Option<DropReason>,
}

struct Camera {
    queue: Arc<CameraQueue>,
    file: Option<u64>,
    /// The newest file opened (it may be closing).
    last_file: Option<u64>,
    /// Fragments are skipped until an independent one (start, or after a drop).
    need_key: bool,
    /// In a drop episode (why): the next written fragment follows dropped ones.
    dropping: Option<DropReason>,
    /// Wall-clock end of the last fragment queued (kept across files, for gaps).
    last_wall_end: Option<SystemTime>,
    /// The session timeline the camera's next file may continue (set when a file is cut
    /// for its length).
    timeline: Option<Timeline>,
    last_fragment: Instant,
    pending_drop: PendingDrop,
    last_drop_report: Option<Instant>,
    dropped_total: u64,
    alerted: HashMap<AlertKind, Instant>,
}

impl Camera {
    fn new(queue: Arc<CameraQueue>, now: Instant) -> Self {
        Self {
            queue,
            file: None,
            last_file: None,
            need_key: true,
            dropping: None,
            last_wall_end: None,
            timeline: None,
            last_fragment: now,
            pending_drop: PendingDrop::default(),
            last_drop_report: None,
            dropped_total: 0,
            alerted: HashMap::new(),
        }
    }
}

/// A recording session's timeline as a file cut for its length leaves it.
struct Timeline {
    /// Live media time (90 kHz) at decode time 0.
    base: i64,
    /// Rebase of both tracks (sequence unused).
    rebase: Rebase,
    /// The init segment of the session.
    init: Bytes,
    /// Live media time after the last fragment.
    media_end: i64,
    /// Wall-clock end of the last fragment.
    wall_end: Option<SystemTime>,
}

impl Timeline {
    /// Whether `frag` starts where the session left off, so its file continues it.
    fn continued_by(&self, frag: &RecordedFragment) -> bool {
        let wall_gap = self.wall_end.is_none_or(|end| {
            frag.wall_start
                .duration_since(end)
                .is_ok_and(|d| d > GAP_TOLERANCE)
        });
        self.init == frag.init
            && self.media_end == frag.media_start
            && !frag.discontinuity
            && !wall_gap
    }
}

enum OpRef {
    Write { file: u64 },
    Sync { file: u64, upto: u64 },
}

/// The writer core. See the module docs.
pub(crate) struct Writer {
    settings: Arc<Settings>,
    recording: Arc<ArcSwap<HashSet<CameraId>>>,
    cameras: HashMap<CameraId, Camera>,
    files: HashMap<u64, OpenFile>,
    next_file: u64,
    ops: HashMap<u64, OpRef>,
    next_op: u64,
    events: VecDeque<RecordingEvent>,
    lost_events: u64,
    header: BytesMut,
    low_space: bool,
    space_checked: Option<Instant>,
    /// The threshold the last check used: a change is looked at right away.
    checked_min: u64,
    shutting_down: bool,
    /// Files to pump (something happened to them).
    dirty: Vec<u64>,
    last_tick: Option<Instant>,
}

impl Writer {
    pub(crate) fn new(
        settings: Arc<Settings>,
        recording: Arc<ArcSwap<HashSet<CameraId>>>,
        initial_events: Vec<RecordingEvent>,
    ) -> Self {
        Self {
            settings,
            recording,
            cameras: HashMap::new(),
            files: HashMap::new(),
            next_file: 0,
            ops: HashMap::new(),
            next_op: 0,
            events: initial_events.into(),
            lost_events: 0,
            header: BytesMut::with_capacity(16 * 1024),
            low_space: false,
            space_checked: None,
            checked_min: 0,
            shutting_down: false,
            dirty: Vec::new(),
            last_tick: None,
        }
    }

    /// The next event for the control plane.
    pub(crate) fn poll_event(&mut self) -> Option<RecordingEvent> {
        self.events.pop_front()
    }

    /// Puts back an event the channel had no room for.
    pub(crate) fn unpoll_event(&mut self, ev: RecordingEvent) {
        self.events.push_front(ev);
    }

    /// Shutting down and everything closed.
    pub(crate) fn finished(&self) -> bool {
        self.shutting_down && self.files.is_empty()
    }

    fn emit(&mut self, ev: RecordingEvent) {
        if self.events.len() >= MAX_PENDING_EVENTS {
            self.lost_events += 1;
            if self.lost_events.is_power_of_two() {
                tracing::error!(
                    lost = self.lost_events,
                    "recording events are not being consumed; events lost"
                );
            }
            return;
        }
        self.events.push_back(ev);
    }

    /// Closes every file; fragments arriving later are ignored.
    pub(crate) fn shutdown(&mut self, io: &mut dyn Io) {
        self.shutting_down = true;
        self.report_drops(Instant::now(), true);
        let keys: Vec<u64> = self.files.keys().copied().collect();
        for k in keys {
            self.close(k, CloseReason::Shutdown);
        }
        for cam in self.cameras.values_mut() {
            cam.file = None;
        }
        self.pump(io);
    }

    /// Takes one fragment of a recorded camera.
    pub(crate) fn handle_fragment(
        &mut self,
        now: Instant,
        budget: Budget,
        frag: RecordedFragment,
        io: &mut dyn Io,
    ) {
        if self.shutting_down {
            return;
        }
        let queue = budget.queue.clone();
        let camera_id = queue.camera.clone();
        let cam = self
            .cameras
            .entry(camera_id.clone())
            .or_insert_with(|| Camera::new(queue.clone(), now));
        cam.last_fragment = now;
        if !Arc::ptr_eq(&cam.queue, &queue) {
            cam.queue = queue.clone();
        }
        self.take_publisher_drops(&queue, now);
        let bytes = frag.data.len() as u64;
        self.maybe_check_space(now);
        if self.low_space {
            self.drop_fragment(&camera_id, bytes, DropReason::LowSpace, now);
            return;
        }
        let cam = self.cameras.get_mut(&camera_id).expect("inserted above");
        if cam.need_key && !frag.independent {
            if let Some(reason) = cam.dropping {
                self.drop_fragment(&camera_id, bytes, reason, now);
            }
            // Before the first keyframe of a recording nothing is lost: not counted.
            return;
        }
        let file_key = match self.file_for(now, &camera_id, &frag, io) {
            Ok(Some(k)) => k,
            Ok(None) => return,
            Err(reason) => {
                self.drop_fragment(&camera_id, bytes, reason, now);
                return;
            }
        };
        self.queue_fragment(file_key, &camera_id, budget, frag, now);
        self.dirty.push(file_key);
        self.pump_dirty(io);
    }

    /// The file this fragment goes to, opening one (and closing the current one) as the
    /// rules say. `Ok(None)`: the fragment is skipped (cannot start a file).
    fn file_for(
        &mut self,
        now: Instant,
        camera: &CameraId,
        frag: &RecordedFragment,
        io: &mut dyn Io,
    ) -> Result<Option<u64>, DropReason> {
        let current = self.cameras[camera].file;
        if let Some(key) = current {
            let f = &self.files[&key];
            let reason = if f.init != frag.init {
                Some(CloseReason::Reconfigured)
            } else if frag.media_start < f.media_end {
                Some(CloseReason::Restarted)
            } else if frag.independent
                && frag
                    .wall_start
                    .duration_since(f.start)
                    .is_ok_and(|d| d >= self.settings.chunk)
            {
                Some(CloseReason::Chunk)
            } else {
                None
            };
            match reason {
                None => return Ok(Some(key)),
                Some(r) => {
                    let timeline = (r == CloseReason::Chunk).then(|| Timeline {
                        base: f.base,
                        rebase: f.rebase,
                        init: f.init.clone(),
                        media_end: f.media_end,
                        wall_end: self.cameras[camera].last_wall_end,
                    });
                    self.close(key, r);
                    let cam = self.cameras.get_mut(camera).expect("known");
                    cam.file = None;
                    cam.timeline = timeline;
                }
            }
        }
        if !frag.independent {
            let cam = self.cameras.get_mut(camera).expect("known");
            cam.need_key = true;
            return Ok(None);
        }
        // The publisher looks at the recorded set when a part completes, so a part handed
        // over just before recording went off can reach us after the tick that closed the
        // file: it must not start a file of its own (a one-part file nobody asked for).
        if !self.recording.load().contains(camera) {
            return Ok(None);
        }
        self.open(now, camera, frag, io).map(Some)
    }

    fn open(
        &mut self,
        now: Instant,
        camera: &CameraId,
        frag: &RecordedFragment,
        io: &mut dyn Io,
    ) -> Result<u64, DropReason> {
        let failure = |e: &io::Error| {
            if e.raw_os_error() == Some(libc::ENOSPC) {
                DropReason::DiskFull
            } else {
                DropReason::WriteError
            }
        };
        let mut start = frag.wall_start;
        let mut path = name::file_path(&self.settings.dir, camera, start);
        let mut attempt = 0;
        let mut new_folder = false;
        let id = loop {
            let day_dir = path.parent().expect("file paths have a folder");
            if !day_dir.is_dir() {
                new_folder = true;
                if let Err(e) = std::fs::create_dir_all(day_dir) {
                    tracing::error!(camera_id = %camera, dir = %day_dir.display(), error = %e, "cannot create the recordings folder");
                    return Err(failure(&e));
                }
            }
            match io.create(&path) {
                Ok(id) => break id,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < NAME_ATTEMPTS => {
                    attempt += 1;
                    start += Duration::from_millis(1);
                    path = name::file_path(&self.settings.dir, camera, start);
                }
                Err(e) => {
                    tracing::error!(camera_id = %camera, path = %path.display(), error = %e, "cannot create a recording file");
                    return Err(failure(&e));
                }
            }
        };
        // The new name (and a new day or camera folder) must survive a power loss along with
        // the data synced into the file: sync the folders whose entries changed.
        let day_dir = path.parent().expect("file paths have a folder");
        let mut folders = vec![day_dir];
        if new_folder {
            folders.extend(day_dir.parent());
            folders.push(&self.settings.dir);
        }
        for dir in folders {
            if let Err(e) = std::fs::File::open(dir).and_then(|d| d.sync_all()) {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot sync a recordings folder");
            }
        }
        // Continue the session of the file just cut for its length, or start one at 0.
        let cam = self.cameras.get_mut(camera).expect("known");
        let (base, rebase) = match cam.timeline.take().filter(|t| t.continued_by(frag)) {
            Some(t) => (
                t.base,
                Rebase {
                    sequence: 0,
                    ..t.rebase
                },
            ),
            None => {
                let base = frag.media_start.max(0);
                let audio = frag.audio_rate.map_or(0, |r| {
                    (base as u128 * u128::from(r) / TICKS_PER_SECOND as u128) as u64
                });
                let rebase = Rebase {
                    video: base as u64,
                    audio,
                    sequence: 0,
                };
                (base, rebase)
            }
        };
        let key = self.next_file;
        self.next_file += 1;
        let header = frag.data.slices().first().map_or(&[][..], |b| &b[..]);
        let written_init = match mp4::file_init(&frag.init, header, rebase) {
            Ok(i) => Bytes::from(i),
            Err(e) => {
                // Still a valid file, only starting a few tens of milliseconds late.
                tracing::warn!(camera_id = %camera, error = %e, "recording without an edit list");
                frag.init.clone()
            }
        };
        let init_size = written_init.len() as u64;
        let stream_init = mp4::stream_init_box(frag.init.len());
        let init_end = init_size + (stream_init.len() + frag.init.len()) as u64;
        let mut file = OpenFile {
            camera: camera.clone(),
            path,
            id,
            init: frag.init.clone(),
            init_size,
            init_end,
            start,
            base,
            origin: ticks(frag.media_start - base),
            rebase,
            reference_track: 0,
            media_end: base,
            queued_end: init_end,
            written: 0,
            synced: 0,
            queue: VecDeque::new(),
            writing: None,
            syncing: false,
            last_sync: now,
            unreported: VecDeque::new(),
            keys: Vec::new(),
            fragments: 0,
            last_end: None,
            last_progress: now,
            closing: Closing::No,
            after: None,
            next: None,
        };
        file.queue.push_back(Item {
            bufs: vec![
                written_init,
                Bytes::copy_from_slice(&stream_init),
                frag.init.clone(),
            ],
            len: init_end,
            kind: ItemKind::Init,
        });
        let previous = self.cameras[camera]
            .last_file
            .filter(|k| self.files.contains_key(k));
        if let Some(prev) = previous {
            file.after = Some(prev);
            self.files.get_mut(&prev).expect("checked").next = Some(key);
        }
        self.cameras.get_mut(camera).expect("known").last_file = Some(key);
        self.files.insert(key, file);
        self.cameras.get_mut(camera).expect("known").file = Some(key);
        Ok(key)
    }

    fn queue_fragment(
        &mut self,
        key: u64,
        camera_id: &CameraId,
        budget: Budget,
        frag: RecordedFragment,
        now: Instant,
    ) {
        let f = self.files.get_mut(&key).expect("file exists");
        let slices = frag.data.slices();
        let Some(header) = slices.first() else {
            return;
        };
        f.rebase.sequence = f.rebase.sequence.wrapping_add(1);
        let rebased = match mp4::write_header(&mut self.header, header, f.rebase, frag.wall_start) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(camera_id = %camera_id, error = %e, "fragment not recordable");
                let bytes = frag.data.len() as u64;
                self.drop_fragment(camera_id, bytes, DropReason::WriteError, now);
                return;
            }
        };
        let head = self.header.split().freeze();
        if self.header.capacity() < 1024 {
            // Frozen headers keep their block alive; start a new one rather than grow.
            self.header = BytesMut::with_capacity(16 * 1024);
        }
        f.reference_track = rebased.reference_track;
        let size = (PRFT_LEN + frag.data.len()) as u64;
        let cam = self.cameras.get_mut(camera_id).expect("known");
        let gap = cam
            .last_wall_end
            .and_then(|end| frag.wall_start.duration_since(end).ok().map(|d| (end, d)))
            .filter(|(_, d)| *d > GAP_TOLERANCE);
        let after_drop = cam.dropping.take().is_some();
        cam.need_key = false;
        cam.last_wall_end = Some(frag.wall_start + ticks(frag.duration));
        let entry = IndexEntry {
            offset: f.queued_end,
            size,
            media_time: ticks(frag.media_start - f.base),
            duration: ticks(frag.duration),
            wall_time: frag.wall_start,
            independent: frag.independent,
            // Never on a file's first fragment: whether a file continues the one before
            // shows in its first media time (and a hole in the gap event).
            discontinuity: f.queued_end > f.init_end
                && (frag.discontinuity || after_drop || gap.is_some()),
        };
        let key_point = frag
            .independent
            .then_some((rebased.reference_time, f.queued_end + PRFT_LEN as u64));
        let mut bufs = Vec::with_capacity(slices.len());
        bufs.push(head);
        bufs.extend(slices[1..].iter().cloned());
        f.queued_end += size;
        f.media_end = frag.media_start + frag.duration;
        f.queue.push_back(Item {
            bufs,
            len: size,
            kind: ItemKind::Fragment {
                entry,
                key: key_point,
                _budget: budget,
            },
        });
        let path = f.path.clone();
        if after_drop {
            self.flush_drops(camera_id, now);
        }
        if let Some((from, _)) = gap {
            self.emit(RecordingEvent::Gap(RecordingGap {
                camera: camera_id.clone(),
                path,
                from,
                to: frag.wall_start,
                reason: if after_drop {
                    GapReason::Dropped
                } else {
                    GapReason::NoMedia
                },
            }));
        }
    }
}

/// 90 kHz ticks as a duration (negative counts as zero).
fn ticks(t: i64) -> Duration {
    let t = t.max(0) as u64;
    Duration::from_secs(t / TICKS_PER_SECOND as u64)
        + Duration::from_nanos(
            (t % TICKS_PER_SECOND as u64) * 1_000_000_000 / TICKS_PER_SECOND as u64,
        )
}
