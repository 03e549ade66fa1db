//! `/api/v1/recordings`: the recorded files of the fleet (list, one, delete), time-limited
//! download URLs, a camera's timeline (covered intervals, gaps, alert and bookmark markers),
//! signed VOD playlist URLs, and bookmarks. Tenancy as for cameras: a tenant-scoped caller
//! sees only recordings of their company's cameras (others answer 404). Issuing a download
//! URL, fetching a playlist and deleting are written to the audit log.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::cameras;
use super::extract::{Envelope, Json, PageParams, Path, Query, ok, paged, text};
use super::guard::{ClientAddr, Credential, Principal};
use crate::clock::{now_ms, parse_rfc3339, rfc3339};
use crate::error::{ApiError, ErrorCode};
use crate::recordings::retention::RetentionError;
use crate::recordings::{index, timeline};
use crate::state::AppState;
use crate::store::recordings::{
    NewAudit, NewBookmark, Recording, RecordingFilter, RecordingStatus, Tier,
};

/// Longest VOD playlist range.
const MAX_VOD_RANGE_MS: i64 = 24 * 3600 * 1000;
/// Longest timeline window.
const MAX_TIMELINE_MS: i64 = 7 * 24 * 3600 * 1000;
/// Files read for one playlist or timeline.
pub(crate) const MAX_FILES: i64 = 1000;
/// Markers of each kind on one timeline.
const MAX_MARKERS: i64 = 1000;
/// Shortest and longest signed URL lifetimes a request may ask for.
const MIN_TTL_S: i64 = 10;
const MAX_TTL_S: i64 = 7 * 24 * 3600;

/// A recording as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RecordingView {
    id: String,
    camera_id: String,
    segment_number: i64,
    filename: String,
    /// Path on its tier, or the object key when archived.
    file_path: String,
    /// Seconds of media.
    duration: f64,
    file_size: i64,
    #[schema(format = DateTime)]
    start_time: String,
    #[schema(format = DateTime)]
    end_time: String,
    /// `recording` while the recorder writes it, then `complete`.
    status: RecordingStatus,
    storage_tier: Tier,
    is_archived: bool,
    cloud_url: Option<String>,
    #[schema(format = DateTime)]
    signed_url_expires_at: Option<String>,
    /// SHA-256, known once the file has been moved (each move verifies it).
    checksum: Option<String>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
}

pub(crate) fn view(r: &Recording) -> RecordingView {
    RecordingView {
        id: r.id.clone(),
        camera_id: r.camera_id.clone(),
        segment_number: r.segment_number,
        filename: r.filename.clone(),
        file_path: r.file_path.clone(),
        duration: r.duration_ms as f64 / 1000.0,
        file_size: r.file_size,
        start_time: rfc3339(r.start_time),
        end_time: rfc3339(r.end_time),
        status: r.status,
        storage_tier: r.storage_tier,
        is_archived: r.is_archived,
        cloud_url: r.cloud_url.clone(),
        signed_url_expires_at: r.signed_url_expires_at.map(rfc3339),
        checksum: r.checksum.clone(),
        created_at: rfc3339(r.created_at),
        updated_at: rfc3339(r.updated_at),
    }
}

pub(crate) fn not_found() -> ApiError {
    ApiError::new(ErrorCode::RecordingNotFound, "recording not found")
}

/// Who a signed URL was issued to, carried in it as `by=` (signed): the user, and the API
/// token after a dot when one was used.
pub(crate) fn actor(p: &Principal) -> String {
    match &p.credential {
        Credential::ApiToken { id, .. } => format!("{}.{id}", p.user_id),
        Credential::Session { .. } => p.user_id.clone(),
    }
}

