//! The `/hls/...` routes.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Extension, Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::watch;
use tokio::time::Instant;

use super::body::ChunksBody;
use super::query::{self, Directives};
use super::watch::ReloadSlots;
use crate::auth::{PlaybackDenied, PlaybackGuard};
use crate::chunks::Chunks;
use crate::hls::playlist::{self, Render, names};
use crate::hls::window::{Flavor, Window};
use crate::registry::{Registry, Stream};
use crate::relay::Puller;

/// Playlist content type (RFC 8216bis §4).
const M3U8: &str = "application/vnd.apple.mpegurl";
/// Media objects never change under a name: the prefix is per stream start.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const NO_CACHE: &str = "no-cache";

/// How long requests wait for media that is about to exist.
#[derive(Debug, Clone)]
pub(crate) struct Waits {
    /// A plain playlist request for a camera that just started (not yet playable).
    pub(crate) startup: Duration,
    /// Parts that must exist before a starting stream's playlist is served.
    pub(crate) min_parts: usize,
}

impl Default for Waits {
    fn default() -> Self {
        Self {
            startup: Duration::from_secs(10),
            min_parts: 3,
        }
    }
}

/// State of the HLS routes.
#[derive(Clone)]
pub(crate) struct HlsState {
    pub(crate) registry: Arc<Registry>,
    pub(crate) guard: Arc<dyn PlaybackGuard>,
    pub(crate) waits: Waits,
    /// Set once on a cluster node with a relay (after the relay and the control plane have
    /// started): pulls cameras ingested elsewhere. Unset on a single node.
    pub(crate) puller: Arc<OnceLock<Puller>>,
    /// This node's ABR ladder (`--abr-ladder`, the default when ABR is off here): on a
    /// cluster edge, the renditions a relayed camera may have on its origin (the nodes of a
    /// cluster share the flag).
    pub(crate) ladder: Arc<[crate::abr::Rendition]>,
}

