//! [`AlertRuleStore`] for both SQL stores: the same statements, bound per backend.

use async_trait::async_trait;

use super::{PgStore, SqliteStore};
use crate::clock::now_ms;
use crate::store::alerts::AlertEvent;
use crate::store::rules::{AlertPurge, AlertRule, AlertRuleStore, NewAlertRule, OfflineCamera};
use crate::store::{Alert, StoreError};

/// Resolved alerts older than the cut-off (retention's selection).
const OLD_RESOLVED: &str =
    "SELECT id FROM alerts WHERE resolved_at IS NOT NULL AND resolved_at < $1";

macro_rules! sql_rule_store {
    ($store:ty) => {
        #[async_trait]
        impl AlertRuleStore for $store {
            async fn list_alert_rules(
                &self,
                company: Option<&str>,
            ) -> Result<Vec<AlertRule>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT * FROM alert_rules WHERE ($1 IS NULL OR company = $1) \
                     ORDER BY company, camera_id IS NOT NULL, camera_id, kind, id",
                )
                .bind(company)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn get_alert_rule(&self, id: &str) -> Result<Option<AlertRule>, StoreError> {
                Ok(sqlx::query_as("SELECT * FROM alert_rules WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn create_alert_rule(&self, r: NewAlertRule) -> Result<AlertRule, StoreError> {
                let now = now_ms();
                sqlx::query_as(
                    "INSERT INTO alert_rules (id, company, camera_id, kind, enabled, severity, \
                     threshold, minimum, duration_ms, escalation, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) RETURNING *",
                )
                .bind(uuid::Uuid::new_v4().to_string())
                .bind(&r.company)
                .bind(&r.camera_id)
                .bind(&r.kind)
                .bind(r.enabled)
                .bind(&r.severity)
                .bind(r.threshold)
                .bind(r.minimum)
                .bind(r.duration_ms)
                .bind(r.escalation.to_json())
                .bind(now)
                .fetch_one(&self.pool)
                .await
                .map_err(|e| match StoreError::from(e) {
                    StoreError::Conflict { .. } => StoreError::Conflict { field: "type" },
                    other => other,
                })
            }

            async fn update_alert_rule(
                &self,
                id: &str,
                r: NewAlertRule,
            ) -> Result<Option<AlertRule>, StoreError> {
                sqlx::query_as(
                    "UPDATE alert_rules SET company = $1, camera_id = $2, kind = $3, \
                     enabled = $4, severity = $5, threshold = $6, minimum = $7, \
                     duration_ms = $8, escalation = $9, updated_at = $10 \
                     WHERE id = $11 RETURNING *",
                )
                .bind(&r.company)
                .bind(&r.camera_id)
                .bind(&r.kind)
                .bind(r.enabled)
                .bind(&r.severity)
                .bind(r.threshold)
                .bind(r.minimum)
                .bind(r.duration_ms)
                .bind(r.escalation.to_json())
                .bind(now_ms())
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| match StoreError::from(e) {
                    StoreError::Conflict { .. } => StoreError::Conflict { field: "type" },
                    other => other,
                })
            }

            async fn delete_alert_rule(&self, id: &str) -> Result<bool, StoreError> {
                let r = sqlx::query("DELETE FROM alert_rules WHERE id = $1")
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                Ok(r.rows_affected() > 0)
            }

            async fn escalate_alert(
                &self,
                alert_id: &str,
                step: i64,
                at: i64,
                data: &str,
            ) -> Result<Option<AlertEvent>, StoreError> {
                let mut tx = self.pool.begin().await?;
                // The write comes first: SQLite then queues concurrent callers on its write
                // lock (a read-then-write transaction would fail with SQLITE_BUSY), and the
                // primary key decides which caller takes the step; the others insert
                // nothing and write no event.
                let taken = sqlx::query(
                    "INSERT INTO alert_escalations (alert_id, step, at) VALUES ($1, $2, $3) \
                     ON CONFLICT (alert_id, step) DO NOTHING",
                )
                .bind(alert_id)
                .bind(step)
                .bind(at)
                .execute(&mut *tx)
                .await?;
                if taken.rows_affected() == 0 {
                    return Ok(None);
                }
                let alert: Option<Alert> = sqlx::query_as(
                    "SELECT * FROM alerts WHERE id = $1 AND resolved_at IS NULL \
                     AND acknowledged_at IS NULL",
                )
                .bind(alert_id)
                .fetch_optional(&mut *tx)
                .await?;
                // Gone, resolved or acknowledged: the step is not taken (rolled back).
                let Some(a) = alert else {
                    return Ok(None);
                };
                let e = insert_alert_event!(tx, &a, "escalated", at, None, Some(data));
                tx.commit().await?;
                Ok(Some(e))
            }

            async fn open_alert_escalations(&self) -> Result<Vec<(String, i64)>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT e.alert_id, e.step FROM alert_escalations e \
                     JOIN alerts a ON a.id = e.alert_id WHERE a.resolved_at IS NULL \
                     ORDER BY e.alert_id, e.step",
                )
                .fetch_all(&self.pool)
                .await?)
            }

            async fn offline_cameras(
                &self,
                before: i64,
                limit: i64,
            ) -> Result<Vec<OfflineCamera>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT id, name, company, status_changed_at FROM cameras \
                     WHERE is_active = TRUE AND stream_status = 'offline' \
                     AND status_changed_at IS NOT NULL AND status_changed_at < $1 \
                     ORDER BY status_changed_at, id LIMIT $2",
                )
                .bind(before)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn purge_resolved_alerts(&self, before: i64) -> Result<AlertPurge, StoreError> {
                // Most passes find nothing: look before taking write locks.
                let any: Option<String> =
                    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("{OLD_RESOLVED} LIMIT 1")))
                        .bind(before)
                        .fetch_optional(&self.pool)
                        .await?;
                if any.is_none() {
                    return Ok(AlertPurge::default());
                }
                let mut tx = self.pool.begin().await?;
                let events = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DELETE FROM alert_events WHERE alert_id IN ({OLD_RESOLVED})"
                )))
                .bind(before)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DELETE FROM alert_escalations WHERE alert_id IN ({OLD_RESOLVED})"
                )))
                .bind(before)
                .execute(&mut *tx)
                .await?;
                let alerts = sqlx::query(
                    "DELETE FROM alerts WHERE resolved_at IS NOT NULL AND resolved_at < $1",
                )
                .bind(before)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                tx.commit().await?;
                Ok(AlertPurge { alerts, events })
            }
        }
    };
}

sql_rule_store!(SqliteStore);
sql_rule_store!(PgStore);
