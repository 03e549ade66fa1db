//! The QUIC relay between nodes: an origin (the node ingesting a camera) serves the camera's
//! live frames to edges (nodes whose viewers want it), which segment them into their own
//! LL-HLS and TS windows with the origin's numbering.
//!
//! Owns: the quinn endpoint (UDP), node authentication ([`auth`]), the origin side
//! ([`origin`]: one QUIC stream per camera per edge, fed from the camera's relay hub in the
//! registry) and the edge side ([`edge`]: one stream per camera however many viewers, fed
//! into a relayed [`crate::registry::Publisher`]). The framing is
//! [`camstream_protocol::relay`]; the segmenter's relay log and follow mode
//! (`hls/segmenter_relay.rs`) make the edge cut parts and segments exactly where the origin did.
//!
//! On-demand pulls ([`Puller`]): the HLS handler asks for a camera placed on another node
//! (after checking the viewer's token); one task per camera pulls it, follows the camera to
//! a new origin and stops when viewers leave.
//!
//! Leaves to others: deciding which node is a camera's origin (placement and epochs in
//! `raft-store/`, read through [`camstream_protocol::OriginLocator`]); the origin side only
//! asks the [`OriginFence`] the binary sets with [`Relay::set_fence`] (when a stream opens and
//! every 200 ms while serving).
//!
//! Stream layout (edge → origin, then origin → edge):
//! `Hello{version, camera, proof}` → `Accept{proof}`, `Init`, `Frame`…, (`Flush`, `Init`,
//! `Frame`…)…, `End{reason}`. The edge may send `End{Idle|Shutdown}` and finish its side.

mod auth;
mod edge;
mod gauge;
mod origin;
mod pull;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use camstream_protocol::OriginFence;
use camstream_protocol::relay::{self, Message, RelayError};
use quinn::{RecvStream, SendStream};

pub use auth::RelayTlsError;
pub use edge::{Edge, PullEnd, PullError};
pub use pull::Puller;

use crate::registry::Registry;
use crate::server::DataPlane;

/// Relay settings (the binary maps `--relay-addr`, `--cluster-secret`, the idle flag here).
#[derive(Clone)]
pub struct RelayConfig {
    /// UDP address of the QUIC endpoint (port 0: any).
    pub bind: SocketAddr,
    /// The cluster secret every node shares. Must not be empty.
    pub secret: Vec<u8>,
    /// An edge closes a relay after this long without a viewer. Default 30 s.
    pub idle_timeout: Duration,
}

impl std::fmt::Debug for RelayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayConfig")
            .field("bind", &self.bind)
            .field("secret", &"<redacted>")
            .field("idle_timeout", &self.idle_timeout)
            .finish()
    }
}

impl RelayConfig {
    /// Settings with the default idle timeout.
    pub fn new(bind: SocketAddr, secret: impl Into<Vec<u8>>) -> Self {
        Self {
            bind,
            secret: secret.into(),
            idle_timeout: Duration::from_secs(30),
        }
    }
}

