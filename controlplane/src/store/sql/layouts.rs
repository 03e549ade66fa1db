//! [`LayoutStore`] for both SQL stores: the same statements, bound per backend.

use async_trait::async_trait;

use super::{PgStore, SqliteStore};
use crate::clock::now_ms;
use crate::store::StoreError;
use crate::store::layouts::{Layout, LayoutStore, NewLayout};

macro_rules! sql_layout_store {
    ($store:ty) => {
        #[async_trait]
        impl LayoutStore for $store {
            async fn list_layouts(&self, user_id: &str) -> Result<Vec<Layout>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT * FROM layouts WHERE user_id = $1 ORDER BY created_at, id",
                )
                .bind(user_id)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn get_layout(
                &self,
                user_id: &str,
                id: &str,
            ) -> Result<Option<Layout>, StoreError> {
                Ok(
                    sqlx::query_as("SELECT * FROM layouts WHERE user_id = $1 AND id = $2")
                        .bind(user_id)
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await?,
                )
            }

            async fn create_layout(
                &self,
                user_id: &str,
                l: NewLayout,
                max: i64,
            ) -> Result<Option<Layout>, StoreError> {
                let mut tx = self.pool.begin().await?;
                let have: i64 =
                    sqlx::query_scalar("SELECT COUNT(*) FROM layouts WHERE user_id = $1")
                        .bind(user_id)
                        .fetch_one(&mut *tx)
                        .await?;
                if have >= max {
                    return Ok(None);
                }
                if l.is_default {
                    sqlx::query("UPDATE layouts SET is_default = FALSE WHERE user_id = $1")
                        .bind(user_id)
                        .execute(&mut *tx)
                        .await?;
                }
                let now = now_ms();
                let row: Layout = sqlx::query_as(
                    "INSERT INTO layouts (id, user_id, name, grid_columns, grid_rows, tiles, \
                     is_default, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING *",
                )
                .bind(uuid::Uuid::new_v4().to_string())
                .bind(user_id)
                .bind(&l.name)
                .bind(l.grid_columns)
                .bind(l.grid_rows)
                .bind(l.tiles.to_json())
                .bind(l.is_default)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(Some(row))
            }

            async fn update_layout(
                &self,
                user_id: &str,
                id: &str,
                l: NewLayout,
            ) -> Result<Option<Layout>, StoreError> {
                let mut tx = self.pool.begin().await?;
                if l.is_default {
                    sqlx::query(
                        "UPDATE layouts SET is_default = FALSE WHERE user_id = $1 AND id <> $2",
                    )
                    .bind(user_id)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                }
                let row: Option<Layout> = sqlx::query_as(
                    "UPDATE layouts SET name = $1, grid_columns = $2, grid_rows = $3, \
                     tiles = $4, is_default = $5, updated_at = $6 \
                     WHERE user_id = $7 AND id = $8 RETURNING *",
                )
                .bind(&l.name)
                .bind(l.grid_columns)
                .bind(l.grid_rows)
                .bind(l.tiles.to_json())
                .bind(l.is_default)
                .bind(now_ms())
                .bind(user_id)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
                // No such layout: nothing else changes either.
                if row.is_some() {
                    tx.commit().await?;
                }
                Ok(row)
            }

            async fn delete_layout(&self, user_id: &str, id: &str) -> Result<bool, StoreError> {
                let r = sqlx::query("DELETE FROM layouts WHERE user_id = $1 AND id = $2")
                    .bind(user_id)
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                Ok(r.rows_affected() > 0)
            }
        }
    };
}

sql_layout_store!(SqliteStore);
sql_layout_store!(PgStore);
