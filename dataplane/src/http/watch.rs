//! The probes that feed a connection's clocks ([`Conn`]): a socket wrapper that sees reads
//! and blocked writes, a service wrapper that sees requests start, a request body wrapper
//! that sees the handler wait for the client, and a response body wrapper that sees
//! whether hyper still asks a response for bytes.
//!
//! Owns: translating I/O and hyper's body polling into [`Conn`] events, the request
//! extensions every handler on the edge gets (`ConnectInfo`, [`ReloadSlots`]), resetting a
//! cut connection. Leaves the decisions to `conn`.

use std::convert::Infallible;
use std::future::Future;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper::{Request, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tower::{Service, ServiceExt};

use super::conn::{ActiveGuard, BodyClock, Conn, UploadClock};

/// The blocking-reload slots of the connection a request came on (a request extension).
#[derive(Debug, Clone)]
pub(crate) struct ReloadSlots(pub(crate) Arc<Semaphore>);

/// A client socket that reports to its connection's clocks. When the connection is cut
/// ([`Reset::reset`]) the socket is closed with a reset, so the kernel drops what it still
/// buffers for the client at once instead of retrying it for minutes.
#[derive(Debug)]
pub(crate) struct WatchedIo {
    io: TcpStream,
    conn: Arc<Conn>,
    reset: Arc<AtomicBool>,
    /// Whether the first bytes are still to be looked at (h2 prior-knowledge preface).
    sniff: bool,
}

/// Asks a [`WatchedIo`] to close with a reset when it is dropped.
#[derive(Debug, Clone)]
pub(crate) struct Reset(Arc<AtomicBool>);

impl Reset {
    pub(crate) fn reset(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl WatchedIo {
    /// Wraps `io`; `sniff` for plain-text listeners, where h2 comes by its preface.
    pub(crate) fn new(io: TcpStream, conn: Arc<Conn>, sniff: bool) -> (Self, Reset) {
        let reset = Arc::new(AtomicBool::new(false));
        let handle = Reset(reset.clone());
        (
            Self {
                io,
                conn,
                reset,
                sniff,
            },
            handle,
        )
    }

    fn wrote(&self, r: &Poll<io::Result<usize>>, offered: usize) {
        match r {
            Poll::Pending => self.conn.on_write_blocked(Instant::now()),
            Poll::Ready(Ok(n)) => self.conn.on_written(*n, *n >= offered),
            Poll::Ready(Err(_)) => {}
        }
    }
}

impl Drop for WatchedIo {
    fn drop(&mut self) {
        if self.reset.load(Ordering::Relaxed) {
            let _ = self.io.set_zero_linger();
        }
    }
}

impl AsyncRead for WatchedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            let got = &buf.filled()[before..];
            if !got.is_empty() {
                if self.sniff {
                    self.sniff = false;
                    // RFC 9113 §3.4: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".
                    if got.starts_with(b"PRI ") {
                        self.conn.set_h2();
                    }
                }
                self.conn.on_read(Instant::now());
            }
        }
        r
    }
}

impl AsyncWrite for WatchedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        self.wrote(&r, buf.len());
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let offered = bufs.iter().map(|b| b.len()).sum();
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.wrote(&r, offered);
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_flush(cx);
        if r.is_pending() {
            self.conn.on_write_blocked(Instant::now());
        }
        r
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// The edge's service: the router, with each request counted on its connection and each
/// response body watched.
#[derive(Clone)]
pub(crate) struct Track {
    router: Router,
    conn: Arc<Conn>,
    peer: SocketAddr,
}

impl Track {
    pub(crate) fn new(router: Router, conn: Arc<Conn>, peer: SocketAddr) -> Self {
        Self { router, conn, peer }
    }
}

impl Service<Request<Incoming>> for Track {
    type Response = Response<WatchedBody>;
    type Error = Infallible;
    type Future =
        Pin<Box<dyn Future<Output = Result<Response<WatchedBody>, Infallible>> + Send + 'static>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<Incoming>) -> Self::Future {
        let guard = self.conn.begin_request();
        req.extensions_mut().insert(ConnectInfo(self.peer));
        req.extensions_mut()
            .insert(ReloadSlots(self.conn.reloads.clone()));
        let router = self.router.clone();
        // Requests without a body (every HLS GET) pass as they are.
        let req = if http_body::Body::is_end_stream(req.body()) {
            req.map(Body::new)
        } else {
            let clock = self.conn.watch_upload();
            let conn = self.conn.clone();
            req.map(|inner| Body::new(WatchedUpload { inner, clock, conn }))
        };
        Box::pin(async move {
            let response = router.oneshot(req).await?;
            let clock = guard.conn().watch_body(Instant::now());
            Ok(response.map(|inner| WatchedBody {
                inner,
                clock,
                guard,
            }))
        })
    }
}

/// A request body that tells its clock when the handler waits for the client.
struct WatchedUpload {
    inner: Incoming,
    clock: Arc<UploadClock>,
    conn: Arc<Conn>,
}

impl http_body::Body for WatchedUpload {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        match &r {
            Poll::Pending => self.clock.waiting(&self.conn, Instant::now()),
            Poll::Ready(Some(Ok(frame))) => {
                let n = frame.data_ref().map_or(0, Bytes::len);
                let done = self.inner.is_end_stream();
                self.clock.got(n, done);
            }
            Poll::Ready(_) => self.clock.got(0, true),
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that tells its clock whether hyper keeps asking for bytes. Holds the
/// request's [`ActiveGuard`]: the request ends when hyper drops the body.
pub(crate) struct WatchedBody {
    inner: Body,
    clock: Arc<BodyClock>,
    guard: ActiveGuard,
}

impl http_body::Body for WatchedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        match &r {
            Poll::Ready(Some(Ok(_))) => self.clock.gave(self.guard.conn(), Instant::now()),
            _ => self.clock.rests(),
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
