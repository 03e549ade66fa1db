//! The two SQL implementations of [`Store`]. One macro body holds every query, expanded once
//! for `SqlitePool` and once for `PgPool`: the SQL is the same text (`$N` placeholders, types
//! both databases share: TEXT, BIGINT, BOOLEAN), so a query cannot drift between backends.
//! sqlx's `Any` driver is avoided on purpose (CRATES.md: no typed values, `?` placeholders).

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use super::{
    Alert, ApiToken, Camera, CameraCounts, CameraFilter, CameraUpdate, NewAlert, NewCamera,
    NewUser, RefreshToken, Store, StoreError, StreamStatus, User, UserUpdate,
};
use crate::clock::now_ms;
use crate::rbac::Permissions;

/// How long a query waits for a pooled connection before the store reports itself down.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens the store named by `url` and applies its migrations: `sqlite://path` (created when
/// missing) or `postgres://...`. Without a URL the embedded SQLite file
/// `{data_dir}/camstream.db` is used.
///
/// # Errors
/// [`StoreError::UnsupportedUrl`], connection failures, migration failures.
pub async fn connect(url: Option<&str>, data_dir: &Path) -> Result<Arc<dyn Store>, StoreError> {
    match url {
        None => Ok(Arc::new(
            SqliteStore::open(&data_dir.join("camstream.db")).await?,
        )),
        Some(u) if u.starts_with("sqlite:") => Ok(Arc::new(SqliteStore::connect(u).await?)),
        Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => {
            Ok(Arc::new(PgStore::connect(u).await?))
        }
        Some(u) => Err(StoreError::UnsupportedUrl(redact(u))),
    }
}

/// Drops the password from a URL before it goes into an error message.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***{}", &url[..s], &url[at..]),
        _ => url.to_owned(),
    }
}

/// The embedded store: one SQLite file in WAL mode.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating when missing) the database file at `path` and migrates it.
    ///
    /// # Errors
    /// Open or migration failures.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true);
        Self::with_options(options).await
    }

    /// Opens a `sqlite://` URL and migrates it.
    ///
    /// # Errors
    /// Parse, open or migration failures.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?.create_if_missing(true);
        Self::with_options(options).await
    }

    async fn with_options(options: SqliteConnectOptions) -> Result<Self, StoreError> {
        let options = options
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await?;
        sqlx::migrate!("../migrations/sqlite").run(&pool).await?;
        Ok(Self { pool })
    }
}

/// The server store: a PostgreSQL pool.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects to a `postgres://` URL and migrates the database.
    ///
    /// # Errors
    /// Connection or migration failures.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await?;
        sqlx::migrate!("../migrations/postgres").run(&pool).await?;
        Ok(Self { pool })
    }
}

/// A value bound to a dynamically built statement.
enum Arg {
    Text(Option<String>),
    Bool(bool),
    Int(i64),
}

/// Builds `SET`/`WHERE` lists with consecutive `$N` placeholders.
#[derive(Default)]
struct Args {
    args: Vec<Arg>,
}

impl Args {
    /// Adds a value and returns its placeholder.
    fn push(&mut self, a: Arg) -> String {
        self.args.push(a);
        format!("${}", self.args.len())
    }
}

