//! The repository: every durable record (users, cameras, API tokens, refresh tokens, alerts,
//! recordings: see [`recordings`]) behind one [`Store`] trait with two implementations over
//! typed sqlx pools, [`SqliteStore`] (embedded default) and [`PgStore`]. Both run the same
//! hand-written SQL with `$N` placeholders (SQLite accepts them) over the same schema
//! (`migrations/sqlite`, `migrations/postgres`); the conformance suite in `tests/store.rs`
//! runs against both.
//!
//! Times are Unix milliseconds, ids are UUID strings, secrets are stored as SHA-256 digests
//! with a short public prefix to find the row (the caller compares digests in constant time).
//! Business rules (who may see what, password strength) live in the API layer, not here.

pub mod alerts;
pub mod layouts;
pub mod notify;
pub mod recordings;
pub mod rules;
mod sql;

use async_trait::async_trait;
use serde::Serialize;

pub use alerts::AlertStore;
pub use layouts::LayoutStore;
pub use notify::NotifyStore;
pub use recordings::RecordingStore;
pub use rules::AlertRuleStore;
pub use sql::{PgStore, SqliteStore, connect};

use crate::rbac::{Permissions, Role};

/// A store failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A unique column already holds this value; `field` names the column.
    #[error("duplicate value for {field}")]
    Conflict {
        /// The column (`serial_number`, `username`, ...).
        field: &'static str,
    },
    /// The database cannot be reached or timed out.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// A query failed (bad SQL, bad data).
    #[error("database error: {0}")]
    Query(#[source] sqlx::Error),
    /// Migrations could not be applied.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database URL is not one we serve.
    #[error("unsupported database url {0:?} (expected sqlite:// or postgres://)")]
    UnsupportedUrl(String),
}

impl StoreError {
    /// The conflicting column, if this is a uniqueness violation.
    pub fn conflict_field(&self) -> Option<&'static str> {
        match self {
            StoreError::Conflict { field } => Some(field),
            _ => None,
        }
    }
}

/// The unique columns a conflict can name, in the order they are looked for in the
/// driver's message (SQLite names `table.column`, PostgreSQL the constraint).
const UNIQUE_FIELDS: [&str; 3] = ["serial_number", "username", "prefix"];

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                let text = format!("{} {}", db.constraint().unwrap_or(""), db.message());
                let field = UNIQUE_FIELDS
                    .into_iter()
                    .find(|f| text.contains(f))
                    .unwrap_or("id");
                StoreError::Conflict { field }
            }
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_) => StoreError::Unavailable(e),
            _ => StoreError::Query(e),
        }
    }
}

/// A camera's stream state as stored (`cameras.stream_status`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum StreamStatus {
    /// An encoder is publishing.
    Online,
    /// No encoder.
    Offline,
    /// The encoder dropped and may come back (the data plane's reconnect window).
    Connecting,
    /// The stream failed (bad media, node lost).
    Error,
}

impl StreamStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamStatus::Online => "online",
            StreamStatus::Offline => "offline",
            StreamStatus::Connecting => "connecting",
            StreamStatus::Error => "error",
        }
    }
}

impl std::str::FromStr for StreamStatus {
    type Err = crate::rbac::UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            StreamStatus::Online,
            StreamStatus::Offline,
            StreamStatus::Connecting,
            StreamStatus::Error,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
        .ok_or_else(|| crate::rbac::UnknownName(s.to_owned()))
    }
}

impl TryFrom<String> for StreamStatus {
    type Error = crate::rbac::UnknownName;
    fn try_from(s: String) -> Result<Self, crate::rbac::UnknownName> {
        s.parse()
    }
}

/// A user account.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct User {
    /// UUID.
    pub id: String,
    /// Login name, unique.
    pub username: String,
    /// Contact address.
    pub email: Option<String>,
    /// Argon2 PHC string.
    pub password_hash: String,
    /// Role.
    #[sqlx(try_from = "String")]
    pub role: Role,
    /// Tenant: when set, the user sees only cameras of this company (admins see all).
    pub company: Option<String>,
    /// Disabled users cannot log in; their sessions and tokens stop working.
    pub is_active: bool,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub updated_at: i64,
    /// Unix ms of the last successful login.
    pub last_login_at: Option<i64>,
}

