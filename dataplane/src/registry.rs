//! The camera registry: which cameras have a stream, who publishes them, and the windows
//! viewers read.
//!
//! The map `camera id → Stream` is a snapshot swapped whole on change ([`ArcSwap`]):
//! HTTP handlers read it without locks. A change (publish, expiry) is rare and serialised
//! by one mutex that readers never touch.
//!
//! Ownership: while a camera publishes, its [`Segmenter`] lives inside the [`Publisher`]
//! that the connection task owns; the per-frame path touches nothing shared. Taking the
//! segmenter out of its [`Stream`] is also what makes a second publisher on the same key
//! fail: the slot is empty while the first one streams. When the publisher goes, the
//! segmenter goes back into the slot and the reconnect window starts.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use camstream_protocol::relay::Message;
use camstream_protocol::{MediaEvent, StreamHealth, StreamState};
use tokio::sync::{broadcast, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::auth::CameraId;
use crate::hls::segmenter::{Anchor, Changed, Counters, Segmenter, Settings};
use crate::hls::window::Window;
use crate::record::{Recorder, Tap};

/// Registry settings.
#[derive(Debug, Clone)]
pub(crate) struct RegistryConfig {
    /// Segmenting settings for every camera.
    pub(crate) segmenter: Settings,
    /// How long a camera may be away and come back into the same playlists.
    pub(crate) reconnect_window: Duration,
    /// How long an ended playlist (`EXT-X-ENDLIST`) is still served before 404.
    pub(crate) linger: Duration,
    /// Where the parts of recorded cameras go (`None`: no recording).
    pub(crate) recorder: Option<Arc<Recorder>>,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            segmenter: Settings::default(),
            reconnect_window: Duration::from_secs(30),
            linger: Duration::from_secs(60),
            recorder: None,
        }
    }
}

/// A viewer counts for this long after its last playlist request.
const VIEWER_TTL: Duration = Duration::from_secs(10);
/// At most this many distinct viewers are tracked per camera (memory bound).
const MAX_TRACKED_VIEWERS: usize = 100_000;

/// Lifecycle of a stream in the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// A publisher holds the segmenter.
    Live,
    /// The publisher left at this instant; the segmenter waits in the slot.
    Away(Instant),
    /// Ended (`EXT-X-ENDLIST`) at this instant; removed after the linger time.
    Ended(Instant),
}

struct Slot {
    segmenter: Option<Segmenter>,
    phase: Phase,
    since: SystemTime,
    last_seen: SystemTime,
    counters: Counters,
    resolution: Option<(u32, u32)>,
    codecs: Vec<String>,
    /// Counters at the previous health sample, for rates.
    sampled: Option<(Instant, Counters)>,
    /// Cancelled to disconnect the current publisher (the control plane disabled the
    /// camera, rotated its key or deleted it). A fresh token per publish.
    kick: CancellationToken,
}

/// Relay messages buffered per camera for the relays reading them (about 12 s of a 30 fps
/// camera with audio); a relay further behind is told it lagged.
const RELAY_BUFFER: usize = 1024;

/// What a relay joining a camera gets: the messages from the start of the segment in
/// progress, and the live messages that follow them.
pub(crate) struct RelayFeed {
    /// `Init` and the frames since the segment began (empty: wait for an `Init`).
    pub(crate) gop: Vec<Message>,
    /// Everything after `gop`.
    pub(crate) live: broadcast::Receiver<Message>,
}

/// The origin side of a camera's relays.
struct RelayHub {
    tx: broadcast::Sender<Message>,
    /// Set while `requests` holds someone: the publisher looks at this flag (lock-free)
    /// after each event and takes the lock only then.
    waiting: AtomicBool,
    requests: Mutex<Vec<oneshot::Sender<RelayFeed>>>,
}

/// One camera's stream: its windows and bookkeeping.
pub(crate) struct Stream {
    camera_id: CameraId,
    /// Fed by a relay from another node (edge), not by a local encoder.
    relayed: AtomicBool,
    relay: RelayHub,
    ll: watch::Sender<Arc<Window>>,
    ts: watch::Sender<Arc<Window>>,
    slot: Mutex<Slot>,
    viewers: Mutex<HashMap<IpAddr, Instant>>,
    bytes_out: AtomicU64,
}

impl Stream {
    /// Subscribes to the LL-HLS window.
    pub(crate) fn ll(&self) -> watch::Receiver<Arc<Window>> {
        self.ll.subscribe()
    }

    /// Whether a publisher (encoder or relay) feeds the stream now.
    pub(crate) fn is_live(&self) -> bool {
        self.slot.lock().expect("slot poisoned").phase == Phase::Live
    }

    /// Subscribes to the TS window.
    pub(crate) fn ts(&self) -> watch::Receiver<Arc<Window>> {
        self.ts.subscribe()
    }

