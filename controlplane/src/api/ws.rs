//! `GET /api/v1/ws`: live events (docs/websocket.md). One task per connection reads the
//! client's messages and the event bus (`crate::events`), filters events by tenant and
//! subscription, and queues them for a writer task through a bounded queue; a client that
//! lets the queue fill is closed (4008), never buffered without bound.
//!
//! Authentication is the REST API's (`guard::authenticate`): an `Authorization: Bearer`
//! header checked before the upgrade (failures are ordinary HTTP error envelopes), or an
//! `auth` message within `WsConfig::auth_timeout` (failures close with 4001/4003). A
//! credential in the query string is refused with 400: proxies log URLs. The credential is
//! checked again every `WsConfig::auth_recheck` and at a session token's expiry.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::Instant;

use super::guard::{Credential, Principal, authenticate, authorize, bearer, rate_limit};
use super::routes::Access;
use crate::error::{ApiError, ErrorCode};
use crate::events::{Event, Resume, STREAM_HEALTH};
use crate::rbac::Permission;
use crate::state::AppState;

/// Authentication failed, expired or was revoked.
pub(crate) const CLOSE_AUTH: u16 = 4001;
/// The credential may not read live events.
pub(crate) const CLOSE_FORBIDDEN: u16 = 4003;
/// The client did not keep up with its events.
pub(crate) const CLOSE_SLOW: u16 = 4008;
/// No pong within a ping interval.
pub(crate) const CLOSE_KEEPALIVE: u16 = 4009;
/// The credential's rate limit is used up.
pub(crate) const CLOSE_RATE: u16 = 4029;
/// The server failed (store or cache unreachable while checking the credential).
const CLOSE_INTERNAL: u16 = 1011;

/// Most cameras one connection subscribes to.
const MAX_SUBSCRIPTIONS: usize = 1000;
/// Largest client message (they are small JSON objects).
const MAX_MESSAGE: usize = 64 * 1024;
/// How long a closing writer waits for its close frame to be taken.
const CLOSE_WAIT: Duration = Duration::from_secs(10);
/// How long a resume replay waits for room in the client's queue per message.
const REPLAY_WAIT: Duration = Duration::from_secs(5);

/// Query parameter names that look like credentials.
fn credential_param(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "token", "key", "auth", "jwt", "secret", "bearer", "password",
    ]
    .iter()
    .any(|w| n.contains(w))
}

