//! `/api/v1/cameras`: the camera fleet, stream keys, signed playback URLs, live status and
//! per-camera analytics. Tenancy is enforced here: admins see every camera; anyone else
//! sees only their company's cameras (others answer 404, so ids do not leak) and cannot
//! create or move cameras into another company; a non-admin without a company sees none
//! and creates none.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{Envelope, Json, PageParams, Path, Query, ok, paged, text};
use super::guard::{Principal, Reach};
use super::users::nullable;
use crate::auth::secret::{self, Kind};
use crate::clock::{date, now_ms, rfc3339};
use crate::error::{ApiError, ErrorCode};
use crate::health::{self, DayAnalytics, LiveStatus};
use crate::state::{AppState, Shared};
use crate::store::{Camera, CameraFilter, CameraUpdate, NewCamera, StoreError, StreamStatus};

/// A camera as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CameraView {
    id: String,
    name: String,
    company: Option<String>,
    model: Option<String>,
    serial_number: String,
    location: Option<String>,
    place: Option<String>,
    /// Ingest URL; includes the stream key (and publish token) only in the responses of
    /// create and rotate-key.
    rtmp_url: String,
    /// TLS ingest URL, same rule.
    rtmps_url: String,
    /// The first characters of the stream key, to tell keys apart.
    stream_key_prefix: String,
    /// The stream key: only in the responses of create and rotate-key.
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_key: Option<String>,
    /// The publish token: only in those responses, and only when tokens are required.
    #[serde(skip_serializing_if = "Option::is_none")]
    publish_token: Option<String>,
    is_active: bool,
    is_recording: bool,
    /// ABR ladder: `off`, or `default` (the node's ladder, renditions listed in
    /// `/hls/{id}/master.m3u8`).
    abr_profile: AbrProfile,
    stream_status: StreamStatus,
    assigned_node: Option<String>,
    owner_id: Option<String>,
    /// Playback path of the HLS (MPEG-TS) playlist, without token.
    hls_path: String,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
}

fn ingest_bases(s: &Shared) -> (String, String) {
    let c = &s.config;
    (
        format!("rtmp://{}:{}/{}", c.public_host, c.rtmp_port, c.rtmp_app),
        format!("rtmps://{}:{}/{}", c.public_host, c.rtmps_port, c.rtmp_app),
    )
}

fn view(s: &Shared, c: &Camera, key: Option<String>) -> Result<CameraView, ApiError> {
    let (mut rtmp, rtmps) = ingest_bases(s);
    // In a cluster the camera's node is the one the placement names, and its publishers are
    // sent to that node's advertised RTMP address (RTMPS keeps this node's: no advertised
    // RTMPS address yet).
    let placed = s.cluster.as_ref().and_then(|cl| cl.placement(&c.id));
    if let Some(base) = placed.as_ref().and_then(|(_, r)| r.first()) {
        rtmp = format!("{base}/{}", s.config.rtmp_app);
    }
    let assigned_node = match &placed {
        Some((node, _)) => Some(node.to_string()),
        None => c.assigned_node.clone(),
    };
    let mut publish_token = None;
    let (rtmp_url, rtmps_url) = match &key {
        Some(k) => {
            let query = if s.config.require_publish_token {
                let now = now_ms() / 1000;
                let ttl =
                    i64::try_from(s.config.publish_token_ttl.as_secs()).unwrap_or(i64::MAX / 2);
                let t = s
                    .keys
                    .issue_publish(&c.id, now, now.saturating_add(ttl))
                    .map_err(ApiError::internal)?;
                let q = format!("?token={t}");
                publish_token = Some(t);
                q
            } else {
                String::new()
            };
            (format!("{rtmp}/{k}{query}"), format!("{rtmps}/{k}{query}"))
        }
        None => (rtmp, rtmps),
    };
    Ok(CameraView {
        id: c.id.clone(),
        name: c.name.clone(),
        company: c.company.clone(),
        model: c.model.clone(),
        serial_number: c.serial_number.clone(),
        location: c.location.clone(),
        place: c.place.clone(),
        rtmp_url,
        rtmps_url,
        stream_key_prefix: c.rtmp_key_prefix.clone(),
        stream_key: key,
        publish_token,
        is_active: c.is_active,
        is_recording: c.is_recording,
        abr_profile: AbrProfile::from_stored(&c.abr_profile),
        stream_status: c.stream_status,
        assigned_node,
        owner_id: c.owner_id.clone(),
        hls_path: s.config.hls_path.replace("{camera_id}", &c.id),
        created_at: rfc3339(c.created_at),
        updated_at: rfc3339(c.updated_at),
    })
}

