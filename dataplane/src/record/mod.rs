//! The recorder: every LL-HLS part of a recorded camera, written to fMP4 files on disk
//! through io_uring, crash-safe, with the fragment index the control plane stores.
//!
//! Owns: the writer threads (one io_uring ring each, `std::fs` when io_uring is
//! unavailable), the file layout, per-file rebasing of fragment times, fsync policy,
//! chunking, disk-pressure drops, start-up repair and the [`RecordingEvent`]s. Leaves to
//! others: cutting parts (`hls::segmenter`, which queues a [`RecordedFragment`] per part),
//! which cameras record (the control plane, through `DataPlane::set_recording`), storing
//! rows, retention and tiers (the control plane).
//!
//! Flow: the camera's publisher (on its connection task) hands each part to its [`Tap`],
//! which only counts it against the camera's bounded queue and `try_send`s it to the
//! camera's writer thread: live streaming never waits for the disk. A full queue drops the
//! part, counted; the writer thread reports it and skips to the next keyframe.
//!
//! Layout: `{dir}/{camera}/{YYYY-MM-DD}/{camera}-{YYYYMMDDTHHMMSS.mmmZ}.mp4` (UTC start of
//! the first sample). A file is the live init segment plus an edit list (so the file alone
//! presents from 0), the live init as it is in a `free` box (for VOD playlists), then per
//! part `prft` + `moof` + `mdat` with decode times on the recording session's timeline
//! (0 at the session's start, continued across the files of one session), then an `mfra`
//! when closed. See `writer` for when files are cut and `repair` for crash recovery.
//!
//! Durability: a part is on its way to disk once its `writev` completes; after `kill -9`
//! every such part survives (the page cache belongs to the kernel) and what is lost is the
//! part being written plus any still queued (normally none or one; at most the camera's
//! queue when the disk is behind). A power loss can also take what was written since the
//! file's last `fdatasync` (the fsync interval). Index entries reach the control plane only
//! once synced, so the stored index never points past what survives.
//!
//! Spec: ISO/IEC 14496-12 §8.8 (movie fragments, `mfra`), §8.16.5 (`prft`); ISO/IEC 23000-19
//! (CMAF fragments); ARCHITECTURE.md "Recording".

mod event;
mod io;
mod mp4;
mod name;
mod queue;
mod repair;
mod uring;
mod writer;

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex, Once, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use bytes::Bytes;
use tokio::sync::mpsc;

use crate::auth::CameraId;
use crate::chunks::Chunks;

pub use event::{
    AlertKind, CloseReason, DropReason, FileClosed, FileIndex, FileOpened, FileProgress,
    FragmentsDropped, GapReason, IndexEntry, RecordingAlert, RecordingEvent, RecordingGap,
    RepairStatus, RepairedFile,
};
pub use repair::{RepairError, read_index, repair};

#[cfg(feature = "bench")]
pub(crate) use mp4::shift_header;

/// The recorder's fragment header (`prft` + rebased `moof` + `mdat` header) for the
/// `tokio::fs` comparison in the benchmark.
#[cfg(feature = "bench")]
pub(crate) fn write_header_for_bench(
    out: &mut bytes::BytesMut,
    header: &[u8],
    video: u64,
    audio: u64,
    sequence: u32,
    wall: SystemTime,
) -> std::io::Result<()> {
    let rebase = mp4::Rebase {
        video,
        audio,
        sequence,
    };
    mp4::write_header(out, header, rebase, wall)
        .map(|_| ())
        .map_err(std::io::Error::other)
}

use io::{Io, StdIo};
use queue::{Budget, CameraQueue, Msg};
use uring::Uring;
use writer::{Settings, Writer};

/// A writer thread with nothing in flight waits this long for a fragment before it looks
/// at its timers (fsync, progress, idle files).
const TICK: Duration = Duration::from_millis(50);
/// With writes in flight, it waits at most this long for a completion before it looks at
/// its channel again.
const IO_WAIT: Duration = Duration::from_millis(2);
/// Messages handled per loop turn before the thread submits and reaps.
const BATCH: usize = 256;
/// How long a shutting-down writer tries to hand its last events over.
const FINAL_EVENTS: Duration = Duration::from_secs(2);