    /// Records a playlist request from `ip` (viewer counting).
    pub(crate) fn saw_viewer(&self, ip: IpAddr, now: Instant) {
        let mut v = self.viewers.lock().expect("viewer map poisoned");
        if v.len() >= MAX_TRACKED_VIEWERS && !v.contains_key(&ip) {
            v.retain(|_, t| now.duration_since(*t) < VIEWER_TTL);
            if v.len() >= MAX_TRACKED_VIEWERS {
                return;
            }
        }
        v.insert(ip, now);
    }

    /// Adds to the bytes served.
    pub(crate) fn served(&self, bytes: u64) {
        self.bytes_out.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Whether this stream is fed by a relay (this node is an edge for it).
    pub(crate) fn is_relayed(&self) -> bool {
        self.relayed.load(Ordering::Relaxed)
    }

    /// When a viewer last asked for a playlist, if one is still counted.
    /// Whether this is an ABR rendition (`{camera}~{name}`), published by the transcoder.
    pub(crate) fn is_rendition(&self) -> bool {
        camstream_protocol::abr::split_rendition(&self.camera_id).is_some()
    }

    /// The camera id.
    pub(crate) fn camera_id(&self) -> &CameraId {
        &self.camera_id
    }

    /// Resolution, codecs (RFC 6381) and ingest bits per second since the publish started,
    /// for a multivariant playlist.
    pub(crate) fn describe(&self) -> (Option<(u32, u32)>, Vec<String>, u64) {
        let slot = self.slot.lock().expect("slot poisoned");
        let secs = SystemTime::now()
            .duration_since(slot.since)
            .map_or(0.0, |d| d.as_secs_f64());
        let bps = if secs >= 1.0 {
            (slot.counters.bytes as f64 * 8.0 / secs) as u64
        } else {
            0
        };
        (slot.resolution, slot.codecs.clone(), bps)
    }

    pub(crate) fn last_viewer(&self) -> Option<Instant> {
        let v = self.viewers.lock().expect("viewer map poisoned");
        v.values().max().copied()
    }

    /// Origin side: asks for this camera's relay feed. The publisher answers after its next
    /// media event (the feed starts at a consistent point); while no encoder publishes, the
    /// answer waits for one. Relaying must be on ([`Registry::enable_relay`]).
    pub(crate) fn subscribe_relay(&self) -> oneshot::Receiver<RelayFeed> {
        let (tx, rx) = oneshot::channel();
        let mut requests = self.relay.requests.lock().expect("relay requests poisoned");
        requests.push(tx);
        self.relay.waiting.store(true, Ordering::Release);
        rx
    }

    /// Hands the segmenter's relay messages to the relays and answers waiting relays.
    /// Called after each event; without relays it costs a flag load and an empty drain.
    fn relay_out(&self, seg: &mut Segmenter) {
        for msg in seg.take_relay() {
            // No receiver is not an error: nobody relays this camera right now.
            let _ = self.relay.tx.send(msg);
        }
        if self.relay.waiting.load(Ordering::Acquire) {
            // A camera claimed before relaying was enabled starts its relay log now. A log
            // that started mid-segment has no joining point until the next segment starts:
            // relays wait for it.
            seg.set_relay(true);
            if !seg.relay_ready() {
                return;
            }
            let mut requests = self.relay.requests.lock().expect("relay requests poisoned");
            for tx in requests.drain(..) {
                let _ = tx.send(RelayFeed {
                    gop: seg.relay_gop(),
                    live: self.relay.tx.subscribe(),
                });
            }
            self.relay.waiting.store(false, Ordering::Release);
        }
    }

    fn publish(&self, seg: &Segmenter, changed: Changed) {
        if changed.ll {
            self.ll.send_replace(Arc::new(seg.ll().clone()));
        }
        if changed.ts {
            self.ts.send_replace(Arc::new(seg.ts().clone()));
        }
    }

    fn viewers(&self, now: Instant) -> u32 {
        let mut v = self.viewers.lock().expect("viewer map poisoned");
        v.retain(|_, t| now.duration_since(*t) < VIEWER_TTL);
        v.len() as u32
    }
}

/// Why a publish could not claim its camera.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ClaimError {
    /// Another encoder is publishing this camera.
    #[error("camera {0} is already being published")]
    AlreadyPublishing(CameraId),
    /// A relay from another node feeds this camera here (this node is an edge). A local
    /// encoder wins: the relay was told to stop; claim again once it has (after the next
    /// [`Registry::changes`]).
    #[error("camera {0} is being relayed from another node; the relay was told to stop")]
    Relayed(CameraId),
}

