//! `/api/v1/audit`: the audit log of recording access (download URLs issued, VOD playlists
//! fetched, recordings deleted), with who (user, API token), when and from where. Admins
//! only (`audit:read`).

use axum::extract::State;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{PageParams, Query, paged, text};
use super::recordings::time_param;
use crate::clock::rfc3339;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::recordings::{AuditEntry, AuditFilter};

/// One audited access.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AuditView {
    id: String,
    /// `recording.url_issued`, `recording.playlist` or `recording.deleted`.
    action: String,
    user_id: Option<String>,
    /// The API token used, if any.
    token_id: Option<String>,
    camera_id: Option<String>,
    recording_id: Option<String>,
    /// Client address.
    ip: Option<String>,
    detail: Option<String>,
    #[schema(format = DateTime)]
    at: String,
}

fn view(e: AuditEntry) -> AuditView {
    AuditView {
        id: e.id,
        action: e.action,
        user_id: e.user_id,
        token_id: e.token_id,
        camera_id: e.camera_id,
        recording_id: e.recording_id,
        ip: e.ip,
        detail: e.detail,
        at: rfc3339(e.created_at),
    }
}

/// Filters and page.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListAudit {
    /// One action.
    #[param(
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$",
        min_length = 1,
        max_length = 128
    )]
    action: Option<String>,
    /// One user.
    #[param(
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$",
        min_length = 1,
        max_length = 128
    )]
    user_id: Option<String>,
    /// One camera.
    #[param(
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$",
        min_length = 1,
        max_length = 128
    )]
    camera_id: Option<String>,
    /// From (RFC 3339, inclusive).
    #[param(format = DateTime)]
    from: Option<String>,
    /// To (RFC 3339, exclusive).
    #[param(format = DateTime)]
    to: Option<String>,
    /// 1-based page (default 1).
    #[param(minimum = 1, maximum = 1_000_000)]
    page: Option<i64>,
    /// Page size 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
}

/// The audit log, newest first.
#[utoipa::path(get, path = "/api/v1/audit", operation_id = "listAudit", tag = "recordings", security(("bearer" = [])),
    params(ListAudit),
    responses(
        (status = 200, description = "A page of entries", body = super::extract::Paged<AuditView>),
        (status = 400, description = "VALIDATION_FAILED", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn list(
    State(state): State<AppState>,
    Query(q): Query<ListAudit>,
) -> Result<Response, ApiError> {
    let page = PageParams::new(q.page, q.limit)?;
    for (field, v) in [
        ("action", &q.action),
        ("userId", &q.user_id),
        ("cameraId", &q.camera_id),
    ] {
        if let Some(v) = v {
            text(field, v, 128)?;
        }
    }
    let filter = AuditFilter {
        action: q.action,
        user_id: q.user_id,
        camera_id: q.camera_id,
        from: time_param("from", q.from.as_deref())?,
        to: time_param("to", q.to.as_deref())?,
        offset: page.offset(),
        limit: page.limit,
    };
    let (rows, total) = state.store.list_audit(&filter).await?;
    Ok(paged(
        rows.into_iter().map(view).collect(),
        page.page,
        page.limit,
        total,
    ))
}
