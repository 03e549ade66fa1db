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

use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
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
use crate::auth::CameraId;

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

/// One camera's recording queue, shared by its publisher (which fills it) and its writer
/// thread (which drains it). Only counters: the fragments travel in the channel.
#[derive(Debug)]
pub(crate) struct CameraQueue {
    pub(crate) camera: CameraId,
    pub(crate) fragments: AtomicUsize,
    pub(crate) bytes: AtomicUsize,
    /// Fragments the publisher dropped (queue full) not yet reported.
    pub(crate) dropped: AtomicU64,
    pub(crate) dropped_bytes: AtomicU64,
}

impl CameraQueue {
    pub(crate) fn new(camera: CameraId) -> Self {
        Self {
            camera,
            fragments: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            dropped: AtomicU64::new(0),
            dropped_bytes: AtomicU64::new(0),
        }
    }
}

/// A fragment's share of its camera's queue; given back when dropped (written or not).
#[derive(Debug)]
pub(crate) struct Budget {
    queue: Arc<CameraQueue>,
    bytes: usize,
}

impl Budget {
    /// Takes `bytes` of `queue` if it has room for one more fragment within the limits.
    pub(crate) fn take(
        queue: &Arc<CameraQueue>,
        bytes: usize,
        max_fragments: usize,
        max_bytes: usize,
    ) -> Option<Self> {
        let n = queue.fragments.fetch_add(1, Ordering::AcqRel);
        let b = queue.bytes.fetch_add(bytes, Ordering::AcqRel);
        let budget = Budget {
            queue: queue.clone(),
            bytes,
        };
        // Over a limit: dropping `budget` gives the share back.
        (n < max_fragments && b + bytes <= max_bytes).then_some(budget)
    }
}