/// Live events over a WebSocket.
///
/// Upgrade with `GET` and `Upgrade: websocket`. Authenticate with the `Authorization:
/// Bearer` header (a JWT or an API token, as for the REST API) or with a first message
/// `{"type":"auth","token":"..."}` within 5 s; never in the URL. Messages, close codes,
/// resume and limits: docs/websocket.md.
#[utoipa::path(get, path = "/api/v1/ws", operation_id = "liveEvents", tag = "streams", security((), ("bearer" = [])),
    responses(
        (status = 101, description = "Switching Protocols: the connection is a WebSocket carrying JSON text messages (docs/websocket.md)"),
        (status = 400, description = "VALIDATION_FAILED: not a WebSocket upgrade, or a credential in the query string (refused: proxies log URLs)", body = crate::error::ErrorEnvelope),
        (status = 401, description = "AUTH_TOKEN_INVALID, AUTH_TOKEN_EXPIRED or AUTH_TOKEN_REVOKED: the `Authorization` header was given and is not valid", body = crate::error::ErrorEnvelope),
        (status = 403, description = "AUTH_INSUFFICIENT_PERMISSIONS or AUTH_ROLE_RESTRICTED: the credential lacks cameras:read", body = crate::error::ErrorEnvelope),
        (status = 429, description = "RATE_LIMIT_EXCEEDED: the credential's hourly limit is used up", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn connect(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if let Some(q) = query.as_deref()
        && form_urlencoded::parse(q.as_bytes()).any(|(k, _)| credential_param(&k))
    {
        return ApiError::validation(
            "query",
            "credentials in the URL are refused (proxies log URLs): use the Authorization header or an auth message",
        )
        .into_response();
    }
    let ws = match ws {
        Ok(ws) => ws,
        Err(_) => {
            return ApiError::new(
                ErrorCode::ValidationFailed,
                "a WebSocket upgrade is required (GET with Connection: upgrade, Upgrade: websocket)",
            )
            .into_response();
        }
    };
    let pre = if headers.contains_key(axum::http::header::AUTHORIZATION) {
        let token = match bearer(&headers) {
            Ok(t) => t.to_owned(),
            Err(e) => return e.into_response(),
        };
        match admit(&state, &token).await {
            Ok(p) => Some((p, token)),
            Err(e) => return e.into_response(),
        }
    } else {
        None
    };
    ws.read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(1 << 20)
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .on_upgrade(move |socket| run(socket, state, pre))
}

/// Authenticates, counts one request against the credential's rate limit, and checks that
/// it may read cameras (what `GET /api/v1/cameras` and `/alerts` need).
async fn admit(state: &AppState, token: &str) -> Result<Principal, ApiError> {
    let p = authenticate(state, token).await?;
    rate_limit(state, &p).await?;
    authorize(&p, Access::Perm(Permission::CamerasRead))?;
    Ok(p)
}

/// The close code for a failed (re)admission.
fn close_for(e: &ApiError) -> (u16, String) {
    let code = match e.code.status().as_u16() {
        401 => CLOSE_AUTH,
        403 => CLOSE_FORBIDDEN,
        429 => CLOSE_RATE,
        _ => CLOSE_INTERNAL,
    };
    // A close reason is at most 123 bytes.
    let reason: String = e.message.chars().take(100).collect();
    (code, reason)
}

/// Messages a client sends.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
enum ClientMsg {
    Auth {
        token: String,
    },
    Subscribe {
        #[serde(rename = "cameraIds")]
        camera_ids: Vec<String>,
    },
    Unsubscribe {
        #[serde(rename = "cameraIds")]
        camera_ids: Vec<String>,
    },
    Resume {
        after: u64,
        stream: String,
    },
}

const CLIENT_TYPES: [&str; 4] = ["auth", "subscribe", "unsubscribe", "resume"];

/// The `ws_clients` gauge, held for a connection's life.
struct Counted;

impl Counted {
    fn new() -> Self {
        metrics::gauge!("camstream_ws_clients").increment(1.0);
        Counted
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        metrics::gauge!("camstream_ws_clients").decrement(1.0);
    }
}

/// Why the dispatcher stopped.
enum Stop {
    /// The client went away (or closed).
    Gone,
    /// Close with this code and reason.
    Close(u16, String),
}

/// One connection's state.
struct Conn {
    state: AppState,
    principal: Option<Principal>,
    token: String,
    subs: BTreeSet<String>,
    out: mpsc::Sender<Message>,
    /// Events up to this id were sent by a resume replay (or are older than it).
    replayed: u64,
    /// The first event the live receiver gave (a resume replays only what came before).
    first_live: Option<u64>,
    /// A session token's expiry.
    expires: Option<Instant>,
}

fn text(v: serde_json::Value) -> Message {
    Message::Text(v.to_string().into())
}

impl Conn {
    /// Queues a message; `Err` when the client's queue is full (a slow consumer).
    fn send(&self, m: Message) -> Result<(), Stop> {
        match self.out.try_send(m) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics::counter!("camstream_ws_slow_consumers_total").increment(1);
                Err(Stop::Close(CLOSE_SLOW, "slow consumer".into()))
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Stop::Gone),
        }
    }

    fn error(&self, code: &str, message: &str, extra: serde_json::Value) -> Result<(), Stop> {
        let mut v = json!({ "type": "error", "code": code, "message": message });
        if let (Some(o), serde_json::Value::Object(e)) = (v.as_object_mut(), extra) {
            o.extend(e);
        }
        self.send(text(v))
    }

    /// Whether the client gets `e`: its tenant's (admins every one), and health only of
    /// subscribed cameras.
    fn wants(&self, e: &Event) -> bool {
        let Some(p) = &self.principal else {
            return false;
        };
        if !p.sees(e.company.as_deref()) {
            return false;
        }
        if e.kind == STREAM_HEALTH {
            return e.camera_id.as_ref().is_some_and(|c| self.subs.contains(c));
        }
        true
    }

    /// The principal is admitted: greets the client and listens to the bus.
    fn admitted(
        &mut self,
        p: Principal,
        token: String,
    ) -> Result<broadcast::Receiver<Arc<Event>>, Stop> {
        self.expires = match &p.credential {
            Credential::Session { .. } => self.state.keys.verify_access(&token).ok().map(|c| {
                let left = c.exp.saturating_mul(1000) - crate::clock::now_ms();
                Instant::now() + Duration::from_millis(u64::try_from(left).unwrap_or(0))
            }),
            Credential::ApiToken { .. } => None,
        };
        let (rx, last) = self.state.events.subscribe();
        self.send(text(json!({
            "type": "hello",
            "stream": self.state.events.stream(),
            "lastId": last,
            "userId": p.user_id,
            "pingIntervalSeconds": self.state.config.ws.ping_interval.as_secs_f64(),
        })))?;
        tracing::debug!(user_id = %p.user_id, "live events client admitted");
        self.principal = Some(p);
        self.token = token;
        Ok(rx)
    }

    /// Checks the credential again; a stop when it no longer holds.
    async fn recheck(&mut self) -> Result<(), Stop> {
        if self.principal.is_none() {
            return Ok(());
        }
        let p = authenticate(&self.state, &self.token)
            .await
            .and_then(|p| authorize(&p, Access::Perm(Permission::CamerasRead)).map(|()| p));
        match p {
            Ok(p) => {
                self.principal = Some(p);
                Ok(())
            }
            Err(e) => {
                let (code, reason) = close_for(&e);
                Err(Stop::Close(code, reason))
            }
        }
    }

    async fn handle(
        &mut self,
        m: Message,
        events: &mut Option<broadcast::Receiver<Arc<Event>>>,
    ) -> Result<(), Stop> {
        let raw = match m {
            Message::Text(t) => t,
            Message::Binary(_) => {
                return self.error("INVALID_MESSAGE", "text messages only", json!({}));
            }
            Message::Close(_) => return Err(Stop::Gone),
            Message::Ping(_) | Message::Pong(_) => return Ok(()),
        };
        let value: serde_json::Value = match serde_json::from_str(raw.as_str()) {
            Ok(v) => v,
            Err(e) => {
                return self.error("INVALID_JSON", &format!("not JSON: {e}"), json!({}));
            }
        };
        let kind = value.get("type").and_then(|t| t.as_str()).unwrap_or("");
        if !CLIENT_TYPES.contains(&kind) {
            return self.error(
                "UNKNOWN_TYPE",
                "expected type auth, subscribe, unsubscribe or resume",
                json!({ "got": value.get("type") }),
            );
        }
        let msg: ClientMsg = match serde_json::from_value(value) {
            Ok(m) => m,
            Err(e) => {
                return self.error("INVALID_MESSAGE", &e.to_string(), json!({}));
            }
        };
        match msg {
            ClientMsg::Auth { token } => {
                if self.principal.is_some() {
                    return self.error("ALREADY_AUTHENTICATED", "authenticated already", json!({}));
                }
                match admit(&self.state, &token).await {
                    Ok(p) => {
                        *events = Some(self.admitted(p, token)?);
                        Ok(())
                    }
                    Err(e) => {
                        let (code, reason) = close_for(&e);
                        Err(Stop::Close(code, reason))
                    }
                }
            }
            _ if self.principal.is_none() => Err(Stop::Close(
                CLOSE_AUTH,
                "authenticate first: {\"type\":\"auth\",\"token\":...}".into(),
            )),
            ClientMsg::Subscribe { camera_ids } => self.subscribe(camera_ids).await,
            ClientMsg::Unsubscribe { camera_ids } => {
                for c in &camera_ids {
                    self.subs.remove(c);
                }
                self.send(text(
                    json!({ "type": "subscribed", "cameraIds": self.subs }),
                ))
            }
            ClientMsg::Resume { after, stream } => self.resume(after, &stream).await,
        }
    }

    async fn subscribe(&mut self, ids: Vec<String>) -> Result<(), Stop> {
        let Some(p) = self.principal.clone() else {
            return Ok(());
        };
        if ids.len() > MAX_SUBSCRIPTIONS {
            return self.error(
                "TOO_MANY_SUBSCRIPTIONS",
                &format!("at most {MAX_SUBSCRIPTIONS} cameras per connection"),
                json!({}),
            );
        }
        let mut refused = Vec::new();
        for id in ids {
            if self.subs.contains(&id) {
                continue;
            }
            if !camstream_protocol::auth::is_valid_camera_id(&id) {
                refused.push(id);
                continue;
            }
            match self.state.store.get_camera(&id).await {
                // Invisible is the same as unknown, as for `GET /cameras/{id}`.
                Ok(Some(c)) if p.sees(c.company.as_deref()) => {
                    if self.subs.len() >= MAX_SUBSCRIPTIONS {
                        refused.push(id);
                    } else {
                        self.subs.insert(id);
                    }
                }
                Ok(_) => refused.push(id),
                Err(e) => {
                    tracing::warn!(error = %e, "subscription not checked");
                    return self.error(
                        "SERVICE_UNAVAILABLE",
                        "the database cannot be reached",
                        json!({}),
                    );
                }
            }
        }
        self.send(text(
            json!({ "type": "subscribed", "cameraIds": self.subs }),
        ))?;
        if !refused.is_empty() {
            self.error(
                "CAMERA_NOT_FOUND",
                "no such camera visible to the caller",
                json!({ "cameraIds": refused }),
            )?;
        }
        Ok(())
    }

    async fn resume(&mut self, after: u64, stream: &str) -> Result<(), Stop> {
        let bus = &self.state.events;
        match bus.resume(after, stream) {
            Resume::Gap(reason) => {
                let (_, last) = bus.subscribe();
                self.send(text(json!({
                    "type": "gap", "reason": reason, "stream": bus.stream(), "lastId": last,
                })))
            }
            Resume::Events(events, last) => {
                // Live events from `first_live` on were (or will be) sent live.
                let cut = self.first_live.map_or(last, |f| f.saturating_sub(1));
                let mut count = 0u64;
                for e in events.iter().filter(|e| e.id <= cut && self.wants(e)) {
                    // A replay may be longer than the queue: wait for room, a little.
                    match tokio::time::timeout(
                        REPLAY_WAIT,
                        self.out.send(Message::Text(e.text.clone())),
                    )
                    .await
                    {
                        Ok(Ok(())) => count += 1,
                        Ok(Err(_)) => return Err(Stop::Gone),
                        Err(_) => {
                            metrics::counter!("camstream_ws_slow_consumers_total").increment(1);
                            return Err(Stop::Close(CLOSE_SLOW, "slow consumer".into()));
                        }
                    }
                }
                self.replayed = self.replayed.max(cut);
                self.send(text(json!({
                    "type": "resumed", "after": after, "lastId": cut, "count": count,
                })))
            }
        }
    }
}

