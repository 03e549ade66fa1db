//! The control plane's configuration slice. The binary builds it from CLI flags and env
//! (`camstream serve --database-url ... --redis-url ...`); every field documents its default,
//! which [`ControlPlaneConfig::default`] applies.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// This node's place in a cluster (`--node-id` and the flags that go with it). Absent on a
/// single node, which then runs no raft at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// The raft node id (`--node-id`), unique in the cluster, above 0.
    pub node_id: u64,
    /// Where the node-to-node raft RPC listens (`--raft-addr`).
    pub raft_addr: SocketAddr,
    /// Where the QUIC relay listens (`--relay-addr`); advertised to the other nodes only,
    /// the relay itself is not started by this crate. Default `None`.
    pub relay_addr: Option<SocketAddr>,
    /// Idle relay streams close after this (`--relay-idle-timeout`). Default 30 s.
    pub relay_idle_timeout: Duration,
    /// Any member's API base URL to join through (`--join`); `None` starts a new cluster
    /// (or restarts this node in the cluster its raft directory already knows).
    pub join: Option<String>,
    /// The shared secret every node-to-node request is signed with (`--cluster-secret` or
    /// `--cluster-secret-file`), at least 16 bytes.
    pub secret: String,
    /// The API base URL others use to reach this node (`--advertise-api`).
    pub advertise_api: String,
    /// `HOST:PORT` others use for this node's raft RPC (`--advertise-raft`).
    pub advertise_raft: String,
    /// `HOST:PORT` others use for this node's relay (`--advertise-relay`); empty when none.
    pub advertise_relay: String,
    /// RTMP URL base handed to publishers of cameras placed here (`--advertise-rtmp`,
    /// `rtmp://host:port`).
    pub advertise_rtmp: String,
    /// Liveness lease length (`--lease`). Default 2 s. Nodes heartbeat every quarter of it.
    pub lease: Duration,
}

/// Notification delivery (`--smtp-*`, `--sms-*`, `--notify-*`; docs/notifications.md).
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    /// `smtp://host:port` (plain), `smtp://host?tls=required` (STARTTLS) or
    /// `smtps://user:pass@host` (`--smtp-url`). Default `None`: email deliveries fail (and
    /// end as dead letters) until one is configured.
    pub smtp_url: Option<String>,
    /// The sender address (`--smtp-from`). Default `camstream@localhost`.
    pub smtp_from: String,
    /// The SMS gateway's URL (`--sms-url`), e.g. Twilio's
    /// `https://api.twilio.com/2010-04-01/Accounts/{sid}/Messages.json`. Default `None`.
    pub sms_url: Option<String>,
    /// `user:password` (basic) or `Bearer <token>` (`--sms-auth`). Default `None`.
    pub sms_auth: Option<String>,
    /// The `From` number (`--sms-from`). Default `None` (empty).
    pub sms_from: Option<String>,
    /// The SMS `Body`, with `{severity}`, `{kind}`, `{event}`, `{message}`, `{cameraId}`,
    /// `{company}`, `{alertId}`, `{at}` replaced (`--sms-body-template`). Default
    /// `camstream {severity} {kind} {event}: {message}`.
    pub sms_body_template: String,
    /// Attempts before a delivery becomes a dead letter (`--notify-max-attempts`). Default 8.
    pub max_attempts: u32,
    /// First retry delay ceiling; doubles per attempt, full jitter
    /// (`--notify-backoff-base`). Default 2 s.
    pub backoff_base: Duration,
    /// Largest retry delay (`--notify-backoff-max`). Default 10 min.
    pub backoff_max: Duration,
    /// Consecutive failures that open a destination's breaker
    /// (`--notify-breaker-failures`). Default 5.
    pub breaker_failures: u32,
    /// How long an open breaker waits before its probe (`--notify-breaker-cooldown`).
    /// Default 60 s.
    pub breaker_cooldown: Duration,
    /// How often the outbox is read and due deliveries claimed (`--notify-poll`).
    /// Default 1 s.
    pub poll: Duration,
    /// A claimed delivery's lease; a node that dies mid-send loses it after this. Default
    /// 60 s.
    pub lease: Duration,
    /// How far behind its cursor the outbox is re-read (late commits); also how far back a
    /// starting node looks for events not enqueued yet. Default 10 min.
    pub lookback: Duration,
    /// Sent and dead deliveries are deleted this long after their last change
    /// (`--notify-retention`, at least a day: longer than any outbox re-read). Default 30
    /// days.
    pub retention: Duration,
    /// The notifier's clock (tests set a manual one). Default: the system clock.
    pub clock: std::sync::Arc<dyn crate::notify::Clock>,
    /// Webhooks may target loopback, private and link-local addresses
    /// (`--notify-private-targets`). Default false: tenant-chosen URLs reach only the
    /// public internet (see `notify::guard`).
    pub private_targets: bool,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            smtp_url: None,
            smtp_from: "camstream@localhost".into(),
            sms_url: None,
            sms_auth: None,
            sms_from: None,
            sms_body_template: "camstream {severity} {kind} {event}: {message}".into(),
            max_attempts: 8,
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(600),
            breaker_failures: 5,
            breaker_cooldown: Duration::from_secs(60),
            poll: Duration::from_secs(1),
            lease: Duration::from_secs(60),
            lookback: Duration::from_secs(600),
            retention: Duration::from_secs(30 * 86_400),
            clock: std::sync::Arc::new(crate::notify::SystemClock),
            private_targets: false,
        }
    }
}

