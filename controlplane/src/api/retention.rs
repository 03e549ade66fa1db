//! `/api/v1/retention`: the retention policies (days after a recording ended: to warm, to
//! cold, to the archive, deleted), the configured tiers, and running a pass now. The pass
//! itself is `recordings::retention`; which policy applies is `recordings::policy`.
//!
//! Tenancy: the default policy (every company's fallback) and running a pass are for
//! admins (`retention:manage`). A company has its own policy, which its operators
//! (`recordings:delete`) may change, and per-camera overrides for its cameras; another
//! company's answer 404. Non-admins see only their company's policies and cameras and no
//! server paths. Every change is written to the audit log.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{Envelope, Json, Path, ok, text};
use super::guard::{ClientAddr, Principal, Reach};
use super::recordings::{camera_visible, principal_audit};
use crate::clock::{now_ms, rfc3339};
use crate::error::{ApiError, ErrorCode};
use crate::recordings::Report;
use crate::recordings::policy::{company_scope, scope_company};
use crate::recordings::retention::{Ages, DEFAULT_SCOPE};
use crate::state::AppState;
use crate::store::recordings::{NewAudit, RetentionPolicy, Tier};

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

/// A company's policy.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CompanyPolicy {
    company: String,
    #[serde(flatten)]
    policy: Policy,
    updated_at: String,
}

/// Where files can go (server paths: admins only).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TierConfig {
    hot: String,
    warm: Option<String>,
    cold: Option<String>,
    /// `s3://bucket/prefix`.
    archive: Option<String>,
}

/// The policies in force, within the caller's reach.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RetentionView {
    /// Applies to cameras of companies without their own policy.
    default: Policy,
    /// The caller's company's policy (replaces the default for its cameras); `null` when it
    /// has none, and for admins and users without a company.
    company: Option<Policy>,
    /// Company policies: every company's for admins, the caller's own for others.
    companies: Vec<CompanyPolicy>,
    /// Cameras with their own policy (it replaces the company's or the default as a
    /// whole): only the caller's cameras.
    cameras: Vec<CameraPolicy>,
    /// Tier directories and the archive URL: admins only (`null` for others).
    tiers: Option<TierConfig>,
    /// Tiers configured on this server.
    available_tiers: Vec<Tier>,
    /// Seconds between scheduled passes.
    interval_seconds: u64,
}

/// The retention policies and tiers within the caller's reach.
#[utoipa::path(get, path = "/api/v1/retention", operation_id = "getRetention", tag = "recordings", security(("bearer" = [])),
    responses((status = 200, description = "Policies", body = Envelope<RetentionView>)))]