/// Waits for the next bus event, forever before admission.
async fn next_event(
    rx: &mut Option<broadcast::Receiver<Arc<Event>>>,
) -> Result<Arc<Event>, broadcast::error::RecvError> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Serves one connection until it ends.
async fn run(socket: WebSocket, state: AppState, pre: Option<(Principal, String)>) {
    let _counted = Counted::new();
    let cfg = state.config.ws.clone();
    let (sink, stream) = socket.split();
    let (out, queue) = mpsc::channel(cfg.client_queue.max(1));
    let (close_tx, close_rx) = oneshot::channel();
    let writer = tokio::spawn(write(sink, queue, close_rx));
    let mut conn = Conn {
        state,
        principal: None,
        token: String::new(),
        subs: BTreeSet::new(),
        out,
        replayed: 0,
        first_live: None,
        expires: None,
    };
    let stop = dispatch(&mut conn, stream, pre, &cfg).await;
    match stop {
        Stop::Close(code, reason) => {
            tracing::debug!(code, %reason, "closing a live events connection");
            let _ = close_tx.send((code, reason));
        }
        Stop::Gone => drop(close_tx),
    }
    drop(conn);
    // The writer ends once its close frame is sent (or not taken in time) or the queue ends.
    let _ = tokio::time::timeout(CLOSE_WAIT + Duration::from_secs(1), writer).await;
}