/// One LL-HLS part of a recorded camera, as the segmenter hands it over.
#[derive(Debug, Clone)]
pub(crate) struct RecordedFragment {
    /// The init segment in effect (shared with the live window).
    pub(crate) init: Bytes,
    /// The fragment: `moof` + `mdat` header, then the payload slices.
    pub(crate) data: Chunks,
    /// Decode time of the first sample on the live timeline (90 kHz).
    pub(crate) media_start: i64,
    /// Duration (90 kHz).
    pub(crate) duration: i64,
    /// The audio track's sample rate (its timescale), if the stream has audio.
    pub(crate) audio_rate: Option<u32>,
    /// Wall-clock time of the first sample.
    pub(crate) wall_start: SystemTime,
    /// Starts with a keyframe.
    pub(crate) independent: bool,
    /// First part after a session start or codec change (`EXT-X-DISCONTINUITY` live).
    pub(crate) discontinuity: bool,
}

/// Which file I/O the writer threads use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    /// io_uring, falling back to `std::fs` (logged once) when a ring cannot be set up.
    Auto,
    /// `std::fs` only.
    #[cfg(any(test, feature = "bench"))]
    Std,
}

/// The recorder's settings (built from the data plane's `Config`).
#[derive(Debug, Clone)]
pub(crate) struct RecorderConfig {
    /// Recordings root.
    pub(crate) dir: PathBuf,
    /// Files are cut at the first keyframe this long after their start.
    pub(crate) chunk: Duration,
    /// `fdatasync` interval per open file; zero after every write; `None` never.
    pub(crate) fsync: Option<Duration>,
    /// Writer threads (each with its own ring).
    pub(crate) threads: usize,
    /// Fragments one camera may have queued and in flight.
    pub(crate) queue_fragments: usize,
    /// Bytes one camera may have queued and in flight.
    pub(crate) queue_bytes: usize,
    /// Fragments are dropped while the file system has less free space than this.
    pub(crate) min_free: u64,
    /// Progress events at most this often per growing file.
    pub(crate) progress: Duration,
    /// A camera's file is closed after this long without media.
    pub(crate) idle_close: Duration,
    /// The I/O backend.
    pub(crate) backend: Backend,
    /// Messages each writer thread's channel holds.
    pub(crate) channel: usize,
}

impl RecorderConfig {
    /// Defaults for a recordings directory: 1 h chunks, fdatasync every 2 s, one writer
    /// thread, 64 fragments / 32 MiB per camera (about 12 s of 200 ms parts), 512 MiB free
    /// space floor, progress every 10 s, files closed after 35 s without media.
    pub(crate) fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            chunk: Duration::from_secs(3600),
            fsync: Some(Duration::from_secs(2)),
            threads: 1,
            queue_fragments: 64,
            queue_bytes: 32 << 20,
            min_free: 512 << 20,
            progress: Duration::from_secs(10),
            idle_close: Duration::from_secs(35),
            backend: Backend::Auto,
            channel: 4096,
        }
    }
}

/// Why the recorder could not start.
#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    /// The recordings directory cannot be created or resolved.
    #[error("recordings directory {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A writer thread could not be started.
    #[error("cannot start a recorder thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// The recorder: writer threads plus the set of cameras being recorded.
pub(crate) struct Recorder {
    config: RecorderConfig,
    settings: Arc<Settings>,
    recording: Arc<ArcSwap<HashSet<CameraId>>>,
    writers: Vec<SyncSender<Msg>>,
    queues: Mutex<HashMap<CameraId, Arc<CameraQueue>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Which I/O the writer threads ended up with (tests and the bench check it).
    #[cfg(any(test, feature = "bench"))]
    backend: Arc<OnceLock<&'static str>>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("dir", &self.settings.dir)
            .field("threads", &self.writers.len())
            .finish_non_exhaustive()
    }
}