/// Waits (up to the startup wait) for `stream` to go live while this node pulls it from
/// another node (a cluster edge pulling again after its relay went idle); `false` at once
/// when nothing pulls it.
pub(super) async fn wait_live(state: &HlsState, camera: &str, stream: &Stream) -> bool {
    let pulling = || state.puller.get().is_some_and(|p| p.is_pulling(camera));
    let until = Instant::now() + state.waits.startup;
    while pulling() && Instant::now() < until {
        if stream.is_live() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stream.is_live()
}

/// Waits (up to [`EDGE_RENDITIONS_WAIT`]) until each rendition of `pulled` is `ready` here or
/// its pull ended (the origin has no such rendition). Returns whether all settled in time.
pub(super) async fn settle(
    state: &HlsState,
    pulled: &[String],
    ready: impl Fn(&Stream) -> bool,
) -> bool {
    let until = Instant::now() + EDGE_RENDITIONS_WAIT;
    loop {
        let pending = pulled.iter().any(|id| {
            let done = state.registry.get(id).is_some_and(|s| ready(&s));
            !done && state.puller.get().is_some_and(|p| p.is_pulling(id))
        });
        if !pending {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How long a multivariant playlist (or a WHEP offer) on a cluster edge waits for the renditions it started
/// pulling to become playable (or for their origin to say it has none).
const EDGE_RENDITIONS_WAIT: Duration = Duration::from_secs(3);

/// On a cluster edge (`source` is relayed here): ABR renditions are made by the transcoder on
/// the camera's origin and relayed like cameras. Starts pulling every rung of this node's
/// ladder below the camera's height (the origin's transcoder never upscales either) that is
/// not live here yet. Returns the ids (`{camera}~{name}`) with a pull running or live here:
/// empty on a single node, for a camera ingested here, or when its origin has no renditions.
/// Call only after the viewer's token for `camera` was accepted.
pub(super) fn pull_renditions(state: &HlsState, camera: &str, source: &Stream) -> Vec<String> {
    let Some(puller) = state.puller.get() else {
        return Vec::new();
    };
    if !source.is_relayed() {
        return Vec::new();
    }
    let Some((_, height)) = source.describe().0 else {
        return Vec::new();
    };
    state
        .ladder
        .iter()
        .filter(|r| r.height < height)
        .map(|r| format!("{camera}{}{}", crate::abr::RENDITION_SEPARATOR, r.name))
        .filter(|id| state.registry.get(id).is_some_and(|s| s.is_live()) || puller.ensure(id))
        .collect()
}

/// The `/hls` router.
pub(crate) fn router(state: HlsState) -> Router {
    Router::new()
        .route("/hls/{camera}/playlist.m3u8", get(ll_playlist))
        .route("/hls/{camera}/master.m3u8", get(ll_master))
        .route("/hls/{camera}/ts/playlist.m3u8", get(ts_playlist))
        .route("/hls/{camera}/ts/master.m3u8", get(ts_master))
        .route("/hls/{camera}/ts/{file}", get(ts_media))
        .route("/hls/{camera}/{file}", get(ll_media))
        .with_state(state)
}

/// A refusal: status and a short reason, sent as plain text.
pub(super) struct Reject(pub(super) StatusCode, pub(super) String);

impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        error(self.0, &self.1)
    }
}

/// A refusal with a short plain-text reason.
pub(super) fn error(status: StatusCode, reason: &str) -> Response {
    (
        status,
        [
            (header::CACHE_CONTROL, NO_CACHE),
            (header::CONTENT_TYPE, "text/plain"),
        ],
        format!("{reason}\n"),
    )
        .into_response()
}

fn denied(e: &PlaybackDenied) -> Reject {
    let status = match e {
        PlaybackDenied::Missing => StatusCode::UNAUTHORIZED,
        _ => StatusCode::FORBIDDEN,
    };
    Reject(status, e.to_string())
}

/// Looks the camera up and checks the token: the common first step of every route. On a
/// cluster node, a camera with no live stream here that another node ingests is pulled from
/// that node (token first: an unauthorized request never starts a pull), waiting up to the
/// startup time for its stream to appear.
pub(super) async fn admit(
    state: &HlsState,
    camera: &str,
    directives: &Directives<'_>,
) -> Result<Arc<Stream>, Reject> {
    let stream = state.registry.get(camera);
    // A rendition (`{camera}~{name}`) plays with its camera's token.
    let check = || {
        state
            .guard
            .check(crate::abr::source_camera(camera), directives.token)
            .map_err(|e| denied(&e))
    };
    let Some(puller) = state.puller.get() else {
        // A single node: today's path.
        let Some(stream) = stream else {
            return Err(Reject(StatusCode::NOT_FOUND, "no such stream".into()));
        };
        check()?;
        return Ok(stream);
    };
    check()?;
    if let Some(s) = stream.as_ref().filter(|s| s.is_live()) {
        return Ok(s.clone());
    }
    if !puller.ensure(camera) {
        return stream.ok_or_else(|| Reject(StatusCode::NOT_FOUND, "no such stream".into()));
    }
    if let Some(s) = stream {
        // A stream left from an earlier pull or publish: the pull continues it.
        return Ok(s);
    }
    let deadline = Instant::now() + state.waits.startup;
    let mut changes = state.registry.changes();
    loop {
        if let Some(s) = state.registry.get(camera) {
            return Ok(s);
        }
        match tokio::time::timeout_at(deadline, changes.changed()).await {
            Ok(Ok(())) => {}
            _ => {
                return Err(Reject(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "stream is starting".into(),
                ));
            }
        }
    }
}

fn directives(raw: &Option<String>) -> Result<Directives<'_>, Reject> {
    query::parse(raw.as_deref()).map_err(|e| Reject(StatusCode::BAD_REQUEST, e.to_string()))
}

/// Waits until `pred` holds for the window or `deadline` passes; returns the window that
/// satisfied it.
///
/// # Cancel safety
/// Cancel-safe: holds no state but the receiver.
async fn wait_for(
    rx: &mut watch::Receiver<Arc<Window>>,
    deadline: Instant,
    pred: impl Fn(&Window) -> bool,
) -> Option<Arc<Window>> {
    loop {
        let w = rx.borrow_and_update().clone();
        if pred(&w) {
            return Some(w);
        }
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => {}
            _ => return None,
        }
    }
}

async fn ll_playlist(
    State(state): State<HlsState>,
    Path(camera): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    slots: Option<Extension<ReloadSlots>>,
    RawQuery(raw): RawQuery,
) -> Response {
    let slots = slots.map(|Extension(s)| s);
    playlist(state, &camera, peer.ip(), &raw, Flavor::Fmp4, slots).await
}

async fn ts_playlist(
    State(state): State<HlsState>,
    Path(camera): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(raw): RawQuery,
) -> Response {
    playlist(state, &camera, peer.ip(), &raw, Flavor::Ts, None).await
}

async fn ll_master(
    State(state): State<HlsState>,
    Path(camera): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    master(state, &camera, &raw, Flavor::Fmp4).await
}

async fn ts_master(
    State(state): State<HlsState>,
    Path(camera): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    master(state, &camera, &raw, Flavor::Ts).await
}

