//! The data plane's listeners and tasks: RTMP and RTMPS ingest, HTTP and HTTPS (h2 +
//! HTTP/1.1) serving `/hls`, `/healthz`, `/readyz` and whatever routes the caller adds
//! (the control plane's API), and the reconnect-window reaper.
//!
//! The HTTP listeners apply the edge's limits ([`HttpLimits`]) to every connection, HLS
//! and API alike: admission (total and per-address caps) here, timeouts in `http::serve`.
//!
//! [`Server::bind`] binds every listener first, so a port conflict fails start-up with a
//! clear error before anything is served; [`Server::run`] then serves until the
//! cancellation token fires. Every task belongs to one `JoinSet`.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use camstream_protocol::StreamHealth;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower_http::cors::CorsLayer;
use tracing::{info, warn};

use crate::abr::{Abr, AbrConfig, AbrPolicy, RenditionKeys};
use crate::auth::{Authorizer, CameraId, PlaybackGuard};
use crate::hls::segmenter::Settings;
use crate::http::{self, Gate, HlsState, HttpLimits, Waits};
use crate::ingest::Ingest;
use crate::record::{Recorder, RecorderConfig, RecorderError, RecordingEvent};
use crate::registry::{Registry, RegistryConfig};
use crate::relay::Puller;
use crate::tls::{self, CertSource, TlsError};
use crate::webrtc::{Node, WebrtcConfig};

/// The data plane's configuration, validated by the binary.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the self-signed certificate (and later recordings) live.
    pub data_dir: PathBuf,
    /// RTMP listener.
    pub rtmp_addr: SocketAddr,
    /// RTMPS listener (`None`: off).
    pub rtmps_addr: Option<SocketAddr>,
    /// HTTP listener.
    pub http_addr: SocketAddr,
    /// HTTPS listener, h2 and HTTP/1.1 (`None`: off).
    pub https_addr: Option<SocketAddr>,
    /// PEM certificate chain; with `tls_key`, or neither for a self-signed one.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key.
    pub tls_key: Option<PathBuf>,
    /// Target segment duration.
    pub segment_target: Duration,
    /// Target LL-HLS part duration.
    pub part_target: Duration,
    /// Complete segments kept per camera and rendition.
    pub hls_window: usize,
    /// LL-HLS `PART-HOLD-BACK`, in part targets (2–10). Default 2.5.
    pub part_hold_back: f64,
    /// How long a camera may be away and continue its playlists.
    pub reconnect_window: Duration,
    /// Most concurrent RTMP(S) connections.
    pub max_ingest_connections: usize,
    /// How long a publisher's bytes may wait in the kernel so that one wake-up reads several
    /// RTMP messages (`SO_RCVLOWAT` + a tail timer, see `batch.rs`); zero: every message wakes
    /// the connection.
    pub ingest_batch: Duration,
    /// Timeouts and caps of the HTTP and HTTPS listeners (HLS and the API).
    pub http: HttpLimits,
    /// Recordings root; `None`: `<data_dir>/recordings`.
    pub recordings_dir: Option<PathBuf>,
    /// Recording files are cut at the first keyframe this long after their start. Default 1 h.
    pub record_chunk: Duration,
    /// `fdatasync` interval per open recording file (zero: after every write; `None`: never,
    /// the page cache decides). Default 2 s: a power loss loses at most that much.
    pub record_fsync: Option<Duration>,
    /// Recorder writer threads, each with its own io_uring ring. Default 1.
    pub record_threads: usize,
    /// Below this many free bytes on the recordings file system, fragments are dropped with a
    /// `STORAGE_FULL` alert. Default 512 MiB.
    pub record_min_free: u64,
    /// WebRTC (WHEP) playback; `None`: off.
    pub webrtc: Option<WebrtcConfig>,
    /// Adaptive bitrate transcoding (which cameras: the control plane's `abrProfile`, or
    /// every camera with `all_cameras`); `None`: off.
    pub abr: Option<AbrConfig>,
}

