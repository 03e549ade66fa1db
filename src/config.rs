//! `camstream serve` configuration: command line, `CAMSTREAM_<FLAG>` environment
//! variables and an optional TOML file (`--config`), merged into one validated [`Serve`].
//!
//! Precedence: command line, then environment, then the file, then the defaults written
//! on each field. The file uses the flag names as keys (`rtmp-addr = "0.0.0.0:1935"`) and
//! may add a `[streams]` table of stream key → camera id.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use serde::Deserialize;

/// camstream: multi-camera live streaming (RTMP/RTMPS in, HLS and LL-HLS out).
#[derive(Debug, Parser)]
#[command(version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the platform (the default).
    Serve(Box<ServeArgs>),
    /// Cluster status and changes through a node's API.
    Cluster(crate::cli::ClusterCli),
}

/// Flags of `camstream serve`. Every flag can also come from `CAMSTREAM_<FLAG>` and from
/// the `--config` file.
#[derive(Debug, Default, Args)]
pub(crate) struct ServeArgs {
    /// TOML configuration file (keys are the flag names).
    #[arg(long, env = "CAMSTREAM_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Data directory (self-signed certificate, recordings, database). Default ./data.
    #[arg(long, env = "CAMSTREAM_DATA_DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// RTMP ingest address. Default 0.0.0.0:1935.
    #[arg(long, env = "CAMSTREAM_RTMP_ADDR")]
    pub(crate) rtmp_addr: Option<String>,
    /// RTMPS ingest address, or "off". Default 0.0.0.0:1936.
    #[arg(long, env = "CAMSTREAM_RTMPS_ADDR")]
    pub(crate) rtmps_addr: Option<String>,
    /// HTTP address (HLS, health, API). Default 0.0.0.0:8080.
    #[arg(long, env = "CAMSTREAM_HTTP_ADDR")]
    pub(crate) http_addr: Option<String>,
    /// HTTPS address (h2 and HTTP/1.1), or "off". Default 0.0.0.0:8443.
    #[arg(long, env = "CAMSTREAM_HTTPS_ADDR")]
    pub(crate) https_addr: Option<String>,
    /// PEM certificate chain for RTMPS/HTTPS. Without --tls-cert/--tls-key a self-signed
    /// certificate is generated once into the data directory.
    #[arg(long, env = "CAMSTREAM_TLS_CERT")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "CAMSTREAM_TLS_KEY")]
    pub(crate) tls_key: Option<PathBuf>,
    /// Development mode: accept any stream key and use it as the camera id.
    #[arg(long, env = "CAMSTREAM_ALLOW_ANY_KEY")]
    pub(crate) allow_any_key: bool,
    /// Serve the web dashboard from this directory (a `web/dist` build) instead of the copy
    /// embedded in the binary. Default: the embedded copy.
    #[arg(long, env = "CAMSTREAM_WEB_DIR")]
    pub(crate) web_dir: Option<PathBuf>,
    /// Target segment duration (segments cut on the first keyframe after it). Default 2s.
    #[arg(long, env = "CAMSTREAM_SEGMENT_TARGET")]
    pub(crate) segment_target: Option<String>,
    /// Target LL-HLS part duration, 100ms–1s. Default 200ms.
    #[arg(long, env = "CAMSTREAM_PART_TARGET")]
    pub(crate) part_target: Option<String>,
    /// Complete segments kept in memory per camera and rendition. Default 8.
    #[arg(long, env = "CAMSTREAM_HLS_WINDOW")]
    pub(crate) hls_window: Option<usize>,
    /// LL-HLS `PART-HOLD-BACK`, in part targets: how far behind the live edge players
    /// start (2–10; RFC 8216bis requires 2, recommends 3). Default 2.5: hls.js settles
    /// about 0.8 s behind with 200 ms parts (3: about 1.0 s).
    #[arg(long, env = "CAMSTREAM_PART_HOLD_BACK")]
    pub(crate) part_hold_back: Option<f64>,
    /// How long a camera may be away and continue the same playlists. Default 30s.
    #[arg(long, env = "CAMSTREAM_RECONNECT_WINDOW")]
    pub(crate) reconnect_window: Option<String>,
    /// Read batching for publishers, 0–50ms: the kernel holds a camera's small messages
    /// (audio) until a quarter of this much of its bitrate arrived (a video frame) or this
    /// long passed, so one wake-up reads several. Video frames above that mark are not
    /// delayed; audio by up to this. 0: off. Default 40ms.
    #[arg(long, env = "CAMSTREAM_INGEST_BATCH")]
    pub(crate) ingest_batch: Option<String>,
    /// A request head must arrive within this (from the accept for a connection's first
    /// request, TLS handshake included; from its first byte for later ones); a request body
    /// at 64 KiB per this time at least. Default 10s.
    #[arg(long, env = "CAMSTREAM_HTTP_HEADER_TIMEOUT")]
    pub(crate) http_header_timeout: Option<String>,
    /// A keep-alive HTTP connection with no request in progress is closed after this.
    /// Default 60s.
    #[arg(long, env = "CAMSTREAM_HTTP_IDLE_TIMEOUT")]
    pub(crate) http_idle_timeout: Option<String>,
    /// A response the client stops taking (less than 64 KiB taken in this time) is cut.
    /// Default 30s.
    #[arg(long, env = "CAMSTREAM_HTTP_WRITE_TIMEOUT")]
    pub(crate) http_write_timeout: Option<String>,
    /// Open HTTP + HTTPS connections; more are closed at once. Default 20000.
    #[arg(long, env = "CAMSTREAM_HTTP_MAX_CONNECTIONS")]
    pub(crate) http_max_connections: Option<usize>,
    /// Open HTTP + HTTPS connections per client address (IPv6: per /64). Default 512.
    #[arg(long, env = "CAMSTREAM_HTTP_MAX_CONNECTIONS_PER_IP")]
    pub(crate) http_max_connections_per_ip: Option<usize>,
    /// LL-HLS blocking playlist reloads waiting at once per connection; more get 429.
    /// Default 16.
    #[arg(long, env = "CAMSTREAM_HTTP_MAX_BLOCKING_RELOADS")]
    pub(crate) http_max_blocking_reloads: Option<usize>,
    /// WebRTC (WHEP) UDP socket, one per node, or "off". Default 0.0.0.0:8189.
    #[arg(long, env = "CAMSTREAM_WEBRTC_ADDR")]
    pub(crate) webrtc_addr: Option<String>,
    /// IP advertised in the WebRTC ICE candidate (the node's public address behind NAT).
    /// Default: the bound address, or the default route's interface when bound to 0.0.0.0.
    #[arg(long, env = "CAMSTREAM_WEBRTC_PUBLIC_IP")]
    pub(crate) webrtc_public_ip: Option<String>,
    /// Most concurrent WebRTC sessions on this node; more get 503. Default 500.
    #[arg(long, env = "CAMSTREAM_WEBRTC_MAX_SESSIONS")]
    pub(crate) webrtc_max_sessions: Option<usize>,
    /// WebRTC sends with UDP segmentation offload (one sendmsg per frame per viewer):
    /// "on" or "off". Default on (the kernel's own fallback where a NIC refuses it).
    #[arg(long, env = "CAMSTREAM_WEBRTC_GSO")]
    pub(crate) webrtc_gso: Option<String>,
    /// WebRTC viewers hear the camera: its AAC audio becomes Opus (one ffmpeg per camera
    /// watched over WebRTC): "on" or "off". Default on.
    #[arg(long, env = "CAMSTREAM_WEBRTC_AUDIO")]
    pub(crate) webrtc_audio: Option<String>,
    /// ICE servers handed to WebRTC players by the API, comma-separated URLs
    /// (stun:host:port, turn:host:port). Default none: the node is ICE-lite with a
    /// reachable candidate (docs/webrtc.md).
    #[arg(long, env = "CAMSTREAM_WEBRTC_ICE_SERVERS")]
    pub(crate) webrtc_ice_servers: Option<String>,
    /// ABR ladder of this node (profile "default"): HEIGHTp:KBPSk items, comma-separated,
    /// or "off" (no transcoding). Default 720p:2500k,480p:1000k,240p:400k; renditions at or
    /// above a camera's height are left out.
    #[arg(long, env = "CAMSTREAM_ABR_LADDER")]
    pub(crate) abr_ladder: Option<String>,
    /// Most cameras transcoded into the ladder at once on this node (an ffmpeg each, about
    /// a core); more are refused. Default 2.
    #[arg(long, env = "CAMSTREAM_ABR_MAX_CAMERAS")]
    pub(crate) abr_max_cameras: Option<usize>,
    /// Every camera gets the ladder, whatever its abrProfile (development, benchmarks).
    #[arg(long, env = "CAMSTREAM_ABR_ALL_CAMERAS")]
    pub(crate) abr_all_cameras: bool,
    /// Recordings root. Default <data-dir>/recordings.
    #[arg(long, env = "CAMSTREAM_RECORDINGS_DIR")]
    pub(crate) recordings_dir: Option<PathBuf>,
    /// Recording file length: files are cut on the first keyframe after it (10s–24h).
    /// Default 1h.
    #[arg(long, env = "CAMSTREAM_RECORD_CHUNK")]
    pub(crate) record_chunk: Option<String>,
    /// fdatasync interval per recording file (0: after every write, "off": never). Default 2s.
    #[arg(long, env = "CAMSTREAM_RECORD_FSYNC")]
    pub(crate) record_fsync: Option<String>,
    /// Below this much free space on the recordings file system, whole fragments are
    /// dropped with a STORAGE_FULL alert (bytes, or with K/M/G suffix; 0: only when a write
    /// fails with ENOSPC). Default 512M.
    #[arg(long, env = "CAMSTREAM_RECORD_MIN_FREE")]
    pub(crate) record_min_free: Option<String>,
    /// Warm storage tier directory (retention moves recordings here). Default: none.
    #[arg(long, env = "CAMSTREAM_STORAGE_WARM")]
    pub(crate) storage_warm: Option<PathBuf>,
    /// Cold storage tier directory. Default: none.
    #[arg(long, env = "CAMSTREAM_STORAGE_COLD")]
    pub(crate) storage_cold: Option<PathBuf>,
    /// Archive in S3-compatible object storage: `s3://bucket/prefix`. Endpoint, region and
    /// credentials come from the standard AWS_* variables (AWS_ENDPOINT_URL,
    /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION). Default: none.
    #[arg(long, env = "CAMSTREAM_ARCHIVE_URL")]
    pub(crate) archive_url: Option<String>,
    /// How often the retention policy runs (the first pass a minute after start, or one
    /// interval if shorter). Default 1h.
    #[arg(long, env = "CAMSTREAM_RETENTION_INTERVAL")]
    pub(crate) retention_interval: Option<String>,
    /// Lifetime of signed recording URLs (downloads, VOD playlists) when the request names
    /// none. Default 15m.
    #[arg(long, env = "CAMSTREAM_RECORDING_URL_TTL")]
    pub(crate) recording_url_ttl: Option<String>,
    /// How long an active camera that was streaming stays offline before a CAMERA_OFFLINE
    /// alert is raised (resolved when it streams again). Default 5m.
    #[arg(long, env = "CAMSTREAM_ALERT_OFFLINE_AFTER")]
    pub(crate) alert_offline_after: Option<String>,
    /// Resolved alerts (and their notification outbox rows) older than this many days are
    /// deleted; 0 keeps them forever. Default 90.
    #[arg(long, env = "CAMSTREAM_ALERT_RETENTION_DAYS")]
    pub(crate) alert_retention_days: Option<u32>,
    /// Test hooks (`--test-crash-at`): present only in builds with the control plane's
    /// `test-hooks` feature, which tests turn on and release builds do not.
    #[command(flatten)]
    pub(crate) test_hooks: camstream_controlplane::TestHookArgs,
    /// Notification delivery (`--smtp-*`, `--sms-*`, `--notify-*`).
    #[command(flatten)]
    pub(crate) notify: crate::notify_args::NotifyArgs,
    /// Log format: text or json. Default text.
    #[arg(long, env = "CAMSTREAM_LOG_FORMAT")]
    pub(crate) log_format: Option<String>,
    /// Store: `postgres://user:pass@host/db` (production) or `sqlite://path`. Default: SQLite
    /// at <data-dir>/camstream.db.
    #[arg(long, env = "CAMSTREAM_DATABASE_URL")]
    pub(crate) database_url: Option<String>,
    /// Cache, sessions and rate limits: `redis://host:port/db`. Default: in-process.
    #[arg(long, env = "CAMSTREAM_REDIS_URL")]
    pub(crate) redis_url: Option<String>,
    /// Password of the first admin (user `admin`), used when no user exists yet. Default: a
    /// random one, printed once to the log.
    #[arg(long, env = "CAMSTREAM_ADMIN_PASSWORD", hide_env_values = true)]
    pub(crate) admin_password: Option<String>,
    /// Master secret for JWTs and playback signatures; every node of a cluster must share
    /// it. Default: generated once into <data-dir>/jwt.secret.
    #[arg(long, env = "CAMSTREAM_JWT_SECRET", hide_env_values = true)]
    pub(crate) jwt_secret: Option<String>,
    /// Serve HLS without playback tokens (implied by --allow-any-key).
    #[arg(long, env = "CAMSTREAM_PUBLIC_PLAYBACK")]
    pub(crate) public_playback: bool,
    /// Refuse publishing without a valid publish token (`KEY?token=...`).
    #[arg(long, env = "CAMSTREAM_REQUIRE_PUBLISH_TOKEN")]
    pub(crate) require_publish_token: bool,
    /// Host name put into the rtmpUrl/rtmpsUrl the API hands out. Default localhost.
    #[arg(long, env = "CAMSTREAM_PUBLIC_HOST")]
    pub(crate) public_host: Option<String>,
    /// Base URL of playback links the API hands out. Default http://<public-host>:<http port>.
    #[arg(long, env = "CAMSTREAM_PUBLIC_BASE_URL")]
    pub(crate) public_base_url: Option<String>,
    /// Highest rate limit (requests per hour) an API token may have; a token's limit is
    /// also never above its creator's own. Stored tokens above it are held to it.
    /// Default 10000.
    #[arg(long, env = "CAMSTREAM_MAX_TOKEN_RATE_LIMIT")]
    pub(crate) max_token_rate_limit: Option<u32>,
    /// Cluster: this node's raft id (1 or more). With it the node runs raft; a node given
    /// --node-id and no --join starts a new cluster. Needs --database-url postgres://...,
    /// --raft-addr and a cluster secret. Default: no cluster.
    #[arg(long, env = "CAMSTREAM_NODE_ID")]
    pub(crate) node_id: Option<u64>,
    /// Cluster: node-to-node raft RPC address (HTTP, signed with the cluster secret).
    #[arg(long, env = "CAMSTREAM_RAFT_ADDR")]
    pub(crate) raft_addr: Option<String>,
    /// Cluster: QUIC relay address (UDP), advertised to the other nodes. Default: none.
    #[arg(long, env = "CAMSTREAM_RELAY_ADDR")]
    pub(crate) relay_addr: Option<String>,
    /// Cluster: idle relay streams close after this. Default 30s.
    #[arg(long, env = "CAMSTREAM_RELAY_IDLE_TIMEOUT")]
    pub(crate) relay_idle_timeout: Option<String>,
    /// Cluster: any member's API base URL (e.g. http://10.0.0.1:8080) to join through.
    #[arg(long, env = "CAMSTREAM_JOIN")]
    pub(crate) join: Option<String>,
    /// Cluster: the secret every node shares; node-to-node requests are signed with a key
    /// derived from it (at least 16 bytes).
    #[arg(long, env = "CAMSTREAM_CLUSTER_SECRET", hide_env_values = true)]
    pub(crate) cluster_secret: Option<String>,
    /// Cluster: file holding the cluster secret (instead of --cluster-secret).
    #[arg(long, env = "CAMSTREAM_CLUSTER_SECRET_FILE")]
    pub(crate) cluster_secret_file: Option<PathBuf>,
    /// Cluster: API base URL the other nodes and clients use for this node. Default
    /// --public-base-url.
    #[arg(long, env = "CAMSTREAM_ADVERTISE_API")]
    pub(crate) advertise_api: Option<String>,
    /// Cluster: raft HOST:PORT the other nodes use. Default --raft-addr (with --public-host
    /// when it binds all interfaces).
    #[arg(long, env = "CAMSTREAM_ADVERTISE_RAFT")]
    pub(crate) advertise_raft: Option<String>,
    /// Cluster: relay HOST:PORT the other nodes use. Default --relay-addr (with
    /// --public-host when it binds all interfaces).
    #[arg(long, env = "CAMSTREAM_ADVERTISE_RELAY")]
    pub(crate) advertise_relay: Option<String>,
    /// Cluster: RTMP URL base (rtmp://host:port) handed to publishers of cameras placed on
    /// this node. Default rtmp://<public-host>:<rtmp port>.
    #[arg(long, env = "CAMSTREAM_ADVERTISE_RTMP")]
    pub(crate) advertise_rtmp: Option<String>,
    /// Cluster: liveness lease; a node that cannot renew it for this long loses its cameras.
    /// Default 2s.
    #[arg(long, env = "CAMSTREAM_LEASE")]
    pub(crate) lease: Option<String>,
}

