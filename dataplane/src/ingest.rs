//! The RTMP/RTMPS ingest shell: sockets and TLS around the sans-IO [`rtmp::Session`], the
//! authorizer call, and the hand-off of media to the camera's [`Publisher`].
//!
//! One task per connection (owned by the server's `JoinSet`), reading into one buffer; the
//! session copies each media payload at most once (a message that arrives whole is split off
//! the buffer, not copied); media goes straight into the publisher's segmenter on this task.
//! Nothing here waits on viewers.
//!
//! Per wake-up cost (issue 11): a connection task wakes up to once per RTMP message (a
//! 30 fps camera with AAC sends ~77 a second), so what every wake-up polls is built once per
//! connection, not per loop: one [`Deadline`] timer re-armed lazily, the shutdown wait on a
//! child token of its own (polling a cancellation future locks its token's node and `Notify`;
//! on the token all connections share, those locks bounced between the cores), the kick wait
//! built once per publish, both waits re-polled only when their own waker fired ([`Woken`]),
//! and the connection's span entered only when something logs.

use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tracing::level_filters::LevelFilter;
use tracing::{Instrument, Span, debug, info, info_span, warn};

use crate::auth::{Authorizer, PublishRequest};
use crate::batch::{self, ReadBatch};
use crate::deadline::Deadline;
use crate::registry::{ClaimError, Publisher, Registry};
use crate::rtmp::{self, Event, Session};
use crate::woken::Woken;

/// Size of a read buffer block.
const READ_BUF: usize = 64 << 10;
/// Least spare capacity worth a read; below it a new block is reserved.
const MIN_READ: usize = 4 << 10;

