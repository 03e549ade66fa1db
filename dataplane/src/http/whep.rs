//! The `/whep/...` routes: WebRTC-HTTP Egress Protocol signalling (RFC 9725 as used by
//! WHEP players; docs/webrtc.md).
//!
//! `POST /whep/{camera}` with an SDP offer answers `201 Created`, the session resource in
//! `Location` and the SDP answer with every candidate (ICE-lite, one host candidate: no
//! trickle); `PATCH` on the resource is `405`; `DELETE` ends it; `OPTIONS` answers CORS
//! preflights. Playback tokens as for HLS: `?token=` or `Authorization: Bearer`.
//!
//! A camera whose H.264 uses B-frames plays its highest ABR rendition instead (named in
//! `X-Camstream-Rendition`; `webrtc::fallback` chooses); `POST /whep/{camera}~{rendition}`
//! asks for a rendition outright, with the camera's token.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use super::hls::{HlsState, Reject, admit, error, pull_renditions, settle, wait_live};
use super::query::{self, Directives};
use crate::registry::{Registry, Stream};
use crate::webrtc::{Fallback, FeedError, Node, OfferError, Rendition, fallback};

/// SDP's media type (RFC 8866).
const SDP: &str = "application/sdp";
/// Largest offer accepted: a browser's offer with a few m-lines is 3–10 KiB.
const MAX_OFFER: usize = 64 * 1024;

/// State of the WHEP routes.
#[derive(Clone)]
pub(crate) struct WhepState {
    pub(crate) hls: HlsState,
    /// `None`: WebRTC is off on this node.
    pub(crate) node: Option<Arc<Node>>,
}

/// The `/whep` router.
pub(crate) fn router(state: WhepState) -> Router {
    Router::new()
        .route("/whep/{camera}", post(offer).options(preflight))
        .route(
            "/whep/{camera}/{session}",
            axum::routing::delete(end).patch(patch).options(preflight),
        )
        .with_state(state)
}

/// CORS for players on other origins. Spelled out rather than `*` because a wildcard
/// `Access-Control-Allow-Headers` does not cover `Authorization` (Fetch standard).
fn cors(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(
            "Location, Accept-Post, Accept-Patch, Link, ETag, X-Camstream-Rendition",
        ),
    );
    r
}

fn reject(status: StatusCode, reason: &str) -> Response {
    cors(error(status, reason))
}

async fn preflight() -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    let h = r.headers_mut();
    h.insert("accept-post", HeaderValue::from_static(SDP));
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("OPTIONS, POST, DELETE, PATCH"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Authorization, Content-Type, If-Match"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    cors(r)
}

/// The playback token: `?token=` or `Authorization: Bearer` (the query wins when both
/// come, as it is what the signed URL carries).
fn token<'a>(d: &mut Directives<'a>, headers: &'a HeaderMap) -> Result<(), Box<Response>> {
    if d.token.is_some() {
        return Ok(());
    }
    let Some(v) = headers.get(header::AUTHORIZATION) else {
        return Ok(());
    };
    let bearer = v
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    match bearer.map(query::token) {
        Some(Ok(t)) => {
            d.token = Some(t);
            Ok(())
        }
        _ => Err(Box::new(reject(
            StatusCode::UNAUTHORIZED,
            "Authorization: expected Bearer and a playback token",
        ))),
    }
}

async fn offer(
    State(state): State<WhepState>,
    Path(camera): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let sdp_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(SDP));
    if !sdp_type {
        let mut r = reject(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "expected Content-Type: application/sdp",
        );
        r.headers_mut()
            .insert("accept-post", HeaderValue::from_static(SDP));
        return r;
    }
    let mut d = match query::parse(raw.as_deref()) {
        Ok(d) => d,
        Err(e) => return reject(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    if let Err(r) = token(&mut d, &headers) {
        return *r;
    }
    let stream = match admit(&state.hls, &camera, &d).await {
        Ok(s) => s,
        Err(Reject(status, reason)) => return reject(status, &reason),
    };
    // On a cluster edge a camera whose relay went idle is pulled again by `admit`: wait for
    // its media as a playlist request would.
    if !stream.is_live() && !wait_live(&state.hls, &camera, &stream).await {
        return reject(StatusCode::NOT_FOUND, "camera is offline");
    }
    let Some(node) = state.node.as_ref() else {
        return reject(
            StatusCode::SERVICE_UNAVAILABLE,
            "WebRTC playback is off on this node",
        );
    };
    if body.len() > MAX_OFFER {
        return reject(
            StatusCode::PAYLOAD_TOO_LARGE,
            "SDP offer larger than 64 KiB",
        );
    }
    let Ok(sdp) = std::str::from_utf8(&body) else {
        return reject(StatusCode::BAD_REQUEST, "bad SDP offer: not UTF-8");
    };
    let offer = match node.check_offer(sdp) {
        Ok(o) => o,
        Err(e) => return offer_refused(&e),
    };
    let (played, joined, viewed) = match node.join(&stream).await {
        // WebRTC players cannot reorder B-frames: a transcoded camera plays its highest
        // rendition (x264 without B-frames) instead (docs/webrtc.md, "B-frames").
        Err(OfferError::Feed(e @ FeedError::BFrames { .. }))
            if camstream_protocol::abr::split_rendition(&camera).is_none() =>
        {
            match rendition_for(&state.hls, &camera, &stream, e).await {
                Ok((name, rendition)) => {
                    tracing::info!(
                        camera_id = %camera,
                        rendition = %name,
                        "WHEP: the camera uses B-frames; serving its highest ABR rendition"
                    );
                    let joined = node.join(&rendition).await;
                    (rendition.camera_id().clone(), joined, rendition)
                }
                Err(e) => return offer_refused(&e),
            }
        }
        other => (stream.camera_id().clone(), other, stream),
    };
    let joined = match joined {
        Ok(j) => j,
        Err(e) => return offer_refused(&e),
    };
    match node.answer(played.clone(), joined, offer) {
        Ok((id, answer)) => {
            // Counted as a viewer from the answer on (the session marks itself once it is
            // connected): a cluster edge keeps pulling what is played.
            viewed.saw_viewer(peer.ip(), std::time::Instant::now());
            let location = format!("/whep/{played}/{id}");
            let mut r = (StatusCode::CREATED, answer).into_response();
            let h = r.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(SDP));
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            if let Ok(v) = HeaderValue::from_str(&location) {
                h.insert(header::LOCATION, v);
            }
            if let Some((_, name)) = camstream_protocol::abr::split_rendition(&played)
                && let Ok(v) = HeaderValue::from_str(name)
            {
                h.insert(RENDITION_HEADER, v);
            }
            cors(r)
        }
        Err(e) => offer_refused(&e),
    }
}

