//! [`NotifyStore`] for both SQL stores: the same statements, bound per backend.
//!
//! Claiming is one `UPDATE ... WHERE id IN (due rows) AND <still due>` statement: SQLite
//! serializes writers; on PostgreSQL the due rows are picked `FOR UPDATE SKIP LOCKED`, and
//! the outer condition is re-checked against the committed row (READ COMMITTED
//! re-evaluation), so a row leased by one node is never leased by another.

use async_trait::async_trait;

use super::{PgStore, SqliteStore};
use crate::store::StoreError;
use crate::store::notify::{
    Channel, Delivery, DigestAdd, NewChannel, NewDelivery, NotifyStore, Outcome, Preferences,
    Recipient,
};

/// The due condition of a claim (`$1` now).
const DUE: &str = "((state = 'pending' AND next_attempt_at <= $1) \
     OR (state = 'sending' AND lease_until < $1))";

macro_rules! insert_delivery {
    ($conn:expr, $id:expr, $d:expr, $now:expr) => {{
        let d: &NewDelivery = $d;
        sqlx::query(
            "INSERT INTO notification_deliveries (id, dedup_key, event_seq, alert_id, event, \
             channel_kind, channel_id, user_id, company, target, breaker_key, state, attempts, \
             next_attempt_at, payload, is_digest, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'pending', 0, $12, $13, \
             $14, $15, $15) ON CONFLICT (dedup_key) DO NOTHING",
        )
        .bind($id)
        .bind(&d.dedup_key)
        .bind(d.event_seq)
        .bind(&d.alert_id)
        .bind(&d.event)
        .bind(&d.channel_kind)
        .bind(&d.channel_id)
        .bind(&d.user_id)
        .bind(&d.company)
        .bind(&d.target)
        .bind(&d.breaker_key)
        .bind(d.next_attempt_at)
        .bind(&d.payload)
        .bind(d.is_digest)
        .bind($now)
        .execute($conn)
        .await?
        .rows_affected()
            > 0
    }};
}