/// The registry of camera streams.
pub(crate) struct Registry {
    config: RegistryConfig,
    /// Segmenters keep relay messages (this node may be a relay origin).
    relay: AtomicBool,
    /// Every camera keeps its relay log from its first frame, so WebRTC viewers join at
    /// once (without it, the first viewer of a camera waits for its next segment).
    webrtc: AtomicBool,
    streams: ArcSwap<HashMap<CameraId, Arc<Stream>>>,
    writer: Mutex<()>,
    /// Bumped when a stream is added or a publisher leaves (rare): what waiters for a
    /// stream to appear or a slot to free up watch.
    changes: watch::Sender<u64>,
    /// Where the next publish of an ABR rendition starts in its camera's numbering and
    /// time (set by the transcoder before it starts, taken by the rendition's claim).
    anchors: Mutex<HashMap<CameraId, Anchor>>,
    /// What the ABR manager (`abr`) transcodes now, written on each of its passes: read by
    /// WHEP (is a B-frame camera's rendition on its way?) and the cluster heartbeat.
    transcoding: Mutex<Transcoding>,
}

/// The cameras this node transcodes and its budget (`--abr-max-cameras`; 0 with ABR off).
#[derive(Debug, Default)]
struct Transcoding {
    cameras: Vec<CameraId>,
    budget: usize,
}

impl Registry {
    /// An empty registry.
    pub(crate) fn new(config: RegistryConfig) -> Arc<Self> {
        Arc::new(Self {
            config,
            relay: AtomicBool::new(false),
            webrtc: AtomicBool::new(false),
            streams: ArcSwap::from_pointee(HashMap::new()),
            writer: Mutex::new(()),
            changes: watch::channel(0).0,
            anchors: Mutex::default(),
            transcoding: Mutex::default(),
        })
    }

    /// Records the cameras this node's transcoders work on now and the node's transcode
    /// budget (the ABR manager, after each pass).
    pub(crate) fn set_transcoding(&self, cameras: Vec<CameraId>, budget: usize) {
        *self.transcoding.lock().expect("transcoding poisoned") = Transcoding { cameras, budget };
    }

    /// Whether a transcoder runs for `camera` on this node (its renditions are live or
    /// coming).
    pub(crate) fn is_transcoding(&self, camera: &str) -> bool {
        let t = self.transcoding.lock().expect("transcoding poisoned");
        t.cameras.iter().any(|c| &**c == camera)
    }

    /// Cameras transcoded now and the budget (0 with ABR off).
    pub(crate) fn transcode_load(&self) -> (usize, usize) {
        let t = self.transcoding.lock().expect("transcoding poisoned");
        (t.cameras.len(), t.budget)
    }

    /// The next publish of `rendition` (`{camera}~{name}`) starts at `anchor` in its
    /// camera's segment numbering and wall-clock time.
    pub(crate) fn anchor_rendition(&self, rendition: CameraId, anchor: Anchor) {
        self.anchors
            .lock()
            .expect("anchors poisoned")
            .insert(rendition, anchor);
    }

    /// For a rendition (`{camera}~{name}`) published here: its camera's segment dates by
    /// number ([`crate::hls::segmenter::CameraDates`]).
    fn camera_dates(&self, rendition: &str) -> Option<crate::hls::segmenter::CameraDates> {
        let (camera, _) = camstream_protocol::abr::split_rendition(rendition)?;
        let source = Arc::downgrade(&self.get(camera)?);
        Some(Arc::new(move |msn| {
            let window = source.upgrade()?.ll().borrow().clone();
            window
                .partial
                .as_ref()
                .filter(|p| p.msn == msn)
                .map(|p| p.program_date_time)
                .or_else(|| {
                    window
                        .segments
                        .iter()
                        .rev()
                        .find(|s| s.msn == msn)
                        .map(|s| s.program_date_time)
                })
        }))
    }

    fn take_anchor(&self, camera: &str) -> Option<Anchor> {
        self.anchors
            .lock()
            .expect("anchors poisoned")
            .remove(camera)
    }

    /// Makes every camera claimed from now on keep relay messages (its GOP and live feed),
    /// so other nodes can relay it. Off by default: a single node pays nothing.
    pub(crate) fn enable_relay(&self) {
        self.relay.store(true, Ordering::Relaxed);
    }

    /// Makes every camera claimed from now on keep its relay log (the GOP cache and live
    /// feed WebRTC viewers start from). Costs a clone of each frame's `Bytes` handle.
    pub(crate) fn enable_webrtc(&self) {
        self.webrtc.store(true, Ordering::Relaxed);
    }

    /// Changes when a stream is added or a publisher (encoder or relay) leaves.
    pub(crate) fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// The stream of a camera, if it has one. Lock-free.
    pub(crate) fn get(&self, camera: &str) -> Option<Arc<Stream>> {
        self.streams.load().get(camera).cloned()
    }

    /// Number of streams (any phase).
    pub(crate) fn len(&self) -> usize {
        self.streams.load().len()
    }

