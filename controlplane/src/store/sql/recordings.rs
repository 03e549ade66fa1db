//! [`RecordingStore`] for both SQL stores: one macro body, expanded for SQLite and
//! PostgreSQL, same SQL text (see the parent module for why).

use async_trait::async_trait;

use super::{Arg, Args, PgStore, SqliteStore};
use crate::clock::now_ms;
use crate::store::recordings::{
    AuditEntry, AuditFilter, Bookmark, JobKind, JobState, NewAudit, NewBookmark, NewRecording,
    Recording, RecordingFilter, RecordingGrowth, RecordingJob, RecordingStore, RetentionPolicy,
    Tier, TierUsage,
};
use crate::store::{Alert, StoreError};

fn recording_where(f: &RecordingFilter, a: &mut Args) -> String {
    let mut clauses: Vec<String> = Vec::new();
    if let Some(c) = &f.camera_id {
        clauses.push(format!(
            "camera_id = {}",
            a.push(Arg::Text(Some(c.clone())))
        ));
    }
    if let Some(t) = &f.tenant {
        clauses.push(format!(
            "camera_id IN (SELECT id FROM cameras WHERE company = {})",
            a.push(Arg::Text(Some(t.clone())))
        ));
    }
    if let Some(from) = f.from {
        clauses.push(format!("end_time > {}", a.push(Arg::Int(from))));
    }
    if let Some(to) = f.to {
        clauses.push(format!("start_time < {}", a.push(Arg::Int(to))));
    }
    if let Some(t) = f.tier {
        clauses.push(format!(
            "storage_tier = {}",
            a.push(Arg::Text(Some(t.as_str().to_owned())))
        ));
    }
    if clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clauses.join(" AND "))
    }
}

fn audit_where(f: &AuditFilter, a: &mut Args) -> String {
    let mut clauses: Vec<String> = Vec::new();
    for (col, v) in [
        ("action", &f.action),
        ("user_id", &f.user_id),
        ("camera_id", &f.camera_id),
    ] {
        if let Some(v) = v {
            clauses.push(format!("{col} = {}", a.push(Arg::Text(Some(v.clone())))));
        }
    }
    if let Some(from) = f.from {
        clauses.push(format!("created_at >= {}", a.push(Arg::Int(from))));
    }
    if let Some(to) = f.to {
        clauses.push(format!("created_at < {}", a.push(Arg::Int(to))));
    }
    if clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clauses.join(" AND "))
    }
}

/// The upsert shared by `open_recording` and `index_recording`: a new row is numbered after
/// the camera's last file; an existing one keeps its id and number.
const UPSERT_RECORDING: &str = "INSERT INTO recordings (id, camera_id, segment_number, filename, \
     file_path, duration_ms, file_size, init_size, start_time, end_time, status, storage_tier, \
     is_archived, created_at, updated_at, node_id) VALUES ($1, $2, \
     (SELECT COALESCE(MAX(segment_number), 0) + 1 FROM recordings WHERE camera_id = $2), \
     $3, $4, $5, $6, $7, $8, $9, $10, 'hot', FALSE, $11, $11, $12) \
     ON CONFLICT (file_path) DO UPDATE SET duration_ms = excluded.duration_ms, \
     file_size = excluded.file_size, init_size = excluded.init_size, \
     start_time = excluded.start_time, end_time = excluded.end_time, status = excluded.status, \
     updated_at = excluded.updated_at, node_id = excluded.node_id RETURNING *";

