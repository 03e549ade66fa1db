//! The RTMP/RTMPS ingest shell: sockets and TLS around the sans-IO [`rtmp::Session`], the
//! authorizer call, and the hand-off of media to the camera's [`Publisher`].
//!
//! One task per connection (owned by the server's `JoinSet`), reading into one buffer; the
//! session copies each media payload at most once (a message that arrives whole is split off
//! the buffer, not copied); media goes straight into the publisher's segmenter on this task.
//! Nothing here waits on viewers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::auth::{Authorizer, PublishRequest};
use crate::registry::{ClaimError, Publisher, Registry};
use crate::rtmp::{self, Event, Session};

/// Size of a read buffer block.
const READ_BUF: usize = 64 << 10;
/// Least spare capacity worth a read; below it a new block is reserved.
const MIN_READ: usize = 4 << 10;

/// What every ingest connection shares.
pub(crate) struct Ingest {
    pub(crate) registry: Arc<Registry>,
    pub(crate) authorizer: Arc<dyn Authorizer>,
    pub(crate) rtmp: rtmp::Config,
}

/// How a connection ended, for the log.
#[derive(Debug)]
enum End {
    PeerClosed,
    Shutdown,
    /// The control plane disconnected the publisher (camera disabled, key rotated, camera
    /// deleted).
    Kicked,
    Refused(String),
    Error(String),
}