/// The multivariant playlist of a camera: its own stream first, then each live ABR
/// rendition, highest first (`EXT-X-STREAM-INF` with bandwidth, resolution and codecs).
/// Without a ladder it lists the camera alone, so a player may always start here.
async fn master(state: HlsState, camera: &str, raw: &Option<String>, flavor: Flavor) -> Response {
    let d = match directives(raw) {
        Ok(d) => d,
        Err(r) => return r.into_response(),
    };
    if crate::abr::source_camera(camera) != camera {
        return error(
            StatusCode::NOT_FOUND,
            "a rendition has no multivariant playlist",
        );
    }
    let stream = match admit(&state, camera, &d).await {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    // A rendition is listed once a player can start it (its first parts exist), so a
    // switch never lands on a playlist that answers "starting".
    let min_parts = state.waits.min_parts;
    let playable = |s: &Stream| s.ll().borrow().is_playable(min_parts) && s.describe().0.is_some();
    // On a cluster edge the renditions come from the origin: wait (bounded) until each one
    // pulled is playable or its pull ended (the origin has no such rendition).
    let pulled = pull_renditions(&state, camera, &stream);
    settle(&state, &pulled, playable).await;
    let mut variants = vec![(None, stream)];
    variants.extend(
        state
            .registry
            .renditions(camera)
            .into_iter()
            .filter(|(_, s)| playable(s))
            .map(|(name, s)| (Some(name), s)),
    );
    let body = playlist::master(camera, &variants_of(&variants), flavor, d.token);
    (
        [
            (header::CACHE_CONTROL, NO_CACHE),
            (header::CONTENT_TYPE, M3U8),
        ],
        body,
    )
        .into_response()
}

fn variants_of(streams: &[(Option<String>, Arc<Stream>)]) -> Vec<playlist::Variant> {
    let mut out: Vec<playlist::Variant> = streams
        .iter()
        .map(|(name, s)| {
            let (resolution, codecs, bps) = s.describe();
            playlist::Variant {
                rendition: name.clone(),
                resolution,
                codecs,
                bandwidth: bps,
            }
        })
        .collect();
    // Highest first after the camera's own stream (players pick by bandwidth anyway).
    out[1..].sort_by(|a, b| b.resolution.map(|r| r.1).cmp(&a.resolution.map(|r| r.1)));
    out
}

async fn playlist(
    state: HlsState,
    camera: &str,
    ip: IpAddr,
    raw: &Option<String>,
    flavor: Flavor,
    slots: Option<ReloadSlots>,
) -> Response {
    let d = match directives(raw) {
        Ok(d) => d,
        Err(r) => return r.into_response(),
    };
    let stream = match admit(&state, camera, &d).await {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    // A blocking reload holds one of its connection's slots while it waits (h2 can
    // multiplex many on one connection). `None` in-process, where there is no connection.
    let _slot = match (&d.msn, flavor, slots) {
        (Some(_), Flavor::Fmp4, Some(ReloadSlots(slots))) => match slots.try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => {
                metrics::counter!("camstream_http_blocking_reloads_refused_total").increment(1);
                let mut r = error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too many blocking playlist reloads waiting on this connection",
                );
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                return r;
            }
        },
        _ => None,
    };
    stream.saw_viewer(ip, std::time::Instant::now());
    let mut rx = match flavor {
        Flavor::Fmp4 => stream.ll(),
        Flavor::Ts => stream.ts(),
    };
    let now = Instant::now();
    let window = if let (Some(msn), Flavor::Fmp4) = (d.msn, flavor) {
        // Blocking playlist reload (§6.2.5.2).
        let current = rx.borrow_and_update().clone();
        if current.too_far_ahead(msn, d.part) {
            return error(
                StatusCode::BAD_REQUEST,
                "_HLS_msn/_HLS_part too far beyond the live edge",
            );
        }
        // The server SHOULD give up after three target durations (§6.2.5.2).
        let deadline = now + Duration::from_secs(3 * u64::from(current.target_duration.max(1)));
        match wait_for(&mut rx, deadline, |w| {
            w.satisfies(msn, d.part) || w.is_behind(msn)
        })
        .await
        {
            Some(w) => w,
            None => {
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the requested part did not appear in time",
                );
            }
        }
    } else {
        let min_parts = state.waits.min_parts;
        match wait_for(&mut rx, now + state.waits.startup, |w| match w.flavor {
            Flavor::Fmp4 => w.is_playable(min_parts),
            Flavor::Ts => !w.segments.is_empty() || w.ended,
        })
        .await
        {
            Some(w) => w,
            None => return error(StatusCode::SERVICE_UNAVAILABLE, "stream is starting"),
        }
    };
    let query = token_query(d.token);
    let mut text = playlist::render(
        &window,
        Render {
            query: &query,
            skip: d.skip,
        },
    );
    if flavor == Flavor::Fmp4 {
        rendition_reports(&state.registry, camera, &query, &mut text);
    }
    (
        [
            (header::CONTENT_TYPE, M3U8),
            (header::CACHE_CONTROL, NO_CACHE),
        ],
        text,
    )
        .into_response()
}