/// List filters and page.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListCameras {
    /// `online`, `offline`, `connecting` or `error`.
    status: Option<StreamStatus>,
    /// Active or not.
    is_active: Option<bool>,
    /// Company (exact).
    #[param(
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$",
        min_length = 1,
        max_length = 256
    )]
    company: Option<String>,
    /// Location (exact).
    #[param(
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$",
        min_length = 1,
        max_length = 256
    )]
    location: Option<String>,
    /// Case-insensitive text in name, serial number, location or place.
    #[param(
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$",
        min_length = 1,
        max_length = 256
    )]
    search: Option<String>,
    /// 1-based page (default 1).
    #[param(minimum = 1, maximum = 1_000_000)]
    page: Option<i64>,
    /// Page size 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
}

/// A new camera.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct CreateCamera {
    #[schema(
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$",
        min_length = 1,
        max_length = 128
    )]
    name: String,
    #[schema(
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$",
        min_length = 1,
        max_length = 256
    )]
    company: Option<String>,
    #[schema(
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$",
        min_length = 1,
        max_length = 256
    )]
    model: Option<String>,
    #[schema(
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$",
        min_length = 1,
        max_length = 64
    )]
    serial_number: String,
    #[schema(
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$",
        min_length = 1,
        max_length = 256
    )]
    location: Option<String>,
    #[schema(
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$",
        min_length = 1,
        max_length = 256
    )]
    place: Option<String>,
    /// Default true.
    is_active: Option<bool>,
    /// Default false.
    is_recording: Option<bool>,
    /// Default `off`.
    abr_profile: Option<AbrProfile>,
}

/// Changes to a camera; absent fields stay, `null` clears nullable ones.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct UpdateCamera {
    #[schema(
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$",
        min_length = 1,
        max_length = 128
    )]
    name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    #[schema(
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$",
        min_length = 1,
        max_length = 256
    )]
    company: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    #[schema(
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$",
        min_length = 1,
        max_length = 256
    )]
    model: Option<Option<String>>,
    #[schema(
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$",
        min_length = 1,
        max_length = 64
    )]
    serial_number: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    #[schema(
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$",
        min_length = 1,
        max_length = 256
    )]
    location: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    #[schema(
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$",
        min_length = 1,
        max_length = 256
    )]
    place: Option<Option<String>>,
    is_active: Option<bool>,
    is_recording: Option<bool>,
    abr_profile: Option<AbrProfile>,
}

/// A camera's adaptive-bitrate ladder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum AbrProfile {
    /// No transcoding: the camera's own stream only.
    Off,
    /// The node's ladder (`--abr-ladder`, default 720p/480p/240p), never above the camera.
    Default,
}

impl AbrProfile {
    fn as_str(self) -> &'static str {
        match self {
            AbrProfile::Off => "off",
            AbrProfile::Default => "default",
        }
    }

    fn from_stored(s: &str) -> Self {
        if s == "default" {
            AbrProfile::Default
        } else {
            AbrProfile::Off
        }
    }
}