impl Drop for Budget {
    fn drop(&mut self) {
        self.queue.fragments.fetch_sub(1, Ordering::AcqRel);
        self.queue.bytes.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// What a writer thread receives.
pub(crate) enum Msg {
    /// A fragment of a recorded camera.
    Fragment(Budget, RecordedFragment),
    /// Close every file and stop.
    Shutdown,
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
    init_size: u64,
    start: SystemTime,
    /// Live media time (90 kHz) of the file's first fragment.
    base: i64,
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
    /// Fragments are skipped until an independent one (start, or after a drop).
    need_key: bool,
    /// In a drop episode (why): the next written fragment follows dropped ones.
    dropping: Option<DropReason>,
    /// Wall-clock end of the last fragment queued (kept across files, for gaps).
    last_wall_end: Option<SystemTime>,
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
            need_key: true,
            dropping: None,
            last_wall_end: None,
            last_fragment: now,
            pending_drop: PendingDrop::default(),
            last_drop_report: None,
            dropped_total: 0,
            alerted: HashMap::new(),
        }
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

    /// Publisher-side drops (queue full) since the last look.
    fn take_publisher_drops(&mut self, queue: &CameraQueue, now: Instant) {
        let n = queue.dropped.swap(0, Ordering::AcqRel);
        if n == 0 {
            return;
        }
        let bytes = queue.dropped_bytes.swap(0, Ordering::AcqRel);
        let camera = queue.camera.clone();
        self.note_drop(&camera, n, bytes, DropReason::QueueFull, now);
    }

    fn drop_fragment(&mut self, camera: &CameraId, bytes: u64, reason: DropReason, now: Instant) {
        self.note_drop(camera, 1, bytes, reason, now);
    }

    /// Counts dropped fragments, starts a drop episode (skip to the next keyframe) and
    /// raises the alert for the reason.
    fn note_drop(
        &mut self,
        camera: &CameraId,
        fragments: u64,
        bytes: u64,
        reason: DropReason,
        now: Instant,
    ) {
        let Some(cam) = self.cameras.get_mut(camera) else {
            return;
        };
        if cam.pending_drop.reason.is_some_and(|r| r != reason) {
            self.flush_drops(camera, now);
        }
        let cam = self.cameras.get_mut(camera).expect("checked above");
        cam.need_key = true;
        cam.dropping = Some(reason);
        cam.dropped_total += fragments;
        cam.pending_drop.fragments += fragments;
        cam.pending_drop.bytes += bytes;
        cam.pending_drop.reason = Some(reason);
        let (kind, message) = match reason {
            DropReason::QueueFull => (
                AlertKind::RecordingFailed,
                "recording queue full: the disk is slower than the camera; fragments dropped",
            ),
            DropReason::LowSpace => (
                AlertKind::StorageFull,
                "free space on the recordings file system is below the threshold; fragments dropped",
            ),
            DropReason::DiskFull => (
                AlertKind::StorageFull,
                "the recordings file system is full (ENOSPC); fragments dropped",
            ),
            DropReason::WriteError => (
                AlertKind::RecordingFailed,
                "writing the recording failed; fragments dropped",
            ),
        };
        self.alert(camera, kind, message, now);
        let first_report = self
            .cameras
            .get(camera)
            .is_some_and(|c| c.last_drop_report.is_none());
        if first_report {
            self.flush_drops(camera, now);
        }
    }

    /// Raises an alert unless the same one went out for this camera within a minute.
    fn alert(&mut self, camera: &CameraId, kind: AlertKind, message: &str, now: Instant) {
        let Some(cam) = self.cameras.get_mut(camera) else {
            return;
        };
        let due = cam
            .alerted
            .get(&kind)
            .is_none_or(|at| now.duration_since(*at) >= ALERT_REPEAT);
        if !due {
            return;
        }
        cam.alerted.insert(kind, now);
        tracing::warn!(camera_id = %camera, alert = kind.code(), "{message}");
        self.emit(RecordingEvent::Alert(RecordingAlert {
            camera: camera.clone(),
            kind,
            message: message.to_owned(),
            at: SystemTime::now(),
        }));
    }

    fn flush_drops(&mut self, camera: &CameraId, now: Instant) {
        let Some(cam) = self.cameras.get_mut(camera) else {
            return;
        };
        let p = std::mem::take(&mut cam.pending_drop);
        let Some(reason) = p.reason else { return };
        cam.last_drop_report = Some(now);
        let total = cam.dropped_total;
        self.emit(RecordingEvent::Dropped(FragmentsDropped {
            camera: camera.clone(),
            fragments: p.fragments,
            bytes: p.bytes,
            total,
            reason,
        }));
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
                    self.close(key, r);
                    self.cameras.get_mut(camera).expect("known").file = None;
                }
            }
        }
        if !frag.independent {
            let cam = self.cameras.get_mut(camera).expect("known");
            cam.need_key = true;
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
        let day_dir = path.parent().expect("file paths have a folder").to_owned();
        if let Err(e) = std::fs::create_dir_all(&day_dir) {
            tracing::error!(camera_id = %camera, dir = %day_dir.display(), error = %e, "cannot create the recordings folder");
            return Err(failure(&e));
        }
        let mut attempt = 0;
        let id = loop {
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
        // The new name must survive a power loss along with the data synced into it.
        if let Err(e) = std::fs::File::open(&day_dir).and_then(|d| d.sync_all()) {
            tracing::warn!(dir = %day_dir.display(), error = %e, "cannot sync the recordings folder");
        }
        let base = frag.media_start.max(0);
        let audio = frag.audio_rate.map_or(0, |r| {
            (base as u128 * u128::from(r) / TICKS_PER_SECOND as u128) as u64
        });
        let key = self.next_file;
        self.next_file += 1;
        let rebase = Rebase {
            video: base as u64,
            audio,
            sequence: 0,
        };
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
        let mut file = OpenFile {
            camera: camera.clone(),
            path,
            id,
            init: frag.init.clone(),
            init_size,
            start,
            base,
            rebase,
            reference_track: 0,
            media_end: base,
            queued_end: init_size,
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
        };
        file.queue.push_back(Item {
            bufs: vec![written_init],
            len: init_size,
            kind: ItemKind::Init,
        });
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
            // A file's first fragment starts a timeline: breaks between files show in their
            // start and end times (and the gap event), not in the index.
            discontinuity: f.queued_end > f.init_size
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

    fn next_op(&mut self, op: OpRef) -> u64 {
        self.next_op += 1;
        self.ops.insert(self.next_op, op);
        self.next_op
    }

    /// Submits what can go for every file: one write per idle file with queued items,
    /// closing steps.
    pub(crate) fn pump(&mut self, io: &mut dyn Io) {
        self.dirty.clear();
        let keys: Vec<u64> = self.files.keys().copied().collect();
        for key in keys {
            self.pump_file(key, io);
        }
    }

    fn pump_file(&mut self, key: u64, io: &mut dyn Io) {
        let Some(f) = self.files.get_mut(&key) else {
            return;
        };
        if f.writing.is_none() && !f.queue.is_empty() {
            let mut items = Vec::new();
            let mut bufs = Vec::new();
            while let Some(item) = f.queue.front() {
                if !items.is_empty() && bufs.len() + item.bufs.len() > MAX_IOVECS {
                    break;
                }
                let mut item = f.queue.pop_front().expect("front exists");
                bufs.append(&mut item.bufs);
                items.push(item);
            }
            let (id, offset) = (f.id, f.written);
            f.writing = Some(items);
            let op = self.next_op(OpRef::Write { file: key });
            io.write(op, id, offset, bufs);
            return;
        }
        if f.busy() || !f.queue.is_empty() {
            return;
        }
        match f.closing {
            Closing::No => {}
            Closing::Draining(reason) => {
                if f.fragments == 0 {
                    // Nothing recorded (the first write failed): no file to keep.
                    let (id, path) = (f.id, f.path.clone());
                    io.close(id);
                    let _ = std::fs::remove_file(&path);
                    self.files.remove(&key);
                    return;
                }
                let track = f.reference_track;
                match mp4::mfra(track, &f.keys) {
                    Ok(m) => {
                        let len = m.len() as u64;
                        f.queue.push_back(Item {
                            bufs: vec![Bytes::from(m)],
                            len,
                            kind: ItemKind::Mfra,
                        });
                        f.queued_end += len;
                        self.pump_file(key, io);
                    }
                    Err(e) => {
                        tracing::error!(path = %f.path.display(), error = %e, "cannot build the closing mfra");
                        f.closing = Closing::MfraDone(reason);
                        self.pump_file(key, io);
                    }
                }
            }
            Closing::MfraDone(reason) => {
                if self.settings.fsync.is_some() && f.synced < f.written {
                    let (id, upto) = (f.id, f.written);
                    f.syncing = true;
                    let op = self.next_op(OpRef::Sync { file: key, upto });
                    io.sync(op, id);
                    return;
                }
                let f = self.files.remove(&key).expect("present");
                io.close(f.id);
                self.finish_close(f, reason);
            }
        }
    }

    fn finish_close(&mut self, mut f: OpenFile, reason: CloseReason) {
        let (duration, end_time) = f.last_end.unwrap_or((Duration::ZERO, f.start));
        let entries: Vec<IndexEntry> = f.unreported.drain(..).collect();
        tracing::info!(camera_id = %f.camera, path = %f.path.display(), ?reason, duration_s = duration.as_secs_f64(), bytes = f.written, "recording file closed");
        self.emit(RecordingEvent::Closed(FileClosed {
            camera: f.camera.clone(),
            path: f.path,
            start: f.start,
            end_time,
            duration,
            size: f.written,
            entries,
            reason,
        }));
    }

    fn close(&mut self, key: u64, reason: CloseReason) {
        if let Some(f) = self.files.get_mut(&key)
            && f.closing == Closing::No
        {
            f.closing = Closing::Draining(reason);
            self.dirty.push(key);
        }
    }

    /// Pumps the files something happened to since the last pump.
    fn pump_dirty(&mut self, io: &mut dyn Io) {
        while let Some(key) = self.dirty.pop() {
            self.pump_file(key, io);
        }
    }

    /// Takes a finished write or sync.
    pub(crate) fn handle_completion(&mut self, now: Instant, c: Completion, io: &mut dyn Io) {
        match self.ops.remove(&c.op) {
            Some(OpRef::Write { file }) => self.write_done(now, file, c, io),
            Some(OpRef::Sync { file, upto }) => self.sync_done(now, file, upto, c.result),
            None => return,
        }
        self.pump_dirty(io);
    }

    fn write_done(&mut self, now: Instant, key: u64, c: Completion, io: &mut dyn Io) {
        self.dirty.push(key);
        let Some(f) = self.files.get_mut(&key) else {
            return;
        };
        let items = f.writing.take().unwrap_or_default();
        let start = f.written;
        let mut good = 0u64;
        let mut failed: Vec<Item> = Vec::new();
        let mut opened = false;
        let mut mfra_written = false;
        for item in items {
            let whole = c.result.is_ok() || good + item.len <= c.written;
            if !failed.is_empty() || !whole {
                failed.push(item);
                continue;
            }
            good += item.len;
            match item.kind {
                ItemKind::Init => {}
                ItemKind::Mfra => mfra_written = true,
                ItemKind::Fragment { entry, key, .. } => {
                    f.fragments += 1;
                    opened |= f.fragments == 1;
                    f.last_end = Some((entry.media_end(), entry.wall_end()));
                    if let Some(k) = key {
                        f.keys.push(k);
                    }
                    f.unreported.push_back(entry);
                }
            }
        }
        f.written = start + good;
        if mfra_written && let Closing::Draining(r) = f.closing {
            f.closing = Closing::MfraDone(r);
        }
        if opened {
            let ev = RecordingEvent::Opened(FileOpened {
                camera: f.camera.clone(),
                path: f.path.clone(),
                start: f.start,
                init_size: f.init_size,
            });
            tracing::info!(camera_id = %f.camera, path = %f.path.display(), "recording file opened");
            self.emit(ev);
        }
        let Err(e) = c.result else {
            if self.settings.fsync == Some(Duration::ZERO) {
                self.start_sync(key, io);
            }
            return;
        };
        // A failed write: cut the file back to its last whole item and drop the rest.
        let f = self.files.get_mut(&key).expect("present");
        let camera = f.camera.clone();
        let reason = if e.raw_os_error() == Some(libc::ENOSPC) {
            DropReason::DiskFull
        } else {
            DropReason::WriteError
        };
        if reason == DropReason::DiskFull {
            // Look at the free space again before the next fragment.
            self.space_checked = None;
        } else {
            tracing::error!(camera_id = %camera, path = %f.path.display(), error = %e, "recording write failed");
        }
        failed.extend(f.queue.drain(..));
        f.queued_end = f.written;
        let truncated = c.written <= good || io.truncate(f.id, f.written).is_ok();
        let mut dropped = (0u64, 0u64);
        let mut init_lost = false;
        for item in &failed {
            match item.kind {
                ItemKind::Fragment { .. } => {
                    dropped.0 += 1;
                    dropped.1 += item.len;
                }
                ItemKind::Init => init_lost = true,
                ItemKind::Mfra => {}
            }
        }
        let closing = f.closing;
        let last_wall = f.last_end.map(|(_, w)| w);
        match closing {
            Closing::Draining(r) if failed.iter().any(|i| matches!(i.kind, ItemKind::Mfra)) => {
                // The file ends without its mfra: repair will close it on the next start.
                f.closing = Closing::MfraDone(r);
            }
            _ => {}
        }
        if init_lost || !truncated {
            if !truncated {
                tracing::error!(path = %f.path.display(), "cannot cut a failed write back; file closed");
            }
            self.close(key, CloseReason::Failed);
            if let Some(cam) = self.cameras.get_mut(&camera)
                && cam.file == Some(key)
            {
                cam.file = None;
            }
        }
        if let Some(cam) = self.cameras.get_mut(&camera) {
            cam.last_wall_end = last_wall.or(cam.last_wall_end);
        }
        drop(failed);
        if dropped.0 > 0 {
            self.note_drop(&camera, dropped.0, dropped.1, reason, now);
        } else if let Some(cam) = self.cameras.get_mut(&camera) {
            cam.need_key = true;
        }
    }

    fn start_sync(&mut self, key: u64, io: &mut dyn Io) {
        let Some(f) = self.files.get_mut(&key) else {
            return;
        };
        if f.syncing || f.synced >= f.written {
            return;
        }
        f.syncing = true;
        let (id, upto) = (f.id, f.written);
        let op = self.next_op(OpRef::Sync { file: key, upto });
        io.sync(op, id);
    }

    fn sync_done(&mut self, now: Instant, key: u64, upto: u64, result: io::Result<()>) {
        self.dirty.push(key);
        let Some(f) = self.files.get_mut(&key) else {
            return;
        };
        f.syncing = false;
        f.last_sync = now;
        match result {
            Ok(()) => f.synced = f.synced.max(upto),
            Err(e) => {
                // After a failed fdatasync the kernel may have dropped the dirty pages: what
                // was written since the last good sync cannot be trusted. Close the file;
                // repair checks it on the next start.
                let camera = f.camera.clone();
                tracing::error!(camera_id = %camera, path = %f.path.display(), error = %e, "fdatasync failed; file closed");
                f.synced = f.synced.max(upto);
                self.close(key, CloseReason::Failed);
                if let Some(cam) = self.cameras.get_mut(&camera)
                    && cam.file == Some(key)
                {
                    cam.file = None;
                    cam.need_key = true;
                }
                let (kind, message) = if e.raw_os_error() == Some(libc::ENOSPC) {
                    (
                        AlertKind::StorageFull,
                        "the recordings file system is full (ENOSPC at fdatasync); file closed",
                    )
                } else {
                    (
                        AlertKind::RecordingFailed,
                        "fdatasync of a recording failed; file closed",
                    )
                };
                self.alert(&camera, kind, message, now);
            }
        }
    }

    /// Periodic work: free space, fsyncs, progress, drop reports, idle and stopped cameras.
    /// Call it every loop turn; it does its work at most every [`MIN_TICK`].
    pub(crate) fn handle_tick(&mut self, now: Instant, io: &mut dyn Io) {
        if !self.shutting_down
            && self
                .last_tick
                .is_some_and(|t| now.duration_since(t) < MIN_TICK)
        {
            return;
        }
        self.last_tick = Some(now);
        self.maybe_check_space(now);
        self.report_drops(now, self.shutting_down);
        let recording = self.recording.load_full();
        let mut stop = Vec::new();
        for (id, cam) in &self.cameras {
            let idle = now.duration_since(cam.last_fragment) >= self.settings.idle_close;
            if let Some(key) = cam.file {
                if !recording.contains(id) {
                    stop.push((id.clone(), key, CloseReason::Stopped));
                } else if idle {
                    stop.push((id.clone(), key, CloseReason::Idle));
                }
            }
        }
        for (id, key, reason) in stop {
            self.close(key, reason);
            if let Some(cam) = self.cameras.get_mut(&id) {
                cam.file = None;
                cam.need_key = true;
                if reason == CloseReason::Stopped {
                    // A later recording starts fresh: no gap back to this one.
                    cam.last_wall_end = None;
                }
            }
        }
        // Forget cameras with nothing open, nothing to report and no recent media.
        let idle_close = self.settings.idle_close;
        self.cameras.retain(|_, c| {
            c.file.is_some()
                || c.pending_drop.reason.is_some()
                || now.duration_since(c.last_fragment) < idle_close.max(ALERT_REPEAT)
        });
        let keys: Vec<u64> = self.files.keys().copied().collect();
        for key in keys {
            let f = &self.files[&key];
            let sync_due = self
                .settings
                .fsync
                .is_some_and(|every| now.duration_since(f.last_sync) >= every);
            if sync_due {
                self.start_sync(key, io);
            }
            let f = &self.files[&key];
            if now.duration_since(f.last_progress) >= self.settings.progress {
                self.progress(key, now);
            }
        }
        self.pump(io);
    }

    /// Looks at the free space when due (every second, after ENOSPC, or when the threshold
    /// changed).
    fn maybe_check_space(&mut self, now: Instant) {
        let min = self.settings.min_free.load(Ordering::Relaxed);
        let due = self
            .space_checked
            .is_none_or(|t| now.duration_since(t) >= SPACE_CHECK);
        if due || min != self.checked_min {
            self.space_checked = Some(now);
            self.checked_min = min;
            self.check_space(min);
        }
    }

    /// Collects the publishers' drop counts and reports pending drops that are due (all of
    /// them with `all`).
    fn report_drops(&mut self, now: Instant, all: bool) {
        let queues: Vec<Arc<CameraQueue>> =
            self.cameras.values().map(|c| c.queue.clone()).collect();
        for q in queues {
            self.take_publisher_drops(&q, now);
        }
        let due: Vec<CameraId> = self
            .cameras
            .iter()
            .filter(|(_, c)| {
                c.pending_drop.reason.is_some()
                    && (all
                        || c.last_drop_report
                            .is_none_or(|t| now.duration_since(t) >= DROP_REPORT))
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            self.flush_drops(&id, now);
        }
    }

    fn check_space(&mut self, min: u64) {
        match free_space(&self.settings.dir) {
            Ok(free) => {
                let was = self.low_space;
                // Hysteresis: recover 5 % above the threshold, not on the first byte freed.
                self.low_space = if was {
                    free < min.saturating_add(min / 20)
                } else {
                    free < min
                };
                if self.low_space != was {
                    if self.low_space {
                        tracing::warn!(
                            free,
                            min,
                            "recordings file system below the free-space threshold; recording paused"
                        );
                    } else {
                        tracing::info!(free, min, "recordings file system has room again");
                    }
                }
            }
            Err(e) => {
                tracing::warn!(dir = %self.settings.dir.display(), error = %e, "statvfs failed")
            }
        }
    }

    /// Reports the durable (synced, or written with fsync off) index entries of a file.
    fn progress(&mut self, key: u64, now: Instant) {
        let fsync = self.settings.fsync.is_some();
        let Some(f) = self.files.get_mut(&key) else {
            return;
        };
        let durable = if fsync { f.synced } else { f.written };
        let mut entries = Vec::new();
        while f
            .unreported
            .front()
            .is_some_and(|e| e.offset + e.size <= durable)
        {
            entries.push(f.unreported.pop_front().expect("front exists"));
        }
        let Some(last) = entries.last() else {
            return;
        };
        f.last_progress = now;
        let ev = RecordingEvent::Progress(FileProgress {
            camera: f.camera.clone(),
            path: f.path.clone(),
            duration: last.media_end(),
            size: last.offset + last.size,
            end_time: last.wall_end(),
            entries,
        });
        self.emit(ev);
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

/// Free bytes for unprivileged users on the file system holding `path` (`statvfs`).
///
/// # Errors
/// The `statvfs(2)` error.
pub(crate) fn free_space(path: &Path) -> io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path with a NUL byte"))?;
    // SAFETY: statvfs is plain old data; zeroed is a valid value for it.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated string and `s` a valid out-pointer.
    let r = unsafe { libc::statvfs(c.as_ptr(), &mut s) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((s.f_bavail as u64).saturating_mul(s.f_frsize as u64))
}