/// The config file's shape: the flags in kebab-case plus `[streams]`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct File {
    data_dir: Option<PathBuf>,
    rtmp_addr: Option<String>,
    rtmps_addr: Option<String>,
    http_addr: Option<String>,
    https_addr: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    allow_any_key: Option<bool>,
    web_dir: Option<PathBuf>,
    segment_target: Option<String>,
    part_target: Option<String>,
    hls_window: Option<usize>,
    part_hold_back: Option<f64>,
    reconnect_window: Option<String>,
    ingest_batch: Option<String>,
    http_header_timeout: Option<String>,
    http_idle_timeout: Option<String>,
    http_write_timeout: Option<String>,
    http_max_connections: Option<usize>,
    http_max_connections_per_ip: Option<usize>,
    http_max_blocking_reloads: Option<usize>,
    webrtc_addr: Option<String>,
    webrtc_public_ip: Option<String>,
    webrtc_max_sessions: Option<usize>,
    webrtc_gso: Option<String>,
    webrtc_audio: Option<String>,
    webrtc_ice_servers: Option<String>,
    abr_ladder: Option<String>,
    abr_max_cameras: Option<usize>,
    abr_all_cameras: Option<bool>,
    recordings_dir: Option<PathBuf>,
    record_chunk: Option<String>,
    record_fsync: Option<String>,
    record_min_free: Option<String>,
    storage_warm: Option<PathBuf>,
    storage_cold: Option<PathBuf>,
    archive_url: Option<String>,
    retention_interval: Option<String>,
    recording_url_ttl: Option<String>,
    alert_offline_after: Option<String>,
    alert_retention_days: Option<u32>,
    log_format: Option<String>,
    database_url: Option<String>,
    redis_url: Option<String>,
    admin_password: Option<String>,
    jwt_secret: Option<String>,
    public_playback: Option<bool>,
    require_publish_token: Option<bool>,
    public_host: Option<String>,
    public_base_url: Option<String>,
    max_token_rate_limit: Option<u32>,
    node_id: Option<u64>,
    raft_addr: Option<String>,
    relay_addr: Option<String>,
    relay_idle_timeout: Option<String>,
    join: Option<String>,
    cluster_secret: Option<String>,
    cluster_secret_file: Option<PathBuf>,
    advertise_api: Option<String>,
    advertise_raft: Option<String>,
    advertise_relay: Option<String>,
    advertise_rtmp: Option<String>,
    lease: Option<String>,
    #[serde(default)]
    streams: HashMap<String, String>,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