macro_rules! sql_recording_store {
    ($store:ty) => {
        #[async_trait]
        impl RecordingStore for $store {
            async fn open_recording(&self, r: NewRecording) -> Result<Recording, StoreError> {
                Ok(sqlx::query_as(UPSERT_RECORDING)
                    .bind(uuid::Uuid::new_v4().to_string())
                    .bind(r.camera_id)
                    .bind(r.filename)
                    .bind(r.file_path)
                    .bind(r.duration_ms)
                    .bind(r.file_size)
                    .bind(r.init_size)
                    .bind(r.start_time)
                    .bind(r.end_time)
                    .bind(r.status.as_str())
                    .bind(now_ms())
                    .bind(r.node_id)
                    .fetch_one(&self.pool)
                    .await?)
            }

            async fn grow_recording(
                &self,
                file_path: &str,
                g: RecordingGrowth,
                entries: Option<Vec<u8>>,
            ) -> Result<Option<String>, StoreError> {
                let mut tx = self.pool.begin().await?;
                let status = if g.complete { "complete" } else { "recording" };
                let id: Option<String> = sqlx::query_scalar(
                    "UPDATE recordings SET duration_ms = $1, file_size = $2, end_time = $3, \
                     status = $4, updated_at = $5 WHERE file_path = $6 RETURNING id",
                )
                .bind(g.duration_ms)
                .bind(g.file_size)
                .bind(g.end_time)
                .bind(status)
                .bind(now_ms())
                .bind(file_path)
                .fetch_optional(&mut *tx)
                .await?;
                if let (Some(id), Some(chunk)) = (&id, entries) {
                    sqlx::query(
                        "INSERT INTO recording_index (recording_id, seq, entries) VALUES ($1, \
                         (SELECT COALESCE(MAX(seq), 0) + 1 FROM recording_index \
                          WHERE recording_id = $1), $2)",
                    )
                    .bind(id)
                    .bind(chunk)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(id)
            }

            async fn index_recording(
                &self,
                r: NewRecording,
                entries: Vec<u8>,
            ) -> Result<Recording, StoreError> {
                let mut tx = self.pool.begin().await?;
                let row: Recording = sqlx::query_as(UPSERT_RECORDING)
                    .bind(uuid::Uuid::new_v4().to_string())
                    .bind(r.camera_id)
                    .bind(r.filename)
                    .bind(r.file_path)
                    .bind(r.duration_ms)
                    .bind(r.file_size)
                    .bind(r.init_size)
                    .bind(r.start_time)
                    .bind(r.end_time)
                    .bind(r.status.as_str())
                    .bind(now_ms())
                    .bind(r.node_id)
                    .fetch_one(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM recording_index WHERE recording_id = $1")
                    .bind(&row.id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO recording_index (recording_id, seq, entries) VALUES ($1, 1, $2)",
                )
                .bind(&row.id)
                .bind(entries)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(row)
            }

            async fn get_recording(&self, id: &str) -> Result<Option<Recording>, StoreError> {
                Ok(sqlx::query_as("SELECT * FROM recordings WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn get_recording_by_path(
                &self,
                path: &str,
            ) -> Result<Option<Recording>, StoreError> {
                Ok(sqlx::query_as("SELECT * FROM recordings WHERE file_path = $1")
                    .bind(path)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn list_recordings(
                &self,
                f: &RecordingFilter,
            ) -> Result<(Vec<Recording>, i64), StoreError> {
                let mut a = Args::default();
                let wh = recording_where(f, &mut a);
                let count_sql = format!("SELECT COUNT(*) FROM recordings{wh}");
                let total: i64 =
                    bind_args!(sqlx::query_scalar(sqlx::AssertSqlSafe(count_sql)), a.args)
                        .fetch_one(&self.pool)
                        .await?;
                let mut b = Args::default();
                let wh = recording_where(f, &mut b);
                let lim = b.push(Arg::Int(f.limit));
                let off = b.push(Arg::Int(f.offset));
                let sql = format!(
                    "SELECT * FROM recordings{wh} ORDER BY start_time DESC, id \
                     LIMIT {lim} OFFSET {off}"
                );
                let rows = bind_args!(sqlx::query_as(sqlx::AssertSqlSafe(sql)), b.args)
                    .fetch_all(&self.pool)
                    .await?;
                Ok((rows, total))
            }

            async fn recordings_between(
                &self,
                camera_id: &str,
                from: i64,
                to: i64,
                limit: i64,
            ) -> Result<Vec<Recording>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT * FROM recordings WHERE camera_id = $1 AND end_time > $2 \
                     AND start_time < $3 ORDER BY start_time, id LIMIT $4",
                )
                .bind(camera_id)
                .bind(from)
                .bind(to)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn recording_index(&self, id: &str) -> Result<Vec<Vec<u8>>, StoreError> {
                Ok(sqlx::query_scalar(
                    "SELECT entries FROM recording_index WHERE recording_id = $1 ORDER BY seq",
                )
                .bind(id)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn open_recordings(&self) -> Result<Vec<Recording>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT * FROM recordings WHERE status = 'recording' ORDER BY start_time, id",
                )
                .fetch_all(&self.pool)
                .await?)
            }

            async fn retention_candidates(
                &self,
                ended_before: i64,
                after: Option<(i64, String)>,
                limit: i64,
            ) -> Result<Vec<Recording>, StoreError> {
                let (t, id) = after.unwrap_or((i64::MIN, String::new()));
                Ok(sqlx::query_as(
                    "SELECT * FROM recordings WHERE status = 'complete' AND end_time < $1 \
                     AND (end_time > $2 OR (end_time = $2 AND id > $3)) \
                     ORDER BY end_time, id LIMIT $4",
                )
                .bind(ended_before)
                .bind(t)
                .bind(id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn delete_recording_by_path(&self, path: &str) -> Result<bool, StoreError> {
                let r = sqlx::query("DELETE FROM recordings WHERE file_path = $1")
                    .bind(path)
                    .execute(&self.pool)
                    .await?;
                Ok(r.rows_affected() > 0)
            }

            async fn set_signed_url_expiry(
                &self,
                id: &str,
                expires_at: i64,
            ) -> Result<(), StoreError> {
                sqlx::query("UPDATE recordings SET signed_url_expires_at = $1 WHERE id = $2")
                    .bind(expires_at)
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn recording_usage(
                &self,
                tenant: Option<&str>,
            ) -> Result<Vec<TierUsage>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT camera_id, storage_tier AS tier, \
                     CAST(COALESCE(SUM(file_size), 0) AS BIGINT) AS bytes, COUNT(*) AS files \
                     FROM recordings WHERE $1 IS NULL OR camera_id IN \
                     (SELECT id FROM cameras WHERE company = $1) \
                     GROUP BY camera_id, storage_tier ORDER BY camera_id, storage_tier",
                )
                .bind(tenant)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn create_job(&self, j: &RecordingJob) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO recording_jobs (recording_id, kind, state, from_tier, to_tier, \
                     src_path, dst_path, checksum, created_at, updated_at, node_id) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                )
                .bind(&j.recording_id)
                .bind(j.kind.as_str())
                .bind(j.state.as_str())
                .bind(j.from_tier.as_str())
                .bind(&j.to_tier)
                .bind(&j.src_path)
                .bind(&j.dst_path)
                .bind(&j.checksum)
                .bind(j.created_at)
                .bind(j.updated_at)
                .bind(&j.node_id)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn set_job_state(
                &self,
                recording_id: &str,
                state: JobState,
                checksum: Option<&str>,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "UPDATE recording_jobs SET state = $1, checksum = COALESCE($2, checksum), \
                     updated_at = $3 WHERE recording_id = $4",
                )
                .bind(state.as_str())
                .bind(checksum)
                .bind(now_ms())
                .bind(recording_id)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn switch_tier(
                &self,
                recording_id: &str,
                tier: Tier,
                file_path: &str,
                cloud_url: Option<&str>,
                checksum: &str,
            ) -> Result<bool, StoreError> {
                let now = now_ms();
                let mut tx = self.pool.begin().await?;
                let r = sqlx::query(
                    "UPDATE recordings SET storage_tier = $1, file_path = $2, is_archived = $3, \
                     cloud_url = $4, checksum = $5, updated_at = $6 WHERE id = $7",
                )
                .bind(tier.as_str())
                .bind(file_path)
                .bind(tier == Tier::Archived)
                .bind(cloud_url)
                .bind(checksum)
                .bind(now)
                .bind(recording_id)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE recording_jobs SET state = 'switched', updated_at = $1 \
                     WHERE recording_id = $2",
                )
                .bind(now)
                .bind(recording_id)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(r.rows_affected() > 0)
            }

            async fn delete_recording_journaled(
                &self,
                id: &str,
            ) -> Result<Option<Recording>, StoreError> {
                let mut tx = self.pool.begin().await?;
                let row: Option<Recording> =
                    sqlx::query_as("DELETE FROM recordings WHERE id = $1 RETURNING *")
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await?;
                let Some(row) = row else {
                    return Ok(None);
                };
                let now = now_ms();
                sqlx::query(
                    "INSERT INTO recording_jobs (recording_id, kind, state, from_tier, to_tier, \
                     src_path, dst_path, checksum, created_at, updated_at, node_id) \
                     VALUES ($1, $2, $3, $4, NULL, $5, NULL, NULL, $6, $6, $7)",
                )
                .bind(&row.id)
                .bind(JobKind::Delete.as_str())
                .bind(JobState::Deleting.as_str())
                .bind(row.storage_tier.as_str())
                .bind(&row.file_path)
                .bind(now)
                .bind(&row.node_id)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(Some(row))
            }

            async fn delete_job(&self, recording_id: &str) -> Result<(), StoreError> {
                sqlx::query("DELETE FROM recording_jobs WHERE recording_id = $1")
                    .bind(recording_id)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn get_job(&self, recording_id: &str) -> Result<Option<RecordingJob>, StoreError> {
                Ok(sqlx::query_as("SELECT * FROM recording_jobs WHERE recording_id = $1")
                    .bind(recording_id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn list_jobs(&self) -> Result<Vec<RecordingJob>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT * FROM recording_jobs ORDER BY created_at, recording_id",
                )
                .fetch_all(&self.pool)
                .await?)
            }

            async fn list_policies(&self) -> Result<Vec<RetentionPolicy>, StoreError> {
                Ok(sqlx::query_as("SELECT * FROM retention_policies ORDER BY scope")
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn put_policy(&self, p: &RetentionPolicy) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO retention_policies (scope, warm_after_s, cold_after_s, \
                     archive_after_s, delete_after_s, updated_at) VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (scope) DO UPDATE SET warm_after_s = excluded.warm_after_s, \
                     cold_after_s = excluded.cold_after_s, \
                     archive_after_s = excluded.archive_after_s, \
                     delete_after_s = excluded.delete_after_s, updated_at = excluded.updated_at",
                )
                .bind(&p.scope)
                .bind(p.warm_after_s)
                .bind(p.cold_after_s)
                .bind(p.archive_after_s)
                .bind(p.delete_after_s)
                .bind(p.updated_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn delete_policy(&self, scope: &str) -> Result<bool, StoreError> {
                let r = sqlx::query("DELETE FROM retention_policies WHERE scope = $1")
                    .bind(scope)
                    .execute(&self.pool)
                    .await?;
                Ok(r.rows_affected() > 0)
            }

            async fn create_bookmark(&self, b: NewBookmark) -> Result<Bookmark, StoreError> {
                Ok(sqlx::query_as(
                    "INSERT INTO bookmarks (id, camera_id, at, label, user_id, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) RETURNING *",
                )
                .bind(uuid::Uuid::new_v4().to_string())
                .bind(b.camera_id)
                .bind(b.at)
                .bind(b.label)
                .bind(b.user_id)
                .bind(now_ms())
                .fetch_one(&self.pool)
                .await?)
            }

            async fn list_bookmarks(
                &self,
                camera_id: &str,
                from: i64,
                to: i64,
                limit: i64,
            ) -> Result<Vec<Bookmark>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT * FROM bookmarks WHERE camera_id = $1 AND at >= $2 AND at < $3 \
                     ORDER BY at, id LIMIT $4",
                )
                .bind(camera_id)
                .bind(from)
                .bind(to)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn camera_alerts(
                &self,
                camera_id: &str,
                from: i64,
                to: i64,
                limit: i64,
            ) -> Result<Vec<Alert>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT * FROM alerts WHERE camera_id = $1 AND created_at >= $2 \
                     AND created_at < $3 ORDER BY created_at, id LIMIT $4",
                )
                .bind(camera_id)
                .bind(from)
                .bind(to)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn add_audit(&self, e: NewAudit) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO audit_log (id, action, user_id, token_id, camera_id, \
                     recording_id, ip, detail, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(uuid::Uuid::new_v4().to_string())
                .bind(e.action)
                .bind(e.user_id)
                .bind(e.token_id)
                .bind(e.camera_id)
                .bind(e.recording_id)
                .bind(e.ip)
                .bind(e.detail)
                .bind(now_ms())
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn list_audit(
                &self,
                f: &AuditFilter,
            ) -> Result<(Vec<AuditEntry>, i64), StoreError> {
                let mut a = Args::default();
                let wh = audit_where(f, &mut a);
                let count_sql = format!("SELECT COUNT(*) FROM audit_log{wh}");
                let total: i64 =
                    bind_args!(sqlx::query_scalar(sqlx::AssertSqlSafe(count_sql)), a.args)
                        .fetch_one(&self.pool)
                        .await?;
                let mut b = Args::default();
                let wh = audit_where(f, &mut b);
                let lim = b.push(Arg::Int(f.limit));
                let off = b.push(Arg::Int(f.offset));
                let sql = format!(
                    "SELECT * FROM audit_log{wh} ORDER BY created_at DESC, id \
                     LIMIT {lim} OFFSET {off}"
                );
                let rows = bind_args!(sqlx::query_as(sqlx::AssertSqlSafe(sql)), b.args)
                    .fetch_all(&self.pool)
                    .await?;
                Ok((rows, total))
            }
        }
    };
}

sql_recording_store!(SqliteStore);
sql_recording_store!(PgStore);
