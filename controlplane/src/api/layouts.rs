//! `/api/v1/layouts`: the live grid layouts of the calling user (the dashboard's saved
//! grids). Each user has their own (another user's answer 404 `LAYOUT_NOT_FOUND`, admins
//! included: a layout is a preference, not a tenant object), at most
//! [`MAX_LAYOUTS_PER_USER`], and at most one default. A tile names a camera the caller can
//! see; a camera deleted later stays in the tile (the dashboard shows it as gone).

use std::collections::HashSet;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{Envelope, Json, Path, ok, text};
use super::guard::Principal;
use crate::clock::rfc3339;
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;
use crate::store::layouts::{Layout, LayoutTile, NewLayout, TilePlayback, Tiles};

/// Layouts per user.
pub(crate) const MAX_LAYOUTS_PER_USER: i64 = 50;
/// Most columns (and rows) of a grid.
const MAX_SIDE: i64 = 8;
/// Longest name.
const MAX_NAME: usize = 100;

/// A layout.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LayoutView {
    id: String,
    name: String,
    /// Columns of the grid.
    columns: i64,
    /// Rows of the grid.
    rows: i64,
    /// Cameras in slots (row-major position from 0).
    tiles: Vec<LayoutTile>,
    /// The user's default layout (at most one).
    is_default: bool,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
}

impl From<Layout> for LayoutView {
    fn from(l: Layout) -> Self {
        Self {
            id: l.id,
            name: l.name,
            columns: l.grid_columns,
            rows: l.grid_rows,
            tiles: l.tiles.0,
            is_default: l.is_default,
            created_at: rfc3339(l.created_at),
            updated_at: rfc3339(l.updated_at),
        }
    }
}

/// A tile as sent.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct TileRequest {
    /// A camera the caller can see (400 otherwise).
    #[schema(pattern = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    camera_id: String,
    /// Slot, row-major from 0; below `columns * rows` and used once (400 otherwise).
    #[schema(minimum = 0, maximum = 63)]
    position: i64,
    /// How the dashboard plays the tile: `hls` (LL-HLS, the default when absent) or
    /// `webrtc` (WHEP).
    #[serde(default)]
    playback: Option<TilePlayback>,
}

/// A layout as created or replaced.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct LayoutRequest {
    #[schema(
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$",
        min_length = 1,
        max_length = 100
    )]
    name: String,
    #[schema(minimum = 1, maximum = 8)]
    columns: i64,
    #[schema(minimum = 1, maximum = 8)]
    rows: i64,
    /// At most `columns * rows` tiles, each camera once and each position once (400
    /// otherwise).
    #[schema(max_items = 64)]
    tiles: Vec<TileRequest>,
    /// Make it the default (the user's other layouts lose the flag). Default false.
    is_default: Option<bool>,
}

fn not_found() -> ApiError {
    ApiError::new(ErrorCode::LayoutNotFound, "layout not found")
}

/// Checks a request against the rules a schema cannot state and the cameras the caller
/// can see.
async fn checked(
    state: &AppState,
    p: &Principal,
    req: LayoutRequest,
) -> Result<NewLayout, ApiError> {
    text("name", &req.name, MAX_NAME)?;
    for (field, v) in [("columns", req.columns), ("rows", req.rows)] {
        if !(1..=MAX_SIDE).contains(&v) {
            return Err(ApiError::validation(
                field,
                format!("must be between 1 and {MAX_SIDE}"),
            ));
        }
    }
    let slots = req.columns * req.rows;
    if i64::try_from(req.tiles.len()).unwrap_or(i64::MAX) > slots {
        return Err(ApiError::validation(
            "tiles",
            format!("a {}x{} grid has {slots} slots", req.columns, req.rows),
        ));
    }
    let (mut positions, mut cameras) = (HashSet::new(), HashSet::new());
    let mut tiles = Vec::with_capacity(req.tiles.len());
    for (i, t) in req.tiles.into_iter().enumerate() {
        if !(0..slots).contains(&t.position) {
            return Err(ApiError::validation(
                &format!("tiles[{i}].position"),
                format!("must be between 0 and {}", slots - 1),
            ));
        }
        if !positions.insert(t.position) {
            return Err(ApiError::validation(
                &format!("tiles[{i}].position"),
                "used by another tile",
            ));
        }
        if !cameras.insert(t.camera_id.clone()) {
            return Err(ApiError::validation(
                &format!("tiles[{i}].cameraId"),
                "in another tile already",
            ));
        }
        // Another tenant's camera is "no such camera" too: its existence is not told.
        if super::cameras::visible(state, p, &t.camera_id)
            .await
            .is_err()
        {
            return Err(ApiError::validation(
                &format!("tiles[{i}].cameraId"),
                "no such camera",
            ));
        }
        tiles.push(LayoutTile {
            camera_id: t.camera_id,
            position: t.position,
            playback: t.playback,
        });
    }
    tiles.sort_by_key(|t| t.position);
    Ok(NewLayout {
        name: req.name,
        grid_columns: req.columns,
        grid_rows: req.rows,
        tiles: Tiles(tiles),
        is_default: req.is_default.unwrap_or(false),
    })
}