/// Refuses a new ABR camera when every transcode slot is taken: `--abr-max-cameras` per
/// node (times the cluster's nodes), counted over every camera with a profile.
async fn abr_budget(state: &Shared) -> Result<(), ApiError> {
    let per_node = state.config.abr_max_cameras;
    if per_node == 0 {
        return Err(ApiError::new(
            ErrorCode::TranscodeBudgetFull,
            "ABR is off on this node (--abr-ladder off)",
        )
        .with_details(serde_json::json!({ "field": "abrProfile" })));
    }
    let nodes = state.cluster.as_ref().map_or(1, |c| c.members().max(1));
    let budget = per_node * nodes;
    let used = state.store.camera_counts(None).await?.abr;
    if used as usize >= budget {
        return Err(ApiError::new(
            ErrorCode::TranscodeBudgetFull,
            format!(
                "the transcode budget is full: {used} of {budget} cameras have an ABR profile \
                 (--abr-max-cameras {per_node} per node); turn one off first"
            ),
        )
        .with_details(
            serde_json::json!({ "field": "abrProfile", "used": used, "budget": budget }),
        ));
    }
    Ok(())
}

/// Signed playback URLs.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PlaybackUrls {
    camera_id: String,
    /// HLS with MPEG-TS segments.
    hls_url: String,
    /// LL-HLS with fMP4 parts.
    ll_hls_url: String,
    /// The LL-HLS multivariant playlist: the camera and, with an ABR profile, its
    /// renditions (players switch between them by bandwidth).
    master_url: String,
    /// The token alone (`?token=`).
    token: String,
    /// When the URLs stop working (RFC 3339).
    #[schema(format = DateTime)]
    expires_at: String,
}

/// Where and how to play a camera over WebRTC (WHEP).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WebrtcPlayback {
    camera_id: String,
    /// The WHEP endpoint with its signed token (`?token=`): POST an SDP offer
    /// (`application/sdp`) to it; the answer's `Location` is the session to DELETE.
    whep_url: String,
    /// `RTCPeerConnection` `iceServers` (empty: none needed, the server is ICE-lite with a
    /// reachable candidate).
    ice_servers: Vec<IceServer>,
    /// The token alone (also accepted as `Authorization: Bearer`).
    token: String,
    /// When the token stops working for new sessions (RFC 3339); a session started before
    /// keeps playing.
    #[schema(format = DateTime)]
    expires_at: String,
}

/// One entry of `RTCConfiguration.iceServers`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct IceServer {
    urls: Vec<String>,
}

/// Analytics query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct DayQuery {
    /// `YYYY-MM-DD` (UTC); default today.
    #[param(format = Date)]
    pub(crate) date: Option<String>,
}

const NAME_MAX: usize = 128;
const FIELD_MAX: usize = 256;

fn check_opt(field: &str, v: Option<&str>, max: usize) -> Result<(), ApiError> {
    v.map_or(Ok(()), |s| text(field, s, max))
}

fn check_serial(s: &str) -> Result<(), ApiError> {
    text("serialNumber", s, 64)
}

pub(crate) fn not_found() -> ApiError {
    ApiError::new(ErrorCode::CameraNotFound, "camera not found")
}

fn conflict(e: StoreError) -> ApiError {
    match e.conflict_field() {
        Some("serial_number") => ApiError::new(
            ErrorCode::CameraSerialDuplicate,
            "another camera has this serial number",
        )
        .with_details(serde_json::json!({ "field": "serialNumber" })),
        _ => e.into(),
    }
}

/// The camera if it exists and the caller's tenant may see it.
pub(crate) async fn visible(state: &AppState, p: &Principal, id: &str) -> Result<Camera, ApiError> {
    // Ids are UUIDs: anything else cannot exist, so skip the query.
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(not_found());
    }
    let c = state.store.get_camera(id).await?.ok_or_else(not_found)?;
    if p.sees(c.company.as_deref()) {
        Ok(c)
    } else {
        Err(not_found())
    }
}

/// The company a tenant-scoped caller may write: theirs, whatever they asked.
fn tenant_company(p: &Principal, asked: Option<&str>) -> Result<(), ApiError> {
    match p.reach() {
        Reach::Company(t) if asked != Some(t) => Err(ApiError::new(
            ErrorCode::AuthInsufficientPermissions,
            "cameras can only belong to your company",
        )
        .with_details(serde_json::json!({ "field": "company" }))),
        Reach::Nothing => Err(no_company()),
        _ => Ok(()),
    }
}