impl Recorder {
    /// Creates the recordings directory, repairs what a previous run left unclosed (reported
    /// first on `events`), and starts the writer threads.
    ///
    /// Blocking (repair reads files): call from a blocking thread.
    ///
    /// # Errors
    /// [`RecorderError`] when the directory or a thread cannot be set up.
    pub(crate) fn start(
        config: RecorderConfig,
        events: mpsc::Sender<RecordingEvent>,
    ) -> Result<Arc<Self>, RecorderError> {
        let dir_err = |source| RecorderError::Dir {
            path: config.dir.clone(),
            source,
        };
        std::fs::create_dir_all(&config.dir).map_err(dir_err)?;
        let dir = std::fs::canonicalize(&config.dir).map_err(dir_err)?;
        let repaired: Vec<RecordingEvent> = repair(&dir)
            .into_iter()
            .map(RecordingEvent::Repaired)
            .collect();
        let settings = Arc::new(Settings {
            dir,
            chunk: config.chunk,
            fsync: config.fsync,
            min_free: AtomicU64::new(config.min_free),
            progress: config.progress,
            idle_close: config.idle_close,
        });
        let recording = Arc::new(ArcSwap::from_pointee(HashSet::new()));
        let backend = Arc::new(OnceLock::new());
        let mut writers = Vec::new();
        let mut threads = Vec::new();
        let mut initial = Some(repaired);
        for i in 0..config.threads.max(1) {
            let (tx, rx) = std::sync::mpsc::sync_channel(config.channel.max(1));
            let core = Writer::new(
                settings.clone(),
                recording.clone(),
                initial.take().unwrap_or_default(),
            );
            let events = events.clone();
            let kind = config.backend;
            let used = backend.clone();
            let handle = std::thread::Builder::new()
                .name(format!("recorder-{i}"))
                .spawn(move || run_writer(core, rx, events, kind, &used))
                .map_err(RecorderError::Thread)?;
            writers.push(tx);
            threads.push(handle);
        }
        Ok(Arc::new(Self {
            config,
            settings,
            recording,
            writers,
            queues: Mutex::new(HashMap::new()),
            threads: Mutex::new(threads),
            #[cfg(any(test, feature = "bench"))]
            backend,
        }))
    }

    /// The recordings root (absolute).
    pub(crate) fn dir(&self) -> &std::path::Path {
        &self.settings.dir
    }

    /// The I/O backend the writer threads use, once one has started.
    #[cfg(any(test, feature = "bench"))]
    pub(crate) fn backend(&self) -> Option<&'static str> {
        self.backend.get().copied()
    }

    /// Turns recording of a camera on or off. Takes effect at the camera's next part (on:
    /// the file starts at the next keyframe) or the writer's next tick (off: the file is
    /// closed).
    pub(crate) fn set_recording(&self, camera: &str, on: bool) {
        self.recording.rcu(|set| {
            let mut next = HashSet::clone(set);
            if on {
                next.insert(CameraId::from(camera));
            } else {
                next.remove(camera);
            }
            next
        });
    }

    /// Replaces the whole set of recorded cameras.
    pub(crate) fn replace_recording(&self, cameras: impl IntoIterator<Item = CameraId>) {
        self.recording
            .store(Arc::new(cameras.into_iter().collect()));
    }

    /// Whether a camera is being recorded. Lock-free.
    pub(crate) fn is_recording(&self, camera: &str) -> bool {
        self.recording.load().contains(camera)
    }

    /// The cameras being recorded.
    pub(crate) fn recording(&self) -> Vec<CameraId> {
        self.recording.load().iter().cloned().collect()
    }

    /// Changes the free-space floor at run time.
    #[cfg(test)]
    pub(crate) fn set_min_free(&self, bytes: u64) {
        self.settings.min_free.store(bytes, Ordering::Relaxed);
    }

    /// Fragments of a camera queued or being written (0 once the writer caught up).
    #[cfg(test)]
    pub(crate) fn queued(&self, camera: &str) -> usize {
        self.queues
            .lock()
            .expect("recorder queue map poisoned")
            .get(camera)
            .map_or(0, |q| q.fragments.load(Ordering::Acquire))
    }

    /// A camera's tap: where its publisher hands parts over. One lookup per publish, none
    /// per part.
    pub(crate) fn tap(&self, camera: &CameraId) -> Tap {
        let queue = self
            .queues
            .lock()
            .expect("recorder queue map poisoned")
            .entry(camera.clone())
            .or_insert_with(|| Arc::new(CameraQueue::new(camera.clone())))
            .clone();
        let mut h = std::collections::hash_map::DefaultHasher::new();
        camera.hash(&mut h);
        let writer = (h.finish() % self.writers.len() as u64) as usize;
        Tap {
            queue,
            tx: self.writers[writer].clone(),
            max_fragments: self.config.queue_fragments,
            max_bytes: self.config.queue_bytes,
        }
    }

    /// Closes every file (writing its `mfra`, syncing) and stops the writer threads.
    /// Blocking: call from a blocking thread.
    pub(crate) fn shutdown(&self) {
        for tx in &self.writers {
            let _ = tx.send(Msg::Shutdown);
        }
        let threads = std::mem::take(&mut *self.threads.lock().expect("threads poisoned"));
        for t in threads {
            if t.join().is_err() {
                tracing::error!("a recorder thread panicked");
            }
        }
    }
}

/// A camera's way into the recorder (held by its publisher).
pub(crate) struct Tap {
    queue: Arc<CameraQueue>,
    tx: SyncSender<Msg>,
    max_fragments: usize,
    max_bytes: usize,
}

