//! [`AlertStore`] for both SQL stores: the same statements, bound per backend.

use async_trait::async_trait;

use super::{Arg, Args, CAMERA_COLUMNS, PgStore, SqliteStore};
use crate::store::alerts::{AlertEvent, AlertFilter, AlertStore};
use crate::store::{Alert, Camera, StoreError};

fn alert_where(f: &AlertFilter, a: &mut Args) -> String {
    let mut clauses: Vec<String> = Vec::new();
    for (col, v) in [
        ("severity", &f.severity),
        ("kind", &f.kind),
        ("camera_id", &f.camera_id),
        ("company", &f.tenant),
    ] {
        if let Some(v) = v {
            clauses.push(format!("{col} = {}", a.push(Arg::Text(Some(v.clone())))));
        }
    }
    match f.acknowledged {
        Some(true) => clauses.push("acknowledged_at IS NOT NULL".into()),
        Some(false) => clauses.push("acknowledged_at IS NULL".into()),
        None => {}
    }
    match f.open {
        Some(true) => clauses.push("resolved_at IS NULL".into()),
        Some(false) => clauses.push("resolved_at IS NOT NULL".into()),
        None => {}
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

macro_rules! sql_alert_store {
    ($store:ty) => {
        #[async_trait]
        impl AlertStore for $store {
            async fn list_alerts_page(
                &self,
                f: &AlertFilter,
            ) -> Result<(Vec<Alert>, i64), StoreError> {
                let mut a = Args::default();
                let wh = alert_where(f, &mut a);
                let count_sql = format!("SELECT COUNT(*) FROM alerts{wh}");
                let total: i64 =
                    bind_args!(sqlx::query_scalar(sqlx::AssertSqlSafe(count_sql)), a.args)
                        .fetch_one(&self.pool)
                        .await?;
                let mut b = Args::default();
                let wh = alert_where(f, &mut b);
                let lim = b.push(Arg::Int(f.limit));
                let off = b.push(Arg::Int(f.offset));
                let sql = format!(
                    "SELECT * FROM alerts{wh} ORDER BY created_at DESC, id \
                     LIMIT {lim} OFFSET {off}"
                );
                let rows = bind_args!(sqlx::query_as(sqlx::AssertSqlSafe(sql)), b.args)
                    .fetch_all(&self.pool)
                    .await?;
                Ok((rows, total))
            }

            async fn get_alert(&self, id: &str) -> Result<Option<Alert>, StoreError> {
                Ok(sqlx::query_as("SELECT * FROM alerts WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn acknowledge_alert(
                &self,
                id: &str,
                user: &str,
                at: i64,
            ) -> Result<Option<Alert>, StoreError> {
                let mut tx = self.pool.begin().await?;
                let first: Option<Alert> = sqlx::query_as(
                    "UPDATE alerts SET acknowledged_at = $1, acknowledged_by = $2 \
                     WHERE id = $3 AND acknowledged_at IS NULL RETURNING *",
                )
                .bind(at)
                .bind(user)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
                let row = match first {
                    Some(a) => {
                        insert_alert_event!(tx, &a, "acknowledged", at, Some(user), None);
                        Some(a)
                    }
                    // Already acknowledged (it keeps its first acknowledgement), or none.
                    None => {
                        sqlx::query_as("SELECT * FROM alerts WHERE id = $1")
                            .bind(id)
                            .fetch_optional(&mut *tx)
                            .await?
                    }
                };
                tx.commit().await?;
                Ok(row)
            }

            async fn resolve_cause(&self, cause: &str, at: i64) -> Result<bool, StoreError> {
                let mut tx = self.pool.begin().await?;
                let resolved: Vec<Alert> = sqlx::query_as(
                    "UPDATE alerts SET resolved_at = $1 WHERE cause = $2 AND resolved_at IS NULL \
                     RETURNING *",
                )
                .bind(at)
                .bind(cause)
                .fetch_all(&mut *tx)
                .await?;
                for a in &resolved {
                    insert_alert_event!(tx, a, "resolved", at, None, None);
                }
                tx.commit().await?;
                Ok(!resolved.is_empty())
            }

            async fn alert_events_since(
                &self,
                after: i64,
                since_at: i64,
                limit: i64,
            ) -> Result<Vec<AlertEvent>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT * FROM alert_events WHERE seq > $1 OR at >= $2 ORDER BY seq LIMIT $3",
                )
                .bind(after)
                .bind(since_at)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn last_alert_event_seq(&self) -> Result<i64, StoreError> {
                let seq: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM alert_events")
                    .fetch_one(&self.pool)
                    .await?;
                Ok(seq.unwrap_or(0))
            }

            async fn record_alert_event(
                &self,
                alert_id: &str,
                event: &str,
                actor: Option<&str>,
                data: Option<&str>,
            ) -> Result<Option<AlertEvent>, StoreError> {
                let mut tx = self.pool.begin().await?;
                let alert: Option<Alert> = sqlx::query_as("SELECT * FROM alerts WHERE id = $1")
                    .bind(alert_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(a) = alert else {
                    return Ok(None);
                };
                let at = crate::clock::now_ms();
                let e = insert_alert_event!(tx, &a, event, at, actor, data);
                tx.commit().await?;
                Ok(Some(e))
            }

            async fn open_alerts(&self, kind: &str) -> Result<Vec<Alert>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT * FROM alerts WHERE kind = $1 AND resolved_at IS NULL \
                     ORDER BY created_at, id",
                )
                .bind(kind)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn cameras_offline_since(
                &self,
                before: i64,
                limit: i64,
            ) -> Result<Vec<Camera>, StoreError> {
                let sql = format!(
                    "SELECT {CAMERA_COLUMNS} FROM cameras WHERE is_active = TRUE \
                     AND stream_status = 'offline' AND status_changed_at IS NOT NULL \
                     AND status_changed_at < $1 ORDER BY status_changed_at, id LIMIT $2"
                );
                Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(before)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?)
            }
        }
    };
}

sql_alert_store!(SqliteStore);
sql_alert_store!(PgStore);
