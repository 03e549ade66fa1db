//! camstream's control plane: the `/api/v1` REST API (axum, OpenAPI via utoipa), auth (JWT
//! sessions with rotating refresh tokens, API tokens, RBAC, rate limits), the store (sqlx
//! over SQLite or PostgreSQL), the cache (Redis or in-memory), and the data-plane contracts
//! it answers: publish authorization ([`auth::StoreAuthorizer`]), signed playback
//! ([`auth::SignedPlayback`]) and stream health ([`ControlPlane::report_health`]).
//!
//! It is a library: the `camstream` binary builds a [`ControlPlaneConfig`] from its flags,
//! calls [`ControlPlane::start`], merges [`ControlPlane::router`] into the HTTP listener it
//! shares with the data plane (which serves `/hls/...`, `/healthz`, `/readyz`), and hands
//! [`ControlPlane::authorizer`] / [`ControlPlane::playback_guard`] to the data plane.
//!
//! # Metrics
//! `start` installs the process-wide `metrics` recorder (Prometheus) and `/metrics` renders
//! it. The control plane records `camstream_http_request_duration_seconds{method,route,status}`;
//! the data plane records through the same `metrics` macros: `camstream_streams_active`
//! (gauge), `camstream_bytes_in_total`, `camstream_bytes_out_total` (counters) and
//! `camstream_viewers` (gauge), which appear in `/metrics` with no further wiring.

mod alerts;
pub mod api;
pub mod auth;
pub mod cache;
mod clock;
mod cluster;
mod config;
mod error;
mod events;
mod health;
pub mod notify;
pub mod rbac;
pub mod recordings;
mod state;
pub mod store;
pub mod test_hooks;

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use camstream_protocol::StreamHealth;
use camstream_protocol::auth::{Authorizer, PlaybackGuard};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use camstream_raft_store::{Capacity as NodeCapacity, NodeInfo};
pub use cluster::{Cluster, send_join};
pub use config::{ClusterConfig, ControlPlaneConfig, NotifyConfig, WsConfig};
pub use error::{ApiError, ErrorCode};
pub use health::{DayAnalytics, HealthError, LiveStatus};
pub use test_hooks::TestHookArgs;

use auth::keys::Keys;
use cache::{Cache, CacheError, MemoryCache, RedisCache};
use recordings::{Archive, RecorderHost, RecordingSink, Recordings, Retention, Tiers};
use state::Shared;
use store::{CameraFilter, NewUser, Store, StoreError};

/// How often the background tasks sweep expired cache entries and stale streams.
const SWEEP_EVERY: Duration = Duration::from_secs(5);
/// Expired refresh tokens are deleted every this many sweeps (about an hour).
const PURGE_EVERY_SWEEPS: u64 = 720;
/// The first retention pass runs this long after the recordings service starts (or after
/// one interval, if shorter).
const FIRST_RETENTION: Duration = Duration::from_secs(60);

/// Why the control plane could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The store could not be opened or migrated.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// Redis could not be reached.
    #[error("cache: {0}")]
    Cache(#[from] CacheError),
    /// The data directory or the JWT secret file could not be used.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The configured admin password or JWT secret is unusable.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The cluster node (raft store, `--raft-addr` listener, openraft) could not start.
    #[error("cluster: {0}")]
    Cluster(String),
}

/// A running control plane. Cheap to clone; background tasks stop on
/// [`ControlPlane::shutdown`] or when the cancellation token given to
/// [`ControlPlane::start_with_cancel`] is cancelled.
#[derive(Clone)]
pub struct ControlPlane {
    shared: Arc<Shared>,
    cancel: CancellationToken,
    tasks: Arc<tokio::sync::Mutex<JoinSet<()>>>,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("store", &self.shared.store.backend())
            .field("cache", &self.shared.cache.backend())
            .finish_non_exhaustive()
    }
}