/// The user and token of an `actor` string, if it is well-formed.
pub(crate) fn parse_actor(by: &str) -> Option<(String, Option<String>)> {
    let ok = |s: &str| {
        !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    match by.split_once('.') {
        Some((u, t)) if ok(u) && ok(t) => Some((u.to_owned(), Some(t.to_owned()))),
        None if ok(by) => Some((by.to_owned(), None)),
        _ => None,
    }
}

pub(crate) fn principal_audit(p: &Principal, ip: ClientAddr) -> NewAudit {
    NewAudit {
        user_id: Some(p.user_id.clone()),
        token_id: match &p.credential {
            Credential::ApiToken { id, .. } => Some(id.clone()),
            Credential::Session { .. } => None,
        },
        ip: ip.0.map(|a| a.to_string()),
        ..NewAudit::default()
    }
}

/// Whether the caller may see recordings of `camera_id`: cameras in the store by tenant;
/// cameras the store does not know (config file, `--allow-any-key`) only by admins.
pub(crate) async fn camera_visible(
    state: &AppState,
    p: &Principal,
    camera_id: &str,
) -> Result<(), ApiError> {
    if !camstream_protocol::auth::is_valid_camera_id(camera_id) {
        return Err(cameras::not_found());
    }
    match state.store.get_camera(camera_id).await? {
        Some(c) if p.sees(c.company.as_deref()) => Ok(()),
        None if p.is_admin() => Ok(()),
        _ => Err(cameras::not_found()),
    }
}

/// The recording if it exists and the caller may see its camera.
async fn visible(state: &AppState, p: &Principal, id: &str) -> Result<Recording, ApiError> {
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(not_found());
    }
    let r = state.store.get_recording(id).await?.ok_or_else(not_found)?;
    camera_visible(state, p, &r.camera_id)
        .await
        .map_err(|_| not_found())?;
    Ok(r)
}

/// An optional RFC 3339 parameter as Unix ms.
pub(crate) fn time_param(field: &str, v: Option<&str>) -> Result<Option<i64>, ApiError> {
    v.map(|s| {
        parse_rfc3339(s).ok_or_else(|| {
            ApiError::validation(field, "expected an RFC 3339 time like 2026-11-30T14:00:00Z")
        })
    })
    .transpose()
}

/// A signed URL lifetime in seconds from `expiresIn`, or the configured default.
fn ttl(state: &AppState, asked: Option<i64>) -> Result<i64, ApiError> {
    match asked {
        None => Ok(i64::try_from(state.config.recording_url_ttl.as_secs()).unwrap_or(900)),
        Some(s) if (MIN_TTL_S..=MAX_TTL_S).contains(&s) => Ok(s),
        Some(_) => Err(ApiError::validation(
            "expiresIn",
            format!("must be between {MIN_TTL_S} and {MAX_TTL_S} seconds"),
        )),
    }
}

/// The decoded index of a recording; a corrupt one is logged and treated as empty.
pub(crate) async fn entries(
    state: &AppState,
    r: &Recording,
) -> Result<Vec<index::IndexEntry>, ApiError> {
    let chunks = state.store.recording_index(&r.id).await?;
    let mut out = Vec::new();
    for c in &chunks {
        if let Err(e) = index::decode_into(c, &mut out) {
            tracing::warn!(recording_id = %r.id, error = %e, "stored index chunk unreadable");
            break;
        }
    }
    Ok(out)
}

/// List filters and page.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListRecordings {
    /// One camera.
    #[param(
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$",
        min_length = 1,
        max_length = 128
    )]
    camera_id: Option<String>,
    /// Files ending after this (RFC 3339).
    #[param(format = DateTime)]
    from: Option<String>,
    /// Files starting before this (RFC 3339).
    #[param(format = DateTime)]
    to: Option<String>,
    /// `hot`, `warm`, `cold` or `archived`.
    tier: Option<Tier>,
    /// 1-based page (default 1).
    #[param(minimum = 1, maximum = 1_000_000)]
    page: Option<i64>,
    /// Page size 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
}