async fn dispatch(
    conn: &mut Conn,
    mut stream: SplitStream<WebSocket>,
    pre: Option<(Principal, String)>,
    cfg: &crate::config::WsConfig,
) -> Stop {
    let mut events = None;
    if let Some((p, token)) = pre {
        match conn.admitted(p, token) {
            Ok(rx) => events = Some(rx),
            Err(stop) => return stop,
        }
    }
    let auth_deadline = tokio::time::sleep(cfg.auth_timeout);
    tokio::pin!(auth_deadline);
    let start = Instant::now();
    let mut ping = tokio::time::interval_at(start + cfg.ping_interval, cfg.ping_interval);
    let mut recheck = tokio::time::interval_at(start + cfg.auth_recheck, cfg.auth_recheck);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut alive = true;
    loop {
        let step = tokio::select! {
            m = stream.next() => match m {
                Some(Ok(m)) => {
                    // Any frame from the client shows it is there.
                    alive = true;
                    conn.handle(m, &mut events).await
                }
                Some(Err(_)) | None => Err(Stop::Gone),
            },
            e = next_event(&mut events) => match e {
                Ok(e) => {
                    conn.first_live.get_or_insert(e.id);
                    if e.id > conn.replayed && conn.wants(&e) {
                        conn.send(Message::Text(e.text.clone()))
                    } else {
                        Ok(())
                    }
                }
                // This connection's task fell a whole broadcast buffer behind (the server,
                // not the client, was slow: a flood of events on a busy node). The client
                // is told of the hole and stays connected; it refetches over REST or
                // resumes from its last id. A client that does not read is closed by its
                // queue (`send`), not here.
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    metrics::counter!("camstream_ws_lagged_total").increment(1);
                    conn.send(text(json!({
                        "type": "gap", "reason": "lagged", "stream": conn.state.events.stream(),
                        "missed": missed,
                    })))
                }
                Err(broadcast::error::RecvError::Closed) => Err(Stop::Gone),
            },
            () = &mut auth_deadline, if conn.principal.is_none() => {
                Err(Stop::Close(CLOSE_AUTH, "no auth message in time".into()))
            }
            _ = ping.tick() => {
                if alive {
                    alive = false;
                    conn.send(Message::Ping(bytes::Bytes::new()))
                } else {
                    metrics::counter!("camstream_ws_keepalive_timeouts_total").increment(1);
                    Err(Stop::Close(CLOSE_KEEPALIVE, "no pong".into()))
                }
            }
            _ = recheck.tick(), if conn.principal.is_some() => conn.recheck().await,
            () = sleep_until_opt(conn.expires), if conn.principal.is_some() => {
                Err(Stop::Close(CLOSE_AUTH, "access token expired".into()))
            }
        };
        if let Err(stop) = step {
            return stop;
        }
    }
}

/// The writer: sends queued messages; on a close request drops what is queued and sends
/// the close frame (waiting at most [`CLOSE_WAIT`] for a client that does not read).
async fn write(
    mut sink: SplitSink<WebSocket, Message>,
    mut queue: mpsc::Receiver<Message>,
    mut close: oneshot::Receiver<(u16, String)>,
) {
    let closing = loop {
        tokio::select! {
            biased;
            c = &mut close => break c.ok(),
            m = queue.recv() => {
                let Some(m) = m else { break (&mut close).await.ok() };
                tokio::select! {
                    r = sink.send(m) => if r.is_err() { return },
                    c = &mut close => break c.ok(),
                }
            }
        }
    };
    if let Some((code, reason)) = closing {
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from(reason),
        };
        let _ = tokio::time::timeout(CLOSE_WAIT, sink.send(Message::Close(Some(frame)))).await;
    }
}