    /// Claims a camera for a publisher: continues its stream when it is inside the
    /// reconnect window, starts a new one otherwise.
    ///
    /// # Errors
    /// [`ClaimError::AlreadyPublishing`] while another encoder holds it;
    /// [`ClaimError::Relayed`] while a relay feeds it (the relay is told to stop).
    pub(crate) fn claim(self: &Arc<Self>, camera: CameraId) -> Result<Publisher, ClaimError> {
        self.claim_as(camera, None)
    }

    /// Claims a camera for a relay from its origin (this node is an edge): like
    /// [`Registry::claim`], but a new stream takes the origin's media name `prefix`, nothing
    /// is recorded here, and its segmenter follows relayed messages
    /// ([`Publisher::handle_relayed`]).
    ///
    /// # Errors
    /// [`ClaimError::AlreadyPublishing`] while a publisher (encoder or relay) holds it.
    pub(crate) fn claim_relayed(
        self: &Arc<Self>,
        camera: CameraId,
        prefix: &str,
    ) -> Result<Publisher, ClaimError> {
        self.claim_as(camera, Some(Arc::from(prefix)))
    }

    fn claim_as(
        self: &Arc<Self>,
        camera: CameraId,
        relayed_prefix: Option<Arc<str>>,
    ) -> Result<Publisher, ClaimError> {
        let relayed = relayed_prefix.is_some();
        let _w = self.writer.lock().expect("registry writer poisoned");
        let now = SystemTime::now();
        let existing = self.get(&camera);
        if let Some(stream) = existing.as_ref() {
            let mut slot = stream.slot.lock().expect("slot poisoned");
            match slot.phase {
                // A local encoder wins over a relayed feed of the same camera: the encoder
                // is the camera, the relay only a copy from a node that lost it.
                Phase::Live if !relayed && stream.is_relayed() => {
                    slot.kick.cancel();
                    return Err(ClaimError::Relayed(camera));
                }
                Phase::Live => return Err(ClaimError::AlreadyPublishing(camera)),
                Phase::Away(_) => {
                    let mut seg = slot
                        .segmenter
                        .take()
                        .expect("away streams hold a segmenter");
                    let clustered = self.relay.load(Ordering::Relaxed);
                    if clustered && !relayed && stream.is_relayed() {
                        // This node becomes the origin of a camera it relayed: number as a
                        // new origin (see below).
                        seg.renumber_from(cluster_first_msn(0));
                    }
                    seg.set_relay((!relayed && clustered) || self.webrtc.load(Ordering::Relaxed));
                    if let Some(a) = self.take_anchor(&camera) {
                        seg.set_anchor(a);
                        if let Some(dates) = self.camera_dates(&camera) {
                            seg.set_camera_dates(dates);
                        }
                    }
                    stream.relayed.store(relayed, Ordering::Relaxed);
                    let changed = seg.start_session();
                    stream.publish(&seg, changed);
                    slot.phase = Phase::Live;
                    slot.since = now;
                    slot.kick = CancellationToken::new();
                    let kick = slot.kick.clone();
                    drop(slot);
                    return Ok(Publisher::new(self.clone(), stream.clone(), seg, kick));
                }
                Phase::Ended(_) => {} // start over below
            }
        }
        let clustered = self.relay.load(Ordering::Relaxed);
        // In a cluster a camera's origin may move between nodes, and viewers of the nodes
        // that stay must never see the media sequence go back: a new stream starts above
        // any number an earlier origin can have reached (docs/architecture.md, "Numbering
        // across origins"). Edges take the origin's numbers; a single node starts at 0.
        let first_msn = (clustered && !relayed)
            .then(|| cluster_first_msn(existing.as_ref().map_or(0, |s| s.ll.borrow().next_msn)));
        let kick = CancellationToken::new();
        let prefix =
            relayed_prefix.unwrap_or_else(|| Arc::from(format!("{:08x}", rand::random::<u32>())));
        let mut seg = Segmenter::new(self.config.segmenter.clone(), prefix);
        if let Some(msn) = first_msn {
            seg.set_first_msn(msn);
        }
        if let Some(a) = self.take_anchor(&camera) {
            seg.set_anchor(a);
            if let Some(dates) = self.camera_dates(&camera) {
                seg.set_camera_dates(dates);
            }
        }
        seg.set_relay((!relayed && clustered) || self.webrtc.load(Ordering::Relaxed));
        seg.start_session();
        let (ll, _) = watch::channel(Arc::new(seg.ll().clone()));
        let (ts, _) = watch::channel(Arc::new(seg.ts().clone()));
        let stream = Arc::new(Stream {
            camera_id: camera.clone(),
            relayed: AtomicBool::new(relayed),
            relay: RelayHub {
                tx: broadcast::channel(RELAY_BUFFER).0,
                waiting: AtomicBool::new(false),
                requests: Mutex::new(Vec::new()),
            },
            ll,
            ts,
            slot: Mutex::new(Slot {
                segmenter: None,
                phase: Phase::Live,
                since: now,
                last_seen: now,
                counters: Counters::default(),
                resolution: None,
                codecs: Vec::new(),
                sampled: None,
                kick: kick.clone(),
            }),
            viewers: Mutex::new(HashMap::new()),
            bytes_out: AtomicU64::new(0),
        });
        let mut map = HashMap::clone(&self.streams.load());
        map.insert(camera, stream.clone());
        self.streams.store(Arc::new(map));
        self.changed();
        Ok(Publisher::new(self.clone(), stream, seg, kick))
    }