/// List recordings, newest first.
#[utoipa::path(get, path = "/api/v1/recordings", operation_id = "listRecordings", tag = "recordings", security(("bearer" = [])),
    params(ListRecordings),
    responses(
        (status = 200, description = "A page of recordings", body = super::extract::Paged<RecordingView>),
        (status = 400, description = "VALIDATION_FAILED", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<ListRecordings>,
) -> Result<Response, ApiError> {
    let page = PageParams::new(q.page, q.limit)?;
    if let Some(c) = &q.camera_id {
        text("cameraId", c, 128)?;
    }
    let from = time_param("from", q.from.as_deref())?;
    let to = time_param("to", q.to.as_deref())?;
    let Some(tenant) = principal.reach().filter() else {
        return Ok(paged(Vec::<RecordingView>::new(), page.page, page.limit, 0));
    };
    let filter = RecordingFilter {
        camera_id: q.camera_id,
        tenant: tenant.map(str::to_owned),
        from,
        to,
        tier: q.tier,
        offset: page.offset(),
        limit: page.limit,
    };
    let (rows, total) = state.store.list_recordings(&filter).await?;
    Ok(paged(
        rows.iter().map(view).collect(),
        page.page,
        page.limit,
        total,
    ))
}

/// One recording.
#[utoipa::path(get, path = "/api/v1/recordings/{id}", operation_id = "getRecording", tag = "recordings", security(("bearer" = [])),
    params(("id" = String, Path, description = "Recording id")),
    responses(
        (status = 200, description = "The recording", body = Envelope<RecordingView>),
        (status = 404, description = "RECORDING_NOT_FOUND", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn get(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let r = visible(&state, &principal, &id).await?;
    Ok(ok(view(&r)).into_response())
}

/// Delete a recording: its row, then its file on whatever tier holds it (audited).
#[utoipa::path(delete, path = "/api/v1/recordings/{id}", operation_id = "deleteRecording", tag = "recordings", security(("bearer" = [])),
    params(("id" = String, Path, description = "Recording id")),
    responses(
        (status = 200, description = "Deleted", body = Envelope<serde_json::Value>),
        (status = 404, description = "RECORDING_NOT_FOUND", body = crate::error::ErrorEnvelope),
        (status = 409, description = "RECORDING_IN_PROGRESS or RECORDING_BUSY", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    ip: ClientAddr,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let r = visible(&state, &principal, &id).await?;
    if r.status == RecordingStatus::Recording {
        return Err(ApiError::new(
            ErrorCode::RecordingInProgress,
            "the recorder is still writing this file; stop recording the camera first",
        ));
    }
    let deleted = match state.recordings.retention.delete(&id).await {
        Ok(d) => d,
        Err(RetentionError::Busy(_)) => {
            return Err(ApiError::new(
                ErrorCode::RecordingBusy,
                "the recording is being moved between tiers; try again shortly",
            ));
        }
        Err(RetentionError::Store(e)) => return Err(e.into()),
        Err(e) => return Err(ApiError::internal(e)),
    };
    if deleted.is_none() {
        return Err(not_found());
    }
    state
        .store
        .add_audit(NewAudit {
            action: "recording.deleted".into(),
            camera_id: Some(r.camera_id.clone()),
            recording_id: Some(r.id.clone()),
            detail: Some(format!("{} on {}", r.filename, r.storage_tier.as_str())),
            ..principal_audit(&principal, ip)
        })
        .await?;
    Ok(ok(serde_json::json!({ "deleted": true })).into_response())
}

/// Signed URL lifetime.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct UrlQuery {
    /// Seconds the URL works (10 s – 7 days; default 15 min).
    #[param(minimum = 10, maximum = 604_800)]
    expires_in: Option<i64>,
}

/// A time-limited download URL.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SignedUrl {
    recording_id: String,
    /// Downloads the file (Range requests supported) with no other credential; an archived
    /// file redirects to a presigned object-store URL.
    url: String,
    #[schema(format = DateTime)]
    expires_at: String,
}

/// Issue a time-limited download URL (audited).
#[utoipa::path(get, path = "/api/v1/recordings/{id}/signed-url", operation_id = "getRecordingSignedUrl", tag = "recordings", security(("bearer" = [])),
    params(("id" = String, Path, description = "Recording id"), UrlQuery),
    responses(
        (status = 200, description = "The URL", body = Envelope<SignedUrl>),
        (status = 404, description = "RECORDING_NOT_FOUND", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn signed_url(
    State(state): State<AppState>,
    principal: Principal,
    ip: ClientAddr,
    Path(id): Path<String>,
    Query(q): Query<UrlQuery>,
) -> Result<Response, ApiError> {
    let r = visible(&state, &principal, &id).await?;
    let exp = now_ms() / 1000 + ttl(&state, q.expires_in)?;
    let by = actor(&principal);
    let token = state
        .keys
        .sign_url(&super::vod::download_scope(&r.id, &by), exp);
    let base = state.config.public_base_url.trim_end_matches('/');
    let url = format!(
        "{base}/api/v1/recordings/{}/download?by={by}&token={token}",
        r.id
    );
    state.store.set_signed_url_expiry(&r.id, exp * 1000).await?;
    state
        .store
        .add_audit(NewAudit {
            action: "recording.url_issued".into(),
            camera_id: Some(r.camera_id.clone()),
            recording_id: Some(r.id.clone()),
            detail: Some(format!("expires {}", rfc3339(exp * 1000))),
            ..principal_audit(&principal, ip)
        })
        .await?;
    Ok(ok(SignedUrl {
        recording_id: r.id,
        url,
        expires_at: rfc3339(exp * 1000),
    })
    .into_response())
}

/// A time range of a camera.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct RangeQuery {
    /// Start (RFC 3339); default: `to` minus 1 h (playback) or 24 h (timeline).
    #[param(format = DateTime)]
    from: Option<String>,
    /// End (RFC 3339), after `from` and at most 24 h (playback) or 7 days (timeline) after
    /// it (400 otherwise); default: now.
    #[param(format = DateTime)]
    to: Option<String>,
    /// Seconds a signed URL works (playback only; default 15 min).
    #[param(minimum = 10, maximum = 604_800)]
    expires_in: Option<i64>,
}

fn window(q: &RangeQuery, default_ms: i64, max_ms: i64) -> Result<(i64, i64), ApiError> {
    // Checked on every route that takes the parameter, so the documented range holds even
    // where the value is not used (the timeline).
    if let Some(s) = q.expires_in
        && !(MIN_TTL_S..=MAX_TTL_S).contains(&s)
    {
        return Err(ApiError::validation(
            "expiresIn",
            format!("must be between {MIN_TTL_S} and {MAX_TTL_S} seconds"),
        ));
    }
    let now = now_ms();
    let to = time_param("to", q.to.as_deref())?.unwrap_or(now);
    let from = time_param("from", q.from.as_deref())?.unwrap_or(to - default_ms);
    if from >= to {
        return Err(ApiError::validation("to", "must be after from"));
    }
    if to - from > max_ms {
        return Err(ApiError::validation(
            "to",
            format!("the range may span at most {} hours", max_ms / 3_600_000),
        ));
    }
    Ok((from, to))
}

/// A signed VOD playlist URL.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PlaybackUrl {
    camera_id: String,
    /// HLS VOD playlist of the range over the recorded fMP4 files (no other credential).
    url: String,
    #[schema(format = DateTime)]
    from: String,
    #[schema(format = DateTime)]
    to: String,
    #[schema(format = DateTime)]
    expires_at: String,
}

/// A signed HLS VOD playlist URL for a time range of a camera (at most 24 h; default the
/// last hour). Fetching it is audited.
#[utoipa::path(get, path = "/api/v1/recordings/playback/{id}", operation_id = "getRecordingPlayback", tag = "recordings", security(("bearer" = [])),
    params(("id" = String, Path, description = "Camera id"), RangeQuery),
    responses(
        (status = 200, description = "The URL", body = Envelope<PlaybackUrl>),
        (status = 404, description = "CAMERA_NOT_FOUND", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn playback(
    State(state): State<AppState>,
    principal: Principal,
    Path(camera): Path<String>,
    Query(q): Query<RangeQuery>,
) -> Result<Response, ApiError> {
    camera_visible(&state, &principal, &camera).await?;
    let (from, to) = window(&q, 3_600_000, MAX_VOD_RANGE_MS)?;
    let exp = now_ms() / 1000 + ttl(&state, q.expires_in)?;
    let by = actor(&principal);
    let token = state
        .keys
        .sign_url(&super::vod::playlist_scope(&camera, from, to, &by), exp);
    let base = state.config.public_base_url.trim_end_matches('/');
    Ok(ok(PlaybackUrl {
        url: format!("{base}/vod/{camera}/playlist.m3u8?from={from}&to={to}&by={by}&token={token}"),
        camera_id: camera,
        from: rfc3339(from),
        to: rfc3339(to),
        expires_at: rfc3339(exp * 1000),
    })
    .into_response())
}

/// Longest range one export may span.
const MAX_EXPORT_RANGE_MS: i64 = 3 * 3600 * 1000;

/// A signed download URL of a time range as one MP4 file.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ExportUrl {
    camera_id: String,
    /// One fragmented MP4 of the range (no other credential; audited when fetched).
    url: String,
    #[schema(format = DateTime)]
    from: String,
    #[schema(format = DateTime)]
    to: String,
    #[schema(format = DateTime)]
    expires_at: String,
}

/// A signed URL that downloads a time range of a camera's recordings as one fragmented MP4
/// (at most 3 h; default the last 10 min): the first file's init segment and every fragment
/// of the range, across files. Fetching it is audited.
#[utoipa::path(get, path = "/api/v1/recordings/export/{id}", operation_id = "getRecordingExport", tag = "recordings", security(("bearer" = [])),
    params(("id" = String, Path, description = "Camera id"), RangeQuery),
    responses(
        (status = 200, description = "The URL", body = Envelope<ExportUrl>),
        (status = 400, description = "VALIDATION_FAILED: `to` not after `from`, or the range over 3 h", body = crate::error::ErrorEnvelope),
        (status = 404, description = "CAMERA_NOT_FOUND", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn export(
    State(state): State<AppState>,
    principal: Principal,
    Path(camera): Path<String>,
    Query(q): Query<RangeQuery>,
) -> Result<Response, ApiError> {
    camera_visible(&state, &principal, &camera).await?;
    let (from, to) = window(&q, 600_000, MAX_EXPORT_RANGE_MS)?;
    let exp = now_ms() / 1000 + ttl(&state, q.expires_in)?;
    let by = actor(&principal);
    let token = state
        .keys
        .sign_url(&super::vod::export_scope(&camera, from, to, &by), exp);
    let base = state.config.public_base_url.trim_end_matches('/');
    Ok(ok(ExportUrl {
        url: format!("{base}/vod/{camera}/export.mp4?from={from}&to={to}&by={by}&token={token}"),
        camera_id: camera,
        from: rfc3339(from),
        to: rfc3339(to),
        expires_at: rfc3339(exp * 1000),
    })
    .into_response())
}

/// An interval of the timeline.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Interval {
    #[schema(format = DateTime)]
    start: String,
    #[schema(format = DateTime)]
    end: String,
}

/// A file on the timeline.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TimelineFile {
    id: String,
    #[schema(format = DateTime)]
    start: String,
    #[schema(format = DateTime)]
    end: String,
    storage_tier: Tier,
    status: RecordingStatus,
}

/// A marker: an alert or a bookmark.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Marker {
    /// `alert` or `bookmark`.
    #[serde(rename = "type")]
    kind: &'static str,
    id: String,
    #[schema(format = DateTime)]
    at: String,
    /// The alert code or the bookmark's label.
    label: String,
    /// Alerts: `info`, `warning`, `critical`.
    #[serde(skip_serializing_if = "Option::is_none")]
    severity: Option<String>,
    /// Alerts: the message.
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

/// A camera's recorded timeline.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Timeline {
    camera_id: String,
    #[schema(format = DateTime)]
    from: String,
    #[schema(format = DateTime)]
    to: String,
    /// Intervals with recorded media, merged (holes under 0.5 s ignored).
    covered: Vec<Interval>,
    /// The rest of the window.
    gaps: Vec<Interval>,
    /// Seconds covered.
    covered_seconds: f64,
    files: Vec<TimelineFile>,
    /// Alerts and bookmarks, in time order.
    markers: Vec<Marker>,
}

fn intervals(spans: &[timeline::Span]) -> Vec<Interval> {
    spans
        .iter()
        .map(|s| Interval {
            start: rfc3339(s.start),
            end: rfc3339(s.end),
        })
        .collect()
}

/// A camera's timeline: covered intervals, gaps and markers (default: the last 24 h; at
/// most 7 days).
#[utoipa::path(get, path = "/api/v1/recordings/timeline/{id}", operation_id = "getRecordingTimeline", tag = "recordings", security(("bearer" = [])),
    params(("id" = String, Path, description = "Camera id"), RangeQuery),
    responses(
        (status = 200, description = "The timeline", body = Envelope<Timeline>),
        (status = 404, description = "CAMERA_NOT_FOUND", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn timeline(
    State(state): State<AppState>,
    principal: Principal,
    Path(camera): Path<String>,
    Query(q): Query<RangeQuery>,
) -> Result<Response, ApiError> {
    camera_visible(&state, &principal, &camera).await?;
    let (from, to) = window(&q, 24 * 3_600_000, MAX_TIMELINE_MS)?;
    let recs = state
        .store
        .recordings_between(&camera, from, to, MAX_FILES)
        .await?;
    let mut all = Vec::new();
    for r in &recs {
        all.extend(entries(&state, r).await?);
    }
    let covered = timeline::covered(&all, from, to);
    let gaps = timeline::gaps(&covered, from, to);
    let covered_ms: i64 = covered.iter().map(|s| s.end - s.start).sum();
    let mut markers: Vec<(i64, Marker)> = Vec::new();
    for a in state
        .store
        .camera_alerts(&camera, from, to, MAX_MARKERS)
        .await?
    {
        markers.push((
            a.created_at,
            Marker {
                kind: "alert",
                id: a.id,
                at: rfc3339(a.created_at),
                label: a.kind,
                severity: Some(a.severity),
                message: Some(a.message),
            },
        ));
    }
    for b in state
        .store
        .list_bookmarks(&camera, from, to, MAX_MARKERS)
        .await?
    {
        markers.push((
            b.at,
            Marker {
                kind: "bookmark",
                id: b.id,
                at: rfc3339(b.at),
                label: b.label,
                severity: None,
                message: None,
            },
        ));
    }
    markers.sort_by_key(|(t, _)| *t);
    Ok(ok(Timeline {
        camera_id: camera,
        from: rfc3339(from),
        to: rfc3339(to),
        covered: intervals(&covered),
        gaps: intervals(&gaps),
        covered_seconds: covered_ms as f64 / 1000.0,
        files: recs
            .iter()
            .map(|r| TimelineFile {
                id: r.id.clone(),
                start: rfc3339(r.start_time),
                end: rfc3339(r.end_time),
                storage_tier: r.storage_tier,
                status: r.status,
            })
            .collect(),
        markers: markers.into_iter().map(|(_, m)| m).collect(),
    })
    .into_response())
}

/// A new bookmark.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct CreateBookmark {
    #[schema(pattern = r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$")]
    camera_id: String,
    /// RFC 3339.
    #[schema(format = DateTime)]
    at: String,
    #[schema(
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$",
        min_length = 1,
        max_length = 256
    )]
    label: String,
}

/// A bookmark.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BookmarkView {
    id: String,
    camera_id: String,
    #[schema(format = DateTime)]
    at: String,
    label: String,
    user_id: Option<String>,
    #[schema(format = DateTime)]
    created_at: String,
}