/// The refusal for a non-admin without a company (they reach no camera).
pub(crate) fn no_company() -> ApiError {
    ApiError::new(
        ErrorCode::AuthInsufficientPermissions,
        "your account belongs to no company; ask an admin to assign one",
    )
}

/// List cameras.
#[utoipa::path(get, path = "/api/v1/cameras", operation_id = "listCameras", tag = "cameras", security(("bearer" = [])),
    params(ListCameras),
    responses(
        (status = 200, description = "A page of cameras", body = super::extract::Paged<CameraView>),
        (status = 400, description = "VALIDATION_FAILED", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<ListCameras>,
) -> Result<Response, ApiError> {
    let page = PageParams::new(q.page, q.limit)?;
    check_opt("company", q.company.as_deref(), FIELD_MAX)?;
    check_opt("location", q.location.as_deref(), FIELD_MAX)?;
    check_opt("search", q.search.as_deref(), FIELD_MAX)?;
    let Some(tenant) = principal.reach().filter() else {
        return Ok(paged(Vec::<CameraView>::new(), page.page, page.limit, 0));
    };
    let filter = CameraFilter {
        status: q.status,
        is_active: q.is_active,
        company: q.company,
        location: q.location,
        search: q.search,
        tenant: tenant.map(str::to_owned),
        offset: page.offset(),
        limit: page.limit,
    };
    let (cameras, total) = state.store.list_cameras(&filter).await?;
    let views = cameras
        .iter()
        .map(|c| view(&state, c, None))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(paged(views, page.page, page.limit, total))
}

/// Create a camera; the response carries its stream key and ingest URLs (shown once).
#[utoipa::path(post, path = "/api/v1/cameras", operation_id = "createCamera", tag = "cameras", security(("bearer" = [])),
    request_body = CreateCamera,
    responses(
        (status = 201, description = "Created", body = Envelope<CameraView>),
        (status = 400, description = "VALIDATION_FAILED", body = crate::error::ErrorEnvelope),
        (status = 409, description = "CAMERA_SERIAL_DUPLICATE, or TRANSCODE_BUDGET_FULL (abrProfile with every transcode slot taken, or ABR off)", body = crate::error::ErrorEnvelope),
        (status = 413, description = "PAYLOAD_TOO_LARGE", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn create(
    State(state): State<AppState>,
    principal: Principal,
    Json(req): Json<CreateCamera>,
) -> Result<Response, ApiError> {
    text("name", &req.name, NAME_MAX)?;
    check_serial(&req.serial_number)?;
    check_opt("company", req.company.as_deref(), FIELD_MAX)?;
    check_opt("model", req.model.as_deref(), FIELD_MAX)?;
    check_opt("location", req.location.as_deref(), FIELD_MAX)?;
    check_opt("place", req.place.as_deref(), FIELD_MAX)?;
    let company = match principal.reach() {
        Reach::Company(t) => {
            tenant_company(&principal, Some(req.company.as_deref().unwrap_or(t)))?;
            Some(t.to_owned())
        }
        Reach::Nothing => return Err(no_company()),
        Reach::All => req.company,
    };
    if req.abr_profile.is_some_and(|p| p != AbrProfile::Off) {
        abr_budget(&state).await?;
    }
    let key = secret::generate(Kind::StreamKey);
    let (rtmp_base, _) = ingest_bases(&state);
    let camera = state
        .store
        .create_camera(NewCamera {
            name: req.name,
            company,
            model: req.model,
            serial_number: req.serial_number,
            location: req.location,
            place: req.place,
            rtmp_url: rtmp_base,
            rtmp_key_prefix: key.prefix,
            rtmp_key_hash: key.hash,
            is_active: req.is_active.unwrap_or(true),
            is_recording: req.is_recording.unwrap_or(false),
            abr_profile: req
                .abr_profile
                .unwrap_or(AbrProfile::Off)
                .as_str()
                .to_owned(),
            owner_id: Some(principal.user_id.clone()),
        })
        .await
        .map_err(conflict)?;
    if camera.is_recording {
        state.camera_control(&camera.id, None, Some(true));
    }
    if let Some(cluster) = &state.cluster {
        // The camera enters the cluster state here: the leader picks its node now, so
        // assignedNode and rtmpUrl in this answer are real. Should that fail (no leader in
        // time, no node with room) the camera stays unplaced until a publisher claims it.
        let transcoded = camera.abr_profile != AbrProfile::Off.as_str();
        if let Err(e) = cluster
            .place(&camera.id, transcoded, std::time::Duration::from_secs(5))
            .await
        {
            tracing::warn!(camera_id = %camera.id, error = %e, "camera not placed");
        }
    }
    tracing::info!(camera_id = %camera.id, "camera created");
    Ok((
        StatusCode::CREATED,
        ok(view(&state, &camera, Some(key.secret))?),
    )
        .into_response())
}

/// One camera.
#[utoipa::path(get, path = "/api/v1/cameras/{id}", operation_id = "getCamera", tag = "cameras", security(("bearer" = [])),
    params(("id" = String, Path, description = "Camera id")),
    responses(
        (status = 200, description = "The camera", body = Envelope<CameraView>),
        (status = 404, description = "CAMERA_NOT_FOUND", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn get(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let c = visible(&state, &principal, &id).await?;
    Ok(ok(view(&state, &c, None)?).into_response())
}

/// Change a camera.
#[utoipa::path(put, path = "/api/v1/cameras/{id}", operation_id = "updateCamera", tag = "cameras", security(("bearer" = [])),
    params(("id" = String, Path, description = "Camera id")),
    request_body = UpdateCamera,
    responses(
        (status = 200, description = "Updated", body = Envelope<CameraView>),
        (status = 404, description = "CAMERA_NOT_FOUND", body = crate::error::ErrorEnvelope),
        (status = 409, description = "CAMERA_SERIAL_DUPLICATE, or TRANSCODE_BUDGET_FULL (abrProfile with every transcode slot taken, or ABR off)", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn update(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Json(req): Json<UpdateCamera>,
) -> Result<Response, ApiError> {
    visible(&state, &principal, &id).await?;
    if let Some(n) = &req.name {
        text("name", n, NAME_MAX)?;
    }
    if let Some(s) = &req.serial_number {
        check_serial(s)?;
    }
    for (field, v) in [
        ("company", &req.company),
        ("model", &req.model),
        ("location", &req.location),
        ("place", &req.place),
    ] {
        check_opt(field, v.as_ref().and_then(|x| x.as_deref()), FIELD_MAX)?;
    }
    if let Some(c) = &req.company {
        tenant_company(&principal, c.as_deref())?;
    }
    if req.abr_profile.is_some_and(|p| p != AbrProfile::Off) {
        let current = state.store.get_camera(&id).await?;
        if current.is_some_and(|c| c.abr_profile == "off") {
            abr_budget(&state).await?;
        }
    }
    let c = state
        .store
        .update_camera(
            &id,
            CameraUpdate {
                name: req.name,
                company: req.company,
                model: req.model,
                serial_number: req.serial_number,
                location: req.location,
                place: req.place,
                is_active: req.is_active,
                is_recording: req.is_recording,
                abr_profile: req.abr_profile.map(|p| p.as_str().to_owned()),
            },
        )
        .await
        .map_err(conflict)?
        .ok_or_else(not_found)?;
    let disconnect = (!c.is_active).then_some("camera disabled");
    if disconnect.is_some() || req.is_recording.is_some() {
        state.camera_control(&c.id, disconnect, req.is_recording);
    }
    Ok(ok(view(&state, &c, None)?).into_response())
}

async fn set_recording(
    state: &AppState,
    p: &Principal,
    id: &str,
    on: bool,
) -> Result<Response, ApiError> {
    visible(state, p, id).await?;
    let c = state
        .store
        .update_camera(
            id,
            CameraUpdate {
                is_recording: Some(on),
                ..CameraUpdate::default()
            },
        )
        .await?
        .ok_or_else(not_found)?;
    state.camera_control(&c.id, None, Some(on));
    tracing::info!(camera_id = %c.id, recording = on, "camera recording switched");
    Ok(ok(view(state, &c, None)?).into_response())
}

/// Start recording a camera (`isRecording` on; the file starts at its next keyframe).
#[utoipa::path(post, path = "/api/v1/cameras/{id}/recording/start", operation_id = "startCameraRecording", tag = "cameras", security(("bearer" = [])),
    params(("id" = String, Path, description = "Camera id")),
    responses(
        (status = 200, description = "The camera", body = Envelope<CameraView>),
        (status = 404, description = "CAMERA_NOT_FOUND", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn recording_start(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    set_recording(&state, &principal, &id, true).await
}

/// Stop recording a camera (`isRecording` off; its file is closed).
#[utoipa::path(post, path = "/api/v1/cameras/{id}/recording/stop", operation_id = "stopCameraRecording", tag = "cameras", security(("bearer" = [])),
    params(("id" = String, Path, description = "Camera id")),
    responses(
        (status = 200, description = "The camera", body = Envelope<CameraView>),
        (status = 404, description = "CAMERA_NOT_FOUND", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn recording_stop(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    set_recording(&state, &principal, &id, false).await
}

/// Delete a camera.
#[utoipa::path(delete, path = "/api/v1/cameras/{id}", operation_id = "deleteCamera", tag = "cameras", security(("bearer" = [])),
    params(("id" = String, Path, description = "Camera id")),
    responses(
        (status = 200, description = "Deleted", body = Envelope<serde_json::Value>),
        (status = 404, description = "CAMERA_NOT_FOUND", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    visible(&state, &principal, &id).await?;
    if !state.store.delete_camera(&id).await? {
        return Err(not_found());
    }
    // Its recordings stay (retention removes them); the recorder stops.
    tracing::info!(camera_id = %id, "camera deleted");
    state.camera_control(&id, Some("camera deleted"), Some(false));
    Ok(ok(serde_json::json!({ "deleted": true })).into_response())
}

/// Replace the stream key (the old one stops working for new publishes).
#[utoipa::path(post, path = "/api/v1/cameras/{id}/rotate-key", operation_id = "rotateCameraKey", tag = "cameras", security(("bearer" = [])),
    params(("id" = String, Path, description = "Camera id")),
    responses(
        (status = 200, description = "New key and URLs", body = Envelope<CameraView>),
        (status = 404, description = "CAMERA_NOT_FOUND", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn rotate_key(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    visible(&state, &principal, &id).await?;
    let key = secret::generate(Kind::StreamKey);
    let c = state
        .store
        .set_camera_key(&id, &key.prefix, &key.hash)
        .await?
        .ok_or_else(not_found)?;
    tracing::info!(camera_id = %id, "stream key rotated");
    state.camera_control(&id, Some("stream key rotated"), None);
    Ok(ok(view(&state, &c, Some(key.secret))?).into_response())
}

/// The camera (visible to the caller and active), a playback token for it and the token's
/// expiry (Unix seconds): what every signed playback answer (HLS, WHEP) starts from.
async fn signed_playback(
    state: &AppState,
    principal: &Principal,
    id: &str,
) -> Result<(Camera, String, i64), ApiError> {
    let c = visible(state, principal, id).await?;
    if !c.is_active {
        return Err(ApiError::new(
            ErrorCode::CameraInactive,
            "camera is disabled",
        ));
    }
    let ttl = i64::try_from(state.config.playback_token_ttl.as_secs()).unwrap_or(0);
    let exp = now_ms() / 1000 + ttl;
    let token = state.keys.sign_playback(&c.id, exp);
    Ok((c, token, exp))
}

/// The multivariant playlist beside the LL-HLS media playlist (`.../playlist.m3u8` →
/// `.../master.m3u8`, the data plane's route).
fn master_path(ll_hls_path: &str) -> String {
    match ll_hls_path.strip_suffix("playlist.m3u8") {
        Some(dir) => format!("{dir}master.m3u8"),
        None => "/hls/{camera_id}/master.m3u8".to_owned(),
    }
}

/// Signed, expiring playback URLs.
#[utoipa::path(get, path = "/api/v1/cameras/{id}/stream/hls", operation_id = "getCameraPlayback", tag = "streams", security(("bearer" = [])),
    params(("id" = String, Path, description = "Camera id")),
    responses(
        (status = 200, description = "Signed URLs", body = Envelope<PlaybackUrls>),
        (status = 404, description = "CAMERA_NOT_FOUND", body = crate::error::ErrorEnvelope),
        (status = 409, description = "CAMERA_INACTIVE", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn stream_hls(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (c, token, exp) = signed_playback(&state, &principal, &id).await?;
    let cfg = &state.config;
    let base = cfg.public_base_url.trim_end_matches('/');
    let url = |path: &str| format!("{base}{}?token={token}", path.replace("{camera_id}", &c.id));
    Ok(ok(PlaybackUrls {
        camera_id: c.id.clone(),
        hls_url: url(&cfg.hls_path),
        ll_hls_url: url(&cfg.ll_hls_path),
        master_url: url(&master_path(&cfg.ll_hls_path)),
        token: token.clone(),
        expires_at: rfc3339(exp * 1000),
    })
    .into_response())
}

/// Signed WebRTC (WHEP) playback: H.264 video, AAC audio as Opus, sub-second latency
/// (docs/webrtc.md).
#[utoipa::path(get, path = "/api/v1/cameras/{id}/stream/webrtc", operation_id = "getCameraWebrtc", tag = "streams", security(("bearer" = [])),
    params(("id" = String, Path, description = "Camera id")),
    responses(
        (status = 200, description = "Signed WHEP URL and ICE servers", body = Envelope<WebrtcPlayback>),
        (status = 404, description = "CAMERA_NOT_FOUND, or NOT_FOUND when WebRTC is off on this node", body = crate::error::ErrorEnvelope),
        (status = 409, description = "CAMERA_INACTIVE", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn stream_webrtc(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (c, token, exp) = signed_playback(&state, &principal, &id).await?;
    let cfg = &state.config;
    if cfg.whep_path.is_empty() {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            "WebRTC playback is off on this node (--webrtc-addr off)",
        ));
    }
    let base = cfg.public_base_url.trim_end_matches('/');
    let path = cfg.whep_path.replace("{camera_id}", &c.id);
    let ice_servers = if cfg.webrtc_ice_servers.is_empty() {
        Vec::new()
    } else {
        vec![IceServer {
            urls: cfg.webrtc_ice_servers.clone(),
        }]
    };
    Ok(ok(WebrtcPlayback {
        camera_id: c.id.clone(),
        whep_url: format!("{base}{path}?token={token}"),
        ice_servers,
        token,
        expires_at: rfc3339(exp * 1000),
    })
    .into_response())
}

/// Live stream status.
#[utoipa::path(get, path = "/api/v1/cameras/{id}/status", operation_id = "getCameraStatus", tag = "streams", security(("bearer" = [])),
    params(("id" = String, Path, description = "Camera id")),
    responses(
        (status = 200, description = "Live status", body = Envelope<LiveStatus>),
        (status = 404, description = "CAMERA_NOT_FOUND", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn status(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let c = visible(&state, &principal, &id).await?;
    let live = health::live_status(&*state.cache, &c.id, c.stream_status).await?;
    Ok(ok(live).into_response())
}

/// How much health history to return.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct HealthQuery {
    /// Minutes back from now, 1–60 (default 60).
    #[param(minimum = 1, maximum = 60)]
    minutes: Option<i64>,
}

/// One health sample.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HealthSample {
    #[schema(format = DateTime)]
    at: String,
    /// Video frames per second.
    fps: f32,
    /// Ingest bitrate, bits per second.
    bitrate: u64,
    /// Frames dropped since the publish began (a smaller value: a new publish).
    dropped_frames: u64,
    viewers: u32,
}

/// A camera's recent health.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HealthSeries {
    camera_id: String,
    /// Seconds between samples; a longer gap means the camera did not report.
    step_seconds: u64,
    /// Oldest first.
    samples: Vec<HealthSample>,
}

/// A camera's health over the last hour: fps, bitrate, dropped frames and viewers, one
/// sample every 10 s while it reports.
#[utoipa::path(get, path = "/api/v1/cameras/{id}/health", operation_id = "getCameraHealth", tag = "streams", security(("bearer" = [])),
    params(("id" = String, Path, description = "Camera id"), HealthQuery),
    responses(
        (status = 200, description = "Samples", body = Envelope<HealthSeries>),
        (status = 400, description = "VALIDATION_FAILED", body = crate::error::ErrorEnvelope),
        (status = 404, description = "CAMERA_NOT_FOUND", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn health_series(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Query(q): Query<HealthQuery>,
) -> Result<Response, ApiError> {
    let minutes = q.minutes.unwrap_or(60);
    if !(1..=60).contains(&minutes) {
        return Err(ApiError::validation("minutes", "must be between 1 and 60"));
    }
    let c = visible(&state, &principal, &id).await?;
    let samples = health::series(&*state.cache, &c.id, u32::try_from(minutes).unwrap_or(60))
        .await?
        .into_iter()
        .map(|(at, fps, bitrate, dropped_frames, viewers)| HealthSample {
            at: rfc3339(at * 1000),
            fps,
            bitrate,
            dropped_frames,
            viewers,
        })
        .collect();
    Ok(ok(HealthSeries {
        camera_id: c.id,
        step_seconds: health::SERIES_STEP_S,
        samples,
    })
    .into_response())
}

/// One day's counters for a camera.
#[utoipa::path(get, path = "/api/v1/cameras/{id}/analytics", operation_id = "getCameraAnalytics", tag = "analytics", security(("bearer" = [])),
    params(("id" = String, Path, description = "Camera id"), DayQuery),
    responses(
        (status = 200, description = "Counters", body = Envelope<DayAnalytics>),
        (status = 404, description = "CAMERA_NOT_FOUND", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn analytics(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Query(q): Query<DayQuery>,
) -> Result<Response, ApiError> {
    let c = visible(&state, &principal, &id).await?;
    let day = parse_day(q.date)?;
    let a = health::day_analytics(&*state.cache, &c.id, &day).await?;
    Ok(ok(a).into_response())
}

/// Validates `YYYY-MM-DD`, defaulting to today (UTC).
pub(crate) fn parse_day(d: Option<String>) -> Result<String, ApiError> {
    match d {
        None => Ok(date(now_ms())),
        Some(d) => {
            let format = time::macros::format_description!("[year]-[month]-[day]");
            // `[year]` also takes a sign (`+2020-01-01`), which `format: date` does not, and
            // the day keys the counters: exactly ten characters, digits first.
            let plain = d.len() == 10 && d.starts_with(|c: char| c.is_ascii_digit());
            match time::Date::parse(&d, &format) {
                Ok(_) if plain => Ok(d),
                _ => Err(ApiError::validation("date", "expected YYYY-MM-DD")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `format: date` in the schema: exactly `YYYY-MM-DD`, a real day.
    #[test]
    fn days() {
        for ok in ["2020-01-01", "0001-12-31", "2024-02-29"] {
            assert_eq!(parse_day(Some(ok.into())).unwrap(), ok);
        }
        for bad in [
            "+2020-01-01",
            "02020-01-01",
            "2020-1-1",
            "2023-02-29",
            "",
            "2020-01-01T",
        ] {
            assert!(parse_day(Some(bad.into())).is_err(), "{bad}");
        }
    }
}