/// `EXT-X-RENDITION-REPORT` for every other variant of the camera's multivariant playlist
/// (RFC 8216bis §4.4.5.4), so a player switching renditions knows where the other one is
/// without an extra playlist request. Nothing for a camera without ABR renditions.
fn rendition_reports(registry: &Registry, id: &str, query: &str, out: &mut String) {
    use std::fmt::Write;
    let camera = crate::abr::source_camera(id);
    let renditions = registry.renditions(camera);
    if renditions.is_empty() {
        return;
    }
    let source = registry.get(camera).filter(|s| s.is_live());
    let others = source
        .map(|s| (camera.to_owned(), s))
        .into_iter()
        .chain(renditions.into_iter().map(|(name, s)| {
            (
                format!("{camera}{}{name}", crate::abr::RENDITION_SEPARATOR),
                s,
            )
        }))
        .filter(|(other, _)| other != id);
    for (other, stream) in others {
        if let Some((msn, part)) = stream.ll().borrow().last_part() {
            let _ = writeln!(
                out,
                "#EXT-X-RENDITION-REPORT:URI=\"../{other}/playlist.m3u8{query}\",LAST-MSN={msn},LAST-PART={part}"
            );
        }
    }
}

fn token_query(token: Option<&str>) -> String {
    token.map_or_else(String::new, |t| format!("?token={t}"))
}

async fn ll_media(
    State(state): State<HlsState>,
    Path((camera, file)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Response {
    media(state, &camera, &file, &raw, Flavor::Fmp4).await
}

async fn ts_media(
    State(state): State<HlsState>,
    Path((camera, file)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Response {
    media(state, &camera, &file, &raw, Flavor::Ts).await
}

async fn media(
    state: HlsState,
    camera: &str,
    file: &str,
    raw: &Option<String>,
    flavor: Flavor,
) -> Response {
    let d = match directives(raw) {
        Ok(d) => d,
        Err(r) => return r.into_response(),
    };
    let stream = match admit(&state, camera, &d).await {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let mut rx = match flavor {
        Flavor::Fmp4 => stream.ll(),
        Flavor::Ts => stream.ts(),
    };
    let window = rx.borrow_and_update().clone();
    let Some(name) = names::parse(file, &window.prefix, flavor == Flavor::Ts) else {
        return error(StatusCode::NOT_FOUND, "no such object");
    };
    let media_type = match (flavor, window.audio_only) {
        (Flavor::Ts, _) => "video/mp2t",
        (Flavor::Fmp4, false) => "video/mp4",
        (Flavor::Fmp4, true) => "audio/mp4",
    };
    let chunks = match name {
        names::Parsed::Init(id) => window.init(id).cloned().map(Chunks::from),
        names::Parsed::Segment(msn) => window.segment(msn).map(|s| s.body()),
        names::Parsed::Part(msn, index) => {
            if let Some(p) = window.part(msn, index) {
                Some(p.data.clone())
            } else if (msn, index) == window.next_part() && !window.ended {
                // The preload hint names this part before it exists: hold the request
                // until it is complete (§6.2.6), or until its segment closes without it.
                let deadline = Instant::now()
                    + Duration::from_secs(3 * u64::from(window.target_duration.max(1)));
                wait_for(&mut rx, deadline, |w| {
                    w.part(msn, index).is_some() || w.next_part() != (msn, index) || w.ended
                })
                .await
                .and_then(|w| w.part(msn, index).map(|p| p.data.clone()))
            } else {
                None
            }
        }
    };
    let Some(chunks) = chunks else {
        return error(StatusCode::NOT_FOUND, "no such object");
    };
    stream.served(chunks.len() as u64);
    let content_type = if matches!(name, names::Parsed::Init(_)) {
        if window.audio_only {
            "audio/mp4"
        } else {
            "video/mp4"
        }
    } else {
        media_type
    };
    let mut response = Response::new(Body::new(ChunksBody::new(chunks)));
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    response
}
