//! `/api/v1/alerts`: alerts of the caller's tenant (a camera's alerts belong to the camera's
//! company, a token's to its owner's; alerts of no company are admins' only), filtered and
//! paged, and their acknowledgement. A non-admin without a company sees none.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{Envelope, PageParams, Path, Query, ok, paged, text};
use super::guard::Principal;
use super::recordings::time_param;
use crate::clock::{now_ms, rfc3339};
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;
use crate::store::Alert;
use crate::store::alerts::AlertFilter;

/// How bad an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }

    /// The stored name (the table's CHECK keeps it to these three).
    pub(crate) fn of(s: &str) -> Self {
        match s {
            "info" => Self::Info,
            "critical" => Self::Critical,
            _ => Self::Warning,
        }
    }
}

/// Open or resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum AlertState {
    Open,
    Resolved,
}

/// An alert.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AlertView {
    id: String,
    /// `CAMERA_OFFLINE`, `RECORDING_FAILED`, `STORAGE_FULL`, `API_RATE_LIMIT`,
    /// `LOGIN_FAILURES`, `STREAM_FPS_LOW`, `STREAM_FRAMES_DROPPED`, `STREAM_BITRATE_LOW`,
    /// `API_UNUSUAL_USAGE`.
    #[serde(rename = "type")]
    kind: String,
    severity: Severity,
    state: AlertState,
    message: String,
    camera_id: Option<String>,
    user_id: Option<String>,
    token_id: Option<String>,
    /// Times its cause was raised while it was open.
    occurrences: i64,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    last_seen_at: String,
    #[schema(format = DateTime)]
    resolved_at: Option<String>,
    #[schema(format = DateTime)]
    acknowledged_at: Option<String>,
    acknowledged_by: Option<String>,
}

fn view(a: &Alert) -> AlertView {
    AlertView {
        id: a.id.clone(),
        kind: a.kind.clone(),
        severity: Severity::of(&a.severity),
        state: if a.resolved_at.is_some() {
            AlertState::Resolved
        } else {
            AlertState::Open
        },
        message: a.message.clone(),
        camera_id: a.camera_id.clone(),
        user_id: a.user_id.clone(),
        token_id: a.token_id.clone(),
        occurrences: a.occurrences,
        created_at: rfc3339(a.created_at),
        last_seen_at: rfc3339(a.last_seen_at.unwrap_or(a.created_at)),
        resolved_at: a.resolved_at.map(rfc3339),
        acknowledged_at: a.acknowledged_at.map(rfc3339),
        acknowledged_by: a.acknowledged_by.clone(),
    }
}

/// List filters and page.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListAlerts {
    /// `info`, `warning` or `critical`.
    severity: Option<Severity>,
    /// One type (`CAMERA_OFFLINE`, ...).
    #[serde(rename = "type")]
    #[param(rename = "type", pattern = r"^[A-Z][A-Z0-9_]{0,63}$")]
    kind: Option<String>,
    /// One camera.
    #[param(
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$",
        min_length = 1,
        max_length = 128
    )]
    camera_id: Option<String>,
    /// Acknowledged or not.
    acknowledged: Option<bool>,
    /// `open` or `resolved`.
    state: Option<AlertState>,
    /// Raised at or after (RFC 3339).
    #[param(format = DateTime)]
    from: Option<String>,
    /// Raised before (RFC 3339).
    #[param(format = DateTime)]
    to: Option<String>,
    /// 1-based page (default 1).
    #[param(minimum = 1, maximum = 1_000_000)]
    page: Option<i64>,
    /// Page size 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
}

/// List alerts, newest first.
#[utoipa::path(get, path = "/api/v1/alerts", operation_id = "listAlerts", tag = "alerts", security(("bearer" = [])),
    params(ListAlerts),
    responses(
        (status = 200, description = "A page of alerts", body = super::extract::Paged<AlertView>),
        (status = 400, description = "VALIDATION_FAILED", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<ListAlerts>,
) -> Result<Response, ApiError> {
    let page = PageParams::new(q.page, q.limit)?;
    if let Some(c) = &q.camera_id {
        text("cameraId", c, 128)?;
    }
    // As the documented pattern: `^[A-Z][A-Z0-9_]{0,63}$`.
    if let Some(k) = &q.kind
        && (k.len() > 64
            || !k.bytes().next().is_some_and(|b| b.is_ascii_uppercase())
            || !k
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'))
    {
        return Err(ApiError::validation(
            "type",
            "an alert type such as CAMERA_OFFLINE",
        ));
    }
    let from = time_param("from", q.from.as_deref())?;
    let to = time_param("to", q.to.as_deref())?;
    let Some(tenant) = principal.reach().filter() else {
        return Ok(paged(Vec::<AlertView>::new(), page.page, page.limit, 0));
    };
    let filter = AlertFilter {
        severity: q.severity.map(|s| s.as_str().to_owned()),
        kind: q.kind,
        camera_id: q.camera_id,
        acknowledged: q.acknowledged,
        open: q.state.map(|s| s == AlertState::Open),
        from,
        to,
        tenant: tenant.map(str::to_owned),
        offset: page.offset(),
        limit: page.limit,
    };
    let (rows, total) = state.store.list_alerts_page(&filter).await?;
    Ok(paged(
        rows.iter().map(view).collect(),
        page.page,
        page.limit,
        total,
    ))
}

fn not_found() -> ApiError {
    ApiError::new(ErrorCode::AlertNotFound, "alert not found")
}

/// Acknowledge an alert (again: no change; the first acknowledgement is kept).
#[utoipa::path(post, path = "/api/v1/alerts/{id}/ack", operation_id = "acknowledgeAlert", tag = "alerts", security(("bearer" = [])),
    params(("id" = String, Path, description = "Alert id")),
    responses(
        (status = 200, description = "The alert", body = Envelope<AlertView>),
        (status = 404, description = "ALERT_NOT_FOUND", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn acknowledge(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if uuid::Uuid::parse_str(&id).is_err() {
        return Err(not_found());
    }
    let a = state.store.get_alert(&id).await?.ok_or_else(not_found)?;
    let reach = principal.reach().filter().ok_or_else(not_found)?;
    if reach.is_some() && reach != a.company.as_deref() {
        return Err(not_found());
    }
    let a = state
        .store
        .acknowledge_alert(&id, &principal.user_id, now_ms())
        .await?
        .ok_or_else(not_found)?;
    tracing::info!(alert_id = %id, user_id = %principal.user_id, kind = %a.kind, "alert acknowledged");
    Ok(ok(view(&a)).into_response())
}