/// Names the ABR rendition a session plays (`480p`), when it plays one: asked for as
/// `/whep/{camera}~{rendition}`, or chosen for a camera with B-frames.
const RENDITION_HEADER: &str = "x-camstream-rendition";

/// The rendition a viewer of `camera` gets when the camera's own stream (`source`) was
/// `refused` for B-frames ([`fallback`]), with its stream. On a cluster edge the renditions
/// are pulled from the camera's origin ([`pull_renditions`]).
///
/// # Errors
/// [`OfferError::RenditionStarting`] while the camera's transcoder (here, or on its origin
/// for an edge) has no rendition with a picture here yet; `refused` when the camera has no
/// ABR ladder.
async fn rendition_for(
    state: &HlsState,
    camera: &str,
    source: &Stream,
    refused: FeedError,
) -> Result<(String, Arc<Stream>), OfferError> {
    let registry: &Registry = &state.registry;
    let transcoding = if source.is_relayed() {
        let pulled = pull_renditions(state, camera, source);
        // Every pull settles first (a picture, or the origin has no such rendition), so
        // the first viewer gets the same rendition as the next, not the first to arrive.
        let picture = |s: &Stream| s.is_live() && s.describe().0.is_some();
        if !settle(state, &pulled, picture).await {
            return Err(OfferError::RenditionStarting);
        }
        !pulled.is_empty()
    } else {
        registry.is_transcoding(camera)
    };
    let live = registry.renditions(camera);
    let described: Vec<_> = live.iter().map(|(_, s)| s.describe()).collect();
    let candidates: Vec<Rendition<'_>> = live
        .iter()
        .zip(&described)
        .map(|((name, _), (resolution, _, bps))| Rendition {
            name,
            height: resolution.map(|(_, h)| h),
            bps: *bps,
        })
        .collect();
    match fallback(&candidates, transcoding) {
        Fallback::Rendition(name) => live
            .iter()
            .find(|(n, _)| n == name)
            .map(|(n, s)| (n.clone(), s.clone()))
            .ok_or(OfferError::Feed(refused)),
        Fallback::Starting => Err(OfferError::RenditionStarting),
        Fallback::Refuse => Err(OfferError::Feed(refused)),
    }
}

fn offer_refused(e: &OfferError) -> Response {
    let status = match e {
        OfferError::Full(_) | OfferError::NotReady | OfferError::RenditionStarting => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        OfferError::BadSdp(_) | OfferError::NoVideo => StatusCode::BAD_REQUEST,
        OfferError::Feed(FeedError::Ended) => StatusCode::NOT_FOUND,
        OfferError::Feed(_) => StatusCode::CONFLICT,
    };
    let mut r = reject(status, &e.to_string());
    if status == StatusCode::SERVICE_UNAVAILABLE {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
    }
    r
}

/// Trickle ICE and ICE restarts are not supported: the answer carries the server's only
/// candidate, and the server (ICE-lite) learns the viewer's address from its checks.
async fn patch() -> Response {
    let mut r = reject(
        StatusCode::METHOD_NOT_ALLOWED,
        "trickle ICE is not supported: the answer holds every server candidate",
    );
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("DELETE, OPTIONS"));
    r
}

/// Ends a session. The resource URL (with its random session id) is the capability: a
/// player may delete its session after its token expired.
async fn end(
    State(state): State<WhepState>,
    Path((camera, session)): Path<(String, String)>,
) -> Response {
    match state.node.as_ref() {
        Some(node) if node.end(&camera, &session) => cors(StatusCode::OK.into_response()),
        _ => reject(StatusCode::NOT_FOUND, "no such WHEP session"),
    }
}