    /// Disconnects the encoder publishing `camera`, if one is; the stream then waits in
    /// the reconnect window like after any disconnect (a new publish must pass
    /// authorization again). Returns whether a publisher was told to go.
    pub(crate) fn disconnect(&self, camera: &str) -> bool {
        let Some(stream) = self.get(camera) else {
            return false;
        };
        let slot = stream.slot.lock().expect("slot poisoned");
        if slot.phase != Phase::Live || slot.kick.is_cancelled() {
            return false;
        }
        slot.kick.cancel();
        true
    }

    /// Ends streams whose camera stayed away past the reconnect window and removes ended
    /// ones after the linger time. Call about once a second.
    pub(crate) fn expire(&self, now: Instant) {
        let _w = self.writer.lock().expect("registry writer poisoned");
        let mut removed = false;
        let map = self.streams.load();
        for stream in map.values() {
            let mut slot = stream.slot.lock().expect("slot poisoned");
            match slot.phase {
                Phase::Away(at) if now.duration_since(at) >= self.config.reconnect_window => {
                    if let Some(seg) = slot.segmenter.as_mut() {
                        let changed = seg.finish();
                        stream.publish(seg, changed);
                        stream.relay_out(seg);
                    }
                    slot.phase = Phase::Ended(now);
                    tracing::info!(camera_id = %stream.camera_id, "camera did not come back; playlists ended");
                }
                Phase::Ended(at) if now.duration_since(at) >= self.config.linger => removed = true,
                _ => {}
            }
        }
        if removed {
            let mut next = HashMap::clone(&map);
            next.retain(|_, s| {
                let slot = s.slot.lock().expect("slot poisoned");
                !matches!(slot.phase, Phase::Ended(at) if now.duration_since(at) >= self.config.linger)
            });
            self.streams.store(Arc::new(next));
        }
    }

    /// Cameras an encoder publishes on this node now (not relayed copies, not ABR
    /// renditions): the transcoder manager's candidates.
    pub(crate) fn live_sources(&self) -> Vec<Arc<Stream>> {
        self.streams
            .load()
            .values()
            .filter(|s| s.is_live() && !s.is_relayed() && !s.is_rendition())
            .cloned()
            .collect()
    }