impl Config {
    /// Defaults for everything but the data directory: the ports of the README.
    pub fn new(data_dir: PathBuf) -> Self {
        let any = |port| SocketAddr::from(([0, 0, 0, 0], port));
        Self {
            data_dir,
            rtmp_addr: any(1935),
            rtmps_addr: Some(any(1936)),
            http_addr: any(8080),
            https_addr: Some(any(8443)),
            tls_cert: None,
            tls_key: None,
            segment_target: Duration::from_secs(2),
            part_target: Duration::from_millis(200),
            hls_window: 8,
            part_hold_back: crate::hls::DEFAULT_PART_HOLD_BACK,
            reconnect_window: Duration::from_secs(30),
            max_ingest_connections: 10_000,
            ingest_batch: Duration::from_millis(40),
            http: HttpLimits::default(),
            recordings_dir: None,
            record_chunk: Duration::from_secs(3600),
            record_fsync: Some(Duration::from_secs(2)),
            record_threads: 1,
            record_min_free: 512 << 20,
            webrtc: Some(WebrtcConfig::default()),
            abr: Some(AbrConfig::default()),
        }
    }

    /// Where recordings go.
    pub fn recordings_dir(&self) -> PathBuf {
        self.recordings_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("recordings"))
    }

    fn recorder(&self) -> RecorderConfig {
        let mut r = RecorderConfig::new(self.recordings_dir());
        r.chunk = self.record_chunk;
        r.fsync = self.record_fsync;
        r.threads = self.record_threads.max(1);
        r.min_free = self.record_min_free;
        // A camera away for longer than its reconnect window starts a new stream: its file
        // can be closed a little after that.
        r.idle_close = self.reconnect_window + Duration::from_secs(5);
        r
    }
}

