//! The signed recording routes: downloads (`/api/v1/recordings/{id}/download`), HLS VOD
//! playlists (`/vod/{camera}/playlist.m3u8`) and their media (`/vod/{camera}/{id}.mp4`).
//! None takes a bearer credential: the URL carries `token={exp}.{hmac}` over what it grants
//! (one file for one user, one camera's range for one user, the bytes of one file of that
//! camera that the range uses), checked here with no I/O before anything is read. Every
//! field of the URL is under the signature (ids, range, bytes, user, expiry): editing any of
//! them yields 403 `URL_SIGNATURE_INVALID`. A media URL grants only the fragments of the
//! playlist's range and the init segment it maps (`bytes=` and `init=`, first-last byte):
//! a `Range` outside them, or none, is answered 416, so a playlist of five minutes does not
//! hand out the rest of an hour-long file. (An archived file redirects to a presigned URL of
//! the whole object: S3 cannot sign a byte window that a player's several requests share.)
//!
//! Files on a local tier are served from disk with `Range` support (206 + `Content-Range`,
//! 416 for ranges the file cannot satisfy); archived files redirect (307) to a presigned
//! object-store URL that expires with the token. Playlist fetches are audited.

use std::path::Path as FsPath;

use axum::body::Body;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use utoipa::IntoParams;

use super::extract::{Path, Query};
use super::guard::ClientAddr;
use super::recordings::{MAX_FILES, entries, not_found, parse_actor, system_time};
use crate::auth::keys::TokenError;
use crate::clock::{now_ms, rfc3339};
use crate::error::{ApiError, ErrorCode};
use crate::recordings::playlist::{self, VodFile};
use crate::recordings::range::{self, ByteRange};
use crate::state::AppState;
use crate::store::recordings::{NewAudit, Recording, Tier};
use futures_util::{StreamExt, TryStreamExt};

/// Target duration of VOD segments (consecutive fragments are merged up to it).
const VOD_SEGMENT: std::time::Duration = std::time::Duration::from_secs(4);
/// Shortest lifetime given to a presigned archive URL.
const MIN_PRESIGN_S: i64 = 60;
/// Read buffer when streaming a file.
const STREAM_BUF: usize = 256 << 10;

/// What a download URL grants.
pub(crate) fn download_scope(recording: &str, by: &str) -> String {
    format!("dl\n{recording}\n{by}")
}

/// What a playlist URL grants.
pub(crate) fn playlist_scope(camera: &str, from: i64, to: i64, by: &str) -> String {
    format!("vod\n{camera}\n{from}\n{to}\n{by}")
}

/// What an export URL grants: one camera's recordings over `[from, to)` as one file.
pub(crate) fn export_scope(camera: &str, from: i64, to: i64, by: &str) -> String {
    format!("export\n{camera}\n{from}\n{to}\n{by}")
}

/// What a playlist's media URL grants: bytes of one recording of one camera (the path names
/// both; a media URL moved to another camera's path no longer verifies). `bytes` and `init`
/// are the URL's `first-last` spans as written (`init` empty when there is none).
fn media_scope(camera: &str, recording: &str, bytes: &str, init: &str) -> String {
    format!("seg\n{camera}\n{recording}\n{bytes}\n{init}")
}

/// A `first-last` byte span of a media URL; `None` unless it is two numbers, first <= last.
fn span(s: &str) -> Option<(u64, u64)> {
    let (a, b) = s.split_once('-')?;
    let digits = |x: &str| !x.is_empty() && x.len() <= 20 && x.bytes().all(|c| c.is_ascii_digit());
    if !digits(a) || !digits(b) {
        return None;
    }
    let (a, b) = (a.parse().ok()?, b.parse().ok()?);
    (a <= b).then_some((a, b))
}

/// Whether the parts of a scope that come from the URL are well-formed. Scopes join their
/// parts with newlines; a camera id or actor holding one could shift the fields, so they are
/// checked before any signature is.
fn well_formed(camera: &str, by: Option<&str>) -> bool {
    camstream_protocol::auth::is_valid_camera_id(camera)
        && by.is_none_or(|b| parse_actor(b).is_some())
}

