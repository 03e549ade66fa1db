//! Serving one accepted HTTP(S) connection under the edge's limits: hyper's auto
//! (HTTP/1.1 + h2) connection driven next to the connection's clocks, cut on a timeout.
//!
//! Owns: hyper's per-connection settings, the TLS handshake deadline, the timeout metric
//! and log. Leaves admission to `limits::Gate` (called by the accept loop in `server`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::conn::{Check, Conn, Timeout};
use super::limits::HttpLimits;
use super::watch::{Reset, Track, WatchedIo};

/// Concurrent h2 streams per connection. RFC 9113 §6.5.2 recommends no less than 100;
/// hyper's default is 200. Each stream may hold a response, so this bounds what one
/// connection pins.
const MAX_H2_STREAMS: u32 = 100;

/// How long in-flight requests get to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Serves an accepted socket until it closes, is cut by a timeout or `shutdown` fires.
/// With `tls`, the handshake must finish within the header timeout.
pub(crate) async fn serve_socket(
    sock: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    router: Router,
    limits: &HttpLimits,
    shutdown: CancellationToken,
) {
    let conn = Arc::new(Conn::new(limits, Instant::now()));
    let (io, reset) = WatchedIo::new(sock, conn.clone(), tls.is_none());
    match tls {
        None => drive(io, peer, router, conn, reset, shutdown).await,
        Some(acceptor) => {
            match tokio::time::timeout(limits.header_timeout, acceptor.accept(io)).await {
                Ok(Ok(s)) => {
                    if s.get_ref().1.alpn_protocol() == Some(b"h2") {
                        conn.set_h2();
                    }
                    drive(s, peer, router, conn, reset, shutdown).await;
                }
                Ok(Err(e)) => debug!(%peer, error = %e, "https TLS handshake failed"),
                Err(_) => {
                    reset.reset();
                    count(&peer, Timeout::Header);
                }
            }
        }
    }
}

fn count(peer: &SocketAddr, t: Timeout) {
    metrics::counter!("camstream_http_timeouts_total", "kind" => t.label()).increment(1);
    debug!(%peer, timeout = t.label(), "http connection closed on timeout");
}

async fn drive<S>(
    io: S,
    peer: SocketAddr,
    router: Router,
    conn: Arc<Conn>,
    reset: Reset,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(Track::new(router, conn.clone(), peer));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Our own clocks replace hyper's (see `conn`): its header timer would also cut idle
    // keep-alive connections.
    builder.http1().header_read_timeout(None);
    builder.http2().max_concurrent_streams(MAX_H2_STREAMS);
    let serving = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(serving);
    let mut at = Instant::now();
    loop {
        tokio::select! {
            r = serving.as_mut() => {
                if let Err(e) = r {
                    debug!(%peer, error = %e, "http connection ended with an error");
                }
                return;
            }
            () = tokio::time::sleep_until(at) => match conn.check(Instant::now()) {
                Check::Cut(t) => {
                    reset.reset();
                    count(&peer, t);
                    // Dropping the connection drops its buffers and response bodies.
                    return;
                }
                Check::At(next) => at = next,
            },
            () = shutdown.cancelled() => {
                serving.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(SHUTDOWN_GRACE, serving).await;
                return;
            }
        }
    }
}
