//! The edge side: pulls one camera from its origin into this node's registry, so viewers here
//! are served from this node's own windows. One QUIC stream per camera, whatever the number
//! of viewers; connections to an origin are shared by its cameras.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use bytes::BytesMut;
use camstream_protocol::relay::{self, End, EndReason, Hello, Message};
use quinn::{Connection, ConnectionError, ReadError};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use super::auth::{Role, SERVER_NAME};
use super::{CLOSE_UNAUTHORIZED, Context, ReadFailure, Reader, write};
use crate::auth::CameraId;
use crate::registry::{ClaimError, Publisher};

/// How a pull ended without a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PullEnd {
    /// No viewer asked for the camera here for the idle timeout.
    Idle,
    /// `shutdown` fired.
    Shutdown,
    /// The origin ended the stream (`Finished`: the camera's playlists ended, and so did
    /// this node's; `Lagged`: this node fell behind and may pull again; `Shutdown`: the
    /// origin is going away).
    Ended(EndReason),
    /// An encoder started publishing the camera on this node: the local publisher wins.
    Replaced,
}

/// Why a pull failed. The edge's playlists stop growing (the segment in progress is closed);
/// pulling again (from the same or a new origin) continues them behind a discontinuity.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PullError {
    /// No QUIC connection to the origin.
    #[error("cannot connect to the relay origin {origin}: {why}")]
    Connect {
        /// The origin's relay address.
        origin: SocketAddr,
        /// What failed.
        why: String,
    },
    /// The origin refused the stream (wrong secret, not its camera, other version).
    #[error("the relay origin refused: {reason:?} {text}")]
    Refused {
        /// Its reason.
        reason: EndReason,
        /// Its explanation.
        text: String,
    },
    /// The origin did not prove the cluster secret: it is not one of ours.
    #[error("the relay origin {0} did not prove the cluster secret")]
    OriginUnauthenticated(SocketAddr),
    /// A local encoder (or another pull) already feeds this camera here.
    #[error("the camera is already published on this node")]
    Busy,
    /// The connection or stream broke mid-way (origin lost, bad message).
    #[error("the relay stream broke: {0}")]
    Lost(String),
}

/// Pulls cameras from origins. Cheap to clone.
#[derive(Clone)]
pub struct Edge {
    endpoint: quinn::Endpoint,
    ctx: Arc<Context>,
    /// Open connections by origin address (touched once per pull, never per frame).
    conns: Arc<Mutex<HashMap<SocketAddr, Connection>>>,
}

impl Edge {
    pub(super) fn new(endpoint: quinn::Endpoint, ctx: Arc<Context>) -> Self {
        Self {
            endpoint,
            ctx,
            conns: Arc::default(),
        }
    }

    /// The registry pulled cameras go into.
    pub(crate) fn registry(&self) -> &Arc<crate::registry::Registry> {
        &self.ctx.registry
    }

    /// How long a pull runs without a viewer.
    pub(crate) fn idle_timeout(&self) -> std::time::Duration {
        self.ctx.idle_timeout
    }

    /// Drops the shared connection to `origin`, if any, so the next pull connects afresh:
    /// after a failure or a move, a cached connection may lead to a process that is gone
    /// (restarted on the same address) and would look open until the QUIC idle timeout.
    /// Streams already open on it are not affected.
    pub(crate) fn forget(&self, origin: SocketAddr) {
        self.conns
            .lock()
            .expect("relay connections poisoned")
            .remove(&origin);
    }

    async fn connection(&self, origin: SocketAddr) -> Result<Connection, PullError> {
        let existing = self
            .conns
            .lock()
            .expect("relay connections poisoned")
            .get(&origin)
            .filter(|c| c.close_reason().is_none())
            .cloned();
        if let Some(c) = existing {
            return Ok(c);
        }
        let err = |why: String| PullError::Connect { origin, why };
        let conn = self
            .endpoint
            .connect(origin, SERVER_NAME)
            .map_err(|e| err(e.to_string()))?
            .await
            .map_err(|e| err(e.to_string()))?;
        self.conns
            .lock()
            .expect("relay connections poisoned")
            .insert(origin, conn.clone());
        Ok(conn)
    }

    /// Pulls `camera` from the relay endpoint at `origin` into this node's registry until
    /// the camera has no viewer here for the idle timeout, the origin ends the stream, or
    /// `shutdown` fires. The camera's LL-HLS and TS playlists here carry the origin's media
    /// sequence and part numbers and media names.
    ///
    /// The caller decides when to pull (a viewer asked for a camera placed elsewhere) and
    /// whether to pull again after an error; a viewer's playlist request counts as activity
    /// (`Stream::saw_viewer`).
    ///
    /// # Errors
    /// [`PullError`]: the origin cannot be reached or refuses, does not prove the secret, the
    /// camera is already fed here, or the stream breaks.
    ///
    /// # Cancel safety
    /// Cancelling the future drops the relay: the edge's segment in progress is closed, the
    /// stream is reset. Prefer `shutdown` for an orderly end.
    pub async fn pull(
        &self,
        origin: SocketAddr,
        camera: CameraId,
        shutdown: CancellationToken,
    ) -> Result<PullEnd, PullError> {
        let span = info_span!("relay_edge", %origin, camera_id = %camera);
        let mut result = self
            .pull_inner(origin, camera, shutdown.clone())
            .instrument(span.clone())
            .await;
        // The node's own shutdown closes its relay endpoint too, which may break the
        // connection before the loop sees `shutdown`: that is still an orderly shutdown.
        if result.is_err() && shutdown.is_cancelled() {
            result = Ok(PullEnd::Shutdown);
        }
        let _e = span.enter();
        match &result {
            Ok(end) => info!(?end, "relay pull ended"),
            Err(e) => warn!(error = %e, "relay pull failed"),
        }
        result
    }

