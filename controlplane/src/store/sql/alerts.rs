//! [`AlertStore`] for both SQL stores: the same statements, bound per backend.

use async_trait::async_trait;

use super::{Arg, Args, CAMERA_COLUMNS, PgStore, SqliteStore};
use crate::store::alerts::{AlertFilter, AlertStore};
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
                Ok(sqlx::query_as(
                    "UPDATE alerts SET acknowledged_at = COALESCE(acknowledged_at, $1), \
                     acknowledged_by = COALESCE(acknowledged_by, $2) WHERE id = $3 RETURNING *",
                )
                .bind(at)
                .bind(user)
                .bind(id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn resolve_cause(&self, cause: &str, at: i64) -> Result<bool, StoreError> {
                let r = sqlx::query(
                    "UPDATE alerts SET resolved_at = $1 WHERE cause = $2 AND resolved_at IS NULL",
                )
                .bind(at)
                .bind(cause)
                .execute(&self.pool)
                .await?;
                Ok(r.rows_affected() > 0)
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