fn signature_invalid() -> ApiError {
    ApiError::new(
        ErrorCode::UrlSignatureInvalid,
        "missing or invalid URL signature",
    )
}

/// Checks a token for `scope`; its expiry (Unix seconds).
fn check(state: &AppState, token: Option<&str>, scope: &str) -> Result<i64, ApiError> {
    let invalid = signature_invalid;
    let token = token.ok_or_else(invalid)?;
    match state.keys.verify_url(token, scope, now_ms() / 1000) {
        Ok(()) => token
            .split_once('.')
            .and_then(|(e, _)| e.parse().ok())
            .ok_or_else(invalid),
        Err(TokenError::Expired) => {
            Err(ApiError::new(ErrorCode::UrlExpired, "the URL has expired"))
        }
        Err(TokenError::Invalid(_)) => Err(invalid()),
    }
}

/// Download parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct DownloadQuery {
    /// Who the URL was issued to.
    by: Option<String>,
    /// `{exp}.{signature}`.
    token: Option<String>,
}

/// Download a recording file through a signed URL (Range supported; archived files
/// redirect to the object store).
#[utoipa::path(get, path = "/api/v1/recordings/{id}/download", operation_id = "downloadRecording", tag = "recordings",
    params(("id" = String, Path, description = "Recording id"), DownloadQuery),
    responses(
        (status = 200, description = "The file", content_type = "video/mp4"),
        (status = 206, description = "A byte range of the file", content_type = "video/mp4"),
        (status = 307, description = "Archived: presigned object-store URL in Location"),
        (status = 403, description = "URL_SIGNATURE_INVALID or URL_EXPIRED", body = crate::error::ErrorEnvelope),
        (status = 404, description = "RECORDING_NOT_FOUND", body = crate::error::ErrorEnvelope),
        (status = 416, description = "RANGE_NOT_SATISFIABLE", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn download(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<DownloadQuery>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let by = q.by.as_deref().unwrap_or("");
    if !well_formed(&id, Some(by)) {
        return Err(signature_invalid());
    }
    let exp = check(&state, q.token.as_deref(), &download_scope(&id, by))?;
    let r = state
        .store
        .get_recording(&id)
        .await?
        .ok_or_else(not_found)?;
    let name = r.filename.clone();
    serve(&state, &r, exp, &uri, &headers, Some(&name), None).await
}

/// Playlist parameters (all part of the signature).
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct PlaylistQuery {
    /// Start, Unix ms.
    from: Option<i64>,
    /// End, Unix ms.
    to: Option<i64>,
    /// Who the URL was issued to.
    by: Option<String>,
    /// `{exp}.{signature}`.
    token: Option<String>,
}

/// An HLS VOD playlist of a camera's recordings over a time range (signed URL from
/// `/api/v1/recordings/playback/{id}`; audited).
#[utoipa::path(get, path = "/vod/{id}/playlist.m3u8", operation_id = "getVodPlaylist", tag = "recordings",
    params(("id" = String, Path, description = "Camera id"), PlaylistQuery),
    responses(
        (status = 200, description = "The playlist", content_type = "application/vnd.apple.mpegurl"),
        (status = 403, description = "URL_SIGNATURE_INVALID or URL_EXPIRED", body = crate::error::ErrorEnvelope),
        (status = 404, description = "RECORDING_NOT_FOUND: nothing recorded in the range", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn playlist(
    State(state): State<AppState>,
    ip: ClientAddr,
    Path(camera): Path<String>,
    Query(q): Query<PlaylistQuery>,
) -> Result<Response, ApiError> {
    let (from, to, by) = (
        q.from.unwrap_or(0),
        q.to.unwrap_or(0),
        q.by.unwrap_or_default(),
    );
    if !well_formed(&camera, Some(&by)) {
        return Err(signature_invalid());
    }
    let exp = check(
        &state,
        q.token.as_deref(),
        &playlist_scope(&camera, from, to, &by),
    )?;
    let recs = state
        .store
        .recordings_between(&camera, from, to, MAX_FILES)
        .await?;
    let mut loaded: Vec<(Recording, Vec<crate::recordings::IndexEntry>)> = Vec::new();
    for r in recs {
        let e = entries(&state, &r).await?;
        loaded.push((r, e));
    }
    let files: Vec<VodFile<'_>> = loaded
        .iter()
        .map(|(r, e)| VodFile {
            id: &r.id,
            init_size: u64::try_from(r.init_size).unwrap_or(0),
            entries: e,
        })
        .collect();
    let keys = state.keys.clone();
    let camera_for_uri = camera.clone();
    let uri = move |id: &str, g: playlist::Grant| {
        let bytes = format!("{}-{}", g.media.0, g.media.1);
        let init = g.init.map_or(String::new(), |(a, b)| format!("{a}-{b}"));
        let token = keys.sign_url(&media_scope(&camera_for_uri, id, &bytes, &init), exp);
        if init.is_empty() {
            format!("{id}.mp4?bytes={bytes}&token={token}")
        } else {
            format!("{id}.mp4?bytes={bytes}&init={init}&token={token}")
        }
    };
    let vod = playlist::build(
        &files,
        system_time(from),
        system_time(to),
        VOD_SEGMENT,
        &uri,
    )
    .ok_or_else(|| {
        ApiError::new(
            ErrorCode::RecordingNotFound,
            "nothing recorded in this range",
        )
    })?;
    let (user_id, token_id) = parse_actor(&by).unzip();
    state
        .store
        .add_audit(NewAudit {
            action: "recording.playlist".into(),
            user_id,
            token_id: token_id.flatten(),
            camera_id: Some(camera.clone()),
            ip: ip.0.map(|a| a.to_string()),
            detail: Some(format!(
                "{} to {}, {} files, {} segments",
                rfc3339(from),
                rfc3339(to),
                vod.files,
                vod.segments
            )),
            ..NewAudit::default()
        })
        .await?;
    let mut resp = (StatusCode::OK, vod.text).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.apple.mpegurl"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    Ok(resp)
}

/// One piece of an export: `len` bytes of a file from `start`.
struct Piece {
    path: std::path::PathBuf,
    start: u64,
    len: u64,
}

/// A camera's recordings over a time range as one fragmented MP4 (signed URL from
/// `/api/v1/recordings/export/{id}`; audited): the first file's init segment, then every
/// fragment of the range, file after file. The export stops before a file whose init
/// segment differs (the camera's codec or resolution changed) or which is archived; the
/// `X-Camstream-Export-End` header then says where it ended.
#[utoipa::path(get, path = "/vod/{id}/export.mp4", operation_id = "getVodExport", tag = "recordings",
    params(("id" = String, Path, description = "Camera id"), PlaylistQuery),
    responses(
        (status = 200, description = "The range as one MP4 file", content_type = "video/mp4"),
        (status = 403, description = "URL_SIGNATURE_INVALID or URL_EXPIRED", body = crate::error::ErrorEnvelope),
        (status = 404, description = "RECORDING_NOT_FOUND: nothing recorded in the range, or a file missing", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn export(
    State(state): State<AppState>,
    ip: ClientAddr,
    Path(camera): Path<String>,
    Query(q): Query<PlaylistQuery>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (from, to, by) = (
        q.from.unwrap_or(0),
        q.to.unwrap_or(0),
        q.by.unwrap_or_default(),
    );
    if !well_formed(&camera, Some(&by)) {
        return Err(signature_invalid());
    }
    check(
        &state,
        q.token.as_deref(),
        &export_scope(&camera, from, to, &by),
    )?;
    let recs = state
        .store
        .recordings_between(&camera, from, to, MAX_FILES)
        .await?;
    // Files on another node's disk: that node answers the whole export.
    if let Some(cluster) = &state.cluster
        && !headers.contains_key(FORWARDED_BY)
    {
        for r in recs.iter().filter(|r| r.storage_tier != Tier::Archived) {
            if let Some(node) = &r.node_id
                && !tokio::fs::try_exists(&r.file_path).await.unwrap_or(false)
                && let Some(base) = cluster.api_url_of(node)
            {
                return forward(&base, node, &uri, &headers, cluster.node_id()).await;
            }
        }
    }
    // An archived file is not read back here: the export ends before it.
    let archived = recs.iter().position(|r| r.storage_tier == Tier::Archived);
    let local = &recs[..archived.unwrap_or(recs.len())];
    let mut loaded = Vec::with_capacity(local.len());
    for r in local {
        loaded.push(entries(&state, r).await?);
    }
    let files: Vec<VodFile<'_>> = local
        .iter()
        .zip(&loaded)
        .map(|(r, e)| VodFile {
            id: &r.id,
            init_size: u64::try_from(r.init_size).unwrap_or(0),
            entries: e,
        })
        .collect();
    let plan =
        playlist::export_plan(&files, system_time(from), system_time(to)).ok_or_else(|| {
            ApiError::new(
                ErrorCode::RecordingNotFound,
                "nothing recorded in this range",
            )
        })?;
    let path = |i: usize| std::path::PathBuf::from(&local[i].file_path);
    let mut pieces = vec![Piece {
        path: path(plan.init.0),
        start: plan.init.1,
        len: plan.init.2,
    }];
    pieces.extend(plan.spans.iter().map(|&(i, start, len)| Piece {
        path: path(i),
        start,
        len,
    }));
    for p in &pieces {
        if !tokio::fs::try_exists(&p.path).await.unwrap_or(false) {
            return Err(ApiError::new(
                ErrorCode::RecordingNotFound,
                "recording file missing",
            ));
        }
    }
    let end = crate::clock::to_ms(plan.end).min(to);
    let stopped = plan.stopped || (archived.is_some() && end < to);
    let (user_id, token_id) = parse_actor(&by).unzip();
    state
        .store
        .add_audit(NewAudit {
            action: "recording.export".into(),
            user_id,
            token_id: token_id.flatten(),
            camera_id: Some(camera.clone()),
            ip: ip.0.map(|a| a.to_string()),
            detail: Some(format!("{} to {}", rfc3339(from), rfc3339(end))),
            ..NewAudit::default()
        })
        .await?;
    let total: u64 = pieces.iter().map(|p| p.len).sum();
    let body = Body::from_stream(
        futures_util::stream::iter(pieces)
            .then(|p| async move {
                let mut f = tokio::fs::File::open(&p.path).await?;
                f.seek(std::io::SeekFrom::Start(p.start)).await?;
                Ok::<_, std::io::Error>(tokio_util::io::ReaderStream::with_capacity(
                    f.take(p.len),
                    STREAM_BUF,
                ))
            })
            .try_flatten(),
    );
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("video/mp4"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(total));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    let name = format!(
        "attachment; filename=\"{camera}-{}.mp4\"",
        rfc3339(from).replace(':', "")
    );
    if let Ok(v) = HeaderValue::from_str(&name) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if stopped && let Ok(v) = HeaderValue::from_str(&rfc3339(end)) {
        h.insert("x-camstream-export-end", v);
    }
    Ok(resp)
}

/// Media parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct MediaQuery {
    /// First and last byte of the fragments the playlist uses (signed).
    #[param(pattern = r"^[0-9]{1,20}-[0-9]{1,20}$")]
    bytes: Option<String>,
    /// First and last byte of the init segment the playlist maps from this file (signed).
    #[param(pattern = r"^[0-9]{1,20}-[0-9]{1,20}$")]
    init: Option<String>,
    /// `{exp}.{signature}` from the playlist.
    token: Option<String>,
}

/// A recording file's bytes for a VOD playlist (`{recording id}.mp4`): a `Range` within
/// the bytes the URL grants (`bytes`, `init`).
#[utoipa::path(get, path = "/vod/{id}/{file}", operation_id = "getVodMedia", tag = "recordings",
    params(("id" = String, Path, description = "Camera id"), ("file" = String, Path, description = "`{recording id}.mp4`"), MediaQuery),
    responses(
        (status = 200, description = "The file", content_type = "video/mp4"),
        (status = 206, description = "A byte range", content_type = "video/mp4"),
        (status = 307, description = "Archived: presigned object-store URL in Location"),
        (status = 403, description = "URL_SIGNATURE_INVALID or URL_EXPIRED", body = crate::error::ErrorEnvelope),
        (status = 404, description = "RECORDING_NOT_FOUND", body = crate::error::ErrorEnvelope),
        (status = 416, description = "RANGE_NOT_SATISFIABLE: no Range, or one outside the bytes the URL grants or the file has", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn media(
    State(state): State<AppState>,
    Path((camera, file)): Path<(String, String)>,
    Query(q): Query<MediaQuery>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = file.strip_suffix(".mp4").unwrap_or("");
    if !well_formed(&camera, None) || !well_formed(id, None) {
        return Err(signature_invalid());
    }
    let bytes = q.bytes.as_deref().unwrap_or_default();
    let init = q.init.as_deref().unwrap_or_default();
    let init_span = match init {
        "" => Ok(None),
        s => span(s).map(Some).ok_or(()),
    };
    let (Some(media), Ok(init_span)) = (span(bytes), init_span) else {
        return Err(signature_invalid());
    };
    let exp = check(
        &state,
        q.token.as_deref(),
        &media_scope(&camera, id, bytes, init),
    )?;
    let granted: Vec<(u64, u64)> = std::iter::once(media).chain(init_span).collect();
    let r = state
        .store
        .get_recording(id)
        .await?
        .filter(|r| r.camera_id == camera)
        .ok_or_else(not_found)?;
    let mut resp = serve(&state, &r, exp, &uri, &headers, None, Some(&granted)).await?;
    resp.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    Ok(resp)
}

/// Sends a recording's bytes (local tier), a redirect (archive), or, in a cluster, the
/// answer of the node that wrote the file when it is on that node's disk and not on ours.
async fn serve(
    state: &AppState,
    r: &Recording,
    exp: i64,
    uri: &Uri,
    headers: &HeaderMap,
    attachment: Option<&str>,
    granted: Option<&[(u64, u64)]>,
) -> Result<Response, ApiError> {
    if r.storage_tier == Tier::Archived {
        let archive = state.recordings.tiers().archive().ok_or_else(|| {
            ApiError::internal("an archived recording but no archive is configured")
        })?;
        let left = (exp - now_ms() / 1000).max(MIN_PRESIGN_S);
        let url = archive
            .presign(
                &r.file_path,
                std::time::Duration::from_secs(left.unsigned_abs()),
            )
            .await
            .map_err(ApiError::internal)?;
        let location = HeaderValue::from_str(&url).map_err(ApiError::internal)?;
        let mut resp = StatusCode::TEMPORARY_REDIRECT.into_response();
        resp.headers_mut().insert(header::LOCATION, location);
        return Ok(resp);
    }
    if let Some(cluster) = &state.cluster
        && let Some(node) = &r.node_id
        && !headers.contains_key(FORWARDED_BY)
        && !tokio::fs::try_exists(&r.file_path).await.unwrap_or(false)
    {
        // Another node's local tier (a shared warm/cold mount has the file here too).
        let Some(base) = cluster.api_url_of(node) else {
            return Err(ApiError::new(
                ErrorCode::RecordingNotFound,
                "recording file missing",
            ));
        };
        return forward(&base, node, uri, headers, cluster.node_id()).await;
    }
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    file_response(FsPath::new(&r.file_path), range, attachment, granted).await
}

/// Marks a request one node forwards to another (the value: the forwarding node); a
/// forwarded request is answered from local files only, so two nodes never bounce it.
const FORWARDED_BY: &str = "x-camstream-forwarded-by";

/// Answer headers passed back from the node that holds the file.
const PASSED_BACK: [header::HeaderName; 7] = [
    header::CONTENT_TYPE,
    header::CONTENT_LENGTH,
    header::CONTENT_RANGE,
    header::ACCEPT_RANGES,
    header::CONTENT_DISPOSITION,
    header::CACHE_CONTROL,
    header::LOCATION,
];

/// Asks the member at `base` (node `node`) for the same signed URL (the URL's signature is
/// the authorization: every node has the same keys) with the client's `Range`, and streams
/// its answer back.
async fn forward(
    base: &str,
    node: &str,
    uri: &Uri,
    headers: &HeaderMap,
    me: u64,
) -> Result<Response, ApiError> {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    let client = CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(2))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default()
    });
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let mut req = client.get(&url).header(FORWARDED_BY, me.to_string());
    if let Some(range) = headers.get(header::RANGE) {
        req = req.header(header::RANGE, range.clone());
    }
    let answer = req.send().await.map_err(|e| {
        tracing::warn!(node, error = %e, "the node holding a recording cannot be reached");
        ApiError::new(
            ErrorCode::ServiceUnavailable,
            format!("node {node}, which holds this recording, cannot be reached"),
        )
    })?;
    let status = answer.status();
    let mut passed = HeaderMap::new();
    for name in PASSED_BACK {
        if let Some(v) = answer.headers().get(&name) {
            passed.insert(name, v.clone());
        }
    }
    // The body as the member sends it; an error ends the stream (the client sees a cut).
    let body = Body::from_stream(futures_util::stream::unfold(Some(answer), |a| async move {
        let mut a = a?;
        match a.chunk().await {
            Ok(Some(chunk)) => Some((Ok::<_, reqwest::Error>(chunk), Some(a))),
            Ok(None) => None,
            Err(e) => Some((Err(e), None)),
        }
    }));
    let mut resp = (status, body).into_response();
    resp.headers_mut().extend(passed);
    Ok(resp)
}

/// A file (or one byte range of it) as a streamed response; with `granted` (first-last byte
/// spans), only a `Range` inside one of them is served.
async fn file_response(
    path: &FsPath,
    range: Option<&str>,
    attachment: Option<&str>,
    granted: Option<&[(u64, u64)]>,
) -> Result<Response, ApiError> {
    let mut f = match tokio::fs::File::open(path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApiError::new(
                ErrorCode::RecordingNotFound,
                "recording file missing",
            ));
        }
        Err(e) => return Err(ApiError::internal(e)),
    };
    let len = f.metadata().await.map_err(ApiError::internal)?.len();
    let r = range::parse(range, len);
    let Some((start, end)) = r.span(len) else {
        return Err(ApiError::new(
            ErrorCode::RangeNotSatisfiable,
            format!("the file has {len} bytes"),
        )
        .with_details(serde_json::json!({ "size": len }))
        .with_header(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&format!("bytes */{len}")).map_err(ApiError::internal)?,
        ));
    };
    if let Some(granted) = granted {
        let inside = matches!(r, ByteRange::Partial { .. })
            && granted.iter().any(|&(a, b)| a <= start && end <= b + 1);
        if !inside {
            let spans: Vec<String> = granted.iter().map(|(a, b)| format!("{a}-{b}")).collect();
            return Err(ApiError::new(
                ErrorCode::RangeNotSatisfiable,
                format!(
                    "this URL grants bytes {} of the file: ask for a Range within them",
                    spans.join(" and ")
                ),
            )
            .with_details(serde_json::json!({ "size": len, "granted": spans })));
        }
    }
    if start > 0 {
        f.seek(std::io::SeekFrom::Start(start))
            .await
            .map_err(ApiError::internal)?;
    }
    let n = end - start;
    let body = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(
        f.take(n),
        STREAM_BUF,
    ));
    let status = match r {
        ByteRange::Partial { .. } => StatusCode::PARTIAL_CONTENT,
        _ => StatusCode::OK,
    };
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("video/mp4"));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=300"),
    );
    if let ByteRange::Partial { start, end } = r {
        let v = format!("bytes {start}-{end}/{len}");
        h.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&v).map_err(ApiError::internal)?,
        );
    }
    if let Some(name) = attachment
        && let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
    {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}