/// The process-wide Prometheus recorder: installed once, shared by every control plane in
/// the process (tests start several).
fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(api::HTTP_DURATION.to_owned()),
                    &[
                        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                    ],
                )
                .expect("bucket list is not empty");
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!(
                    "a metrics recorder was already installed; /metrics shows only its own"
                );
            }
            metrics::describe_histogram!(
                api::HTTP_DURATION,
                metrics::Unit::Seconds,
                "HTTP request latency by route"
            );
            metrics::describe_gauge!("camstream_streams_active", "Cameras currently publishing");
            metrics::describe_counter!(
                "camstream_bytes_in_total",
                metrics::Unit::Bytes,
                "Media bytes received"
            );
            metrics::describe_counter!(
                "camstream_bytes_out_total",
                metrics::Unit::Bytes,
                "Media bytes served"
            );
            metrics::describe_gauge!("camstream_viewers", "Current HLS viewers");
            metrics::describe_gauge!(
                "camstream_active_streams",
                "Cameras publishing to this node (the HPA metric)"
            );
            metrics::describe_gauge!(
                "active_streams_per_pod",
                "Same as camstream_active_streams, under the design's HPA name"
            );
            metrics::describe_gauge!("camstream_raft_term", "Current raft term (cluster nodes)");
            metrics::describe_gauge!(
                "camstream_raft_leader_id",
                "The raft leader this node knows of, 0 when none"
            );
            metrics::describe_gauge!("camstream_raft_is_leader", "1 on the raft leader");
            metrics::describe_gauge!(
                "camstream_raft_commit_index",
                "Last committed raft log index this node saved"
            );
            metrics::describe_gauge!(
                "camstream_raft_last_applied",
                "Last raft log index applied to this node's state"
            );
            metrics::describe_gauge!(
                "camstream_alerts_open",
                "Open alerts by type, from the shared store (CAMERA_OFFLINE, STREAM_FPS_LOW, STREAM_FRAMES_DROPPED, STREAM_BITRATE_LOW)"
            );
            metrics::describe_counter!(
                "camstream_auth_failures_total",
                "API requests refused for bad credentials or tokens, by error code"
            );
            metrics::describe_gauge!(
                "camstream_storage_used_ratio",
                "Used share of the recordings file system (df Use%), by tier"
            );
            metrics::describe_gauge!(
                "camstream_cluster_lease_held",
                "1 while this node holds its liveness lease (its own view)"
            );
            metrics::describe_counter!(
                "camstream_notify_sent_total",
                "Notifications delivered, by channel kind (email, sms, webhook)"
            );
            metrics::describe_counter!(
                "camstream_notify_failed_total",
                "Failed notification attempts, by channel kind"
            );
            metrics::describe_counter!(
                "camstream_notify_dead_total",
                "Notifications given up after the last attempt (dead letters), by channel kind"
            );
            metrics::describe_gauge!(
                "camstream_notify_queue",
                "Notification deliveries waiting (state=pending) and dead letters (state=dead), from the shared store"
            );
            metrics::describe_gauge!(
                "camstream_notify_breaker_state",
                "Circuit breaker per destination: 0 closed, 1 open, 2 half-open"
            );
            metrics::describe_gauge!(
                "camstream_ws_clients",
                "WebSocket clients connected to GET /api/v1/ws on this node"
            );
            metrics::describe_counter!(
                "camstream_ws_slow_consumers_total",
                "WebSocket clients closed (4008) for not keeping up with their events"
            );
            metrics::describe_counter!(
                "camstream_ws_keepalive_timeouts_total",
                "WebSocket clients closed (4009) for not answering a ping"
            );
            metrics::describe_counter!(
                "camstream_events_total",
                "Live events published to this node's WebSocket clients, by type"
            );
            metrics::describe_counter!(
                "camstream_events_relay_dropped_total",
                "Live events not relayed to another cluster node (queue full, node unreachable); one per event and node"
            );
            handle
        })
        .clone()
}