impl Ingest {
    /// Serves one connection until it ends.
    ///
    /// # Cancel safety
    /// Not meant to be cancelled: it stops at `shutdown`, dropping the publisher (which
    /// closes the segment in progress).
    pub(crate) async fn serve<S>(
        self: Arc<Self>,
        stream: S,
        peer: SocketAddr,
        tls: bool,
        shutdown: CancellationToken,
    ) where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let span = info_span!("rtmp", %peer, tls, camera_id = tracing::field::Empty);
        async move {
            debug!("connection accepted");
            let end = self.run(stream, peer, tls, &shutdown).await;
            match end {
                End::PeerClosed => info!("connection closed by the encoder"),
                End::Shutdown => info!("connection closed: server shutting down"),
                End::Kicked => {
                    warn!("connection closed: the publisher was disconnected by the control plane");
                }
                End::Refused(why) => warn!(reason = %why, "publish refused"),
                End::Error(why) => warn!(error = %why, "connection closed on error"),
            }
        }
        .instrument(span)
        .await
    }

    async fn run<S>(
        &self,
        mut io: S,
        peer: SocketAddr,
        tls: bool,
        shutdown: &CancellationToken,
    ) -> End
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let mut session = Session::new(Instant::now().into_std(), self.rtmp.clone());
        let mut buf = BytesMut::with_capacity(READ_BUF);
        let mut publisher: Option<Publisher> = None;
        let mut kick: Option<CancellationToken> = None;
        loop {
            // Drain everything the session has for us before waiting again.
            while let Some(ev) = session.poll_event() {
                match ev {
                    Event::PublishRequested {
                        app,
                        stream_key,
                        token,
                    } => {
                        let req = PublishRequest {
                            app: &app,
                            stream_key: &stream_key,
                            token: token.as_deref(),
                            peer,
                            tls,
                        };
                        match self.admit(req).await {
                            Ok(p) => {
                                tracing::Span::current()
                                    .record("camera_id", tracing::field::display(p.camera_id()));
                                info!(app = %app, "publishing");
                                if let Err(e) = session.accept_publish() {
                                    return End::Error(e.to_string());
                                }
                                kick = Some(p.kicked());
                                publisher = Some(p);
                            }
                            Err(why) => {
                                // Tell the encoder (NetStream.Publish.BadName), flush, close.
                                // Only a busy camera and a fenced cluster node are
                                // explained to it; why a key is refused stays in our log.
                                let told = if why.contains("already being published") {
                                    "this camera is already being published"
                                } else if why.contains("takes no publishers now") {
                                    "this node takes no publishers now: publish to another node"
                                } else {
                                    "publish refused"
                                };
                                let _ = session.reject_publish(told);
                                let _ = flush(&mut session, &mut io).await;
                                return End::Refused(why);
                            }
                        }
                    }
                    Event::Media(media) => {
                        let problem = publisher
                            .as_mut()
                            .and_then(|p| p.handle_event(SystemTime::now(), media));
                        if let Some(problem) = problem {
                            warn!(problem = %problem, "segmenter");
                        }
                    }
                    Event::PublishFinished => {
                        kick = None;
                        if publisher.take().is_some() {
                            info!("encoder stopped publishing");
                        }
                    }
                    Event::Warning(w) => warn!(warning = %w, "encoder"),
                }
            }
            if let Err(e) = flush(&mut session, &mut io).await {
                return End::Error(format!("write: {e}"));
            }
            let deadline = session.poll_timeout().map(Instant::from_std);
            // Frames split off the buffer keep its earlier bytes alive, so its spare capacity
            // shrinks; when little is left, start a new block rather than read a few bytes.
            if buf.capacity() - buf.len() < MIN_READ {
                buf.reserve(READ_BUF);
            }
            tokio::select! {
                read = io.read_buf(&mut buf) => match read {
                    Ok(0) => return End::PeerClosed,
                    Ok(_) => {
                        if let Err(e) = session.handle_input(Instant::now().into_std(), &mut buf) {
                            return End::Error(e.to_string());
                        }
                    }
                    Err(e) => return End::Error(format!("read: {e}")),
                },
                () = sleep_until(deadline) => {
                    if let Err(e) = session.handle_timeout(Instant::now().into_std()) {
                        return End::Error(e.to_string());
                    }
                }
                () = shutdown.cancelled() => return End::Shutdown,
                () = async {
                    match &kick {
                        Some(k) => k.cancelled().await,
                        None => std::future::pending().await,
                    }
                } => return End::Kicked,
            }
        }
    }

    /// Authorizes a publish and claims its camera.
    async fn admit(&self, req: PublishRequest<'_>) -> Result<Publisher, String> {
        let camera = self
            .authorizer
            .authorize(req.clone())
            .await
            .map_err(|e| format!("{e} (key {})", redact(req.stream_key)))?;
        // A relay feeding the camera here is told to stop by the claim; it lets go within
        // a message or two.
        let deadline = tokio::time::Instant::now() + RELAY_TAKEOVER;
        let mut changes = self.registry.changes();
        loop {
            match self.registry.claim(camera.clone()) {
                Ok(p) => return Ok(p),
                Err(ClaimError::Relayed(_)) if tokio::time::Instant::now() < deadline => {
                    let _ = tokio::time::timeout_at(deadline, changes.changed()).await;
                }
                Err(ClaimError::AlreadyPublishing(c)) => {
                    return Err(format!(
                        "camera {c} is already being published by another encoder; the first keeps streaming"
                    ));
                }
                Err(ClaimError::Relayed(c)) => {
                    return Err(format!(
                        "camera {c} is relayed from another node and the relay did not stop in time"
                    ));
                }
            }
        }
    }
}

/// How long a publish waits for a relayed feed of its camera to stop.
const RELAY_TAKEOVER: std::time::Duration = std::time::Duration::from_secs(2);

/// Writes everything the session wants sent.
async fn flush<S: AsyncWrite + Unpin>(session: &mut Session, io: &mut S) -> std::io::Result<()> {
    let mut wrote = false;
    while let Some(bytes) = session.poll_transmit() {
        io.write_all(&bytes).await?;
        wrote = true;
    }
    if wrote {
        io.flush().await?;
    }
    Ok(())
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Stream keys are secrets: logs show only their first characters.
fn redact(key: &str) -> String {
    let shown: String = key.chars().take(4).collect();
    if key.chars().count() > 4 {
        format!("{shown}…")
    } else {
        shown
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn keys_are_redacted() {
        assert_eq!(redact("abcdefgh"), "abcd…");
        assert_eq!(redact("ab"), "ab");
    }
}