/// Everything the control plane needs to start.
#[derive(Debug, Clone)]
pub struct ControlPlaneConfig {
    /// Data directory: SQLite file (`camstream.db`), the generated JWT secret (`jwt.secret`),
    /// and the tree whose size `GET /analytics/storage/usage` reports. Default `./data`.
    pub data_dir: PathBuf,
    /// `postgres://user:pass@host/db` or `sqlite://path`. Default `None`: SQLite at
    /// `{data_dir}/camstream.db`.
    pub database_url: Option<String>,
    /// `redis://host:port/db`. Default `None`: the in-process cache.
    pub redis_url: Option<String>,
    /// Username of the first admin, created when the users table is empty. Default `admin`.
    pub admin_username: String,
    /// Password of the first admin (flag or env `CAMSTREAM_ADMIN_PASSWORD`). Default `None`:
    /// a random one is generated and logged once at warn level.
    pub admin_password: Option<String>,
    /// Master secret for JWTs and playback signatures (≥ 32 bytes recommended). Default
    /// `None`: read from `{data_dir}/jwt.secret`, generated (32 random bytes, mode 0600) on
    /// first start. Every node of a cluster must share it.
    pub jwt_secret: Option<String>,
    /// Access JWT lifetime. Default 15 min.
    pub access_token_ttl: Duration,
    /// Refresh token lifetime. Default 7 days.
    pub refresh_token_ttl: Duration,
    /// Idle login session lifetime: `session:{id}` is set at login and renewed by every
    /// refresh; once it lapses, the session's access and refresh tokens stop working.
    /// Default 24 h.
    pub session_ttl: Duration,
    /// Signed playback URL lifetime. Default 15 min.
    pub playback_token_ttl: Duration,
    /// Publish token lifetime (the `?token=` of rtmpUrl/rtmpsUrl). Default 365 days.
    pub publish_token_ttl: Duration,
    /// Refuse publishing without a valid publish token. Default `false` (a token given is
    /// still checked).
    pub require_publish_token: bool,
    /// Serve playback without tokens (`--public-playback`, implied by `--allow-any-key`).
    /// Default `false`.
    pub public_playback: bool,
    /// Host name (or `host:port`-less IP) put into `rtmpUrl`/`rtmpsUrl`. Default `localhost`.
    pub public_host: String,
    /// RTMP port in `rtmpUrl`. Default 1935.
    pub rtmp_port: u16,
    /// RTMPS port in `rtmpsUrl`. Default 1936.
    pub rtmps_port: u16,
    /// The RTMP application in ingest URLs. Default `live`.
    pub rtmp_app: String,
    /// Base URL of the HTTP listener for playback URLs. Default `http://localhost:8080`.
    pub public_base_url: String,
    /// Path of a camera's HLS (MPEG-TS) playlist; `{camera_id}` is replaced. Default
    /// `/hls/{camera_id}/ts/playlist.m3u8` (the data plane's route).
    pub hls_path: String,
    /// Path of a camera's LL-HLS (fMP4) playlist. Default `/hls/{camera_id}/playlist.m3u8`.
    pub ll_hls_path: String,
    /// Path of a camera's WHEP endpoint; `{camera_id}` is replaced. Default
    /// `/whep/{camera_id}` (the data plane's route). Empty: WebRTC is off on this node.
    pub whep_path: String,
    /// Cameras this node may transcode into its ABR ladder at once (`--abr-max-cameras`);
    /// 0: ABR is off (`--abr-ladder off`). A cluster's budget is this times its nodes.
    /// Default 2.
    pub abr_max_cameras: usize,
    /// ICE servers handed to WebRTC players (`stun:`/`turn:` URLs). Default none: the data
    /// plane is ICE-lite with a reachable candidate.
    pub webrtc_ice_servers: Vec<String>,
    /// This node's name, stored as `assigned_node` and shown in stream status. Default
    /// `local`.
    pub node_id: String,
    /// Requests per hour per user session (API tokens carry their own limit). Default 10000.
    pub user_rate_limit: u32,
    /// Requests per hour for a new API token when the request names none (capped like any
    /// other). Default 1000.
    pub default_token_rate_limit: u32,
    /// Highest rate limit an API token may have, requests per hour (`--max-token-rate-limit`).
    /// A token's limit is also never above its creator's (`user_rate_limit`); tokens stored
    /// with more are held to the cap. Default 10000.
    pub max_token_rate_limit: u32,
    /// Failed logins per username within `login_window` before throttling. Default 5.
    pub login_max_failures_per_user: u32,
    /// Failed logins per client address within `login_window`. Default 20.
    pub login_max_failures_per_ip: u32,
    /// Login failure window (and lockout length). Default 15 min.
    pub login_window: Duration,
    /// Largest accepted request body. Default 64 KiB.
    pub max_body_bytes: usize,
    /// How long after the last health report a camera still counts as online. Default 30 s.
    pub health_timeout: Duration,
    /// How long a camera that was streaming stays offline before `CAMERA_OFFLINE` is raised.
    /// Default 5 minutes.
    pub alert_offline_after: Duration,
    /// Resolved alerts (with their outbox rows) older than this many days are deleted by
    /// the sweeper (`--alert-retention-days`); 0 keeps them forever. Default 90.
    pub alert_retention_days: u32,
    /// Length of the buckets `API_UNUSUAL_USAGE` counts a token's requests in (no flag;
    /// tests shorten it). Default 1 minute.
    pub api_usage_bucket: Duration,
    /// The hot tier: where the recorder writes (the binary passes the data plane's absolute
    /// recordings directory). Default `None`: `{data_dir}/recordings`.
    pub recordings_dir: Option<PathBuf>,
    /// The warm tier directory (`--storage-warm`). Default `None`: no warm tier.
    pub storage_warm: Option<PathBuf>,
    /// The cold tier directory (`--storage-cold`). Default `None`: no cold tier.
    pub storage_cold: Option<PathBuf>,
    /// The archive (`--archive-url s3://bucket/prefix`; endpoint and credentials from the
    /// `AWS_*` environment). Default `None`: no archive.
    pub archive_url: Option<String>,
    /// How often retention runs (the first pass a minute after start). Default 1 h.
    pub retention_interval: Duration,
    /// Lifetime of signed recording URLs (downloads, VOD playlists) when the request names
    /// none. Default 15 min.
    pub recording_url_ttl: Duration,
    /// Cluster membership; `None` (the default) runs a single node without raft.
    pub cluster: Option<ClusterConfig>,
    /// Notification delivery.
    pub notify: NotifyConfig,
    /// Live events over the WebSocket (`GET /api/v1/ws`, docs/websocket.md).
    pub ws: WsConfig,
    /// Test hook: stop the process in the middle of a tier move
    /// (`--test-crash-at after-copy|after-switch`). Default `None`. Only with the
    /// `test-hooks` feature.
    #[cfg(feature = "test-hooks")]
    pub test_crash_at: Option<crate::recordings::CrashPoint>,
}