    /// The live ABR renditions of `camera` (`{camera}~{name}` streams), by name.
    pub(crate) fn renditions(&self, camera: &str) -> Vec<(String, Arc<Stream>)> {
        let mut out: Vec<_> = self
            .streams
            .load()
            .iter()
            .filter_map(|(id, s)| {
                let (cam, name) = camstream_protocol::abr::split_rendition(id)?;
                (cam == camera && s.is_live()).then(|| (name.to_owned(), s.clone()))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Health of every stream, for the control plane. Rates are over the time since the
    /// previous call.
    pub(crate) fn health(&self, now: Instant) -> Vec<StreamHealth> {
        let map = self.streams.load();
        let mut out = Vec::with_capacity(map.len());
        // A relayed copy (this node is an edge) is not this node's camera: its origin
        // reports it, and a report from here would claim its placement. An ABR rendition
        // is the transcoder's output, not a camera.
        for stream in map
            .values()
            .filter(|s| !s.is_relayed() && !s.is_rendition())
        {
            let mut slot = stream.slot.lock().expect("slot poisoned");
            let counters = slot.counters;
            let (fps, bitrate) = match slot.sampled {
                Some((at, prev)) if now > at => {
                    let secs = now.duration_since(at).as_secs_f64();
                    (
                        (counters.video_frames.saturating_sub(prev.video_frames)) as f64 / secs,
                        (counters.bytes.saturating_sub(prev.bytes)) as f64 * 8.0 / secs,
                    )
                }
                _ => (0.0, 0.0),
            };
            slot.sampled = Some((now, counters));
            let state = match slot.phase {
                Phase::Live => StreamState::Online,
                Phase::Away(_) => StreamState::Reconnecting,
                Phase::Ended(_) => StreamState::Offline,
            };
            out.push(StreamHealth {
                camera_id: stream.camera_id.to_string(),
                state,
                fps: fps as f32,
                bitrate_bps: bitrate as u64,
                dropped_frames: counters.dropped,
                resolution: slot.resolution,
                codecs: slot.codecs.clone(),
                viewers: stream.viewers(now),
                bytes_in: counters.bytes,
                bytes_out: stream.bytes_out.load(Ordering::Relaxed),
                since: slot.since,
                last_seen: slot.last_seen,
            });
        }
        out
    }
}

/// The first media sequence number of a stream starting on a cluster node: the UNIX time in
/// seconds, which no earlier origin's numbering can have reached while its segments last at
/// least a second, or `after` (what this node showed) when that is higher.
fn cluster_first_msn(after: u64) -> u64 {
    let secs = SystemTime::UNIX_EPOCH.elapsed().map_or(0, |d| d.as_secs());
    secs.max(after)
}

/// Stats are copied from the segmenter into the shared slot at most this often.
const STATS_INTERVAL: Duration = Duration::from_millis(250);

/// A publisher's hold on its camera: owns the segmenter while the encoder streams.
/// Dropping it ends the session and starts the reconnect window.
pub(crate) struct Publisher {
    registry: Arc<Registry>,
    stream: Arc<Stream>,
    segmenter: Option<Segmenter>,
    last_stats: Instant,
    /// The camera's way into the recorder, when the server records.
    tap: Option<Tap>,
    /// Cancelled when the control plane wants this encoder gone.
    kick: CancellationToken,
}

impl Publisher {
    fn new(
        registry: Arc<Registry>,
        stream: Arc<Stream>,
        segmenter: Segmenter,
        kick: CancellationToken,
    ) -> Self {
        // The origin records a relayed camera; an edge never does.
        let tap = registry
            .config
            .recorder
            .as_ref()
            .filter(|_| !stream.is_relayed())
            .map(|r| r.tap(&stream.camera_id));
        let mut p = Self {
            registry,
            stream,
            segmenter: Some(segmenter),
            last_stats: Instant::now() - STATS_INTERVAL,
            tap,
            kick,
        };
        p.record();
        p
    }

    /// Hands the parts completed since the last call to the recorder, if this camera is
    /// being recorded (a lock-free look at the recorded set), and tells the segmenter
    /// whether to keep queuing them. Called once per completed part, not per frame.
    fn record(&mut self) {
        let (Some(tap), Some(recorder)) = (&self.tap, &self.registry.config.recorder) else {
            return;
        };
        let seg = self.segmenter.as_mut().expect("present until drop");
        let on = recorder.is_recording(&self.stream.camera_id);
        seg.set_recording(on);
        for part in seg.take_recorded() {
            tap.submit(part);
        }
    }

    /// The stream this publisher feeds.
    pub(crate) fn stream(&self) -> &Arc<Stream> {
        &self.stream
    }

    /// The camera being published.
    pub(crate) fn camera_id(&self) -> &CameraId {
        &self.stream.camera_id
    }

    /// Cancelled when [`Registry::disconnect`] asks this publisher to go.
    pub(crate) fn kicked(&self) -> CancellationToken {
        self.kick.clone()
    }

    /// Feeds one media event. Per-frame path: touches only this publisher's state, except
    /// when a part or segment completes (publish a window snapshot) and a few times a
    /// second (stats).
    ///
    /// Returns a problem to log, if the segmenter met one.
    pub(crate) fn handle_event(&mut self, now: SystemTime, event: MediaEvent) -> Option<String> {
        let seg = self.segmenter.as_mut().expect("present until drop");
        let changed = seg.handle_event(now, event);
        self.after(now, changed)
    }

    /// Edge side: feeds one relayed message (see `crate::relay`). `End` with
    /// `Finished` ends the playlists (`EXT-X-ENDLIST`); other messages that are not media
    /// are ignored.
    ///
    /// Returns a problem to log, if the segmenter met one.
    pub(crate) fn handle_relayed(&mut self, now: SystemTime, msg: Message) -> Option<String> {
        let seg = self.segmenter.as_mut().expect("present until drop");
        let changed = match msg {
            Message::Init(init) => seg.follow_init(&init),
            Message::Frame(f) => seg.follow_frame(now, f),
            Message::Flush => seg.end_session(),
            Message::End(e) if e.reason == camstream_protocol::relay::EndReason::Finished => {
                seg.finish()
            }
            _ => Changed::default(),
        };
        self.after(now, changed)
    }

    fn after(&mut self, now: SystemTime, changed: Changed) -> Option<String> {
        let seg = self.segmenter.as_mut().expect("present until drop");
        self.stream.relay_out(seg);
        if changed != Changed::default() {
            self.stream.publish(seg, changed);
            if changed.ll {
                self.record();
            }
        }
        let tick = Instant::now();
        if tick.duration_since(self.last_stats) >= STATS_INTERVAL {
            self.last_stats = tick;
            self.sync_stats(now);
        }
        self.segmenter
            .as_mut()
            .expect("present until drop")
            .take_failure()
    }

    fn sync_stats(&self, now: SystemTime) {
        let seg = self.segmenter.as_ref().expect("present until drop");
        let mut slot = self.stream.slot.lock().expect("slot poisoned");
        slot.counters = seg.counters();
        slot.last_seen = now;
        slot.resolution = seg.video_config().map(|v| v.dimensions());
        if let Ok(codecs) = crate::fmp4::codecs(seg.video_config(), seg.audio_config()) {
            slot.codecs = codecs.split(',').map(str::to_owned).collect();
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let now = SystemTime::now();
        self.sync_stats(now);
        let registry = self.registry.clone();
        let _w = registry.writer.lock().expect("registry writer poisoned");
        let changed = self
            .segmenter
            .as_mut()
            .expect("present until drop")
            .end_session();
        if changed.ll {
            self.record();
        }
        let mut seg = self.segmenter.take().expect("present until drop");
        self.stream.publish(&seg, changed);
        self.stream.relay_out(&mut seg);
        let mut slot = self.stream.slot.lock().expect("slot poisoned");
        slot.segmenter = Some(seg);
        slot.phase = Phase::Away(Instant::now());
        slot.since = now;
        drop(slot);
        registry.changed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::clip_media;

    fn registry(reconnect: Duration, linger: Duration) -> Arc<Registry> {
        Registry::new(RegistryConfig {
            reconnect_window: reconnect,
            linger,
            ..RegistryConfig::default()
        })
    }

    fn publish_clip(p: &mut Publisher) {
        for ev in clip_media(0) {
            assert_eq!(p.handle_event(SystemTime::now(), ev), None);
        }
    }

    #[test]
    fn one_publisher_per_camera() {
        let r = registry(Duration::from_secs(30), Duration::from_secs(60));
        let mut first = r.claim(CameraId::from("cam")).unwrap();
        assert_eq!(
            r.claim(CameraId::from("cam")).err(),
            Some(ClaimError::AlreadyPublishing(CameraId::from("cam")))
        );
        // Another camera is independent.
        let _other = r.claim(CameraId::from("cam2")).unwrap();
        publish_clip(&mut first);
        let stream = r.get("cam").unwrap();
        assert!(stream.ll().borrow().segments.len() >= 2);
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn a_local_encoder_replaces_a_relay_and_numbers_above_it() {
        let r = registry(Duration::from_secs(30), Duration::from_secs(60));
        r.enable_relay();
        let relay = r.claim_relayed(CameraId::from("cam"), "0000beef").unwrap();
        assert_eq!(
            r.health(Instant::now()),
            vec![],
            "a relayed copy is not reported"
        );
        let mut changes = r.changes();
        changes.mark_unchanged();
        assert_eq!(
            r.claim(CameraId::from("cam")).err(),
            Some(ClaimError::Relayed(CameraId::from("cam")))
        );
        assert!(relay.kicked().is_cancelled(), "the relay is told to stop");
        drop(relay);
        assert!(
            changes.has_changed().unwrap(),
            "waiters hear the slot free up"
        );
        let mut p = r.claim(CameraId::from("cam")).unwrap();
        publish_clip(&mut p);
        let w = r.get("cam").unwrap().ll().borrow().clone();
        let now = SystemTime::UNIX_EPOCH.elapsed().unwrap().as_secs();
        assert!(
            (now - 5..=now + 5).contains(&w.first_msn()),
            "a new origin numbers from the UNIX time: {}",
            w.first_msn()
        );
        assert_eq!(r.health(Instant::now()).len(), 1);
        // A single node (no relay) numbers from 0, as always.
        let single = registry(Duration::from_secs(30), Duration::from_secs(60));
        let _p = single.claim(CameraId::from("cam")).unwrap();
        assert_eq!(single.get("cam").unwrap().ll().borrow().next_msn, 0);
    }

    #[test]
    fn disconnect_kicks_only_the_live_publisher() {
        let r = registry(Duration::from_secs(30), Duration::from_secs(60));
        assert!(!r.disconnect("cam"), "no stream yet");
        let p = r.claim(CameraId::from("cam")).unwrap();
        let other = r.claim(CameraId::from("cam2")).unwrap();
        let kicked = p.kicked();
        assert!(!kicked.is_cancelled());
        assert!(r.disconnect("cam"));
        assert!(kicked.is_cancelled());
        assert!(!other.kicked().is_cancelled(), "other cameras untouched");
        assert!(!r.disconnect("cam"), "already told to go");
        drop(p);
        assert!(!r.disconnect("cam"), "nobody publishes while away");
        // The next publisher of the camera starts with a fresh token.
        let again = r.claim(CameraId::from("cam")).unwrap();
        assert!(!again.kicked().is_cancelled());
        assert!(r.disconnect("cam"));
        assert!(again.kicked().is_cancelled());
    }

    #[test]
    fn reconnect_inside_the_window_continues_the_stream() {
        let r = registry(Duration::from_secs(30), Duration::from_secs(60));
        let mut p = r.claim(CameraId::from("cam")).unwrap();
        publish_clip(&mut p);
        let stream = r.get("cam").unwrap();
        let prefix = stream.ll().borrow().prefix.clone();
        drop(p);
        let before = stream.ll().borrow().next_msn;
        assert!(
            stream.ll().borrow().partial.is_none(),
            "segment closed on disconnect"
        );
        assert!(!stream.ll().borrow().ended);
        let health = r.health(Instant::now());
        assert_eq!(health[0].state, StreamState::Reconnecting);

        let mut p = r.claim(CameraId::from("cam")).unwrap();
        publish_clip(&mut p);
        let same = r.get("cam").unwrap();
        assert!(Arc::ptr_eq(&stream, &same), "the same stream continues");
        let w = same.ll().borrow().clone();
        assert_eq!(w.prefix, prefix);
        let first_new = w.segment(before).unwrap();
        assert!(first_new.discontinuity);
        assert_eq!(r.health(Instant::now())[0].state, StreamState::Online);
    }

    #[test]
    fn a_camera_gone_too_long_ends_then_disappears() {
        let r = registry(Duration::from_millis(0), Duration::from_secs(60));
        let mut p = r.claim(CameraId::from("cam")).unwrap();
        publish_clip(&mut p);
        drop(p);
        let stream = r.get("cam").unwrap();
        let now = Instant::now();
        r.expire(now);
        assert!(stream.ll().borrow().ended);
        assert!(stream.ts().borrow().ended);
        assert_eq!(r.health(now)[0].state, StreamState::Offline);
        r.expire(now + Duration::from_secs(30));
        assert!(
            r.get("cam").is_some(),
            "still served during the linger time"
        );
        r.expire(now + Duration::from_secs(61));
        assert!(r.get("cam").is_none());
        // Coming back after that starts fresh playlists with a new prefix.
        let _p = r.claim(CameraId::from("cam")).unwrap();
        let fresh = r.get("cam").unwrap();
        assert!(!Arc::ptr_eq(&stream, &fresh));
        assert_eq!(fresh.ll().borrow().next_msn, 0);
    }

    #[test]
    fn a_relay_joins_at_the_next_segment_of_a_camera_claimed_before_relaying() {
        let r = registry(Duration::from_secs(30), Duration::from_secs(60));
        let mut p = r.claim(CameraId::from("cam")).unwrap();
        let mut events = clip_media(0).into_iter();
        for ev in events.by_ref().take(150) {
            p.handle_event(SystemTime::now(), ev);
        }
        let stream = r.get("cam").unwrap();
        let mut rx = stream.subscribe_relay();
        let mut feed = None;
        for ev in events {
            p.handle_event(SystemTime::now(), ev);
            if let Ok(f) = rx.try_recv() {
                feed = Some(f);
                break;
            }
        }
        let feed = feed.expect("answered at the next segment start");
        let msn = stream.ll().borrow().next_msn;
        match feed.gop.first() {
            Some(Message::Init(i)) => {
                assert_eq!(i.msn, msn, "joins the segment in progress");
                assert!(i.msn > 0);
                assert_eq!(i.part, 0);
            }
            other => panic!("the feed starts with Init, got {other:?}"),
        }
        assert!(matches!(feed.gop.get(1), Some(Message::Frame(f)) if f.frame.keyframe));
    }

    #[test]
    fn health_reports_rates_and_viewers() {
        let r = registry(Duration::from_secs(30), Duration::from_secs(60));
        let mut p = r.claim(CameraId::from("cam")).unwrap();
        let t0 = Instant::now();
        r.health(t0);
        publish_clip(&mut p);
        let stream = r.get("cam").unwrap();
        stream.saw_viewer("10.0.0.1".parse().unwrap(), t0);
        stream.saw_viewer("10.0.0.2".parse().unwrap(), t0);
        stream.saw_viewer("10.0.0.1".parse().unwrap(), t0);
        stream.served(1000);
        drop(p); // syncs the final counters
        let h = r.health(t0 + Duration::from_secs(6));
        let h = &h[0];
        assert_eq!(h.camera_id, "cam");
        assert!((h.fps - 30.0).abs() < 1.0, "{}", h.fps);
        assert!(h.bitrate_bps > 100_000, "{}", h.bitrate_bps);
        assert_eq!(h.resolution, Some((1280, 720)));
        assert_eq!(
            h.codecs,
            vec!["avc1.64001f".to_string(), "mp4a.40.2".to_string()]
        );
        assert_eq!(h.viewers, 2);
        assert_eq!(h.bytes_out, 1000);
        let later = r.health(t0 + Duration::from_secs(20));
        assert_eq!(later[0].viewers, 0, "viewers expire");
    }
}