/// What every ingest connection shares.
pub(crate) struct Ingest {
    pub(crate) registry: Arc<Registry>,
    pub(crate) authorizer: Arc<dyn Authorizer>,
    pub(crate) rtmp: rtmp::Config,
    /// Read batching period for publishing sockets (zero: off); see [`crate::batch`].
    pub(crate) batch: Duration,
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
        fd: Option<RawFd>,
        shutdown: CancellationToken,
    ) where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        // The span is entered only when something logs (see `debug_enter`), not at every
        // poll of the connection: each enter and exit goes through the `EnvFilter`'s lock,
        // shared by every connection.
        let span = info_span!("rtmp", %peer, tls, camera_id = tracing::field::Empty);
        span.in_scope(|| debug!("connection accepted"));
        let end = self.run(stream, peer, tls, fd, &shutdown, &span).await;
        let _entered = span.enter();
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

    async fn run<S>(
        &self,
        mut io: S,
        peer: SocketAddr,
        tls: bool,
        fd: Option<RawFd>,
        shutdown: &CancellationToken,
        span: &Span,
    ) -> End
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let mut session = Session::new(Instant::now().into_std(), self.rtmp.clone());
        let mut buf = BytesMut::with_capacity(READ_BUF);
        let mut publisher: Option<Publisher> = None;
        // Futures a wake-up polls are built once, not per loop (see the module docs).
        let mut timer = Deadline::new(session.poll_timeout());
        let mut stopped = Woken::new(shutdown.child_token().cancelled_owned());
        let mut kicked: Option<Woken<WaitForCancellationFutureOwned>> = None;
        // Batching starts with the publish: the handshake and commands are answered at once.
        let mut batched: Option<ReadBatch> = None;
        loop {
            // Drain everything the session has for us before waiting again. The events of one
            // read arrived together: one wall-clock read serves them all.
            let mut wall: Option<SystemTime> = None;
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
                        match self.admit(req).instrument(span.clone()).await {
                            Ok(p) => {
                                span.record("camera_id", tracing::field::display(p.camera_id()));
                                span.in_scope(|| info!(app = %app, "publishing"));
                                if let Err(e) = session.accept_publish() {
                                    return End::Error(e.to_string());
                                }
                                kicked = Some(Woken::new(p.kicked().cancelled_owned()));
                                publisher = Some(p);
                                if let Some(fd) = fd.filter(|_| !self.batch.is_zero()) {
                                    batched = Some(ReadBatch::new(fd, self.batch));
                                }
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
                        let problem = publisher.as_mut().and_then(|p| {
                            p.handle_event(*wall.get_or_insert_with(SystemTime::now), media)
                        });
                        if let Some(problem) = problem {
                            span.in_scope(|| warn!(problem = %problem, "segmenter"));
                        }
                    }
                    Event::PublishFinished => {
                        kicked = None;
                        if publisher.take().is_some() {
                            span.in_scope(|| info!("encoder stopped publishing"));
                        }
                    }
                    Event::Warning(w) => span.in_scope(|| warn!(warning = %w, "encoder")),
                }
            }
            if let Err(e) = flush(&mut session, &mut io).await {
                return End::Error(format!("write: {e}"));
            }
            timer.follow(session.poll_timeout());
            // Frames split off the buffer keep its earlier bytes alive, so its spare capacity
            // shrinks; when little is left, start a new block rather than read a few bytes.
            if buf.capacity() - buf.len() < MIN_READ {
                buf.reserve(READ_BUF);
            }
            // Biased: the stop and kick waits come first, so a peer that keeps the socket
            // readable cannot hide them (they cost one atomic load each, see `Woken`), and
            // no random start is drawn per wake-up.
            tokio::select! {
                biased;
                () = &mut stopped => return End::Shutdown,
                () = kick(&mut kicked) => return End::Kicked,
                read = io.read_buf(&mut buf) => match read {
                    Ok(0) => return End::PeerClosed,
                    Ok(n) => {
                        if let Some(b) = batched.as_mut() {
                            b.after_read(n);
                        }
                        let _entered = debug_enter(span);
                        if let Err(e) = session.handle_input(Instant::now().into_std(), &mut buf) {
                            return End::Error(e.to_string());
                        }
                    }
                    Err(e) => return End::Error(format!("read: {e}")),
                },
                () = batch::tail(&mut batched) => {}
                () = timer.fired() => {
                    if let Err(e) = session.handle_timeout(Instant::now().into_std()) {
                        return End::Error(e.to_string());
                    }
                }
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

/// Resolves when the publisher is kicked; never without a publisher.
async fn kick(kicked: &mut Option<Woken<WaitForCancellationFutureOwned>>) {
    match kicked {
        Some(k) => k.await,
        None => std::future::pending().await,
    }
}

/// Enters `span` only when debug logging is on somewhere (one atomic load otherwise): at info
/// and above nothing the session does logs, and entering costs two trips through the
/// `EnvFilter`'s shared lock per wake-up.
fn debug_enter(span: &Span) -> Option<tracing::span::Entered<'_>> {
    (LevelFilter::current() >= LevelFilter::DEBUG).then(|| span.enter())
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
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
    use tokio::time::Instant;
    use tokio_util::sync::CancellationToken;

    use super::{Ingest, redact};
    use crate::auth::AllowAnyKey;
    use crate::registry::{Registry, RegistryConfig};
    use crate::rtmp;

    /// A connection served on paused time; returns the client end and the serving task.
    fn connect(shutdown: &CancellationToken) -> (DuplexStream, tokio::task::JoinHandle<()>) {
        let ingest = Arc::new(Ingest {
            registry: Registry::new(RegistryConfig::default()),
            authorizer: Arc::new(AllowAnyKey),
            rtmp: rtmp::Config::default(),
            batch: Duration::ZERO,
        });
        let (client, server) = tokio::io::duplex(64 << 10);
        let peer = "127.0.0.1:1935".parse().expect("address");
        let task = tokio::spawn(ingest.serve(server, peer, false, None, shutdown.clone()));
        (client, task)
    }

    /// Old-style handshake (C0 = 3, C1 and C2 zeros), which `rml_rtmp` accepts.
    async fn handshake(client: &mut DuplexStream) {
        let mut c = vec![3u8];
        c.resize(1 + 2 * 1536, 0);
        client.write_all(&c).await.expect("write");
        let mut s = vec![0u8; 1 + 2 * 1536];
        client.read_exact(&mut s).await.expect("S0 S1 S2");
    }

    /// The lazily re-armed timer closes an idle connection exactly when a timer per read
    /// did: the idle deadline counts from the last input, however many inputs moved it.
    #[tokio::test(start_paused = true)]
    async fn idle_timeout_counts_from_the_last_input() {
        let idle = rtmp::Config::default().idle_timeout;
        let shutdown = CancellationToken::new();
        let (mut client, task) = connect(&shutdown);
        handshake(&mut client).await;
        let mut last = Instant::now();
        // The first byte of a chunk header each time: input, but no message.
        for _ in 0..3 {
            tokio::time::sleep(idle * 2 / 3).await;
            client.write_all(&[0x03]).await.expect("write");
            tokio::task::yield_now().await;
            last = Instant::now();
        }
        task.await.expect("served");
        assert_eq!(last.elapsed(), idle);
    }

    #[tokio::test(start_paused = true)]
    async fn handshake_timeout_and_shutdown_end_the_connection() {
        let timeout = rtmp::Config::default().handshake_timeout;
        let shutdown = CancellationToken::new();
        let start = Instant::now();
        let (_client, task) = connect(&shutdown);
        task.await.expect("served");
        assert_eq!(start.elapsed(), timeout);

        let (mut client, task) = connect(&shutdown);
        handshake(&mut client).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let start = Instant::now();
        shutdown.cancel();
        task.await.expect("served");
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[test]
    fn keys_are_redacted() {
        assert_eq!(redact("abcdefgh"), "abcd…");
        assert_eq!(redact("ab"), "ab");
    }
}