    async fn pull_inner(
        &self,
        origin: SocketAddr,
        camera: CameraId,
        shutdown: CancellationToken,
    ) -> Result<PullEnd, PullError> {
        let conn = self.connection(origin).await?;
        let lost = |e: &dyn std::fmt::Display| PullError::Lost(e.to_string());
        let (mut send, recv) = conn.open_bi().await.map_err(|e| lost(&e))?;
        let mut reader = Reader::new(recv);
        let mut scratch = BytesMut::with_capacity(256);
        let auth = self
            .ctx
            .secret
            .proof(&conn, Role::Edge)
            .ok_or_else(|| PullError::Lost("the connection closed".into()))?;
        let hello = Message::Hello(Hello {
            version: relay::VERSION,
            camera: camera.to_string(),
            auth,
        });
        write(&mut send, &hello, &mut scratch)
            .await
            .map_err(|e| lost(&e))?;
        match reader.next().await {
            Ok(Some(Message::Accept(a))) => {
                if !self.ctx.secret.verify(&conn, Role::Origin, &a.auth) {
                    conn.close(CLOSE_UNAUTHORIZED.into(), b"unauthorized");
                    return Err(PullError::OriginUnauthenticated(origin));
                }
            }
            Ok(Some(Message::End(e))) => {
                return Err(PullError::Refused {
                    reason: e.reason,
                    text: e.text,
                });
            }
            Ok(_) => return Err(PullError::Lost("the origin answered without Accept".into())),
            Err(e) => return Err(failure(e)),
        }
        debug!("relay accepted");
        let _open = super::gauge::OpenStream::open(super::gauge::Direction::In);
        let mut publisher: Option<Publisher> = None;
        // The relayed publisher's kick token, taken once it exists (not per message).
        let mut kick: Option<CancellationToken> = None;
        let started = Instant::now();
        let idle = self.ctx.idle_timeout;
        let mut tick = tokio::time::interval((idle / 4).max(std::time::Duration::from_millis(50)));
        loop {
            tokio::select! {
                // Shutdown first: an endpoint closing for the same shutdown must not turn an
                // orderly end into `Lost`.
                biased;
                () = shutdown.cancelled() => {
                    let end = End { reason: EndReason::Shutdown, text: String::new() };
                    let _ = write(&mut send, &Message::End(end), &mut scratch).await;
                    let _ = send.finish();
                    return Ok(PullEnd::Shutdown);
                }
                () = kicked(kick.as_ref()) => {
                    let end = End { reason: EndReason::Shutdown, text: "published on the edge".into() };
                    let _ = write(&mut send, &Message::End(end), &mut scratch).await;
                    let _ = send.finish();
                    return Ok(PullEnd::Replaced);
                }
                m = reader.next() => match m {
                    Ok(Some(msg)) => {
                        if let Some(end) = self.handle(&camera, &mut publisher, msg)? {
                            return Ok(end);
                        }
                        if kick.is_none() {
                            kick = publisher.as_ref().map(Publisher::kicked);
                        }
                    }
                    Ok(None) => return Err(PullError::Lost("the origin closed the stream without End".into())),
                    Err(e) => return Err(failure(e)),
                },
                _ = tick.tick() => {
                    let last = publisher
                        .as_ref()
                        .and_then(|p| p.stream().last_viewer())
                        .map_or(started, |v| v.max(started));
                    if last.elapsed() >= idle {
                        let end = End { reason: EndReason::Idle, text: String::new() };
                        let _ = write(&mut send, &Message::End(end), &mut scratch).await;
                        let _ = send.finish();
                        return Ok(PullEnd::Idle);
                    }
                }
            }
        }
    }

    /// Feeds one message; `Some` when the stream ended.
    fn handle(
        &self,
        camera: &CameraId,
        publisher: &mut Option<Publisher>,
        msg: Message,
    ) -> Result<Option<PullEnd>, PullError> {
        let now = SystemTime::now();
        if let Message::Init(init) = &msg {
            if init.part != 0 {
                return Err(PullError::Lost(format!(
                    "the origin started at part {} (this version starts at segment starts)",
                    init.part
                )));
            }
            if publisher.is_none() {
                let p = self
                    .ctx
                    .registry
                    .claim_relayed(camera.clone(), &init.prefix)
                    .map_err(|_: ClaimError| PullError::Busy)?;
                *publisher = Some(p);
            }
        }
        let end = match &msg {
            // Ended before any media: the origin refuses (not its camera, shutting down).
            Message::End(e) if publisher.is_none() => {
                return Err(PullError::Refused {
                    reason: e.reason,
                    text: e.text.clone(),
                });
            }
            Message::End(e) => Some(PullEnd::Ended(e.reason)),
            _ => None,
        };
        if let Some(problem) = publisher.as_mut().and_then(|p| p.handle_relayed(now, msg)) {
            warn!(problem = %problem, "segmenter");
        }
        Ok(end)
    }
}

/// Resolves when the registry asks the relayed publisher to go (a local encoder claims the
/// camera, or the control plane disconnects it); never before the relay has claimed it.
async fn kicked(kick: Option<&CancellationToken>) {
    match kick {
        Some(k) => k.cancelled().await,
        None => std::future::pending().await,
    }
}

fn failure(e: ReadFailure) -> PullError {
    match e {
        ReadFailure::Quic(ReadError::ConnectionLost(ConnectionError::ApplicationClosed(c)))
            if c.error_code == CLOSE_UNAUTHORIZED.into() =>
        {
            PullError::Refused {
                reason: EndReason::Unauthorized,
                text: "the origin closed the connection: unauthorized".into(),
            }
        }
        other => PullError::Lost(other.to_string()),
    }
}