/// Escapes `%`, `_` and `\` so user text matches literally inside `LIKE ... ESCAPE '\'`.
fn like_pattern(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('%');
    for c in s.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

macro_rules! bind_args {
    ($q:expr, $args:expr) => {{
        let mut q = $q;
        for a in $args {
            q = match a {
                Arg::Text(s) => q.bind(s),
                Arg::Bool(b) => q.bind(b),
                Arg::Int(i) => q.bind(i),
            };
        }
        q
    }};
}

const CAMERA_COLUMNS: &str = "id, name, company, model, serial_number, location, place, rtmp_url, \
     rtmp_key_prefix, rtmp_key_hash, is_active, is_recording, abr_profile, stream_status, \
     assigned_node, owner_id, created_at, updated_at";

fn camera_where(filter: &CameraFilter, args: &mut Args) -> String {
    let mut clauses: Vec<String> = Vec::new();
    if let Some(t) = &filter.tenant {
        clauses.push(format!(
            "company = {}",
            args.push(Arg::Text(Some(t.clone())))
        ));
    }
    if let Some(s) = filter.status {
        clauses.push(format!(
            "stream_status = {}",
            args.push(Arg::Text(Some(s.as_str().to_owned())))
        ));
    }
    if let Some(a) = filter.is_active {
        clauses.push(format!("is_active = {}", args.push(Arg::Bool(a))));
    }
    if let Some(c) = &filter.company {
        clauses.push(format!(
            "company = {}",
            args.push(Arg::Text(Some(c.clone())))
        ));
    }
    if let Some(l) = &filter.location {
        clauses.push(format!(
            "location = {}",
            args.push(Arg::Text(Some(l.clone())))
        ));
    }
    if let Some(s) = &filter.search {
        let p = args.push(Arg::Text(Some(like_pattern(s))));
        clauses.push(format!(
            "(LOWER(name) LIKE {p} ESCAPE '\\' OR LOWER(serial_number) LIKE {p} ESCAPE '\\' \
             OR LOWER(COALESCE(location, '')) LIKE {p} ESCAPE '\\' \
             OR LOWER(COALESCE(place, '')) LIKE {p} ESCAPE '\\')"
        ));
    }
    if clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clauses.join(" AND "))
    }
}

/// Writes one `alert_events` outbox row for alert `$a` inside transaction `$tx` (a macro
/// so each backend binds its own types); evaluates to the [`AlertEvent`](crate::store::alerts::AlertEvent).
macro_rules! insert_alert_event {
    ($tx:ident, $a:expr, $event:expr, $at:expr, $actor:expr, $data:expr) => {{
        let a: &crate::store::Alert = $a;
        let e: crate::store::alerts::AlertEvent = sqlx::query_as(
            "INSERT INTO alert_events (alert_id, event, at, company, camera_id, kind, \
             severity, actor, data) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING *",
        )
        .bind(&a.id)
        .bind($event)
        .bind($at)
        .bind(&a.company)
        .bind(&a.camera_id)
        .bind(&a.kind)
        .bind(&a.severity)
        .bind({
            let actor: Option<&str> = $actor;
            actor
        })
        .bind({
            let data: Option<&str> = $data;
            data
        })
        .fetch_one(&mut *$tx)
        .await?;
        e
    }};
}