/// Fields of a new user.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Login name.
    pub username: String,
    /// Contact address.
    pub email: Option<String>,
    /// Argon2 PHC string.
    pub password_hash: String,
    /// Role.
    pub role: Role,
    /// Tenant.
    pub company: Option<String>,
}

/// A partial user update: `None` leaves a field alone, `Some(None)` clears a nullable one.
#[derive(Debug, Clone, Default)]
pub struct UserUpdate {
    /// New address.
    pub email: Option<Option<String>>,
    /// New password hash.
    pub password_hash: Option<String>,
    /// New role.
    pub role: Option<Role>,
    /// New tenant.
    pub company: Option<Option<String>>,
    /// Enable or disable.
    pub is_active: Option<bool>,
}

/// A camera.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Camera {
    /// UUID; also the id in `/hls/{camera_id}/...`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Owning company (tenant).
    pub company: Option<String>,
    /// Camera model.
    pub model: Option<String>,
    /// Serial number, unique.
    pub serial_number: String,
    /// Site or address.
    pub location: Option<String>,
    /// Place within the site.
    pub place: Option<String>,
    /// Ingest base URL (`rtmp://host:1935/live`), without the key.
    pub rtmp_url: String,
    /// The first characters of the stream key: finds the row without the key itself.
    pub rtmp_key_prefix: String,
    /// SHA-256 of the whole stream key, hex.
    pub rtmp_key_hash: String,
    /// Inactive cameras may not publish.
    pub is_active: bool,
    /// Whether the recorder should record it.
    pub is_recording: bool,
    /// ABR ladder: `off` or `default` (the node's `--abr-ladder`).
    pub abr_profile: String,
    /// Stream state, updated from the data plane's health reports.
    #[sqlx(try_from = "String")]
    pub stream_status: StreamStatus,
    /// The node that ingests it.
    pub assigned_node: Option<String>,
    /// The user who created it.
    pub owner_id: Option<String>,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub updated_at: i64,
}

/// Fields of a new camera.
#[derive(Debug, Clone)]
pub struct NewCamera {
    /// Display name.
    pub name: String,
    /// Company.
    pub company: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// Serial number.
    pub serial_number: String,
    /// Site.
    pub location: Option<String>,
    /// Place.
    pub place: Option<String>,
    /// Ingest base URL.
    pub rtmp_url: String,
    /// Stream key prefix.
    pub rtmp_key_prefix: String,
    /// Stream key digest.
    pub rtmp_key_hash: String,
    /// Active.
    pub is_active: bool,
    /// Recording.
    pub is_recording: bool,
    /// ABR profile (`off`, `default`).
    pub abr_profile: String,
    /// Creator.
    pub owner_id: Option<String>,
}

/// A partial camera update (see [`UserUpdate`] for the `Option` convention).
#[derive(Debug, Clone, Default)]
pub struct CameraUpdate {
    /// Name.
    pub name: Option<String>,
    /// Company.
    pub company: Option<Option<String>>,
    /// Model.
    pub model: Option<Option<String>>,
    /// Serial number.
    pub serial_number: Option<String>,
    /// Site.
    pub location: Option<Option<String>>,
    /// Place.
    pub place: Option<Option<String>>,
    /// Active.
    pub is_active: Option<bool>,
    /// Recording.
    pub is_recording: Option<bool>,
    /// ABR profile.
    pub abr_profile: Option<String>,
}

/// Which cameras to list.
#[derive(Debug, Clone, Default)]
pub struct CameraFilter {
    /// Only this stream status.
    pub status: Option<StreamStatus>,
    /// Only active or inactive ones.
    pub is_active: Option<bool>,
    /// Only this company (exact).
    pub company: Option<String>,
    /// Only this location (exact).
    pub location: Option<String>,
    /// Case-insensitive substring of name, serial number, location or place.
    pub search: Option<String>,
    /// The caller's tenant: when set, only this company's cameras exist for them.
    pub tenant: Option<String>,
    /// Rows to skip.
    pub offset: i64,
    /// Rows to return.
    pub limit: i64,
}

/// Camera counts for the dashboard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CameraCounts {
    /// All cameras.
    pub total: i64,
    /// Active ones.
    pub active: i64,
    /// Online ones.
    pub online: i64,
    /// In error.
    pub error: i64,
    /// Recording.
    pub recording: i64,
    /// With an ABR profile other than `off`.
    pub abr: i64,
}