/// Reads the master secret from config or `{data_dir}/jwt.secret`, generating the file on
/// first start.
fn master_secret(config: &ControlPlaneConfig) -> Result<Vec<u8>, StartError> {
    if let Some(s) = &config.jwt_secret {
        if s.len() < 16 {
            return Err(StartError::Config(
                "the JWT secret must be at least 16 bytes".into(),
            ));
        }
        return Ok(s.as_bytes().to_vec());
    }
    let path = config.data_dir.join("jwt.secret");
    let io = |what, source| StartError::Io {
        what,
        path: path.display().to_string(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(s) if s.trim().len() >= 32 => return Ok(s.trim().as_bytes().to_vec()),
        Ok(_) => {
            return Err(StartError::Config(format!(
                "{} is too short",
                path.display()
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("reading", e)),
    }
    use rand::Rng;
    let bytes: [u8; 32] = rand::rng().random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    write_private(&path, &hex).map_err(|e| io("writing", e))?;
    tracing::info!(path = %path.display(), "generated the JWT secret");
    Ok(hex.into_bytes())
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()
}

/// Creates the first admin when there are no users.
async fn ensure_admin(store: &dyn Store, config: &ControlPlaneConfig) -> Result<(), StartError> {
    if store.count_users().await? > 0 {
        return Ok(());
    }
    let (password, generated) = match &config.admin_password {
        Some(p) => {
            auth::password::check_strength(p, &config.admin_username)
                .map_err(|e| StartError::Config(format!("admin password {e}")))?;
            (p.clone(), false)
        }
        None => (auth::password::generate(20), true),
    };
    let hash = auth::password::hash(password.clone())
        .await
        .map_err(StartError::Config)?;
    store
        .create_user(NewUser {
            username: config.admin_username.clone(),
            email: None,
            password_hash: hash,
            role: rbac::Role::Admin,
            company: None,
        })
        .await?;
    if generated {
        // Printed once: the operator must copy it now (it is not stored anywhere in clear).
        tracing::warn!(username = %config.admin_username, %password, "created the first admin with a generated password; change it after logging in");
    } else {
        tracing::info!(username = %config.admin_username, "created the first admin");
    }
    Ok(())
}

impl ControlPlane {
    /// Connects the store (running migrations) and the cache, creates the first admin,
    /// installs the metrics recorder and starts the background tasks.
    ///
    /// # Errors
    /// [`StartError`] when a dependency is unreachable or the configuration is unusable.
    pub async fn start(config: ControlPlaneConfig) -> Result<Self, StartError> {
        Self::start_with_cancel(config, CancellationToken::new()).await
    }

    /// [`ControlPlane::start`], with background tasks tied to `cancel`.
    ///
    /// # Errors
    /// As [`ControlPlane::start`].
    pub async fn start_with_cancel(
        config: ControlPlaneConfig,
        cancel: CancellationToken,
    ) -> Result<Self, StartError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| StartError::Io {
            what: "creating",
            path: config.data_dir.display().to_string(),
            source,
        })?;
        let metrics = metrics_handle();
        let master = master_secret(&config)?;
        let keys =
            Arc::new(Keys::from_master(&master).map_err(|e| StartError::Config(e.to_string()))?);
        let store = store::connect(config.database_url.as_deref(), &config.data_dir).await?;
        let (cache, memory_cache): (Arc<dyn Cache>, _) = match &config.redis_url {
            Some(url) => (Arc::new(RedisCache::connect(url).await?), None),
            None => {
                let m = Arc::new(MemoryCache::default());
                (m.clone() as Arc<dyn Cache>, Some(m))
            }
        };
        ensure_admin(&*store, &config).await?;
        let recordings = recordings_service(&config, store.clone())?;
        let reset = store.reset_node_streams(&config.node_id).await?;
        if reset > 0 {
            tracing::info!(
                cameras = reset,
                "marked streams of the previous run offline"
            );
        }
        let mut tasks = JoinSet::new();
        let cluster = match &config.cluster {
            Some(c) => Some(
                Cluster::start(c.clone(), &config.data_dir, &mut tasks, cancel.clone())
                    .await
                    .map_err(|e| StartError::Cluster(e.to_string()))?,
            ),
            None => None,
        };
        if cluster.is_some() && config.redis_url.is_none() {
            tracing::warn!(
                "cluster node without --redis-url: login sessions and rate-limit counters are this node's own (API tokens work on every node); give every node the same Redis"
            );
        }
        tracing::info!(
            store = store.backend(),
            cache = cache.backend(),
            clustered = cluster.is_some(),
            "control plane started"
        );
        let events = Arc::new(events::Bus::new(
            config.ws.backlog_len,
            config.ws.backlog_age,
        ));
        let shared = Arc::new(Shared {
            events,
            config,
            store,
            cache,
            memory_cache,
            keys,
            metrics,
            health: health::Tracker::default(),
            alerting: alerts::Alerting::default(),
            live: std::sync::OnceLock::new(),
            recordings,
            cluster,
        });
        if let Some(cluster) = &shared.cluster {
            // Camera changes made through other nodes' APIs reach this node's streams.
            let weak = Arc::downgrade(&shared);
            cluster.on_camera_control(Box::new(move |c| {
                if let Some(shared) = weak.upgrade() {
                    shared.apply_camera_control(c);
                }
            }));
            // Events of the other nodes reach this node's WebSocket clients, and this
            // node's reach theirs.
            let bus = Arc::downgrade(&shared.events);
            cluster.on_events(Box::new(move |batch| {
                if let Some(bus) = bus.upgrade() {
                    for e in batch {
                        bus.publish_here(e);
                    }
                }
            }));
            let (tx, rx) = tokio::sync::mpsc::channel(events::relay::QUEUE);
            shared.events.set_relay(tx);
            tasks.spawn(events::relay::run(
                cluster.clone(),
                rx,
                shared.config.ws.relay_every,
                cancel.clone(),
            ));
        }
        tasks.spawn(events::outbox::run(
            shared.store.clone(),
            shared.events.clone(),
            shared.config.ws.outbox_poll,
            cancel.clone(),
        ));
        let cp = Self {
            shared,
            cancel,
            tasks: Arc::new(tokio::sync::Mutex::new(tasks)),
        };
        let notifier = Arc::new(
            notify::Notifier::new(
                cp.shared.store.clone(),
                cp.shared.config.notify.clone(),
                &cp.shared.config.node_id,
            )
            .map_err(StartError::Config)?,
        );
        {
            let mut tasks = cp.tasks.lock().await;
            tasks.spawn(sweeper(cp.shared.clone(), cp.cancel.clone()));
            tasks.spawn(notifier.clone().run_enqueuer(cp.cancel.clone()));
            tasks.spawn(notifier.run_worker(cp.cancel.clone()));
        }
        Ok(cp)
    }

    /// The `/api/v1/...`, `/api/docs` and `/metrics` routes with their layers. Serve it with
    /// `into_make_service_with_connect_info::<SocketAddr>()` so login throttling sees client
    /// addresses.
    pub fn router(&self) -> axum::Router {
        api::router(self.shared.clone())
    }

    /// Publish authorization over the store, for the data plane's ingest.
    pub fn authorizer(&self) -> Arc<dyn Authorizer> {
        Arc::new(auth::StoreAuthorizer::new(
            self.shared.store.clone(),
            self.shared.keys.clone(),
            self.shared.config.rtmp_app.clone(),
            self.shared.config.require_publish_token,
        ))
    }

    /// Which cameras the data plane transcodes into its ABR ladder: the camera's
    /// `abrProfile` (a store read per live camera every few seconds).
    pub fn abr_policy(&self) -> Arc<dyn camstream_protocol::abr::AbrPolicy> {
        Arc::new(StoreAbrPolicy(self.shared.store.clone()))
    }

    /// Playback authorization (signed tokens, or everything with `public_playback`).
    pub fn playback_guard(&self) -> Arc<dyn PlaybackGuard> {
        Arc::new(auth::SignedPlayback::new(
            self.shared.keys.clone(),
            self.shared.config.public_playback,
        ))
    }

    /// Judges this node's recordings file system from its used share (`df`'s Use%, 0..1;
    /// call about once a second): `STORAGE_FULL` for admins over the rule's threshold
    /// (default 0.9), resolved when back below it less 2 %. Never fails (logged).
    pub async fn report_storage(&self, used_ratio: f64) {
        alerts::storage_used(&self.shared, used_ratio).await;
    }

    /// Records the data plane's health reports (call about once a second with every
    /// camera it knows): cache `stream:status:{id}` (30 s TTL) and `viewers:{id}`, the
    /// day's analytics, and `cameras.stream_status` when a state changes. On a cluster node,
    /// fences first (drops the publishers of cameras placed on another node at a newer
    /// epoch, and all of them once the lease has been lapsed for a lease), then claims for
    /// this node every camera published here that the placement puts elsewhere (or nowhere).
    ///
    /// # Errors
    /// The cache or store refused; the next report retries (nothing is half-applied per
    /// camera that matters: the status row is written last).
    ///
    /// # Cancel safety
    /// Dropping the future may leave later cameras of the batch unrecorded until the next
    /// report.
    pub async fn report_health(&self, reports: Vec<StreamHealth>) -> Result<(), HealthError> {
        let s = &self.shared;
        let online: Vec<String> = match &s.cluster {
            Some(_) => reports
                .iter()
                .filter(|r| r.state == camstream_protocol::StreamState::Online)
                .map(|r| r.camera_id.clone())
                .collect(),
            None => Vec::new(),
        };
        s.alerting.quality.observe(&reports, clock::now_ms());
        events::stream_health(&s.events, &*s.store, &s.config.node_id, &reports).await;
        let mut changed = Vec::new();
        let recorded = health::record(
            &s.health,
            &*s.store,
            &*s.cache,
            &s.config.node_id,
            reports,
            &mut changed,
        )
        .await;
        events::camera_status(&s.events, &*s.store, &s.config.node_id, changed).await;
        if let Some(cluster) = &s.cluster {
            // Fencing first: a publisher whose camera moved to another node (newer epoch),
            // or every publisher once this node's lease has been lapsed for a lease, goes.
            let drops = cluster.fence_round(&online);
            for d in &drops {
                let reason = match d {
                    cluster::fence::Drop::Moved { .. } => {
                        "fenced: the camera moved to another node"
                    }
                    cluster::fence::Drop::Draining { .. } => "fenced: this node is draining",
                    cluster::fence::Drop::LeaseLapsed { .. } => {
                        "fenced: this node's cluster lease lapsed"
                    }
                };
                let kicked = s
                    .live
                    .get()
                    .is_some_and(|l| l.disconnect_publisher(d.camera(), reason));
                if !kicked {
                    continue;
                }
                match d {
                    cluster::fence::Drop::Moved {
                        camera,
                        held,
                        node,
                        epoch,
                    } => tracing::warn!(
                        camera_id = %camera,
                        old_node = cluster.node_id(),
                        old_epoch = held,
                        new_node = node,
                        new_epoch = epoch,
                        "fenced: the camera moved to another node, publisher dropped"
                    ),
                    cluster::fence::Drop::Draining { camera } => tracing::warn!(
                        camera_id = %camera,
                        node = cluster.node_id(),
                        "fenced: this node is draining and the camera is placed elsewhere, publisher dropped"
                    ),
                    cluster::fence::Drop::LeaseLapsed { camera, lapsed } => tracing::warn!(
                        camera_id = %camera,
                        node = cluster.node_id(),
                        lapsed_ms = lapsed.as_millis() as u64,
                        "fenced: this node's cluster lease lapsed, publisher dropped"
                    ),
                }
            }
            // Without a lease a claim would be refused (or not reach a leader) anyway.
            if !cluster.holds_lease() {
                return recorded;
            }
            // A camera published here is ingested here: the placement follows the publisher
            // (a plain TCP balancer in front of the RTMP ports works).
            for camera in online {
                if drops.iter().any(|d| d.camera() == camera) {
                    continue;
                }
                if let Err(e) = cluster.claim(&camera, Duration::from_millis(500)).await {
                    tracing::debug!(camera_id = %camera, error = %e, "claim not applied");
                }
            }
        }
        recorded
    }

    /// Gives the control plane this node's live streams, so that disabling a camera,
    /// rotating its key or deleting it disconnects the encoder publishing it. Call once.
    pub fn attach_live(&self, live: Arc<dyn camstream_protocol::LiveControl>) {
        if self.shared.live.set(live).is_err() {
            tracing::warn!("live streams were attached to the control plane already");
        }
    }

    /// Starts the recordings service over the recorder `host`: finishes or undoes journaled
    /// tier moves and deletes, reconciles the hot tier with the store (files it does not
    /// know are indexed from the file, rows of files cut off by a crash are closed), turns
    /// recording on for every camera stored with `isRecording`, and schedules retention.
    /// Returns the sink to feed the recorder's events to, in order.
    ///
    /// Call once, after the data plane's recorder repaired the hot tier and before anything
    /// records (a file being written would look like one cut off by a crash).
    ///
    /// # Errors
    /// The store failed, or a recorder was attached already.
    pub async fn start_recordings(
        &self,
        host: Arc<dyn RecorderHost>,
    ) -> Result<RecordingSink, StartError> {
        let s = &self.shared;
        if !s.recordings.attach(host.clone()) {
            return Err(StartError::Config(
                "the recordings service was started twice".into(),
            ));
        }
        let retention = s.recordings.retention.clone();
        let recovered = retention
            .recover()
            .await
            .map_err(|e| StartError::Config(format!("recording journal: {e}")))?;
        if recovered > 0 {
            tracing::info!(
                jobs = recovered,
                "finished the tier moves and deletes of the previous run"
            );
        }
        let mut sink = RecordingSink::new(
            s.store.clone(),
            host.clone(),
            s.config.hot_dir(),
            s.config.node_id.clone(),
            s.cluster.is_some(),
        )
        .with_events(s.events.clone());
        sink.reconcile().await?;
        let mut recorded = Vec::new();
        let mut filter = CameraFilter {
            limit: 500,
            ..CameraFilter::default()
        };
        loop {
            let (page, _) = s.store.list_cameras(&filter).await?;
            let n = page.len() as i64;
            recorded.extend(page.into_iter().filter(|c| c.is_recording).map(|c| c.id));
            if n < filter.limit {
                break;
            }
            filter.offset += n;
        }
        tracing::info!(
            cameras = recorded.len(),
            "recording cameras stored with isRecording"
        );
        host.set_recorded_cameras(recorded);
        self.tasks.lock().await.spawn(retention_schedule(
            retention,
            s.config.retention_interval,
            self.cancel.clone(),
        ));
        Ok(sink)
    }

    /// The store (for the binary's own tools and tests).
    pub fn store(&self) -> Arc<dyn Store> {
        self.shared.store.clone()
    }

    /// The cache.
    pub fn cache(&self) -> Arc<dyn Cache> {
        self.shared.cache.clone()
    }

    /// The signing keys (tests mint tokens with them).
    pub fn keys(&self) -> Arc<Keys> {
        self.shared.keys.clone()
    }

    /// This node's cluster handle, `None` on a single node.
    pub fn cluster(&self) -> Option<&Cluster> {
        self.shared.cluster.as_ref()
    }

    /// Where cameras placed on other nodes are ingested, for the data plane's relay pulls;
    /// `None` on a single node.
    pub fn origin_locator(&self) -> Option<Arc<dyn camstream_protocol::OriginLocator>> {
        self.shared
            .cluster
            .clone()
            .map(|c| Arc::new(c) as Arc<dyn camstream_protocol::OriginLocator>)
    }

    /// The configuration in force.
    pub fn config(&self) -> &ControlPlaneConfig {
        &self.shared.config
    }

    /// Stops the background tasks, waits for them, and marks this node's streams offline.
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        let mut tasks = self.tasks.lock().await;
        while tasks.join_next().await.is_some() {}
        drop(tasks);
        // Nothing this node ingested is live once it stops: say so now rather than at its
        // next start (with a shared database the node may never come back).
        match self
            .shared
            .store
            .reset_node_streams(&self.shared.config.node_id)
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(cameras = n, "marked this node's streams offline"),
            Err(e) => tracing::warn!(error = %e, "could not mark this node's streams offline"),
        }
    }
}