/// Why the relay could not start.
#[derive(Debug, thiserror::Error)]
pub enum RelayStartError {
    /// An empty cluster secret authenticates nobody.
    #[error("the cluster secret is empty")]
    EmptySecret,
    /// TLS could not be set up.
    #[error(transparent)]
    Tls(#[from] RelayTlsError),
    /// The UDP socket could not be bound.
    #[error("cannot bind the relay endpoint on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// Keep-alives every second; a peer silent for 5 s is gone (a lost origin ends its edges'
/// streams within that).
const KEEP_ALIVE: Duration = Duration::from_secs(1);
const IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// An edge must send its `Hello` within this.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// Concurrent camera streams one edge may hold on one connection.
const MAX_STREAMS: u32 = 10_000;
/// QUIC application close codes.
const CLOSE_UNAUTHORIZED: u32 = 1;
const CLOSE_SHUTDOWN: u32 = 2;

/// The node's relay endpoint: serves as origin ([`Relay::run`]) and pulls as edge
/// ([`Relay::edge`]) on one UDP socket.
pub struct Relay {
    endpoint: quinn::Endpoint,
    ctx: Arc<Context>,
}

/// What both sides share.
struct Context {
    registry: Arc<Registry>,
    secret: auth::Secret,
    idle_timeout: Duration,
    /// Whether this node may serve a camera as origin (a cluster node's lease and the
    /// camera's placement). Unset: every camera ingested here is served.
    fence: OnceLock<Arc<dyn OriginFence>>,
}

impl Relay {
    /// Generates the TLS certificate, binds the UDP socket and turns on relay feeds in the
    /// data plane (cameras claimed from now on keep their GOP for edges). Call inside a
    /// tokio runtime.
    ///
    /// # Errors
    /// [`RelayStartError`] for an empty secret, a TLS failure or a bind failure.
    pub fn bind(config: RelayConfig, data_plane: &DataPlane) -> Result<Self, RelayStartError> {
        if config.secret.is_empty() {
            return Err(RelayStartError::EmptySecret);
        }
        let (mut server, mut client) = auth::configs()?;
        let mut transport = quinn::TransportConfig::default();
        transport
            .keep_alive_interval(Some(KEEP_ALIVE))
            .max_idle_timeout(Some(
                quinn::IdleTimeout::try_from(IDLE_TIMEOUT).expect("5 s fits a QUIC varint"),
            ))
            .max_concurrent_bidi_streams(MAX_STREAMS.into())
            .max_concurrent_uni_streams(0u32.into());
        let transport = Arc::new(transport);
        server.transport_config(transport.clone());
        client.transport_config(transport);
        let mut endpoint = quinn::Endpoint::server(server, config.bind).map_err(|source| {
            RelayStartError::Bind {
                addr: config.bind,
                source,
            }
        })?;
        endpoint.set_default_client_config(client);
        let registry = data_plane.registry().clone();
        registry.enable_relay();
        Ok(Self {
            endpoint,
            ctx: Arc::new(Context {
                registry,
                secret: auth::Secret::new(&config.secret),
                idle_timeout: config.idle_timeout,
                fence: OnceLock::new(),
            }),
        })
    }

    /// The bound UDP address.
    ///
    /// # Panics
    /// If the socket has no address (it was bound, so it has).
    pub fn local_addr(&self) -> SocketAddr {
        self.endpoint
            .local_addr()
            .expect("a bound endpoint has an address")
    }

    /// Makes the origin side serve a camera only while `fence` allows it: checked when an
    /// edge opens a stream and twice a second while it is served; a refusal ends the stream
    /// with `End{Fenced}` and the reason. Call once, before [`Relay::run`]; later calls are
    /// ignored (returns `false`).
    pub fn set_fence(&self, fence: Arc<dyn OriginFence>) -> bool {
        self.ctx.fence.set(fence).is_ok()
    }

    /// The edge side: pulls cameras from other nodes through this endpoint.
    pub fn edge(&self) -> Edge {
        Edge::new(self.endpoint.clone(), self.ctx.clone())
    }

    /// Serves cameras to edges until `shutdown` fires, then closes the endpoint (every relay
    /// stream, both sides, ends).
    ///
    /// # Cancel safety
    /// Not meant to be cancelled: it stops at `shutdown`.
    pub async fn run(self, shutdown: tokio_util::sync::CancellationToken) {
        origin::accept(&self.endpoint, self.ctx.clone(), shutdown).await;
        self.endpoint
            .close(CLOSE_SHUTDOWN.into(), b"node shutting down");
    }
}

/// Reads relay messages off a QUIC receive stream.
struct Reader {
    recv: RecvStream,
    buf: BytesMut,
}

/// Why reading a relay stream stopped.
#[derive(Debug, thiserror::Error)]
enum ReadFailure {
    #[error("{0}")]
    Quic(#[from] quinn::ReadError),
    #[error("bad relay message: {0}")]
    Protocol(#[from] RelayError),
    #[error("the stream ended inside a message")]
    Truncated,
}

impl Reader {
    fn new(recv: RecvStream) -> Self {
        Self {
            recv,
            buf: BytesMut::with_capacity(64 << 10),
        }
    }

    /// The next message; `None` when the peer finished its side cleanly.
    ///
    /// # Cancel safety
    /// Cancel-safe: bytes read stay in the buffer for the next call.
    async fn next(&mut self) -> Result<Option<Message>, ReadFailure> {
        loop {
            if let Some(m) = relay::decode(&mut self.buf)? {
                return Ok(Some(m));
            }
            match self.recv.read_chunk(usize::MAX, true).await? {
                Some(chunk) => self.buf.extend_from_slice(&chunk.bytes),
                None if self.buf.is_empty() => return Ok(None),
                None => return Err(ReadFailure::Truncated),
            }
        }
    }
}

/// Writes one message; a frame's payload goes out as its own buffer (no copy).
async fn write(
    send: &mut SendStream,
    msg: &Message,
    scratch: &mut BytesMut,
) -> Result<(), quinn::WriteError> {
    match msg {
        Message::Frame(f) => {
            relay::encode_frame_header(f, scratch);
            let mut chunks = [scratch.split().freeze(), f.frame.data.clone()];
            send.write_all_chunks(&mut chunks).await
        }
        other => {
            relay::encode(other, scratch);
            let mut chunks = [scratch.split().freeze(), Bytes::new()];
            send.write_all_chunks(&mut chunks[..1]).await
        }
    }
}