/// List the caller's layouts (oldest first).
#[utoipa::path(get, path = "/api/v1/layouts", operation_id = "listLayouts", tag = "layouts", security(("bearer" = [])),
    responses((status = 200, description = "The caller's layouts", body = Envelope<Vec<LayoutView>>)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Response, ApiError> {
    let layouts = state.store.list_layouts(&principal.user_id).await?;
    let views: Vec<LayoutView> = layouts.into_iter().map(LayoutView::from).collect();
    Ok(ok(views).into_response())
}

/// Create a layout.
#[utoipa::path(post, path = "/api/v1/layouts", operation_id = "createLayout", tag = "layouts", security(("bearer" = [])),
    request_body = LayoutRequest,
    responses(
        (status = 201, description = "Created", body = Envelope<LayoutView>),
        (status = 400, description = "VALIDATION_FAILED (also: a position outside the grid or used twice, a camera twice or not visible to the caller)", body = crate::error::ErrorEnvelope),
        (status = 409, description = "LAYOUT_LIMIT_REACHED: the user has 50 layouts", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn create(
    State(state): State<AppState>,
    principal: Principal,
    Json(req): Json<LayoutRequest>,
) -> Result<Response, ApiError> {
    let layout = checked(&state, &principal, req).await?;
    let created = state
        .store
        .create_layout(&principal.user_id, layout, MAX_LAYOUTS_PER_USER)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::LayoutLimitReached,
                format!("at most {MAX_LAYOUTS_PER_USER} layouts per user"),
            )
            .with_details(serde_json::json!({ "limit": MAX_LAYOUTS_PER_USER }))
        })?;
    Ok((StatusCode::CREATED, ok(LayoutView::from(created))).into_response())
}

/// One of the caller's layouts.
#[utoipa::path(get, path = "/api/v1/layouts/{id}", operation_id = "getLayout", tag = "layouts", security(("bearer" = [])),
    params(("id" = String, Path, description = "Layout id")),
    responses(
        (status = 200, description = "The layout", body = Envelope<LayoutView>),
        (status = 404, description = "LAYOUT_NOT_FOUND", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn get(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if uuid::Uuid::parse_str(&id).is_err() {
        return Err(not_found());
    }
    let l = state
        .store
        .get_layout(&principal.user_id, &id)
        .await?
        .ok_or_else(not_found)?;
    Ok(ok(LayoutView::from(l)).into_response())
}

/// Replace one of the caller's layouts.
#[utoipa::path(put, path = "/api/v1/layouts/{id}", operation_id = "updateLayout", tag = "layouts", security(("bearer" = [])),
    params(("id" = String, Path, description = "Layout id")),
    request_body = LayoutRequest,
    responses(
        (status = 200, description = "The layout", body = Envelope<LayoutView>),
        (status = 400, description = "VALIDATION_FAILED (also: a position outside the grid or used twice, a camera twice or not visible to the caller)", body = crate::error::ErrorEnvelope),
        (status = 404, description = "LAYOUT_NOT_FOUND", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn update(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Json(req): Json<LayoutRequest>,
) -> Result<Response, ApiError> {
    if uuid::Uuid::parse_str(&id).is_err() {
        return Err(not_found());
    }
    let layout = checked(&state, &principal, req).await?;
    let l = state
        .store
        .update_layout(&principal.user_id, &id, layout)
        .await?
        .ok_or_else(not_found)?;
    Ok(ok(LayoutView::from(l)).into_response())
}

/// Delete one of the caller's layouts.
#[utoipa::path(delete, path = "/api/v1/layouts/{id}", operation_id = "deleteLayout", tag = "layouts", security(("bearer" = [])),
    params(("id" = String, Path, description = "Layout id")),
    responses(
        (status = 200, description = "Deleted", body = Envelope<serde_json::Value>),
        (status = 404, description = "LAYOUT_NOT_FOUND", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if uuid::Uuid::parse_str(&id).is_err()
        || !state.store.delete_layout(&principal.user_id, &id).await?
    {
        return Err(not_found());
    }
    Ok(ok(serde_json::json!({ "deleted": true })).into_response())
}