/// Bookmark a moment of a camera (shown on its timeline).
#[utoipa::path(post, path = "/api/v1/recordings/bookmarks", operation_id = "createBookmark", tag = "recordings", security(("bearer" = [])),
    request_body = CreateBookmark,
    responses(
        (status = 201, description = "Created", body = Envelope<BookmarkView>),
        (status = 400, description = "VALIDATION_FAILED", body = crate::error::ErrorEnvelope),
        (status = 404, description = "CAMERA_NOT_FOUND", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn create_bookmark(
    State(state): State<AppState>,
    principal: Principal,
    Json(req): Json<CreateBookmark>,
) -> Result<Response, ApiError> {
    text("label", &req.label, 256)?;
    let at = time_param("at", Some(&req.at))?.unwrap_or_default();
    camera_visible(&state, &principal, &req.camera_id).await?;
    let b = state
        .store
        .create_bookmark(NewBookmark {
            camera_id: req.camera_id,
            at,
            label: req.label,
            user_id: Some(principal.user_id.clone()),
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        ok(BookmarkView {
            id: b.id,
            camera_id: b.camera_id,
            at: rfc3339(b.at),
            label: b.label,
            user_id: b.user_id,
            created_at: rfc3339(b.created_at),
        }),
    )
        .into_response())
}

/// Unix ms → `SystemTime`.
pub(crate) fn system_time(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actors() {
        assert_eq!(parse_actor("6f1c-aa"), Some(("6f1c-aa".into(), None)));
        assert_eq!(
            parse_actor("u-1.t-2"),
            Some(("u-1".into(), Some("t-2".into())))
        );
        for bad in ["", ".", "u.", ".t", "u.t.x", "a b", "u/1"] {
            assert_eq!(parse_actor(bad), None, "{bad}");
        }
    }
}