/// The validated configuration of `camstream serve`.
#[derive(Debug, Clone)]
pub(crate) struct Serve {
    pub(crate) dataplane: camstream_dataplane::Config,
    pub(crate) controlplane: camstream_controlplane::ControlPlaneConfig,
    pub(crate) allow_any_key: bool,
    /// `--web-dir`: serve the dashboard from here instead of the embedded copy.
    pub(crate) web_dir: Option<PathBuf>,
    pub(crate) streams: HashMap<String, String>,
    pub(crate) log_format: LogFormat,
    /// `--public-base-url`; default `http://<public-host>:<bound HTTP port>`.
    public_base_url: Option<String>,
    /// The cluster flags, validated; advertised addresses are completed once bound.
    cluster: Option<ClusterFlags>,
}

/// Validated cluster flags before the listeners are bound (the advertised defaults need
/// the bound ports).
#[derive(Debug, Clone)]
struct ClusterFlags {
    node_id: u64,
    raft_addr: SocketAddr,
    relay_addr: Option<SocketAddr>,
    relay_idle_timeout: Duration,
    join: Option<String>,
    secret: String,
    advertise_api: Option<String>,
    advertise_raft: Option<String>,
    advertise_relay: Option<String>,
    advertise_rtmp: Option<String>,
    lease: Duration,
}

/// `addr` as others should dial it: an unspecified IP (0.0.0.0, ::) becomes `host`.
fn dialable(addr: SocketAddr, host: &str) -> String {
    if addr.ip().is_unspecified() {
        format!("{host}:{}", addr.port())
    } else {
        addr.to_string()
    }
}

impl Serve {
    /// The control plane's slice once the listeners are bound: the URLs it hands out carry
    /// the bound ports, which differ from the configured ones when those were 0.
    pub(crate) fn controlplane_config(
        &self,
        bound: &camstream_dataplane::BoundAddrs,
    ) -> camstream_controlplane::ControlPlaneConfig {
        let mut cp = self.controlplane.clone();
        cp.rtmp_port = bound.rtmp.port();
        if let Some(a) = bound.rtmps {
            cp.rtmps_port = a.port();
        }
        cp.public_base_url = self
            .public_base_url
            .clone()
            .unwrap_or_else(|| format!("http://{}:{}", cp.public_host, bound.http.port()));
        cp.cluster = self
            .cluster
            .as_ref()
            .map(|c| camstream_controlplane::ClusterConfig {
                node_id: c.node_id,
                raft_addr: c.raft_addr,
                relay_addr: c.relay_addr,
                relay_idle_timeout: c.relay_idle_timeout,
                join: c.join.clone(),
                secret: c.secret.clone(),
                advertise_api: c
                    .advertise_api
                    .clone()
                    .unwrap_or_else(|| cp.public_base_url.clone()),
                advertise_raft: c
                    .advertise_raft
                    .clone()
                    .unwrap_or_else(|| dialable(c.raft_addr, &cp.public_host)),
                advertise_relay: c.advertise_relay.clone().unwrap_or_else(|| {
                    c.relay_addr
                        .map(|a| dialable(a, &cp.public_host))
                        .unwrap_or_default()
                }),
                advertise_rtmp: c
                    .advertise_rtmp
                    .clone()
                    .unwrap_or_else(|| format!("rtmp://{}:{}", cp.public_host, cp.rtmp_port)),
                lease: c.lease,
            });
        if let Some(c) = &self.cluster {
            // Each node's streams are its own in the shared store.
            cp.node_id = c.node_id.to_string();
        }
        cp
    }
}

impl Serve {
    /// Whether this node is a cluster node (cluster flags given and valid).
    pub(crate) fn is_cluster(&self) -> bool {
        self.cluster.is_some()
    }

    /// The relay's settings: `Some` only for a cluster node given `--relay-addr` (a single
    /// node starts no relay and keeps no GOP for edges).
    pub(crate) fn relay_config(&self) -> Option<camstream_dataplane::relay::RelayConfig> {
        let c = self.cluster.as_ref()?;
        let bind = c.relay_addr?;
        let mut r = camstream_dataplane::relay::RelayConfig::new(bind, c.secret.as_bytes());
        r.idle_timeout = c.relay_idle_timeout;
        Some(r)
    }

    /// Completes the control plane's cluster slice with the relay address actually bound
    /// (a configured port 0 becomes the real one), unless `--advertise-relay` was given.
    pub(crate) fn advertise_bound_relay(
        &self,
        cp: &mut camstream_controlplane::ControlPlaneConfig,
        bound: SocketAddr,
    ) {
        let given = self
            .cluster
            .as_ref()
            .is_some_and(|c| c.advertise_relay.is_some());
        let host = cp.public_host.clone();
        if let Some(c) = cp.cluster.as_mut() {
            c.relay_addr = Some(bound);
            if !given {
                c.advertise_relay = dialable(bound, &host);
            }
        }
    }
}