macro_rules! sql_store {
    ($store:ty, $backend:literal) => {
        #[async_trait]
        impl Store for $store {
            fn backend(&self) -> &'static str {
                $backend
            }

            async fn ping(&self) -> Result<(), StoreError> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn count_users(&self) -> Result<i64, StoreError> {
                Ok(sqlx::query_scalar("SELECT COUNT(*) FROM users")
                    .fetch_one(&self.pool)
                    .await?)
            }

            async fn create_user(&self, u: NewUser) -> Result<User, StoreError> {
                let now = now_ms();
                let id = uuid::Uuid::new_v4().to_string();
                Ok(sqlx::query_as(
                    "INSERT INTO users (id, username, email, password_hash, role, company, \
                     is_active, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, TRUE, $7, $7) RETURNING *",
                )
                .bind(id)
                .bind(u.username)
                .bind(u.email)
                .bind(u.password_hash)
                .bind(u.role.as_str())
                .bind(u.company)
                .bind(now)
                .fetch_one(&self.pool)
                .await?)
            }

            async fn get_user(&self, id: &str) -> Result<Option<User>, StoreError> {
                Ok(sqlx::query_as("SELECT * FROM users WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn get_user_by_username(&self, name: &str) -> Result<Option<User>, StoreError> {
                Ok(sqlx::query_as("SELECT * FROM users WHERE username = $1")
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn list_users(
                &self,
                offset: i64,
                limit: i64,
            ) -> Result<(Vec<User>, i64), StoreError> {
                let rows = sqlx::query_as(
                    "SELECT * FROM users ORDER BY created_at, id LIMIT $1 OFFSET $2",
                )
                .bind(limit)
                .bind(offset)
                .fetch_all(&self.pool)
                .await?;
                let total = self.count_users().await?;
                Ok((rows, total))
            }

            async fn update_user(
                &self,
                id: &str,
                u: UserUpdate,
            ) -> Result<Option<User>, StoreError> {
                let mut a = Args::default();
                let mut sets = Vec::new();
                if let Some(v) = u.email {
                    sets.push(format!("email = {}", a.push(Arg::Text(v))));
                }
                if let Some(v) = u.password_hash {
                    sets.push(format!("password_hash = {}", a.push(Arg::Text(Some(v)))));
                }
                if let Some(v) = u.role {
                    sets.push(format!(
                        "role = {}",
                        a.push(Arg::Text(Some(v.as_str().to_owned())))
                    ));
                }
                if let Some(v) = u.company {
                    sets.push(format!("company = {}", a.push(Arg::Text(v))));
                }
                if let Some(v) = u.is_active {
                    sets.push(format!("is_active = {}", a.push(Arg::Bool(v))));
                }
                sets.push(format!("updated_at = {}", a.push(Arg::Int(now_ms()))));
                let idp = a.push(Arg::Text(Some(id.to_owned())));
                let sql = format!(
                    "UPDATE users SET {} WHERE id = {idp} RETURNING *",
                    sets.join(", ")
                );
                let q = sqlx::query_as(sqlx::AssertSqlSafe(sql));
                Ok(bind_args!(q, a.args).fetch_optional(&self.pool).await?)
            }

            async fn delete_user(&self, id: &str) -> Result<bool, StoreError> {
                let r = sqlx::query("DELETE FROM users WHERE id = $1")
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                Ok(r.rows_affected() > 0)
            }

            async fn touch_login(&self, id: &str, at: i64) -> Result<(), StoreError> {
                sqlx::query("UPDATE users SET last_login_at = $1 WHERE id = $2")
                    .bind(at)
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn create_camera(&self, c: NewCamera) -> Result<Camera, StoreError> {
                let now = now_ms();
                let id = uuid::Uuid::new_v4().to_string();
                Ok(sqlx::query_as(
                    "INSERT INTO cameras (id, name, company, model, serial_number, location, \
                     place, rtmp_url, rtmp_key_prefix, rtmp_key_hash, is_active, is_recording, \
                     abr_profile, stream_status, assigned_node, owner_id, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 'offline', \
                     NULL, $14, $15, $15) RETURNING *",
                )
                .bind(id)
                .bind(c.name)
                .bind(c.company)
                .bind(c.model)
                .bind(c.serial_number)
                .bind(c.location)
                .bind(c.place)
                .bind(c.rtmp_url)
                .bind(c.rtmp_key_prefix)
                .bind(c.rtmp_key_hash)
                .bind(c.is_active)
                .bind(c.is_recording)
                .bind(c.abr_profile)
                .bind(c.owner_id)
                .bind(now)
                .fetch_one(&self.pool)
                .await?)
            }

            async fn get_camera(&self, id: &str) -> Result<Option<Camera>, StoreError> {
                Ok(sqlx::query_as("SELECT * FROM cameras WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn get_camera_by_key_prefix(
                &self,
                prefix: &str,
            ) -> Result<Option<Camera>, StoreError> {
                Ok(sqlx::query_as("SELECT * FROM cameras WHERE rtmp_key_prefix = $1")
                    .bind(prefix)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn list_cameras(
                &self,
                f: &CameraFilter,
            ) -> Result<(Vec<Camera>, i64), StoreError> {
                let mut a = Args::default();
                let wh = camera_where(f, &mut a);
                let count_sql = format!("SELECT COUNT(*) FROM cameras{wh}");
                let mut b = Args::default();
                let wh2 = camera_where(f, &mut b);
                let lim = b.push(Arg::Int(f.limit));
                let off = b.push(Arg::Int(f.offset));
                let sql = format!(
                    "SELECT {CAMERA_COLUMNS} FROM cameras{wh2} \
                     ORDER BY created_at, id LIMIT {lim} OFFSET {off}"
                );
                let total: i64 =
                    bind_args!(sqlx::query_scalar(sqlx::AssertSqlSafe(count_sql)), a.args)
                        .fetch_one(&self.pool)
                        .await?;
                let rows = bind_args!(sqlx::query_as(sqlx::AssertSqlSafe(sql)), b.args)
                    .fetch_all(&self.pool)
                    .await?;
                Ok((rows, total))
            }

            async fn update_camera(
                &self,
                id: &str,
                u: CameraUpdate,
            ) -> Result<Option<Camera>, StoreError> {
                let mut a = Args::default();
                let mut sets = Vec::new();
                if let Some(v) = u.name {
                    sets.push(format!("name = {}", a.push(Arg::Text(Some(v)))));
                }
                if let Some(v) = u.company {
                    sets.push(format!("company = {}", a.push(Arg::Text(v))));
                }
                if let Some(v) = u.model {
                    sets.push(format!("model = {}", a.push(Arg::Text(v))));
                }
                if let Some(v) = u.serial_number {
                    sets.push(format!("serial_number = {}", a.push(Arg::Text(Some(v)))));
                }
                if let Some(v) = u.location {
                    sets.push(format!("location = {}", a.push(Arg::Text(v))));
                }
                if let Some(v) = u.place {
                    sets.push(format!("place = {}", a.push(Arg::Text(v))));
                }
                if let Some(v) = u.is_active {
                    sets.push(format!("is_active = {}", a.push(Arg::Bool(v))));
                }
                if let Some(v) = u.is_recording {
                    sets.push(format!("is_recording = {}", a.push(Arg::Bool(v))));
                }
                if let Some(v) = u.abr_profile {
                    sets.push(format!("abr_profile = {}", a.push(Arg::Text(Some(v)))));
                }
                sets.push(format!("updated_at = {}", a.push(Arg::Int(now_ms()))));
                let idp = a.push(Arg::Text(Some(id.to_owned())));
                let sql = format!(
                    "UPDATE cameras SET {} WHERE id = {idp} RETURNING *",
                    sets.join(", ")
                );
                let q = sqlx::query_as(sqlx::AssertSqlSafe(sql));
                Ok(bind_args!(q, a.args).fetch_optional(&self.pool).await?)
            }

            async fn set_camera_key(
                &self,
                id: &str,
                prefix: &str,
                hash: &str,
            ) -> Result<Option<Camera>, StoreError> {
                Ok(sqlx::query_as(
                    "UPDATE cameras SET rtmp_key_prefix = $1, rtmp_key_hash = $2, \
                     updated_at = $3 WHERE id = $4 RETURNING *",
                )
                .bind(prefix)
                .bind(hash)
                .bind(now_ms())
                .bind(id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn set_stream_status(
                &self,
                id: &str,
                status: StreamStatus,
                node: Option<&str>,
            ) -> Result<bool, StoreError> {
                let r = sqlx::query(
                    "UPDATE cameras SET stream_status = $1, assigned_node = $2, updated_at = $3, \
                     status_changed_at = CASE WHEN stream_status = $1 THEN status_changed_at \
                     ELSE $3 END WHERE id = $4",
                )
                .bind(status.as_str())
                .bind(node)
                .bind(now_ms())
                .bind(id)
                .execute(&self.pool)
                .await?;
                Ok(r.rows_affected() > 0)
            }

            async fn reset_node_streams(&self, node: &str) -> Result<u64, StoreError> {
                let r = sqlx::query(
                    "UPDATE cameras SET stream_status = 'offline', assigned_node = NULL, \
                     updated_at = $1 WHERE assigned_node = $2",
                )
                .bind(now_ms())
                .bind(node)
                .execute(&self.pool)
                .await?;
                Ok(r.rows_affected())
            }

            async fn delete_camera(&self, id: &str) -> Result<bool, StoreError> {
                let r = sqlx::query("DELETE FROM cameras WHERE id = $1")
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                Ok(r.rows_affected() > 0)
            }

            async fn camera_counts(&self, tenant: Option<&str>) -> Result<CameraCounts, StoreError> {
                // SUM over an empty set is NULL in both databases, hence COALESCE; the CASE
                // keeps the sums integral on PostgreSQL (SUM(boolean) does not exist there).
                let row: (i64, i64, i64, i64, i64, i64) = sqlx::query_as(
                    "SELECT COUNT(*), \
                     COALESCE(SUM(CASE WHEN is_active THEN 1 ELSE 0 END), 0), \
                     COALESCE(SUM(CASE WHEN stream_status = 'online' THEN 1 ELSE 0 END), 0), \
                     COALESCE(SUM(CASE WHEN stream_status = 'error' THEN 1 ELSE 0 END), 0), \
                     COALESCE(SUM(CASE WHEN is_recording THEN 1 ELSE 0 END), 0), \
                     COALESCE(SUM(CASE WHEN abr_profile <> 'off' THEN 1 ELSE 0 END), 0) \
                     FROM cameras WHERE ($1 IS NULL OR company = $1)",
                )
                .bind(tenant)
                .fetch_one(&self.pool)
                .await?;
                Ok(CameraCounts {
                    total: row.0,
                    active: row.1,
                    online: row.2,
                    error: row.3,
                    recording: row.4,
                    abr: row.5,
                })
            }

            async fn create_api_token(&self, t: &ApiToken) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO api_tokens (id, user_id, name, remark, prefix, secret_hash, \
                     permissions, rate_limit, expires_at, last_used_at, revoked_at, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                )
                .bind(&t.id)
                .bind(&t.user_id)
                .bind(&t.name)
                .bind(&t.remark)
                .bind(&t.prefix)
                .bind(&t.secret_hash)
                .bind(t.permissions.to_db())
                .bind(t.rate_limit)
                .bind(t.expires_at)
                .bind(t.last_used_at)
                .bind(t.revoked_at)
                .bind(t.created_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn get_api_token(&self, id: &str) -> Result<Option<ApiToken>, StoreError> {
                Ok(sqlx::query_as("SELECT * FROM api_tokens WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn get_api_token_by_prefix(
                &self,
                prefix: &str,
            ) -> Result<Option<ApiToken>, StoreError> {
                Ok(sqlx::query_as("SELECT * FROM api_tokens WHERE prefix = $1")
                    .bind(prefix)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn list_api_tokens(
                &self,
                user_id: Option<&str>,
            ) -> Result<Vec<ApiToken>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT * FROM api_tokens WHERE ($1 IS NULL OR user_id = $1) \
                     ORDER BY created_at DESC, id",
                )
                .bind(user_id)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn revoke_api_token(&self, id: &str, at: i64) -> Result<bool, StoreError> {
                let r = sqlx::query(
                    "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
                )
                .bind(at)
                .bind(id)
                .execute(&self.pool)
                .await?;
                Ok(r.rows_affected() > 0)
            }

            async fn set_api_token_permissions(
                &self,
                id: &str,
                permissions: &Permissions,
            ) -> Result<Option<ApiToken>, StoreError> {
                Ok(sqlx::query_as(
                    "UPDATE api_tokens SET permissions = $1 WHERE id = $2 RETURNING *",
                )
                .bind(permissions.to_db())
                .bind(id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn touch_api_token(&self, id: &str, at: i64) -> Result<(), StoreError> {
                sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
                    .bind(at)
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn create_refresh_token(&self, t: &RefreshToken) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO refresh_tokens (id, user_id, session_id, prefix, secret_hash, \
                     expires_at, revoked_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(&t.id)
                .bind(&t.user_id)
                .bind(&t.session_id)
                .bind(&t.prefix)
                .bind(&t.secret_hash)
                .bind(t.expires_at)
                .bind(t.revoked_at)
                .bind(t.created_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn get_refresh_token_by_prefix(
                &self,
                prefix: &str,
            ) -> Result<Option<RefreshToken>, StoreError> {
                Ok(sqlx::query_as("SELECT * FROM refresh_tokens WHERE prefix = $1")
                    .bind(prefix)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn revoke_refresh_token(&self, id: &str, at: i64) -> Result<bool, StoreError> {
                let r = sqlx::query(
                    "UPDATE refresh_tokens SET revoked_at = $1 \
                     WHERE id = $2 AND revoked_at IS NULL",
                )
                .bind(at)
                .bind(id)
                .execute(&self.pool)
                .await?;
                Ok(r.rows_affected() > 0)
            }

            async fn revoke_session(&self, session_id: &str, at: i64) -> Result<u64, StoreError> {
                let r = sqlx::query(
                    "UPDATE refresh_tokens SET revoked_at = $1 \
                     WHERE session_id = $2 AND revoked_at IS NULL",
                )
                .bind(at)
                .bind(session_id)
                .execute(&self.pool)
                .await?;
                Ok(r.rows_affected())
            }

            async fn revoke_user_sessions(
                &self,
                user_id: &str,
                at: i64,
            ) -> Result<Vec<String>, StoreError> {
                let sessions: Vec<String> = sqlx::query_scalar(
                    "UPDATE refresh_tokens SET revoked_at = $1 \
                     WHERE user_id = $2 AND revoked_at IS NULL RETURNING session_id",
                )
                .bind(at)
                .bind(user_id)
                .fetch_all(&self.pool)
                .await?;
                Ok(sessions)
            }

            async fn purge_refresh_tokens(&self, before: i64) -> Result<u64, StoreError> {
                let r = sqlx::query("DELETE FROM refresh_tokens WHERE expires_at < $1")
                    .bind(before)
                    .execute(&self.pool)
                    .await?;
                Ok(r.rows_affected())
            }

            async fn create_alert(&self, n: NewAlert) -> Result<Alert, StoreError> {
                // The partial unique index on open causes makes this one statement on both
                // databases: a second raise of an open cause counts an occurrence. The
                // outbox row (`opened` or `repeated`) is written in the same transaction.
                let at = now_ms();
                let mut tx = self.pool.begin().await?;
                let a: Alert = sqlx::query_as(
                    "INSERT INTO alerts (id, kind, severity, camera_id, user_id, token_id, \
                     message, created_at, cause, occurrences, last_seen_at, company) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $8, $10) \
                     ON CONFLICT (cause) WHERE resolved_at IS NULL DO UPDATE SET \
                     occurrences = alerts.occurrences + 1, last_seen_at = excluded.last_seen_at, \
                     message = excluded.message, severity = excluded.severity RETURNING *",
                )
                .bind(uuid::Uuid::new_v4().to_string())
                .bind(n.kind)
                .bind(n.severity)
                .bind(n.camera_id)
                .bind(n.user_id)
                .bind(n.token_id)
                .bind(n.message)
                .bind(at)
                .bind(n.cause)
                .bind(n.company)
                .fetch_one(&mut *tx)
                .await?;
                let event = if a.occurrences > 1 { "repeated" } else { "opened" };
                insert_alert_event!(tx, &a, event, at, None, None);
                tx.commit().await?;
                Ok(a)
            }

            async fn list_alerts(
                &self,
                kind: Option<&str>,
                limit: i64,
            ) -> Result<Vec<Alert>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT * FROM alerts WHERE ($1 IS NULL OR kind = $1) \
                     ORDER BY created_at DESC, id LIMIT $2",
                )
                .bind(kind)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }
        }
    };
}

sql_store!(SqliteStore, "sqlite");
sql_store!(PgStore, "postgres");

mod alerts;
mod layouts;
mod notify;
mod recordings;
mod rules;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_are_literal() {
        assert_eq!(like_pattern("A_b%"), "%a\\_b\\%%");
        assert_eq!(like_pattern("x\\"), "%x\\\\%");
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(redact("mysql://u:secret@h/db"), "mysql://***@h/db");
        assert_eq!(redact("nothing"), "nothing");
    }
}