macro_rules! sql_notify_store {
    ($store:ty, $lock:literal) => {
        #[async_trait]
        impl NotifyStore for $store {
            async fn create_channel(&self, c: NewChannel) -> Result<Channel, StoreError> {
                let now = crate::clock::now_ms();
                Ok(sqlx::query_as(
                    "INSERT INTO notification_channels (id, company, kind, name, target, secret, \
                     enabled, min_severity, kinds, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) RETURNING *",
                )
                .bind(uuid::Uuid::new_v4().to_string())
                .bind(&c.company)
                .bind(&c.kind)
                .bind(&c.name)
                .bind(&c.target)
                .bind(&c.secret)
                .bind(c.enabled)
                .bind(&c.min_severity)
                .bind(&c.kinds)
                .bind(now)
                .fetch_one(&self.pool)
                .await?)
            }

            async fn get_channel(&self, id: &str) -> Result<Option<Channel>, StoreError> {
                Ok(
                    sqlx::query_as("SELECT * FROM notification_channels WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await?,
                )
            }

            async fn list_channels(
                &self,
                tenant: Option<&str>,
            ) -> Result<Vec<Channel>, StoreError> {
                Ok(match tenant {
                    Some(t) => {
                        sqlx::query_as(
                            "SELECT * FROM notification_channels WHERE company = $1 \
                             ORDER BY created_at, id",
                        )
                        .bind(t)
                        .fetch_all(&self.pool)
                        .await?
                    }
                    None => {
                        sqlx::query_as(
                            "SELECT * FROM notification_channels ORDER BY created_at, id",
                        )
                        .fetch_all(&self.pool)
                        .await?
                    }
                })
            }

            async fn update_channel(
                &self,
                id: &str,
                c: NewChannel,
            ) -> Result<Option<Channel>, StoreError> {
                Ok(sqlx::query_as(
                    "UPDATE notification_channels SET company = $1, kind = $2, name = $3, \
                     target = $4, secret = $5, enabled = $6, min_severity = $7, kinds = $8, \
                     updated_at = $9 WHERE id = $10 RETURNING *",
                )
                .bind(&c.company)
                .bind(&c.kind)
                .bind(&c.name)
                .bind(&c.target)
                .bind(&c.secret)
                .bind(c.enabled)
                .bind(&c.min_severity)
                .bind(&c.kinds)
                .bind(crate::clock::now_ms())
                .bind(id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn delete_channel(&self, id: &str) -> Result<bool, StoreError> {
                let r = sqlx::query("DELETE FROM notification_channels WHERE id = $1")
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                Ok(r.rows_affected() > 0)
            }

            async fn enabled_channels(
                &self,
                company: Option<&str>,
            ) -> Result<Vec<Channel>, StoreError> {
                Ok(match company {
                    Some(c) => {
                        sqlx::query_as(
                            "SELECT * FROM notification_channels WHERE enabled = TRUE \
                             AND company = $1 ORDER BY created_at, id",
                        )
                        .bind(c)
                        .fetch_all(&self.pool)
                        .await?
                    }
                    None => {
                        sqlx::query_as(
                            "SELECT * FROM notification_channels WHERE enabled = TRUE \
                             AND company IS NULL ORDER BY created_at, id",
                        )
                        .fetch_all(&self.pool)
                        .await?
                    }
                })
            }

            async fn enqueue_delivery(&self, d: NewDelivery, now: i64) -> Result<bool, StoreError> {
                let id = uuid::Uuid::new_v4().to_string();
                Ok(insert_delivery!(&self.pool, &id, &d, now))
            }

            async fn claim_deliveries(
                &self,
                owner: &str,
                now: i64,
                lease_ms: i64,
                limit: i64,
            ) -> Result<Vec<Delivery>, StoreError> {
                // The due rows are picked once, in a CTE: a sub-select in the WHERE clause
                // may be evaluated again when PostgreSQL re-checks a concurrently updated
                // row, and then pick other rows (more than `limit` leased).
                let sql = format!(
                    "WITH due AS (SELECT id FROM notification_deliveries WHERE {DUE} \
                     ORDER BY next_attempt_at, id LIMIT $4{}) \
                     UPDATE notification_deliveries SET state = 'sending', lease_owner = $2, \
                     lease_until = $3, updated_at = $1 WHERE id IN (SELECT id FROM due) \
                     AND {DUE} RETURNING *",
                    $lock
                );
                let mut rows: Vec<Delivery> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(now)
                    .bind(owner)
                    .bind(now.saturating_add(lease_ms))
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?;
                rows.sort_by(|a, b| (a.next_attempt_at, &a.id).cmp(&(b.next_attempt_at, &b.id)));
                Ok(rows)
            }

            async fn finish_delivery(
                &self,
                id: &str,
                owner: &str,
                outcome: Outcome,
                now: i64,
            ) -> Result<bool, StoreError> {
                let q = match &outcome {
                    Outcome::Sent { at } => sqlx::query(
                        "UPDATE notification_deliveries SET state = 'sent', sent_at = $1, \
                         lease_owner = NULL, lease_until = NULL, last_error = NULL, \
                         updated_at = $2 WHERE id = $3 AND lease_owner = $4 \
                         AND state = 'sending'",
                    )
                    .bind(*at)
                    .bind(now),
                    Outcome::Retry { next, error } => sqlx::query(
                        "UPDATE notification_deliveries SET state = 'pending', \
                         next_attempt_at = $1, attempts = attempts + 1, last_error = $2, \
                         lease_owner = NULL, lease_until = NULL, updated_at = $5 \
                         WHERE id = $3 AND lease_owner = $4 AND state = 'sending'",
                    )
                    .bind(*next)
                    .bind(error.clone()),
                    Outcome::Dead { error } => sqlx::query(
                        "UPDATE notification_deliveries SET state = 'dead', \
                         attempts = attempts + 1, last_error = $1, lease_owner = NULL, \
                         lease_until = NULL, updated_at = $2 \
                         WHERE id = $3 AND lease_owner = $4 AND state = 'sending'",
                    )
                    .bind(error.clone())
                    .bind(now),
                    Outcome::Release { next } => sqlx::query(
                        "UPDATE notification_deliveries SET state = 'pending', \
                         next_attempt_at = $1, lease_owner = NULL, lease_until = NULL, \
                         updated_at = $2 WHERE id = $3 AND lease_owner = $4 \
                         AND state = 'sending'",
                    )
                    .bind(*next)
                    .bind(now),
                };
                let q = q.bind(id).bind(owner);
                let q = if matches!(outcome, Outcome::Retry { .. }) {
                    q.bind(now)
                } else {
                    q
                };
                Ok(q.execute(&self.pool).await?.rows_affected() > 0)
            }

            async fn list_deliveries(
                &self,
                state: Option<&str>,
                offset: i64,
                limit: i64,
            ) -> Result<(Vec<Delivery>, i64), StoreError> {
                let total: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM notification_deliveries \
                     WHERE ($1 IS NULL OR state = $1)",
                )
                .bind(state)
                .fetch_one(&self.pool)
                .await?;
                let rows = sqlx::query_as(
                    "SELECT * FROM notification_deliveries WHERE ($1 IS NULL OR state = $1) \
                     ORDER BY created_at DESC, id LIMIT $2 OFFSET $3",
                )
                .bind(state)
                .bind(limit)
                .bind(offset)
                .fetch_all(&self.pool)
                .await?;
                Ok((rows, total))
            }

            async fn get_delivery(&self, id: &str) -> Result<Option<Delivery>, StoreError> {
                Ok(
                    sqlx::query_as("SELECT * FROM notification_deliveries WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await?,
                )
            }

            async fn retry_dead_delivery(
                &self,
                id: &str,
                now: i64,
            ) -> Result<Option<Delivery>, StoreError> {
                Ok(sqlx::query_as(
                    "UPDATE notification_deliveries SET state = 'pending', attempts = 0, \
                     next_attempt_at = $1, updated_at = $1 WHERE id = $2 AND state = 'dead' \
                     RETURNING *",
                )
                .bind(now)
                .bind(id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn purge_deliveries(&self, before: i64) -> Result<u64, StoreError> {
                let mut tx = self.pool.begin().await?;
                sqlx::query(
                    "DELETE FROM notification_digest_items WHERE delivery_id IN (SELECT id \
                     FROM notification_deliveries WHERE state IN ('sent', 'dead') \
                     AND updated_at < $1)",
                )
                .bind(before)
                .execute(&mut *tx)
                .await?;
                let n = sqlx::query(
                    "DELETE FROM notification_deliveries WHERE state IN ('sent', 'dead') \
                     AND updated_at < $1",
                )
                .bind(before)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                tx.commit().await?;
                Ok(n)
            }

            async fn add_digest_item(
                &self,
                d: NewDelivery,
                user_id: &str,
                line: &str,
                now: i64,
            ) -> Result<DigestAdd, StoreError> {
                let mut tx = self.pool.begin().await?;
                let present: Option<String> = sqlx::query_scalar(
                    "SELECT delivery_id FROM notification_digest_items \
                     WHERE user_id = $1 AND event_seq = $2",
                )
                .bind(user_id)
                .bind(d.event_seq)
                .fetch_optional(&mut *tx)
                .await?;
                if present.is_some() {
                    return Ok(DigestAdd::Present);
                }
                let id = uuid::Uuid::new_v4().to_string();
                let _inserted = insert_delivery!(&mut *tx, &id, &d, now);
                let row: (String, String) = sqlx::query_as(
                    "SELECT id, state FROM notification_deliveries WHERE dedup_key = $1",
                )
                .bind(&d.dedup_key)
                .fetch_one(&mut *tx)
                .await?;
                if row.1 != "pending" {
                    return Ok(DigestAdd::Closed);
                }
                let added = sqlx::query(
                    "INSERT INTO notification_digest_items (user_id, event_seq, delivery_id, \
                     line, at) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (user_id, event_seq) DO NOTHING",
                )
                .bind(user_id)
                .bind(d.event_seq)
                .bind(&row.0)
                .bind(line)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                tx.commit().await?;
                Ok(if added > 0 {
                    DigestAdd::Added
                } else {
                    DigestAdd::Present
                })
            }

            async fn digest_lines(&self, delivery_id: &str) -> Result<Vec<String>, StoreError> {
                Ok(sqlx::query_scalar(
                    "SELECT line FROM notification_digest_items WHERE delivery_id = $1 \
                     ORDER BY event_seq",
                )
                .bind(delivery_id)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn get_preferences(
                &self,
                user_id: &str,
            ) -> Result<Option<Preferences>, StoreError> {
                Ok(
                    sqlx::query_as("SELECT * FROM notification_preferences WHERE user_id = $1")
                        .bind(user_id)
                        .fetch_optional(&self.pool)
                        .await?,
                )
            }

            async fn put_preferences(&self, p: Preferences) -> Result<Preferences, StoreError> {
                Ok(sqlx::query_as(
                    "INSERT INTO notification_preferences (user_id, email, phone, channels, \
                     kinds, quiet_start, quiet_end, time_zone, digest, digest_minutes, \
                     updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                     ON CONFLICT (user_id) DO UPDATE SET email = excluded.email, \
                     phone = excluded.phone, channels = excluded.channels, \
                     kinds = excluded.kinds, quiet_start = excluded.quiet_start, \
                     quiet_end = excluded.quiet_end, time_zone = excluded.time_zone, \
                     digest = excluded.digest, digest_minutes = excluded.digest_minutes, \
                     updated_at = excluded.updated_at RETURNING *",
                )
                .bind(&p.user_id)
                .bind(&p.email)
                .bind(&p.phone)
                .bind(&p.channels)
                .bind(&p.kinds)
                .bind(&p.quiet_start)
                .bind(&p.quiet_end)
                .bind(&p.time_zone)
                .bind(p.digest)
                .bind(p.digest_minutes)
                .bind(p.updated_at)
                .fetch_one(&self.pool)
                .await?)
            }

            async fn notify_recipients(
                &self,
                company: Option<&str>,
            ) -> Result<Vec<Recipient>, StoreError> {
                Ok(match company {
                    Some(c) => {
                        sqlx::query_as(
                            "SELECT id, email, role, company FROM users WHERE is_active = TRUE \
                             AND company = $1 ORDER BY created_at, id",
                        )
                        .bind(c)
                        .fetch_all(&self.pool)
                        .await?
                    }
                    None => {
                        sqlx::query_as(
                            "SELECT id, email, role, company FROM users WHERE is_active = TRUE \
                             AND role = 'admin' ORDER BY created_at, id",
                        )
                        .fetch_all(&self.pool)
                        .await?
                    }
                })
            }

            async fn recipients_by_id(
                &self,
                ids: &[String],
            ) -> Result<Vec<Recipient>, StoreError> {
                let mut out = Vec::new();
                for id in ids {
                    let r: Option<Recipient> = sqlx::query_as(
                        "SELECT id, email, role, company FROM users WHERE is_active = TRUE AND id = $1",
                    )
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                    out.extend(r);
                }
                Ok(out)
            }
        }
    };
}

sql_notify_store!(SqliteStore, "");
// Concurrent claimers skip rows another one is leasing instead of all picking the same
// oldest rows (SQLite has one writer at a time, so needs nothing).
sql_notify_store!(PgStore, " FOR UPDATE SKIP LOCKED");