/// Recording events waiting for the control plane.
const RECORDING_EVENTS: usize = 1024;

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A listener could not bind.
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        /// Which listener.
        what: &'static str,
        /// Its address.
        addr: SocketAddr,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// TLS could not be set up.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The WebRTC socket could not bind.
    #[error("cannot bind the WebRTC socket {addr}/udp: {source}")]
    Webrtc {
        /// Its address.
        addr: SocketAddr,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The recorder could not start.
    #[error(transparent)]
    Recorder(#[from] RecorderError),
}

/// Addresses the listeners are bound to (ports resolved when 0 was asked).
#[derive(Debug, Clone)]
pub struct BoundAddrs {
    /// RTMP.
    pub rtmp: SocketAddr,
    /// RTMPS.
    pub rtmps: Option<SocketAddr>,
    /// HTTP.
    pub http: SocketAddr,
    /// HTTPS.
    pub https: Option<SocketAddr>,
    /// The WebRTC UDP socket's advertised candidate.
    pub webrtc: Option<SocketAddr>,
}

/// A handle on the running data plane for the other planes.
#[derive(Clone)]
pub struct DataPlane {
    registry: Arc<Registry>,
    recorder: Arc<Recorder>,
    puller: Arc<OnceLock<Puller>>,
    abr_policy: Arc<OnceLock<Arc<dyn AbrPolicy>>>,
}

impl DataPlane {
    /// Where the transcoder manager learns which cameras want a ladder (the control
    /// plane's `abrProfile`). Set once; later calls are ignored.
    pub fn set_abr_policy(&self, policy: Arc<dyn AbrPolicy>) {
        let _ = self.abr_policy.set(policy);
    }

    /// The camera registry (for the relay).
    pub(crate) fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Health of every camera stream; rates cover the time since the previous call, so
    /// call it from one place on a steady tick (about once a second).
    pub fn health(&self) -> Vec<StreamHealth> {
        self.registry.health(std::time::Instant::now())
    }

    /// Turns recording of a camera on or off (`isRecording`). On: its file starts at its
    /// next keyframe while it publishes. Off: its file is closed within a fraction of a
    /// second. Lock-free for the media path; cheap to call.
    pub fn set_recording(&self, camera: &str, on: bool) {
        self.recorder.set_recording(camera, on);
    }

    /// Replaces the set of recorded cameras (at start-up, from the store).
    pub fn set_recorded_cameras(&self, cameras: impl IntoIterator<Item = CameraId>) {
        self.recorder.replace_recording(cameras);
    }

    /// Whether a camera is being recorded.
    pub fn is_recording(&self, camera: &str) -> bool {
        self.recorder.is_recording(camera)
    }

    /// The cameras being recorded.
    pub fn recorded_cameras(&self) -> Vec<CameraId> {
        self.recorder.recording()
    }

    /// The recordings root (absolute).
    pub fn recordings_dir(&self) -> PathBuf {
        self.recorder.dir().to_owned()
    }

    /// Cluster node: from now on a viewer asking for a camera that `locator` places on
    /// another node gets it pulled through `edge` ([`Puller`]). Call once, before
    /// [`Server::run`]; a second call is ignored. A node that never calls it answers 404
    /// for cameras it does not ingest, as a single node does.
    pub fn enable_pulls(
        &self,
        edge: crate::relay::Edge,
        locator: Arc<dyn camstream_protocol::OriginLocator>,
        shutdown: CancellationToken,
    ) {
        let _ = self.puller.set(Puller::new(edge, locator, shutdown));
    }
}

impl camstream_protocol::LiveControl for DataPlane {
    fn disconnect_publisher(&self, camera: &str, reason: &str) -> bool {
        let kicked = self.registry.disconnect(camera);
        if kicked {
            tracing::warn!(camera_id = %camera, reason, "disconnecting the publisher");
        }
        kicked
    }
}

/// Bound listeners, ready to serve.
pub struct Server {
    rtmp: TcpListener,
    rtmps: Option<TcpListener>,
    http: TcpListener,
    https: Option<TcpListener>,
    tls: tls::TlsConfigs,
    addrs: BoundAddrs,
    registry: Arc<Registry>,
    ingest: Arc<Ingest>,
    hls: HlsState,
    webrtc: Option<Arc<Node>>,
    puller: Arc<OnceLock<Puller>>,
    abr: Option<Arc<Abr>>,
    abr_policy: Arc<OnceLock<Arc<dyn AbrPolicy>>>,
    max_ingest: usize,
    http_limits: HttpLimits,
    recorder: Arc<Recorder>,
    recording_events: Option<mpsc::Receiver<RecordingEvent>>,
}

/// Pending connections the kernel queues for `accept` (capped by `net.core.somaxconn`).
/// tokio's default of 1024 overflows when a few thousand clients (re)connect at once, and
/// an overflowing queue silently drops handshakes that clients then retry seconds later.
const LISTEN_BACKLOG: u32 = 4096;

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, ServerError> {
    let err = |source| ServerError::Bind { what, addr, source };
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(err)?;
    // As std's and tokio's `bind` do: restart without waiting for TIME_WAIT to clear.
    socket.set_reuseaddr(true).map_err(err)?;
    socket.bind(addr).map_err(err)?;
    socket.listen(LISTEN_BACKLOG).map_err(err)
}

fn local(l: &TcpListener) -> SocketAddr {
    l.local_addr().expect("a bound listener has an address")
}

impl Server {
    /// Loads TLS and binds every listener.
    ///
    /// # Errors
    /// [`ServerError`] when TLS cannot be set up or a port cannot be bound.
    pub async fn bind(
        config: Config,
        authorizer: Arc<dyn Authorizer>,
        guard: Arc<dyn PlaybackGuard>,
    ) -> Result<Self, ServerError> {
        let tls = tls::load(
            &config.data_dir,
            config.tls_cert.as_deref(),
            config.tls_key.as_deref(),
        )?;
        let rtmp = bind("rtmp", config.rtmp_addr).await?;
        let rtmps = match config.rtmps_addr {
            Some(a) => Some(bind("rtmps", a).await?),
            None => None,
        };
        let http = bind("http", config.http_addr).await?;
        let https = match config.https_addr {
            Some(a) => Some(bind("https", a).await?),
            None => None,
        };
        let webrtc = match config.webrtc.clone() {
            Some(c) => {
                let addr = c.addr;
                Some(Node::bind(c).map_err(|source| ServerError::Webrtc { addr, source })?)
            }
            None => None,
        };
        let addrs = BoundAddrs {
            rtmp: local(&rtmp),
            rtmps: rtmps.as_ref().map(local),
            http: local(&http),
            https: https.as_ref().map(local),
            webrtc: webrtc.as_ref().map(|n| n.candidate()),
        };
        // Repair reads every unclosed recording: off the runtime threads.
        let (events_tx, events_rx) = mpsc::channel(RECORDING_EVENTS);
        let recorder_config = config.recorder();
        let recorder =
            tokio::task::spawn_blocking(move || Recorder::start(recorder_config, events_tx))
                .await
                .expect("recorder start-up does not panic")?;
        let registry = Registry::new(RegistryConfig {
            segmenter: Settings {
                segment_target: config.segment_target,
                part_target: config.part_target,
                window: config.hls_window,
                part_hold_back: config.part_hold_back,
            },
            reconnect_window: config.reconnect_window,
            recorder: Some(recorder.clone()),
            ..RegistryConfig::default()
        });
        if webrtc.is_some() {
            registry.enable_webrtc();
        }
        // Renditions come back from this node's transcoders with a per-process secret.
        let abr_secret: Arc<str> = Arc::from(format!("{:032x}", rand::random::<u128>()));
        let authorizer: Arc<dyn Authorizer> = Arc::new(RenditionKeys {
            secret: abr_secret.clone(),
            inner: authorizer,
        });
        let abr_policy = Arc::new(OnceLock::new());
        let abr = config.abr.clone().map(|c| {
            Abr::new(
                c,
                registry.clone(),
                abr_policy.clone(),
                abr_secret,
                addrs.rtmp,
            )
        });
        let ingest = Arc::new(Ingest {
            registry: registry.clone(),
            authorizer,
            rtmp: crate::rtmp::Config::default(),
            batch: config.ingest_batch,
        });
        let puller = Arc::new(OnceLock::new());
        let hls = HlsState {
            registry: registry.clone(),
            guard,
            waits: Waits::default(),
            puller: puller.clone(),
            ladder: config
                .abr
                .as_ref()
                .map_or_else(|| AbrConfig::default().ladder, |c| c.ladder.clone())
                .into(),
        };
        Ok(Self {
            rtmp,
            rtmps,
            http,
            https,
            tls,
            addrs,
            registry,
            ingest,
            hls,
            webrtc,
            puller,
            abr,
            abr_policy,
            max_ingest: config.max_ingest_connections,
            http_limits: config.http.clone(),
            recorder,
            recording_events: Some(events_rx),
        })
    }

    /// The recorder's events for the control plane (files, index, gaps, drops, alerts,
    /// start-up repairs). Take it before [`Server::run`]; `None` the second time. Events of
    /// a server whose receiver was never taken are discarded.
    pub fn take_recording_events(&mut self) -> Option<mpsc::Receiver<RecordingEvent>> {
        self.recording_events.take()
    }

    /// Where the listeners are.
    pub fn addrs(&self) -> &BoundAddrs {
        &self.addrs
    }

    /// Where the TLS certificate came from.
    pub fn cert_source(&self) -> &CertSource {
        &self.tls.source
    }

    /// A handle for the other planes.
    pub fn data_plane(&self) -> DataPlane {
        DataPlane {
            registry: self.registry.clone(),
            recorder: self.recorder.clone(),
            puller: self.puller.clone(),
            abr_policy: self.abr_policy.clone(),
        }
    }

    /// The HTTP routes: `/hls/...`, `/healthz`, `/readyz`, merged with `extra`.
    fn router(&self, extra: Router) -> Router {
        let addrs = self.addrs.clone();
        let registry = self.registry.clone();
        let health = Router::new()
            .route(
                "/healthz",
                get(move || {
                    let streams = registry.len();
                    async move { axum::Json(json!({"status": "ok", "streams": streams})) }
                }),
            )
            .route(
                "/readyz",
                get(move || {
                    let a = addrs.clone();
                    async move {
                        axum::Json(json!({
                            "status": "ready",
                            "listeners": {
                                "rtmp": a.rtmp.to_string(),
                                "rtmps": a.rtmps.map(|x| x.to_string()),
                                "http": a.http.to_string(),
                                "https": a.https.map(|x| x.to_string()),
                                "webrtc": a.webrtc.map(|x| x.to_string()),
                            }
                        }))
                    }
                }),
            );
        // Browser players on any origin may fetch playlists and media.
        let hls = http::router(self.hls.clone()).layer(CorsLayer::permissive());
        // WHEP sets its own CORS headers (it must name `Authorization`).
        let whep = http::whep_router(http::WhepState {
            hls: self.hls.clone(),
            node: self.webrtc.clone(),
        });
        health.merge(hls).merge(whep).merge(extra)
    }

    /// Serves until `shutdown` fires, then closes the recordings.
    pub async fn run(mut self, extra: Router, shutdown: CancellationToken) {
        // Nobody will read them: let the writers discard events instead of keeping them.
        drop(self.recording_events.take());
        let recorder = self.recorder.clone();
        let router = self.router(extra);
        let mut tasks = JoinSet::new();
        let limit = Arc::new(Semaphore::new(self.max_ingest));
        tasks.spawn(accept_rtmp(
            self.rtmp,
            None,
            self.ingest.clone(),
            limit.clone(),
            shutdown.clone(),
        ));
        if let Some(l) = self.rtmps {
            let acceptor = TlsAcceptor::from(self.tls.rtmps.clone());
            tasks.spawn(accept_rtmp(
                l,
                Some(acceptor),
                self.ingest.clone(),
                limit,
                shutdown.clone(),
            ));
        }
        // One admission gate for both listeners: the caps bound the process's sockets.
        let limits = Arc::new(self.http_limits.clone());
        let gate = Gate::new(&limits);
        tasks.spawn(accept_http(
            self.http,
            None,
            router.clone(),
            limits.clone(),
            gate.clone(),
            shutdown.clone(),
        ));
        if let Some(l) = self.https {
            let acceptor = TlsAcceptor::from(self.tls.https.clone());
            tasks.spawn(accept_http(
                l,
                Some(acceptor),
                router,
                limits,
                gate,
                shutdown.clone(),
            ));
        }
        if let Some(node) = self.webrtc.clone() {
            tasks.spawn(node.run(shutdown.clone()));
        }
        if let Some(abr) = self.abr.clone() {
            tasks.spawn(abr.run(shutdown.clone()));
        }
        let registry = self.registry.clone();
        let reaper_stop = shutdown.clone();
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = tick.tick() => registry.expire(std::time::Instant::now()),
                    () = reaper_stop.cancelled() => break,
                }
            }
        });
        while let Some(r) = tasks.join_next().await {
            if let Err(e) = r {
                warn!(error = %e, "a listener task ended abnormally");
            }
        }
        // Publishers are gone: their last parts are queued. Close the files cleanly.
        if tokio::task::spawn_blocking(move || recorder.shutdown())
            .await
            .is_err()
        {
            warn!("the recorder did not shut down cleanly");
        }
    }
}