impl ServeArgs {
    /// Merges with the config file and validates.
    ///
    /// # Errors
    /// Unreadable or invalid file, malformed addresses or durations, out-of-range values.
    pub(crate) fn resolve(self) -> anyhow::Result<Serve> {
        let file = match &self.config {
            Some(path) => read_file(path)?,
            None => File::default(),
        };
        let data_dir = self
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("./data"));
        let mut dp = camstream_dataplane::Config::new(data_dir);
        if let Some(a) = self.rtmp_addr.or(file.rtmp_addr) {
            dp.rtmp_addr = addr("rtmp-addr", &a)?;
        }
        if let Some(a) = self.rtmps_addr.or(file.rtmps_addr) {
            dp.rtmps_addr = optional_addr("rtmps-addr", &a)?;
        }
        if let Some(a) = self.http_addr.or(file.http_addr) {
            dp.http_addr = addr("http-addr", &a)?;
        }
        if let Some(a) = self.https_addr.or(file.https_addr) {
            dp.https_addr = optional_addr("https-addr", &a)?;
        }
        dp.tls_cert = self.tls_cert.or(file.tls_cert);
        dp.tls_key = self.tls_key.or(file.tls_key);
        if dp.tls_cert.is_some() != dp.tls_key.is_some() {
            bail!("--tls-cert and --tls-key must be given together");
        }
        if let Some(d) = self.segment_target.or(file.segment_target) {
            dp.segment_target = duration("segment-target", &d)?;
        }
        if let Some(d) = self.part_target.or(file.part_target) {
            dp.part_target = duration("part-target", &d)?;
        }
        if let Some(n) = self.hls_window.or(file.hls_window) {
            dp.hls_window = n;
        }
        if let Some(n) = self.part_hold_back.or(file.part_hold_back) {
            if !(2.0..=10.0).contains(&n) {
                bail!("part-hold-back must be between 2 and 10 part targets, got {n}");
            }
            dp.part_hold_back = n;
        }
        if let Some(d) = self.reconnect_window.or(file.reconnect_window) {
            dp.reconnect_window = duration("reconnect-window", &d)?;
        }
        check_range("segment-target", dp.segment_target, 1.0, 30.0)?;
        check_range("part-target", dp.part_target, 0.1, 1.0)?;
        if dp.part_target * 2 > dp.segment_target {
            bail!(
                "part-target ({:?}) must be at most half of segment-target ({:?})",
                dp.part_target,
                dp.segment_target
            );
        }
        if !(3..=100).contains(&dp.hls_window) {
            bail!(
                "hls-window must be between 3 and 100 segments, got {}",
                dp.hls_window
            );
        }
        check_range("reconnect-window", dp.reconnect_window, 0.0, 3600.0)?;
        if let Some(d) = self.ingest_batch.or(file.ingest_batch) {
            dp.ingest_batch = duration("ingest-batch", &d)?;
        }
        check_range("ingest-batch", dp.ingest_batch, 0.0, 0.05)?;
        let http = &mut dp.http;
        if let Some(d) = self.http_header_timeout.or(file.http_header_timeout) {
            http.header_timeout = duration("http-header-timeout", &d)?;
        }
        if let Some(d) = self.http_idle_timeout.or(file.http_idle_timeout) {
            http.idle_timeout = duration("http-idle-timeout", &d)?;
        }
        if let Some(d) = self.http_write_timeout.or(file.http_write_timeout) {
            http.write_timeout = duration("http-write-timeout", &d)?;
        }
        check_range("http-header-timeout", http.header_timeout, 0.5, 300.0)?;
        check_range("http-idle-timeout", http.idle_timeout, 1.0, 3600.0)?;
        check_range("http-write-timeout", http.write_timeout, 1.0, 3600.0)?;
        if let Some(n) = self.http_max_connections.or(file.http_max_connections) {
            http.max_connections = n;
        }
        if let Some(n) = self
            .http_max_connections_per_ip
            .or(file.http_max_connections_per_ip)
        {
            http.max_connections_per_ip = n;
        }
        if let Some(n) = self
            .http_max_blocking_reloads
            .or(file.http_max_blocking_reloads)
        {
            http.max_blocking_reloads = n;
        }
        check_count("http-max-connections", http.max_connections, 1, 1_000_000)?;
        check_count(
            "http-max-connections-per-ip",
            http.max_connections_per_ip,
            1,
            http.max_connections,
        )?;
        check_count(
            "http-max-blocking-reloads",
            http.max_blocking_reloads,
            1,
            1000,
        )?;
        dp.recordings_dir = self.recordings_dir.or(file.recordings_dir);
        if let Some(d) = self.record_chunk.or(file.record_chunk) {
            dp.record_chunk = duration("record-chunk", &d)?;
        }
        check_range("record-chunk", dp.record_chunk, 10.0, 86_400.0)?;
        if let Some(d) = self.record_fsync.or(file.record_fsync) {
            dp.record_fsync = if d.eq_ignore_ascii_case("off") {
                None
            } else {
                Some(duration("record-fsync", &d)?)
            };
        }
        if let Some(d) = dp.record_fsync {
            check_range("record-fsync", d, 0.0, 60.0)?;
        }
        if let Some(b) = self.record_min_free.or(file.record_min_free) {
            dp.record_min_free = bytes("record-min-free", &b)?;
        }
        if let Some(a) = self.webrtc_addr.or(file.webrtc_addr) {
            dp.webrtc =
                optional_addr("webrtc-addr", &a)?.map(|addr| camstream_dataplane::WebrtcConfig {
                    addr,
                    ..Default::default()
                });
        }
        if let (Some(w), Some(ip)) = (
            dp.webrtc.as_mut(),
            self.webrtc_public_ip.or(file.webrtc_public_ip),
        ) {
            w.public_ip = Some(ip.parse().with_context(|| {
                format!("webrtc-public-ip: expected an IP address, got {ip:?}")
            })?);
        }
        if let (Some(w), Some(n)) = (
            dp.webrtc.as_mut(),
            self.webrtc_max_sessions.or(file.webrtc_max_sessions),
        ) {
            if n == 0 {
                bail!(
                    "webrtc-max-sessions must be at least 1 (use --webrtc-addr off to turn WebRTC off)"
                );
            }
            w.max_sessions = n;
        }
        if let (Some(w), Some(g)) = (dp.webrtc.as_mut(), self.webrtc_gso.or(file.webrtc_gso)) {
            w.gso = match g.trim().to_ascii_lowercase().as_str() {
                "on" => true,
                "off" => false,
                _ => bail!("webrtc-gso: expected \"on\" or \"off\", got {g:?}"),
            };
        }
        if let (Some(w), Some(a)) = (dp.webrtc.as_mut(), self.webrtc_audio.or(file.webrtc_audio)) {
            w.audio = match a.trim().to_ascii_lowercase().as_str() {
                "on" => true,
                "off" => false,
                _ => bail!("webrtc-audio: expected \"on\" or \"off\", got {a:?}"),
            };
        }
        match self.abr_ladder.or(file.abr_ladder) {
            Some(l) if l.trim() == "off" => dp.abr = None,
            Some(l) => {
                let ladder = camstream_dataplane::abr::Rendition::parse_ladder(&l)
                    .map_err(|e| anyhow::anyhow!("abr-ladder: {e}"))?;
                if let Some(a) = dp.abr.as_mut() {
                    a.ladder = ladder;
                }
            }
            None => {}
        }
        if let (Some(a), Some(n)) = (
            dp.abr.as_mut(),
            self.abr_max_cameras.or(file.abr_max_cameras),
        ) {
            if n == 0 {
                bail!("abr-max-cameras must be at least 1 (use --abr-ladder off to turn ABR off)");
            }
            a.max_cameras = n;
        }
        if let Some(a) = dp.abr.as_mut() {
            a.all_cameras = self.abr_all_cameras || file.abr_all_cameras.unwrap_or(false);
        }
        let webrtc_ice_servers: Vec<String> = self
            .webrtc_ice_servers
            .or(file.webrtc_ice_servers)
            .map(|s| {
                s.split(',')
                    .map(str::trim)
                    .filter(|u| !u.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        for u in &webrtc_ice_servers {
            if !(u.starts_with("stun:") || u.starts_with("turn:") || u.starts_with("turns:")) {
                bail!("webrtc-ice-servers: expected stun:, turn: or turns: URLs, got {u:?}");
            }
        }
        let archive_url = self.archive_url.or(file.archive_url);
        if let Some(url) = &archive_url {
            let bucket = url
                .strip_prefix("s3://")
                .map(|r| r.split('/').next().unwrap_or(""));
            if bucket.is_none_or(str::is_empty) {
                bail!("archive-url: expected s3://bucket/prefix, got {url:?}");
            }
        }
        let retention_interval = match self.retention_interval.or(file.retention_interval) {
            Some(d) => {
                let d = duration("retention-interval", &d)?;
                check_range("retention-interval", d, 1.0, 7.0 * 86_400.0)?;
                Some(d)
            }
            None => None,
        };
        let alert_offline_after = match self.alert_offline_after.or(file.alert_offline_after) {
            Some(d) => {
                let d = duration("alert-offline-after", &d)?;
                check_range("alert-offline-after", d, 1.0, 7.0 * 86_400.0)?;
                Some(d)
            }
            None => None,
        };
        let recording_url_ttl = match self.recording_url_ttl.or(file.recording_url_ttl) {
            Some(d) => {
                let d = duration("recording-url-ttl", &d)?;
                check_range("recording-url-ttl", d, 10.0, 7.0 * 86_400.0)?;
                Some(d)
            }
            None => None,
        };
        let log_format = match self.log_format.or(file.log_format).as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => bail!("log-format must be text or json, got {other:?}"),
        };
        for (key, camera) in &file.streams {
            if key.is_empty() {
                bail!("[streams]: empty stream key");
            }
            if !camstream_protocol::auth::is_valid_camera_id(camera) {
                bail!(
                    "[streams]: camera id {camera:?} must be 1-128 characters of A-Z a-z 0-9 _ . -"
                );
            }
        }
        let allow_any_key = self.allow_any_key || file.allow_any_key.unwrap_or(false);
        let mut cp = camstream_controlplane::ControlPlaneConfig {
            data_dir: dp.data_dir.clone(),
            database_url: self.database_url.or(file.database_url),
            redis_url: self.redis_url.or(file.redis_url),
            admin_password: self.admin_password.or(file.admin_password),
            jwt_secret: self.jwt_secret.or(file.jwt_secret),
            public_playback: allow_any_key
                || self.public_playback
                || file.public_playback.unwrap_or(false),
            require_publish_token: self.require_publish_token
                || file.require_publish_token.unwrap_or(false),
            rtmp_port: dp.rtmp_addr.port(),
            rtmps_port: dp.rtmps_addr.map_or(1936, |a| a.port()),
            recordings_dir: Some(dp.recordings_dir()),
            storage_warm: self.storage_warm.or(file.storage_warm),
            storage_cold: self.storage_cold.or(file.storage_cold),
            archive_url,
            whep_path: if dp.webrtc.is_some() {
                "/whep/{camera_id}".into()
            } else {
                String::new()
            },
            webrtc_ice_servers,
            abr_max_cameras: dp.abr.as_ref().map_or(0, |a| a.max_cameras),
            ..Default::default()
        };
        self.test_hooks.apply(&mut cp).map_err(anyhow::Error::msg)?;
        self.notify.apply(&mut cp.notify)?;
        if let Some(d) = retention_interval {
            cp.retention_interval = d;
        }
        if let Some(d) = recording_url_ttl {
            cp.recording_url_ttl = d;
        }
        if let Some(d) = alert_offline_after {
            cp.alert_offline_after = d;
        }
        if let Some(days) = self.alert_retention_days.or(file.alert_retention_days) {
            if days > 36_500 {
                bail!("alert-retention-days must be at most 36500 (0 keeps alerts forever)");
            }
            cp.alert_retention_days = days;
        }
        if let Some(host) = self.public_host.or(file.public_host) {
            cp.public_host = host;
        }
        if let Some(n) = self.max_token_rate_limit.or(file.max_token_rate_limit) {
            if n == 0 {
                bail!("max-token-rate-limit must be at least 1 request per hour");
            }
            cp.max_token_rate_limit = n;
        }
        let public_base_url = self.public_base_url.or(file.public_base_url);
        let cluster = ClusterArgs {
            node_id: self.node_id.or(file.node_id),
            raft_addr: self.raft_addr.or(file.raft_addr),
            relay_addr: self.relay_addr.or(file.relay_addr),
            relay_idle_timeout: self.relay_idle_timeout.or(file.relay_idle_timeout),
            join: self.join.or(file.join),
            secret: self.cluster_secret.or(file.cluster_secret),
            secret_file: self.cluster_secret_file.or(file.cluster_secret_file),
            advertise_api: self.advertise_api.or(file.advertise_api),
            advertise_raft: self.advertise_raft.or(file.advertise_raft),
            advertise_relay: self.advertise_relay.or(file.advertise_relay),
            advertise_rtmp: self.advertise_rtmp.or(file.advertise_rtmp),
            lease: self.lease.or(file.lease),
        }
        .resolve(cp.database_url.as_deref())?;
        let web_dir = self.web_dir.or(file.web_dir);
        Ok(Serve {
            cluster,
            web_dir,
            dataplane: dp,
            controlplane: cp,
            public_base_url,
            allow_any_key,
            streams: file.streams,
            log_format,
        })
    }
}

/// The cluster flags as given (command line, environment or file), before validation.
#[derive(Debug, Default)]
struct ClusterArgs {
    node_id: Option<u64>,
    raft_addr: Option<String>,
    relay_addr: Option<String>,
    relay_idle_timeout: Option<String>,
    join: Option<String>,
    secret: Option<String>,
    secret_file: Option<PathBuf>,
    advertise_api: Option<String>,
    advertise_raft: Option<String>,
    advertise_relay: Option<String>,
    advertise_rtmp: Option<String>,
    lease: Option<String>,
}

impl ClusterArgs {
    /// `None` when no cluster flag is given (a single node, exactly as without cluster
    /// support). Otherwise every rule of a cluster node: --node-id, --raft-addr, a secret
    /// and a shared PostgreSQL store.
    fn resolve(self, database_url: Option<&str>) -> anyhow::Result<Option<ClusterFlags>> {
        let any = self.node_id.is_some()
            || self.raft_addr.is_some()
            || self.relay_addr.is_some()
            || self.relay_idle_timeout.is_some()
            || self.join.is_some()
            || self.secret.is_some()
            || self.secret_file.is_some()
            || self.advertise_api.is_some()
            || self.advertise_raft.is_some()
            || self.advertise_relay.is_some()
            || self.advertise_rtmp.is_some()
            || self.lease.is_some();
        if !any {
            return Ok(None);
        }
        let Some(node_id) = self.node_id else {
            bail!(
                "cluster flags need --node-id (this node's raft id, 1 or more); without any cluster flag camstream runs a single node"
            );
        };
        if node_id == 0 {
            bail!("node-id must be 1 or more");
        }
        if !database_url
            .is_some_and(|u| u.starts_with("postgres://") || u.starts_with("postgresql://"))
        {
            bail!(
                "a cluster node (--node-id/--join) needs --database-url postgres://...: users, cameras and recordings are shared through PostgreSQL, and every node must use the same database"
            );
        }
        let secret = match (self.secret, self.secret_file) {
            (Some(_), Some(_)) => bail!("give --cluster-secret or --cluster-secret-file, not both"),
            (Some(s), None) => s,
            (None, Some(path)) => std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read --cluster-secret-file {}", path.display()))?
                .trim()
                .to_owned(),
            (None, None) => bail!(
                "a cluster node needs --cluster-secret or --cluster-secret-file: node-to-node requests are always authenticated"
            ),
        };
        if secret.len() < 16 {
            bail!(
                "the cluster secret must be at least 16 bytes, got {}",
                secret.len()
            );
        }
        let Some(raft_addr) = self.raft_addr else {
            bail!("a cluster node needs --raft-addr HOST:PORT (node-to-node raft RPC)");
        };
        let raft_addr = addr("raft-addr", &raft_addr)?;
        let relay_addr = self
            .relay_addr
            .map(|a| addr("relay-addr", &a))
            .transpose()?;
        let relay_idle_timeout = match self.relay_idle_timeout {
            Some(d) => duration("relay-idle-timeout", &d)?,
            None => Duration::from_secs(30),
        };
        check_range("relay-idle-timeout", relay_idle_timeout, 1.0, 3600.0)?;
        let lease = match self.lease {
            Some(d) => duration("lease", &d)?,
            None => Duration::from_secs(2),
        };
        check_range("lease", lease, 0.5, 60.0)?;
        let url = |flag: &str, u: Option<String>| -> anyhow::Result<Option<String>> {
            match u {
                Some(u) if u.starts_with("http://") || u.starts_with("https://") => {
                    Ok(Some(u.trim_end_matches('/').to_owned()))
                }
                Some(u) => bail!("{flag}: expected an http:// or https:// base URL, got {u:?}"),
                None => Ok(None),
            }
        };
        let host_port = |flag: &str, v: Option<String>| -> anyhow::Result<Option<String>> {
            match v {
                Some(v)
                    if v.rsplit_once(':').is_some_and(|(h, p)| {
                        !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0)
                    }) =>
                {
                    Ok(Some(v))
                }
                Some(v) => bail!("{flag}: expected HOST:PORT, got {v:?}"),
                None => Ok(None),
            }
        };
        let advertise_rtmp = match self.advertise_rtmp {
            Some(u) if u.starts_with("rtmp://") => Some(u.trim_end_matches('/').to_owned()),
            Some(u) => bail!("advertise-rtmp: expected rtmp://HOST:PORT, got {u:?}"),
            None => None,
        };
        Ok(Some(ClusterFlags {
            node_id,
            raft_addr,
            relay_addr,
            relay_idle_timeout,
            join: url("join", self.join)?,
            secret,
            advertise_api: url("advertise-api", self.advertise_api)?,
            advertise_raft: host_port("advertise-raft", self.advertise_raft)?,
            advertise_relay: host_port("advertise-relay", self.advertise_relay)?,
            advertise_rtmp,
            lease,
        }))
    }
}

