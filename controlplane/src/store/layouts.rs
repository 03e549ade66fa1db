//! The live grid layouts of the dashboard ([`LayoutStore`], a supertrait of
//! [`Store`](super::Store)): per user, a named grid with camera tiles and at most one
//! default. Both SQL stores implement it with the same statements (`sql/layouts.rs`).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::StoreError;

/// One tile: a camera in a slot of the grid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LayoutTile {
    /// The camera shown.
    pub camera_id: String,
    /// The slot, row-major from 0 (`row * columns + column`).
    pub position: i64,
    /// How the dashboard plays the tile; absent: LL-HLS (layouts saved before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub playback: Option<TilePlayback>,
}

/// How a tile plays its camera in the dashboard's live grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TilePlayback {
    /// LL-HLS through hls.js (the default).
    Hls,
    /// WebRTC (WHEP): sub-second, video only (docs/webrtc.md).
    Webrtc,
}

/// The tiles of a layout as stored (a JSON array).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tiles(pub Vec<LayoutTile>);

impl TryFrom<String> for Tiles {
    type Error = serde_json::Error;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        serde_json::from_str(&s).map(Self)
    }
}

impl Tiles {
    /// The JSON stored.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.0).unwrap_or_else(|_| "[]".to_owned())
    }
}

/// A layout row.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Layout {
    /// UUID.
    pub id: String,
    /// Its owner.
    pub user_id: String,
    /// Name.
    pub name: String,
    /// Columns of the grid.
    pub grid_columns: i64,
    /// Rows of the grid.
    pub grid_rows: i64,
    /// Tiles.
    #[sqlx(try_from = "String")]
    pub tiles: Tiles,
    /// The user's default layout.
    pub is_default: bool,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub updated_at: i64,
}

/// What a layout is created or replaced with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLayout {
    /// Name.
    pub name: String,
    /// Columns.
    pub grid_columns: i64,
    /// Rows.
    pub grid_rows: i64,
    /// Tiles.
    pub tiles: Tiles,
    /// Make it the user's default (the user's other layouts lose the flag).
    pub is_default: bool,
}

/// Layouts of users.
///
/// # Cancel safety
/// As [`Store`](super::Store): a dropped future leaves its statement or transaction applied
/// or not, never half.
#[async_trait]
pub trait LayoutStore: Send + Sync + 'static {
    /// A user's layouts, oldest first.
    async fn list_layouts(&self, user_id: &str) -> Result<Vec<Layout>, StoreError>;
    /// One of a user's layouts.
    async fn get_layout(&self, user_id: &str, id: &str) -> Result<Option<Layout>, StoreError>;
    /// Creates a layout for a user who has fewer than `max`; `None` when they have `max`.
    async fn create_layout(
        &self,
        user_id: &str,
        layout: NewLayout,
        max: i64,
    ) -> Result<Option<Layout>, StoreError>;
    /// Replaces one of a user's layouts; `None` when the user has no such layout.
    async fn update_layout(
        &self,
        user_id: &str,
        id: &str,
        layout: NewLayout,
    ) -> Result<Option<Layout>, StoreError>;
    /// Deletes one of a user's layouts; `false` when the user has no such layout.
    async fn delete_layout(&self, user_id: &str, id: &str) -> Result<bool, StoreError>;
}
