//! `/api/v1/retention`: the retention policy (a default and per-camera overrides, each in
//! days after a recording ended: to warm, to cold, to the archive, deleted), the configured
//! tiers, and running a pass now. The pass itself is `recordings::retention`.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{Envelope, Json, Path, ok};
use super::guard::Principal;
use super::recordings::camera_visible;
use crate::clock::{now_ms, rfc3339};
use crate::error::ApiError;
use crate::recordings::Report;
use crate::recordings::retention::{Ages, DEFAULT_SCOPE};
use crate::state::AppState;
use crate::store::recordings::{RetentionPolicy, Tier};

const DAY_S: f64 = 86_400.0;
/// Largest age accepted (100 years).
const MAX_DAYS: f64 = 36_500.0;

/// A policy: days after a recording ended; `null`: never. The ages must not decrease
/// (warm ≤ cold ≤ archive ≤ delete; 400 otherwise).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Policy {
    /// hot → warm (fractions allowed).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 36_500)]
    warm_after_days: Option<f64>,
    /// → cold.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 36_500)]
    cold_after_days: Option<f64>,
    /// → the archive bucket.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 36_500)]
    archive_after_days: Option<f64>,
    /// Deleted from whatever tier holds it.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 36_500)]
    delete_after_days: Option<f64>,
}

fn days(s: Option<i64>) -> Option<f64> {
    s.map(|v| v as f64 / DAY_S)
}

impl Policy {
    fn of(p: &RetentionPolicy) -> Self {
        Self {
            warm_after_days: days(p.warm_after_s),
            cold_after_days: days(p.cold_after_s),
            archive_after_days: days(p.archive_after_s),
            delete_after_days: days(p.delete_after_s),
        }
    }

    fn to_store(&self, scope: &str) -> Result<RetentionPolicy, ApiError> {
        let secs = |field: &str, v: Option<f64>| -> Result<Option<i64>, ApiError> {
            match v {
                None => Ok(None),
                Some(d) if d.is_finite() && (0.0..=MAX_DAYS).contains(&d) => {
                    Ok(Some((d * DAY_S).round() as i64))
                }
                Some(_) => Err(ApiError::validation(
                    field,
                    format!("must be between 0 and {MAX_DAYS} days"),
                )),
            }
        };
        let p = RetentionPolicy {
            scope: scope.to_owned(),
            warm_after_s: secs("warmAfterDays", self.warm_after_days)?,
            cold_after_s: secs("coldAfterDays", self.cold_after_days)?,
            archive_after_s: secs("archiveAfterDays", self.archive_after_days)?,
            delete_after_s: secs("deleteAfterDays", self.delete_after_days)?,
            updated_at: now_ms(),
        };
        Ages::of(&p)
            .validate()
            .map_err(|(field, why)| ApiError::validation(field, why))?;
        Ok(p)
    }
}

/// The ages of [`Policy`] as a camera policy shows them: the schema of the flattened part of
/// [`CameraPolicy`]. `Policy` itself refuses unknown fields (`additionalProperties: false`),
/// which, flattened, would forbid the camera's own fields in the document.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code, reason = "a schema only; `Policy` is what is sent")]
pub(crate) struct PolicyAges {
    #[schema(minimum = 0, maximum = 36_500)]
    warm_after_days: Option<f64>,
    #[schema(minimum = 0, maximum = 36_500)]
    cold_after_days: Option<f64>,
    #[schema(minimum = 0, maximum = 36_500)]
    archive_after_days: Option<f64>,
    #[schema(minimum = 0, maximum = 36_500)]
    delete_after_days: Option<f64>,
}

/// A camera's own policy.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CameraPolicy {
    camera_id: String,
    #[serde(flatten)]
    #[schema(value_type = PolicyAges)]
    policy: Policy,
    #[schema(format = DateTime)]
    updated_at: String,
}

/// Where files can go.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TierConfig {
    hot: String,
    warm: Option<String>,
    cold: Option<String>,
    /// `s3://bucket/prefix`.
    archive: Option<String>,
}

/// The policies in force.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RetentionView {
    /// Applies to cameras without their own policy.
    default: Policy,
    /// Cameras with their own policy (it replaces the default as a whole).
    cameras: Vec<CameraPolicy>,
    tiers: TierConfig,
    /// Seconds between scheduled passes.
    interval_seconds: u64,
}