/// Builds the tiers (creating their directories, connecting the archive) and the
/// retention runner.
fn recordings_service(
    config: &ControlPlaneConfig,
    store: Arc<dyn Store>,
) -> Result<Recordings, StartError> {
    let hot = config.hot_dir();
    for dir in std::iter::once(&hot)
        .chain(config.storage_warm.iter())
        .chain(config.storage_cold.iter())
    {
        std::fs::create_dir_all(dir).map_err(|source| StartError::Io {
            what: "creating the storage tier",
            path: dir.display().to_string(),
            source,
        })?;
    }
    let archive = match &config.archive_url {
        Some(url) => Some(Archive::from_url(url).map_err(|e| StartError::Config(e.to_string()))?),
        None => None,
    };
    let tiers = Arc::new(Tiers::new(
        hot,
        config.storage_warm.clone(),
        config.storage_cold.clone(),
        archive,
    ));
    let retention =
        Retention::new(store, tiers).for_node(&config.node_id, config.cluster.is_some());
    #[cfg(feature = "test-hooks")]
    let retention = retention.with_crash_at(config.test_crash_at);
    Ok(Recordings::new(Arc::new(retention)))
}

/// Runs retention every `interval` until cancelled.
async fn retention_schedule(
    retention: Arc<Retention>,
    interval: Duration,
    cancel: CancellationToken,
) {
    let first = tokio::time::Instant::now() + interval.min(FIRST_RETENTION);
    let mut tick = tokio::time::interval_at(first, interval.max(Duration::from_secs(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        let run = retention.run(clock::now_ms());
        tokio::select! {
            () = cancel.cancelled() => break,
            r = run => if let Err(e) = r {
                tracing::warn!(error = %e, "retention pass failed");
            },
        }
    }
}

/// Periodic upkeep: drop expired in-memory cache entries, mark silent cameras offline.
async fn sweeper(shared: Arc<Shared>, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sweeps: u64 = 0;
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        if sweeps.is_multiple_of(PURGE_EVERY_SWEEPS) {
            match shared.store.purge_refresh_tokens(clock::now_ms()).await {
                Ok(n) if n > 0 => tracing::debug!(deleted = n, "purged expired refresh tokens"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "purging refresh tokens failed"),
            }
        }
        sweeps = sweeps.wrapping_add(1);
        if let Some(m) = &shared.memory_cache {
            m.sweep();
        }
        alert_passes(&shared).await;
        let mut changed = Vec::new();
        if let Err(e) = health::sweep(
            &shared.health,
            &*shared.store,
            &*shared.cache,
            shared.config.health_timeout,
            &mut changed,
        )
        .await
        {
            tracing::warn!(error = %e, "health sweep failed");
        }
        events::camera_status(
            &shared.events,
            &*shared.store,
            &shared.config.node_id,
            changed,
        )
        .await;
    }
}

/// The sweeper's alert passes, each with the time passed in: rules reload, offline,
/// login bursts, stream quality, unusual API usage, escalation, history retention.
async fn alert_passes(shared: &Shared) {
    let store = &*shared.store;
    let now = clock::now_ms();
    let rules = match shared
        .alerting
        .reload(store, shared.config.alert_offline_after)
        .await
    {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "alert rules not read; keeping the last ones");
            shared.alerting.rules()
        }
    };
    match alerts::offline_pass(store, &rules, now).await {
        Ok(p) => {
            // The store is shared: in a cluster every node reports the same count
            // (rules take the max over nodes).
            metrics::gauge!("camstream_alerts_open", "type" => alerts::CAMERA_OFFLINE)
                .set(p.open as f64);
            if p.raised > 0 || p.resolved > 0 {
                tracing::debug!(
                    raised = p.raised,
                    resolved = p.resolved,
                    "offline alerts pass"
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "offline alerts pass failed"),
    }
    if let Err(e) = alerts::quiet_logins_pass(store, now).await {
        tracing::warn!(error = %e, "login alerts pass failed");
    }
    match alerts::quality::quality_pass(store, &rules, &shared.alerting.quality, now).await {
        Ok(p) => {
            for (kind, open) in alerts::quality::KINDS.iter().zip(p.open) {
                metrics::gauge!("camstream_alerts_open", "type" => *kind).set(open as f64);
            }
        }
        Err(e) => tracing::warn!(error = %e, "stream quality pass failed"),
    }
    if let Err(e) = alerts::usage::quiet_pass(store, &rules, now).await {
        tracing::warn!(error = %e, "API usage alerts pass failed");
    }
    let bucket = now / clock::ms(shared.config.api_usage_bucket).max(1);
    shared.alerting.usage.prune(bucket - 1);
    if let Err(e) = alerts::escalation::escalation_pass(store, &rules, now).await {
        tracing::warn!(error = %e, "alert escalation pass failed");
    }
    if let Err(e) =
        alerts::escalation::retention_pass(store, shared.config.alert_retention_days, now).await
    {
        tracing::warn!(error = %e, "alert history retention failed");
    }
}

/// [`ControlPlane::abr_policy`]: a camera's `abr_profile` column.
struct StoreAbrPolicy(Arc<dyn store::Store>);

impl camstream_protocol::abr::AbrPolicy for StoreAbrPolicy {
    fn profile<'a>(
        &'a self,
        camera: &'a str,
    ) -> camstream_protocol::auth::BoxFuture<'a, Result<Option<String>, String>> {
        Box::pin(async move {
            match self.0.get_camera(camera).await {
                Ok(Some(c)) if c.abr_profile != "off" && c.is_active => Ok(Some(c.abr_profile)),
                Ok(_) => Ok(None),
                Err(e) => Err(e.to_string()),
            }
        })
    }
}