/// Live events over the WebSocket (no flags; tests shorten the timers). The limits are
/// explained in docs/websocket.md.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsConfig {
    /// A client without an `Authorization` header must send `auth` within this. Default 5 s.
    pub auth_timeout: Duration,
    /// The server pings this often; no pong before the next ping closes with 4009.
    /// Default 20 s.
    pub ping_interval: Duration,
    /// The credential is checked again this often (and at a session token's expiry): an
    /// expired, revoked or disabled one closes with 4001. Default 30 s.
    pub auth_recheck: Duration,
    /// Messages queued for one client; a client that lets it fill is closed with 4008.
    /// Default 256.
    pub client_queue: usize,
    /// Events kept for `resume` (the count bound). Default 10,000.
    pub backlog_len: usize,
    /// Events kept for `resume` (the age bound; the smaller bound wins). Default 10 min.
    pub backlog_age: Duration,
    /// How often the `alert_events` outbox is read. Default 500 ms.
    pub outbox_poll: Duration,
    /// Events relayed to the other cluster nodes are sent in batches at most this far apart.
    /// Default 100 ms.
    pub relay_every: Duration,
}

impl Default for WsConfig {
    fn default() -> Self {
        Self {
            auth_timeout: Duration::from_secs(5),
            ping_interval: Duration::from_secs(20),
            auth_recheck: Duration::from_secs(30),
            client_queue: 256,
            backlog_len: 10_000,
            backlog_age: Duration::from_secs(600),
            outbox_poll: Duration::from_millis(500),
            relay_every: Duration::from_millis(100),
        }
    }
}