fn read_file(path: &Path) -> anyhow::Result<File> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
}

fn addr(flag: &str, s: &str) -> anyhow::Result<SocketAddr> {
    s.parse()
        .with_context(|| format!("{flag}: expected HOST:PORT like 0.0.0.0:1935, got {s:?}"))
}

fn optional_addr(flag: &str, s: &str) -> anyhow::Result<Option<SocketAddr>> {
    if s.eq_ignore_ascii_case("off") {
        Ok(None)
    } else {
        addr(flag, s).map(Some)
    }
}

/// Parses `2`, `2s`, `1.5s`, `200ms`, `5m`, `1h`.
pub(crate) fn duration(flag: &str, s: &str) -> anyhow::Result<Duration> {
    let t = s.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (t, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v >= 0.0)
        .with_context(|| format!("{flag}: expected a duration like 2s or 200ms, got {s:?}"))?;
    Ok(Duration::from_secs_f64(v * scale))
}

/// Parses `1048576`, `512K`, `64M`, `2G` (powers of 1024).
pub(crate) fn bytes(flag: &str, s: &str) -> anyhow::Result<u64> {
    let t = s.trim();
    let (num, shift) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 10),
        Some((i, 'm' | 'M')) => (&t[..i], 20),
        Some((i, 'g' | 'G')) => (&t[..i], 30),
        _ => (t, 0),
    };
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .with_context(|| format!("{flag}: expected a size like 512M or 1048576, got {s:?}"))
}