impl Tap {
    /// Queues a part for writing, or drops it (counted, reported by the writer) when the
    /// camera's queue is full. Never blocks.
    pub(crate) fn submit(&self, frag: RecordedFragment) -> bool {
        let bytes = frag.data.len();
        let Some(budget) = Budget::take(&self.queue, bytes, self.max_fragments, self.max_bytes)
        else {
            self.count_drop(bytes);
            return false;
        };
        match self.tx.try_send(Msg::Fragment(budget, frag)) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.count_drop(bytes);
                false
            }
        }
    }

    /// Queues a part, waiting for room instead of dropping (benchmarks, tests).
    #[cfg(any(test, feature = "bench"))]
    pub(crate) fn submit_waiting(&self, frag: RecordedFragment) {
        let bytes = frag.data.len();
        let budget = loop {
            if let Some(b) = Budget::take(&self.queue, bytes, self.max_fragments, self.max_bytes) {
                break b;
            }
            std::thread::sleep(Duration::from_micros(200));
        };
        let _ = self.tx.send(Msg::Fragment(budget, frag));
    }

    fn count_drop(&self, bytes: usize) {
        self.queue.dropped.fetch_add(1, Ordering::AcqRel);
        self.queue
            .dropped_bytes
            .fetch_add(bytes as u64, Ordering::AcqRel);
    }
}

static FALLBACK_LOGGED: Once = Once::new();

fn make_io(kind: Backend) -> Box<dyn Io> {
    open_io(kind, Uring::new)
}

/// The thread's I/O: a ring from `ring` unless `std::fs` is asked for or the ring fails.
fn open_io(kind: Backend, ring: impl FnOnce() -> std::io::Result<Uring>) -> Box<dyn Io> {
    if kind == Backend::Auto {
        match ring() {
            Ok(u) => return Box::new(u),
            Err(e) => FALLBACK_LOGGED.call_once(|| {
                tracing::warn!(error = %e, "io_uring unavailable; recording through std::fs");
            }),
        }
    }
    Box::new(StdIo::new())
}

/// A writer thread: fragments from the channel, I/O through its own ring.
fn run_writer(
    mut core: Writer,
    rx: Receiver<Msg>,
    events: mpsc::Sender<RecordingEvent>,
    kind: Backend,
    used: &OnceLock<&'static str>,
) {
    let mut io = make_io(kind);
    let _ = used.set(io.name());
    let mut completions = Vec::new();
    let mut disconnected = false;
    loop {
        let busy = io.in_flight() > 0;
        let mut received = 0;
        if !disconnected && !core.finished() {
            let first = if busy {
                rx.try_recv().map_err(|e| e == TryRecvError::Disconnected)
            } else {
                rx.recv_timeout(TICK)
                    .map_err(|e| e == RecvTimeoutError::Disconnected)
            };
            let mut next = first;
            loop {
                match next {
                    Ok(msg) => {
                        received += 1;
                        handle_msg(&mut core, msg, &mut *io);
                    }
                    Err(gone) => {
                        if gone {
                            disconnected = true;
                            core.shutdown(&mut *io);
                        }
                        break;
                    }
                }
                if received >= BATCH || core.finished() {
                    break;
                }
                next = rx.try_recv().map_err(|e| e == TryRecvError::Disconnected);
            }
        }
        let now = Instant::now();
        core.handle_tick(now, &mut *io);
        let wait = if received == 0 {
            IO_WAIT
        } else {
            Duration::ZERO
        };
        io.wait(wait, &mut completions);
        let now = Instant::now();
        for c in completions.drain(..) {
            core.handle_completion(now, c, &mut *io);
        }
        deliver(&mut core, &events);
        if core.finished() && io.in_flight() == 0 {
            let deadline = Instant::now() + FINAL_EVENTS;
            while deliver(&mut core, &events) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            break;
        }
    }
}

fn handle_msg(core: &mut Writer, msg: Msg, io: &mut dyn Io) {
    match msg {
        Msg::Fragment(budget, frag) => core.handle_fragment(Instant::now(), budget, frag, io),
        Msg::Shutdown => core.shutdown(io),
    }
}

/// Hands events to the control plane's channel; `true` when some are still waiting.
fn deliver(core: &mut Writer, events: &mpsc::Sender<RecordingEvent>) -> bool {
    while let Some(ev) = core.poll_event() {
        match events.try_send(ev) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(ev)) => {
                core.unpoll_event(ev);
                return true;
            }
            // Nobody listens: nothing to keep them for.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
    false
}

#[cfg(test)]
mod tests;