impl ControlPlaneConfig {
    /// The hot tier directory.
    pub fn hot_dir(&self) -> PathBuf {
        self.recordings_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("recordings"))
    }

    /// The highest rate limit an API token may have: the configured cap, and never more
    /// than its creator's own limit.
    pub fn token_rate_cap(&self) -> i64 {
        i64::from(self.max_token_rate_limit.min(self.user_rate_limit))
    }
}

impl Default for ControlPlaneConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            database_url: None,
            redis_url: None,
            admin_username: "admin".into(),
            admin_password: None,
            jwt_secret: None,
            access_token_ttl: Duration::from_secs(15 * 60),
            refresh_token_ttl: Duration::from_secs(7 * 24 * 3600),
            session_ttl: Duration::from_secs(24 * 3600),
            playback_token_ttl: Duration::from_secs(15 * 60),
            publish_token_ttl: Duration::from_secs(365 * 24 * 3600),
            require_publish_token: false,
            public_playback: false,
            public_host: "localhost".into(),
            rtmp_port: 1935,
            rtmps_port: 1936,
            rtmp_app: "live".into(),
            public_base_url: "http://localhost:8080".into(),
            hls_path: "/hls/{camera_id}/ts/playlist.m3u8".into(),
            ll_hls_path: "/hls/{camera_id}/playlist.m3u8".into(),
            whep_path: "/whep/{camera_id}".into(),
            abr_max_cameras: 2,
            webrtc_ice_servers: Vec::new(),
            node_id: "local".into(),
            user_rate_limit: 10_000,
            default_token_rate_limit: 1_000,
            max_token_rate_limit: 10_000,
            login_max_failures_per_user: 5,
            login_max_failures_per_ip: 20,
            login_window: Duration::from_secs(15 * 60),
            max_body_bytes: 64 * 1024,
            health_timeout: Duration::from_secs(30),
            alert_offline_after: Duration::from_secs(300),
            alert_retention_days: 90,
            api_usage_bucket: Duration::from_secs(60),
            recordings_dir: None,
            storage_warm: None,
            storage_cold: None,
            archive_url: None,
            retention_interval: Duration::from_secs(3600),
            recording_url_ttl: Duration::from_secs(15 * 60),
            cluster: None,
            notify: NotifyConfig::default(),
            ws: WsConfig::default(),
            #[cfg(feature = "test-hooks")]
            test_crash_at: None,
        }
    }
}