fn check_count(flag: &str, n: usize, min: usize, max: usize) -> anyhow::Result<()> {
    if n < min || n > max {
        bail!("{flag} must be between {min} and {max}, got {n}");
    }
    Ok(())
}

fn check_range(flag: &str, d: Duration, min: f64, max: f64) -> anyhow::Result<()> {
    let s = d.as_secs_f64();
    if s < min || s > max {
        bail!("{flag} must be between {min}s and {max}s, got {s}s");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration("x", "2").unwrap(), Duration::from_secs(2));
        assert_eq!(duration("x", "1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(duration("x", "200ms").unwrap(), Duration::from_millis(200));
        assert_eq!(duration("x", "1m").unwrap(), Duration::from_secs(60));
        assert_eq!(duration("x", "1h").unwrap(), Duration::from_secs(3600));
        assert!(duration("x", "-1s").is_err());
        assert!(duration("x", "fast").is_err());
    }

    #[test]
    fn defaults() {
        let s = ServeArgs::default().resolve().unwrap();
        assert_eq!(s.dataplane.rtmp_addr, "0.0.0.0:1935".parse().unwrap());
        assert_eq!(
            s.dataplane.rtmps_addr,
            Some("0.0.0.0:1936".parse().unwrap())
        );
        assert_eq!(s.dataplane.http_addr, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(
            s.dataplane.https_addr,
            Some("0.0.0.0:8443".parse().unwrap())
        );
        assert_eq!(s.dataplane.data_dir, PathBuf::from("./data"));
        assert_eq!(
            s.dataplane.recordings_dir(),
            PathBuf::from("./data/recordings")
        );
        assert_eq!(s.dataplane.record_chunk, Duration::from_secs(3600));
        assert_eq!(s.dataplane.record_fsync, Some(Duration::from_secs(2)));
        assert!(!s.allow_any_key);
    }

    #[test]
    fn recording_flags() {
        let s = ServeArgs {
            recordings_dir: Some("/srv/rec".into()),
            record_chunk: Some("30s".into()),
            record_fsync: Some("off".into()),
            ..ServeArgs::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(s.dataplane.recordings_dir(), PathBuf::from("/srv/rec"));
        assert_eq!(s.dataplane.record_chunk, Duration::from_secs(30));
        assert_eq!(s.dataplane.record_fsync, None);
        let s = ServeArgs {
            record_fsync: Some("0".into()),
            ..ServeArgs::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(s.dataplane.record_fsync, Some(Duration::ZERO));
        let bad = |a: ServeArgs| a.resolve().is_err();
        assert!(bad(ServeArgs {
            record_chunk: Some("1s".into()),
            ..ServeArgs::default()
        }));
        assert!(bad(ServeArgs {
            record_fsync: Some("2m".into()),
            ..ServeArgs::default()
        }));
    }

    #[test]
    fn alert_retention_days() {
        let s = ServeArgs::default().resolve().unwrap();
        assert_eq!(s.controlplane.alert_retention_days, 90);
        for (days, want) in [(0, Some(0)), (30, Some(30)), (40_000, None)] {
            let r = ServeArgs {
                alert_retention_days: Some(days),
                ..ServeArgs::default()
            }
            .resolve();
            assert_eq!(r.ok().map(|s| s.controlplane.alert_retention_days), want);
        }
    }

    #[test]
    fn storage_flags() {
        let s = ServeArgs::default().resolve().unwrap();
        assert_eq!(s.dataplane.record_min_free, 512 << 20);
        assert_eq!(s.controlplane.storage_warm, None);
        assert_eq!(s.controlplane.archive_url, None);
        assert_eq!(
            s.controlplane.recordings_dir,
            Some(PathBuf::from("./data/recordings"))
        );
        let s = ServeArgs {
            record_min_free: Some("8M".into()),
            storage_warm: Some("/srv/warm".into()),
            storage_cold: Some("/srv/cold".into()),
            archive_url: Some("s3://bucket/rec".into()),
            retention_interval: Some("30s".into()),
            recording_url_ttl: Some("5m".into()),
            test_hooks: camstream_controlplane::TestHookArgs {
                test_crash_at: Some("after-copy".into()),
            },
            ..ServeArgs::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(s.dataplane.record_min_free, 8 << 20);
        assert_eq!(
            s.controlplane.storage_warm,
            Some(PathBuf::from("/srv/warm"))
        );
        assert_eq!(
            s.controlplane.storage_cold,
            Some(PathBuf::from("/srv/cold"))
        );
        assert_eq!(
            s.controlplane.archive_url.as_deref(),
            Some("s3://bucket/rec")
        );
        assert_eq!(s.controlplane.retention_interval, Duration::from_secs(30));
        assert_eq!(s.controlplane.recording_url_ttl, Duration::from_secs(300));
        assert!(s.controlplane.test_crash_at.is_some());
        assert_eq!(bytes("x", "0").unwrap(), 0);
        assert_eq!(bytes("x", "2G").unwrap(), 2 << 30);
        assert_eq!(bytes("x", "512k").unwrap(), 512 << 10);
        for bad in [
            ServeArgs {
                archive_url: Some("http://bucket".into()),
                ..ServeArgs::default()
            },
            ServeArgs {
                archive_url: Some("s3:///prefix".into()),
                ..ServeArgs::default()
            },
            ServeArgs {
                record_min_free: Some("lots".into()),
                ..ServeArgs::default()
            },
            ServeArgs {
                retention_interval: Some("0s".into()),
                ..ServeArgs::default()
            },
            ServeArgs {
                test_hooks: camstream_controlplane::TestHookArgs {
                    test_crash_at: Some("sometime".into()),
                },
                ..ServeArgs::default()
            },
        ] {
            assert!(bad.resolve().is_err());
        }
    }

    /// What `make run` builds (`cargo build --release --bin camstream`, no dev-dependencies)
    /// has no test hooks and none of the data plane's `bench`/`fuzz` entry points. Asks
    /// cargo's feature resolver about that build instead of making a second release build;
    /// the same question with dev-dependencies (what `cargo test` builds) must show the hook,
    /// so the check can fail.
    #[test]
    fn release_build_has_no_test_features() {
        let features = |edges: &str| -> Vec<(String, String)> {
            let out = std::process::Command::new(env!("CARGO"))
                .args([
                    "tree",
                    "--locked",
                    "--offline",
                    "-p",
                    "camstream",
                    "-e",
                    edges,
                ])
                .args(["--prefix", "none", "-f", "{p}|{f}"])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .output()
                .expect("run cargo tree");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout)
                .expect("UTF-8")
                .lines()
                .filter(|l| l.starts_with("camstream"))
                .filter_map(|l| l.split_once('|'))
                .map(|(p, f)| (p.to_owned(), f.to_owned()))
                .collect()
        };
        let release = features("normal,build");
        assert!(
            release
                .iter()
                .any(|(p, _)| p.starts_with("camstream-dataplane")),
            "{release:?}"
        );
        for (package, f) in &release {
            for test_only in ["test-hooks", "bench", "fuzz"] {
                assert!(
                    !f.split(',')
                        .any(|x| x.trim_end_matches(" (*)") == test_only),
                    "{package} has `{test_only}` in a release build"
                );
            }
        }
        let tests = features("normal,build,dev");
        assert!(
            tests
                .iter()
                .any(|(p, f)| p.starts_with("camstream-controlplane")
                    && f.split(',')
                        .any(|x| x.trim_end_matches(" (*)") == "test-hooks")),
            "tests build the binary with the hook: {tests:?}"
        );
    }

    #[test]
    fn file_then_flags() {
        let dir = std::env::temp_dir().join(format!("camstream-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(
            &path,
            "rtmp-addr = \"127.0.0.1:2000\"\nhttps-addr = \"off\"\nsegment-target = \"4s\"\n[streams]\nsecret = \"door\"\n",
        )
        .unwrap();
        let s = ServeArgs {
            config: Some(path.clone()),
            http_addr: Some("127.0.0.1:9000".into()),
            ..ServeArgs::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(s.dataplane.rtmp_addr, "127.0.0.1:2000".parse().unwrap());
        assert_eq!(s.dataplane.http_addr, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(s.dataplane.https_addr, None);
        assert_eq!(s.dataplane.segment_target, Duration::from_secs(4));
        assert_eq!(s.streams["secret"], "door");
        std::fs::write(&path, "rtmp-adr = \"x\"\n").unwrap();
        let err = ServeArgs {
            config: Some(path),
            ..ServeArgs::default()
        }
        .resolve()
        .unwrap_err();
        assert!(format!("{err:#}").contains("rtmp-adr"), "{err:#}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn controlplane_urls_use_bound_ports() {
        let s = ServeArgs {
            rtmp_addr: Some("127.0.0.1:0".into()),
            rtmps_addr: Some("127.0.0.1:0".into()),
            http_addr: Some("127.0.0.1:0".into()),
            public_host: Some("cams.example".into()),
            ..ServeArgs::default()
        }
        .resolve()
        .unwrap();
        let bound = camstream_dataplane::BoundAddrs {
            rtmp: "127.0.0.1:41935".parse().unwrap(),
            rtmps: Some("127.0.0.1:41936".parse().unwrap()),
            http: "127.0.0.1:48080".parse().unwrap(),
            https: None,
            webrtc: None,
        };
        let cp = s.controlplane_config(&bound);
        assert_eq!(cp.rtmp_port, 41935);
        assert_eq!(cp.rtmps_port, 41936);
        assert_eq!(cp.public_base_url, "http://cams.example:48080");
        let given = ServeArgs {
            public_base_url: Some("https://cdn.example".into()),
            ..ServeArgs::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(
            given.controlplane_config(&bound).public_base_url,
            "https://cdn.example"
        );
    }

    #[test]
    fn http_limit_flags() {
        let s = ServeArgs::default().resolve().unwrap();
        assert_eq!(s.dataplane.http, camstream_dataplane::HttpLimits::default());
        assert_eq!(s.dataplane.http.header_timeout, Duration::from_secs(10));
        assert_eq!(s.dataplane.http.idle_timeout, Duration::from_secs(60));
        assert_eq!(s.dataplane.http.write_timeout, Duration::from_secs(30));
        assert_eq!(s.dataplane.http.max_connections, 20_000);
        assert_eq!(s.dataplane.http.max_connections_per_ip, 512);
        assert_eq!(s.dataplane.http.max_blocking_reloads, 16);
        let s = ServeArgs {
            http_header_timeout: Some("2s".into()),
            http_idle_timeout: Some("5s".into()),
            http_write_timeout: Some("1500ms".into()),
            http_max_connections: Some(100),
            http_max_connections_per_ip: Some(10),
            http_max_blocking_reloads: Some(2),
            ..ServeArgs::default()
        }
        .resolve()
        .unwrap();
        let h = &s.dataplane.http;
        assert_eq!(h.header_timeout, Duration::from_secs(2));
        assert_eq!(h.idle_timeout, Duration::from_secs(5));
        assert_eq!(h.write_timeout, Duration::from_millis(1500));
        assert_eq!(
            (
                h.max_connections,
                h.max_connections_per_ip,
                h.max_blocking_reloads
            ),
            (100, 10, 2)
        );
        let dir = std::env::temp_dir().join(format!("camstream-http-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(
            &path,
            "http-idle-timeout = \"90s\"\nhttp-max-connections-per-ip = 64\n",
        )
        .unwrap();
        let s = ServeArgs {
            config: Some(path),
            ..ServeArgs::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(s.dataplane.http.idle_timeout, Duration::from_secs(90));
        assert_eq!(s.dataplane.http.max_connections_per_ip, 64);
        let _ = std::fs::remove_dir_all(dir);
        let bad = |a: ServeArgs| a.resolve().is_err();
        assert!(bad(ServeArgs {
            http_header_timeout: Some("0s".into()),
            ..ServeArgs::default()
        }));
        assert!(bad(ServeArgs {
            http_write_timeout: Some("soon".into()),
            ..ServeArgs::default()
        }));
        assert!(bad(ServeArgs {
            http_max_connections: Some(0),
            ..ServeArgs::default()
        }));
        assert!(bad(ServeArgs {
            http_max_connections: Some(10),
            http_max_connections_per_ip: Some(11),
            ..ServeArgs::default()
        }));
        assert!(bad(ServeArgs {
            http_max_blocking_reloads: Some(0),
            ..ServeArgs::default()
        }));
    }

    #[test]
    fn validation() {
        let bad = |a: ServeArgs| a.resolve().is_err();
        assert!(bad(ServeArgs {
            part_target: Some("50ms".into()),
            ..ServeArgs::default()
        }));
        assert!(bad(ServeArgs {
            hls_window: Some(1),
            ..ServeArgs::default()
        }));
        assert!(bad(ServeArgs {
            part_hold_back: Some(1.5),
            ..ServeArgs::default()
        }));
        assert!(bad(ServeArgs {
            part_hold_back: Some(f64::NAN),
            ..ServeArgs::default()
        }));
        assert!(bad(ServeArgs {
            ingest_batch: Some("60ms".into()),
            ..ServeArgs::default()
        }));
        let batch = |v: &str| {
            ServeArgs {
                ingest_batch: Some(v.into()),
                ..ServeArgs::default()
            }
            .resolve()
            .unwrap()
            .dataplane
            .ingest_batch
        };
        assert_eq!(batch("0"), Duration::ZERO);
        assert_eq!(batch("25ms"), Duration::from_millis(25));
        assert!(bad(ServeArgs {
            rtmp_addr: Some("nope".into()),
            ..ServeArgs::default()
        }));
        assert!(bad(ServeArgs {
            tls_cert: Some("c.pem".into()),
            ..ServeArgs::default()
        }));
        assert!(bad(ServeArgs {
            segment_target: Some("1s".into()),
            part_target: Some("600ms".into()),
            ..ServeArgs::default()
        }));
    }

    const PG: &str = "postgres://u:p@db/camstream";

    fn cluster_args() -> ServeArgs {
        ServeArgs {
            database_url: Some(PG.into()),
            node_id: Some(2),
            raft_addr: Some("0.0.0.0:7000".into()),
            cluster_secret: Some("0123456789abcdef".into()),
            ..ServeArgs::default()
        }
    }

    #[test]
    fn no_cluster_flags_is_a_single_node() {
        let s = ServeArgs::default().resolve().unwrap();
        assert!(s.cluster.is_none());
        let bound = camstream_dataplane::BoundAddrs {
            rtmp: "127.0.0.1:1935".parse().unwrap(),
            rtmps: None,
            http: "127.0.0.1:8080".parse().unwrap(),
            https: None,
            webrtc: None,
        };
        let cp = s.controlplane_config(&bound);
        assert!(cp.cluster.is_none());
        assert_eq!(cp.node_id, "local");
    }

    #[test]
    fn cluster_flags_and_defaults() {
        let s = ServeArgs {
            public_host: Some("node2.example".into()),
            relay_addr: Some("0.0.0.0:7100".into()),
            join: Some("http://node1.example:8080/".into()),
            ..cluster_args()
        }
        .resolve()
        .unwrap();
        let bound = camstream_dataplane::BoundAddrs {
            rtmp: "0.0.0.0:1935".parse().unwrap(),
            rtmps: None,
            http: "0.0.0.0:8080".parse().unwrap(),
            https: None,
            webrtc: None,
        };
        let cp = s.controlplane_config(&bound);
        let c = cp.cluster.expect("clustered");
        assert_eq!(c.node_id, 2);
        assert_eq!(cp.node_id, "2");
        assert_eq!(c.join.as_deref(), Some("http://node1.example:8080"));
        assert_eq!(c.advertise_api, "http://node2.example:8080");
        assert_eq!(c.advertise_raft, "node2.example:7000");
        assert_eq!(c.advertise_relay, "node2.example:7100");
        assert_eq!(c.advertise_rtmp, "rtmp://node2.example:1935");
        assert_eq!(c.lease, Duration::from_secs(2));
        assert_eq!(c.relay_idle_timeout, Duration::from_secs(30));
        let s = ServeArgs {
            advertise_api: Some("https://a.example".into()),
            advertise_raft: Some("10.0.0.2:7000".into()),
            advertise_rtmp: Some("rtmp://10.0.0.2:1935".into()),
            lease: Some("5s".into()),
            relay_idle_timeout: Some("10s".into()),
            ..cluster_args()
        }
        .resolve()
        .unwrap();
        let c = s.controlplane_config(&bound).cluster.unwrap();
        assert_eq!(c.advertise_api, "https://a.example");
        assert_eq!(c.advertise_raft, "10.0.0.2:7000");
        assert_eq!(c.advertise_rtmp, "rtmp://10.0.0.2:1935");
        assert_eq!(c.advertise_relay, "");
        assert_eq!(c.lease, Duration::from_secs(5));
        assert_eq!(c.relay_idle_timeout, Duration::from_secs(10));
    }

    #[test]
    fn relay_only_for_a_cluster_node_with_a_relay_address() {
        let single = ServeArgs::default().resolve().unwrap();
        assert!(single.relay_config().is_none());
        let no_relay = cluster_args().resolve().unwrap();
        assert!(no_relay.relay_config().is_none());
        let s = ServeArgs {
            relay_addr: Some("0.0.0.0:0".into()),
            relay_idle_timeout: Some("7s".into()),
            public_host: Some("node-b.example".into()),
            ..cluster_args()
        }
        .resolve()
        .unwrap();
        let r = s.relay_config().unwrap();
        assert_eq!(r.bind, "0.0.0.0:0".parse::<SocketAddr>().unwrap());
        assert_eq!(r.idle_timeout, Duration::from_secs(7));
        assert!(!r.secret.is_empty());
        let bound = camstream_dataplane::BoundAddrs {
            rtmp: "127.0.0.1:41935".parse().unwrap(),
            rtmps: None,
            http: "127.0.0.1:48080".parse().unwrap(),
            https: None,
            webrtc: None,
        };
        let mut cp = s.controlplane_config(&bound);
        s.advertise_bound_relay(&mut cp, "0.0.0.0:47001".parse().unwrap());
        let c = cp.cluster.unwrap();
        assert_eq!(c.advertise_relay, "node-b.example:47001");
        assert_eq!(c.relay_addr, Some("0.0.0.0:47001".parse().unwrap()));
    }

    #[test]
    fn cluster_secret_from_a_file() {
        let dir = std::env::temp_dir().join(format!("camstream-cfg-cs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("secret");
        std::fs::write(&path, "from-the-file-0123456789\n").unwrap();
        let s = ServeArgs {
            cluster_secret: None,
            cluster_secret_file: Some(path.clone()),
            ..cluster_args()
        }
        .resolve()
        .unwrap();
        assert_eq!(s.cluster.unwrap().secret, "from-the-file-0123456789");
        std::fs::write(dir.join("c.toml"), format!("node-id = 3\nraft-addr = \"127.0.0.1:7003\"\ncluster-secret = \"0123456789abcdef\"\ndatabase-url = \"{PG}\"\n")).unwrap();
        let s = ServeArgs {
            config: Some(dir.join("c.toml")),
            ..ServeArgs::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(s.cluster.unwrap().node_id, 3);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn cluster_flags_are_refused_with_a_reason() {
        let err = |a: ServeArgs, what: &str| {
            let e = format!("{:#}", a.resolve().unwrap_err());
            assert!(e.contains(what), "expected {what:?} in {e:?}");
        };
        err(
            ServeArgs {
                database_url: None,
                ..cluster_args()
            },
            "--database-url postgres://",
        );
        err(
            ServeArgs {
                database_url: Some("sqlite://x.db".into()),
                ..cluster_args()
            },
            "--database-url postgres://",
        );
        err(
            ServeArgs {
                join: Some("http://a:8080".into()),
                database_url: Some(PG.into()),
                ..ServeArgs::default()
            },
            "--node-id",
        );
        err(
            ServeArgs {
                cluster_secret: None,
                ..cluster_args()
            },
            "--cluster-secret",
        );
        err(
            ServeArgs {
                cluster_secret: Some("short".into()),
                ..cluster_args()
            },
            "at least 16 bytes",
        );
        err(
            ServeArgs {
                raft_addr: None,
                ..cluster_args()
            },
            "--raft-addr",
        );
        err(
            ServeArgs {
                node_id: Some(0),
                ..cluster_args()
            },
            "node-id",
        );
        err(
            ServeArgs {
                join: Some("node1:8080".into()),
                ..cluster_args()
            },
            "join",
        );
        err(
            ServeArgs {
                lease: Some("10ms".into()),
                ..cluster_args()
            },
            "lease",
        );
        err(
            ServeArgs {
                advertise_raft: Some("nohost".into()),
                ..cluster_args()
            },
            "advertise-raft",
        );
    }

    #[test]
    fn max_token_rate_limit() {
        let s = ServeArgs::default().resolve().unwrap();
        assert_eq!(s.controlplane.max_token_rate_limit, 10_000);
        let s = ServeArgs {
            max_token_rate_limit: Some(50),
            ..ServeArgs::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(s.controlplane.max_token_rate_limit, 50);
        let dir = std::env::temp_dir().join(format!("camstream-cfg-rl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(&path, "max-token-rate-limit = 70\n").unwrap();
        let s = ServeArgs {
            config: Some(path.clone()),
            ..ServeArgs::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(s.controlplane.max_token_rate_limit, 70);
        let err = ServeArgs {
            max_token_rate_limit: Some(0),
            ..ServeArgs::default()
        }
        .resolve()
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("max-token-rate-limit"),
            "{err:#}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