pub(crate) async fn get(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Response, ApiError> {
    let policies = state.store.list_policies().await?;
    let reach = principal.reach();
    let mut view = RetentionView {
        default: Policy::default(),
        company: None,
        companies: Vec::new(),
        cameras: Vec::new(),
        tiers: None,
        available_tiers: Tier::ALL
            .into_iter()
            .filter(|t| state.recordings.tiers().configured(*t))
            .collect(),
        interval_seconds: state.config.retention_interval.as_secs(),
    };
    for p in &policies {
        if p.scope == DEFAULT_SCOPE {
            view.default = Policy::of(p);
        } else if let Some(c) = scope_company(&p.scope) {
            let mine = reach == Reach::Company(c);
            if mine {
                view.company = Some(Policy::of(p));
            }
            if mine || reach == Reach::All {
                view.companies.push(CompanyPolicy {
                    company: c.to_owned(),
                    policy: Policy::of(p),
                    updated_at: rfc3339(p.updated_at),
                });
            }
        } else {
            let visible = match reach {
                Reach::All => true,
                Reach::Nothing => false,
                Reach::Company(_) => state
                    .store
                    .get_camera(&p.scope)
                    .await?
                    .is_some_and(|c| principal.sees(c.company.as_deref())),
            };
            if visible {
                view.cameras.push(CameraPolicy {
                    camera_id: p.scope.clone(),
                    policy: Policy::of(p),
                    updated_at: rfc3339(p.updated_at),
                });
            }
        }
    }
    if reach == Reach::All {
        let c = &state.config;
        let tiers = state.recordings.tiers();
        view.tiers = Some(TierConfig {
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
        });
    }
    Ok(ok(view).into_response())
}

/// Writes a policy change to the audit log: `detail` names the scope and the new ages.
async fn audit(
    state: &AppState,
    p: &Principal,
    ip: ClientAddr,
    action: &str,
    camera_id: Option<&str>,
    detail: String,
) -> Result<(), ApiError> {
    state
        .store
        .add_audit(NewAudit {
            action: action.into(),
            camera_id: camera_id.map(str::to_owned),
            detail: Some(detail),
            ..principal_audit(p, ip)
        })
        .await?;
    Ok(())
}

fn describe(p: &Policy) -> String {
    serde_json::to_string(p).unwrap_or_default()
}

/// Replace the default policy (admins: `retention:manage`; audited).
#[utoipa::path(put, path = "/api/v1/retention", operation_id = "setDefaultRetention", tag = "recordings", security(("bearer" = [])),
    request_body = Policy,
    responses(
        (status = 200, description = "Stored", body = Envelope<Policy>),
        (status = 400, description = "VALIDATION_FAILED", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn put_default(
    State(state): State<AppState>,
    principal: Principal,
    ip: ClientAddr,
    Json(req): Json<Policy>,
) -> Result<Response, ApiError> {
    let p = req.to_store(DEFAULT_SCOPE)?;
    state.store.put_policy(&p).await?;
    tracing::info!(policy = ?p, "default retention policy changed");
    audit(
        &state,
        &principal,
        ip,
        "retention.policy_changed",
        None,
        format!("default: {}", describe(&req)),
    )
    .await?;
    Ok(ok(req).into_response())
}

/// Give a camera its own policy (audited).
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
    ip: ClientAddr,
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
    audit(
        &state,
        &principal,
        ip,
        "retention.policy_changed",
        Some(&id),
        format!("camera {id}: {}", describe(&req)),
    )
    .await?;
    Ok(ok(req).into_response())
}

/// Remove a camera's own policy (it follows its company's or the default again; audited).
#[utoipa::path(delete, path = "/api/v1/retention/cameras/{id}", operation_id = "deleteCameraRetention", tag = "recordings", security(("bearer" = [])),
    params(("id" = String, Path, description = "Camera id")),
    responses(
        (status = 200, description = "Removed", body = Envelope<serde_json::Value>),
        (status = 404, description = "CAMERA_NOT_FOUND", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn delete_camera(
    State(state): State<AppState>,
    principal: Principal,
    ip: ClientAddr,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    camera_visible(&state, &principal, &id).await?;
    let deleted = state.store.delete_policy(&id).await?;
    if deleted {
        audit(
            &state,
            &principal,
            ip,
            "retention.policy_removed",
            Some(&id),
            format!("camera {id}"),
        )
        .await?;
    }
    Ok(ok(serde_json::json!({ "deleted": deleted })).into_response())
}

/// The company a caller may address: any for admins, only their own for others.
fn company_in_reach(p: &Principal, company: &str) -> Result<(), ApiError> {
    text("company", company, 256)?;
    match p.reach() {
        Reach::All => Ok(()),
        Reach::Company(t) if t == company => Ok(()),
        _ => Err(ApiError::new(
            ErrorCode::CompanyNotFound,
            "company not found",
        )),
    }
}

/// Give a company its own policy: it replaces the default for the company's cameras that
/// have none of their own (operators of the company, or admins; audited).
#[utoipa::path(put, path = "/api/v1/retention/companies/{company}", operation_id = "setCompanyRetention", tag = "recordings", security(("bearer" = [])),
    params(("company" = String, Path, description = "Company")),
    request_body = Policy,
    responses(
        (status = 200, description = "Stored", body = Envelope<Policy>),
        (status = 400, description = "VALIDATION_FAILED", body = crate::error::ErrorEnvelope),
        (status = 404, description = "COMPANY_NOT_FOUND: not the caller's company", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn put_company(
    State(state): State<AppState>,
    principal: Principal,
    ip: ClientAddr,
    Path(company): Path<String>,
    Json(req): Json<Policy>,
) -> Result<Response, ApiError> {
    company_in_reach(&principal, &company)?;
    let p = req.to_store(&company_scope(&company))?;
    state.store.put_policy(&p).await?;
    tracing::info!(company = %company, policy = ?p, "company retention policy changed");
    audit(
        &state,
        &principal,
        ip,
        "retention.policy_changed",
        None,
        format!("company {company}: {}", describe(&req)),
    )
    .await?;
    Ok(ok(req).into_response())
}

/// Remove a company's policy (its cameras follow the default again; audited).
#[utoipa::path(delete, path = "/api/v1/retention/companies/{company}", operation_id = "deleteCompanyRetention", tag = "recordings", security(("bearer" = [])),
    params(("company" = String, Path, description = "Company")),
    responses(
        (status = 200, description = "Removed", body = Envelope<serde_json::Value>),
        (status = 404, description = "COMPANY_NOT_FOUND: not the caller's company", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn delete_company(
    State(state): State<AppState>,
    principal: Principal,
    ip: ClientAddr,
    Path(company): Path<String>,
) -> Result<Response, ApiError> {
    company_in_reach(&principal, &company)?;
    let deleted = state.store.delete_policy(&company_scope(&company)).await?;
    if deleted {
        audit(
            &state,
            &principal,
            ip,
            "retention.policy_removed",
            None,
            format!("company {company}"),
        )
        .await?;
    }
    Ok(ok(serde_json::json!({ "deleted": deleted })).into_response())
}

/// Run a retention pass now over every company (finishing any interrupted move first);
/// what it did. Admins only (`retention:manage`).
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