/// An API token (the secret itself is never stored).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ApiToken {
    /// UUID.
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// Name.
    pub name: String,
    /// Free text.
    pub remark: Option<String>,
    /// Public prefix of the secret (finds the row).
    pub prefix: String,
    /// SHA-256 of the whole secret, hex.
    pub secret_hash: String,
    /// What it may do.
    #[sqlx(try_from = "String")]
    pub permissions: Permissions,
    /// Requests per hour.
    pub rate_limit: i64,
    /// Unix ms; `None` = never.
    pub expires_at: Option<i64>,
    /// Unix ms (updated at most once a minute).
    pub last_used_at: Option<i64>,
    /// Unix ms of revocation.
    pub revoked_at: Option<i64>,
    /// Unix ms.
    pub created_at: i64,
}

/// A refresh token (one per login session generation; rotation revokes the old one).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct RefreshToken {
    /// UUID.
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// The login session this token belongs to.
    pub session_id: String,
    /// Public prefix of the secret.
    pub prefix: String,
    /// SHA-256 of the secret, hex.
    pub secret_hash: String,
    /// Unix ms.
    pub expires_at: i64,
    /// Unix ms of revocation (rotation or logout).
    pub revoked_at: Option<i64>,
    /// Unix ms.
    pub created_at: i64,
}

/// An alert record.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// UUID.
    pub id: String,
    /// `API_RATE_LIMIT`, ...
    pub kind: String,
    /// `info`, `warning` or `critical`.
    pub severity: String,
    /// Camera concerned.
    pub camera_id: Option<String>,
    /// User concerned.
    pub user_id: Option<String>,
    /// Token concerned.
    pub token_id: Option<String>,
    /// Text.
    pub message: String,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub resolved_at: Option<i64>,
    /// What raised it (`KIND:subject`); at most one open alert per cause.
    pub cause: Option<String>,
    /// Times the cause was raised while this alert was open.
    pub occurrences: i64,
    /// Unix ms of the last occurrence.
    pub last_seen_at: Option<i64>,
    /// Unix ms of the acknowledgement.
    pub acknowledged_at: Option<i64>,
    /// Who acknowledged it (user id).
    pub acknowledged_by: Option<String>,
    /// The tenant it belongs to (the camera's or the user's company); `None`: admins only.
    pub company: Option<String>,
}

/// Fields of a new alert.
#[derive(Debug, Clone, Default)]
pub struct NewAlert {
    /// Kind.
    pub kind: String,
    /// Severity.
    pub severity: String,
    /// Camera concerned.
    pub camera_id: Option<String>,
    /// User concerned.
    pub user_id: Option<String>,
    /// Token concerned.
    pub token_id: Option<String>,
    /// Text.
    pub message: String,
    /// Its cause: while an alert of this cause is open, raising it again counts an
    /// occurrence on that alert instead of making a new one. `None`: always a new alert.
    pub cause: Option<String>,
    /// The tenant (see [`Alert::company`]).
    pub company: Option<String>,
}