/// TLS handshakes must finish within this.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

async fn accept_rtmp(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    ingest: Arc<Ingest>,
    limit: Arc<Semaphore>,
    shutdown: CancellationToken,
) {
    let mut conns = JoinSet::new();
    loop {
        let (sock, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    warn!(error = %e, "rtmp accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            warn!(%peer, "ingest connection limit reached; connection refused");
            continue;
        };
        let _ = sock.set_nodelay(true);
        let fd = sock.as_raw_fd();
        let ingest = ingest.clone();
        let stop = shutdown.clone();
        let tls = tls.clone();
        conns.spawn(async move {
            let _permit = permit;
            match tls {
                None => ingest.serve(sock, peer, false, Some(fd), stop).await,
                Some(acceptor) => {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(sock)).await {
                        Ok(Ok(s)) => ingest.serve(s, peer, true, Some(fd), stop).await,
                        Ok(Err(e)) => warn!(%peer, error = %e, "rtmps TLS handshake failed"),
                        Err(_) => warn!(%peer, "rtmps TLS handshake timed out"),
                    }
                }
            }
        });
    }
    // Let connections see the shutdown and close their publishers.
    while conns.join_next().await.is_some() {}
}

async fn accept_http(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: Router,
    limits: Arc<HttpLimits>,
    gate: Arc<Gate>,
    shutdown: CancellationToken,
) {
    let mut conns = JoinSet::new();
    loop {
        let (sock, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    warn!(error = %e, "http accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let Ok(admission) = gate.admit(peer.ip()) else {
            // Closed at once with a reset: no TIME_WAIT, nothing kept for the client.
            let _ = sock.set_zero_linger();
            continue;
        };
        let _ = sock.set_nodelay(true);
        let router = router.clone();
        let tls = tls.clone();
        let stop = shutdown.clone();
        let limits = limits.clone();
        conns.spawn(async move {
            let _admission = admission;
            http::serve_socket(sock, peer, tls, router, &limits, stop).await;
        });
    }
    conns.abort_all();
}

/// Raises the soft limit on open files to the hard limit: every connection is a file, and
/// distributions often start services with a soft limit of 1024. Returns (before, after)
/// soft limits; `None` when the limits cannot be read.
pub fn raise_open_files_limit() -> Option<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return None;
    }
    let before = lim.rlim_cur;
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads the struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = lim.rlim_max;
        }
    }
    Some((before, lim.rlim_cur))
}

/// Logs the listeners, for `camstream serve` start-up.
pub fn log_listeners(addrs: &BoundAddrs) {
    info!(rtmp = %addrs.rtmp, "RTMP ingest: rtmp://{}/live/<stream key>", addrs.rtmp);
    if let Some(a) = addrs.rtmps {
        info!(rtmps = %a, "RTMPS ingest: rtmps://{a}/live/<stream key>");
    }
    info!(http = %addrs.http, "HLS: http://{}/hls/<camera>/playlist.m3u8 (LL-HLS), .../ts/playlist.m3u8 (MPEG-TS)", addrs.http);
    if let Some(a) = addrs.https {
        info!(https = %a, "HTTPS (h2, HTTP/1.1): https://{a}/hls/<camera>/playlist.m3u8");
    }
}