/// The retention policies and tiers.
#[utoipa::path(get, path = "/api/v1/retention", operation_id = "getRetention", tag = "recordings", security(("bearer" = [])),
    responses((status = 200, description = "Policies", body = Envelope<RetentionView>)))]
pub(crate) async fn get(State(state): State<AppState>) -> Result<Response, ApiError> {
    let policies = state.store.list_policies().await?;
    let default = policies
        .iter()
        .find(|p| p.scope == DEFAULT_SCOPE)
        .map(Policy::of)
        .unwrap_or_default();
    let cameras = policies
        .iter()
        .filter(|p| p.scope != DEFAULT_SCOPE)
        .map(|p| CameraPolicy {
            camera_id: p.scope.clone(),
            policy: Policy::of(p),
            updated_at: rfc3339(p.updated_at),
        })
        .collect();
    let c = &state.config;
    let tiers = state.recordings.tiers();
    Ok(ok(RetentionView {
        default,
        cameras,
        tiers: TierConfig {
            hot: tiers.hot().display().to_string(),
            warm: tiers
                .configured(Tier::Warm)
                .then(|| c.storage_warm.as_ref().map(|p| p.display().to_string()))
                .flatten(),
            cold: tiers
                .configured(Tier::Cold)
                .then(|| c.storage_cold.as_ref().map(|p| p.display().to_string()))
                .flatten(),
            archive: c.archive_url.clone(),
        },
        interval_seconds: c.retention_interval.as_secs(),
    })
    .into_response())
}

/// Replace the default policy.
#[utoipa::path(put, path = "/api/v1/retention", operation_id = "setDefaultRetention", tag = "recordings", security(("bearer" = [])),
    request_body = Policy,
    responses(
        (status = 200, description = "Stored", body = Envelope<Policy>),
        (status = 400, description = "VALIDATION_FAILED", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn put_default(
    State(state): State<AppState>,
    Json(req): Json<Policy>,
) -> Result<Response, ApiError> {
    let p = req.to_store(DEFAULT_SCOPE)?;
    state.store.put_policy(&p).await?;
    tracing::info!(policy = ?p, "default retention policy changed");
    Ok(ok(req).into_response())
}

/// Give a camera its own policy.
#[utoipa::path(put, path = "/api/v1/retention/cameras/{id}", operation_id = "setCameraRetention", tag = "recordings", security(("bearer" = [])),
    params(("id" = String, Path, description = "Camera id")),
    request_body = Policy,
    responses(
        (status = 200, description = "Stored", body = Envelope<Policy>),
        (status = 400, description = "VALIDATION_FAILED", body = crate::error::ErrorEnvelope),
        (status = 404, description = "CAMERA_NOT_FOUND", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn put_camera(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Json(req): Json<Policy>,
) -> Result<Response, ApiError> {
    camera_visible(&state, &principal, &id).await?;
    if id == DEFAULT_SCOPE {
        return Err(super::cameras::not_found());
    }
    let p = req.to_store(&id)?;
    state.store.put_policy(&p).await?;
    tracing::info!(camera_id = %id, policy = ?p, "camera retention policy changed");
    Ok(ok(req).into_response())
}

/// Remove a camera's own policy (it follows the default again).
#[utoipa::path(delete, path = "/api/v1/retention/cameras/{id}", operation_id = "deleteCameraRetention", tag = "recordings", security(("bearer" = [])),
    params(("id" = String, Path, description = "Camera id")),
    responses(
        (status = 200, description = "Removed", body = Envelope<serde_json::Value>),
        (status = 404, description = "CAMERA_NOT_FOUND", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn delete_camera(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    camera_visible(&state, &principal, &id).await?;
    let deleted = state.store.delete_policy(&id).await?;
    Ok(ok(serde_json::json!({ "deleted": deleted })).into_response())
}

/// Run a retention pass now (finishing any interrupted move first); what it did.
#[utoipa::path(post, path = "/api/v1/retention/run", operation_id = "runRetention", tag = "recordings", security(("bearer" = [])),
    responses((status = 200, description = "What the pass did", body = Envelope<Report>)))]
pub(crate) async fn run(State(state): State<AppState>) -> Result<Response, ApiError> {
    let report = state
        .recordings
        .retention
        .run(now_ms())
        .await
        .map_err(ApiError::internal)?;
    Ok(ok(report).into_response())
}