/// The repository. Every method is one statement or one transaction; none holds a
/// connection across calls.
///
/// # Cancel safety
/// Dropping a future may leave its statement executed or not, never half-applied.
#[async_trait]
pub trait Store:
    RecordingStore + LayoutStore + AlertStore + NotifyStore + AlertRuleStore + Send + Sync + 'static
{
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
    /// Checks the connection.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Number of users.
    async fn count_users(&self) -> Result<i64, StoreError>;
    /// Creates a user.
    async fn create_user(&self, user: NewUser) -> Result<User, StoreError>;
    /// One user by id.
    async fn get_user(&self, id: &str) -> Result<Option<User>, StoreError>;
    /// One user by login name.
    async fn get_user_by_username(&self, username: &str) -> Result<Option<User>, StoreError>;
    /// A page of users ordered by creation, and the total.
    async fn list_users(&self, offset: i64, limit: i64) -> Result<(Vec<User>, i64), StoreError>;
    /// Applies an update; `None` if there is no such user.
    async fn update_user(&self, id: &str, update: UserUpdate) -> Result<Option<User>, StoreError>;
    /// Deletes a user (their tokens go too); whether it existed.
    async fn delete_user(&self, id: &str) -> Result<bool, StoreError>;
    /// Records a successful login.
    async fn touch_login(&self, id: &str, at: i64) -> Result<(), StoreError>;

    /// Creates a camera.
    async fn create_camera(&self, camera: NewCamera) -> Result<Camera, StoreError>;
    /// One camera by id.
    async fn get_camera(&self, id: &str) -> Result<Option<Camera>, StoreError>;
    /// The camera whose stream key starts with `prefix`.
    async fn get_camera_by_key_prefix(&self, prefix: &str) -> Result<Option<Camera>, StoreError>;
    /// A filtered page of cameras ordered by creation, and the filtered total.
    async fn list_cameras(&self, filter: &CameraFilter) -> Result<(Vec<Camera>, i64), StoreError>;
    /// Applies an update; `None` if there is no such camera.
    async fn update_camera(
        &self,
        id: &str,
        update: CameraUpdate,
    ) -> Result<Option<Camera>, StoreError>;
    /// Replaces the stream key; `None` if there is no such camera.
    async fn set_camera_key(
        &self,
        id: &str,
        prefix: &str,
        hash: &str,
    ) -> Result<Option<Camera>, StoreError>;
    /// Sets the stream status and node; whether the camera exists.
    async fn set_stream_status(
        &self,
        id: &str,
        status: StreamStatus,
        node: Option<&str>,
    ) -> Result<bool, StoreError>;
    /// Marks every camera assigned to `node` offline (that node restarted, so nothing it
    /// ingested is live any more); how many changed.
    async fn reset_node_streams(&self, node: &str) -> Result<u64, StoreError>;
    /// Deletes a camera; whether it existed.
    async fn delete_camera(&self, id: &str) -> Result<bool, StoreError>;
    /// Counts for the dashboard, within a tenant when given.
    async fn camera_counts(&self, tenant: Option<&str>) -> Result<CameraCounts, StoreError>;

    /// Stores a new API token.
    async fn create_api_token(&self, token: &ApiToken) -> Result<(), StoreError>;
    /// One token by id.
    async fn get_api_token(&self, id: &str) -> Result<Option<ApiToken>, StoreError>;
    /// One token by secret prefix.
    async fn get_api_token_by_prefix(&self, prefix: &str) -> Result<Option<ApiToken>, StoreError>;
    /// Tokens of one user (all users when `None`), newest first.
    async fn list_api_tokens(&self, user_id: Option<&str>) -> Result<Vec<ApiToken>, StoreError>;
    /// Revokes a token; whether it was live before.
    async fn revoke_api_token(&self, id: &str, at: i64) -> Result<bool, StoreError>;
    /// Replaces a token's permissions.
    async fn set_api_token_permissions(
        &self,
        id: &str,
        permissions: &Permissions,
    ) -> Result<Option<ApiToken>, StoreError>;
    /// Records a use.
    async fn touch_api_token(&self, id: &str, at: i64) -> Result<(), StoreError>;

    /// Stores a refresh token.
    async fn create_refresh_token(&self, token: &RefreshToken) -> Result<(), StoreError>;
    /// One refresh token by secret prefix.
    async fn get_refresh_token_by_prefix(
        &self,
        prefix: &str,
    ) -> Result<Option<RefreshToken>, StoreError>;
    /// Revokes one refresh token if it is still live; whether this call revoked it (so two
    /// concurrent refreshes with the same token cannot both win).
    async fn revoke_refresh_token(&self, id: &str, at: i64) -> Result<bool, StoreError>;
    /// Revokes every token of a session; how many were live.
    async fn revoke_session(&self, session_id: &str, at: i64) -> Result<u64, StoreError>;
    /// Revokes every live refresh token of a user and returns their session ids.
    async fn revoke_user_sessions(&self, user_id: &str, at: i64)
    -> Result<Vec<String>, StoreError>;

    /// Deletes refresh tokens that expired before `before`; how many.
    async fn purge_refresh_tokens(&self, before: i64) -> Result<u64, StoreError>;

    /// Records an alert; with a cause that has an open alert, counts one more occurrence
    /// on it (and refreshes its message) instead.
    async fn create_alert(&self, alert: NewAlert) -> Result<Alert, StoreError>;
    /// The newest alerts, optionally of one kind.
    async fn list_alerts(&self, kind: Option<&str>, limit: i64) -> Result<Vec<Alert>, StoreError>;
}
