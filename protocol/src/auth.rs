//! Who may publish and who may play: the contracts between the data plane, which asks,
//! and whatever source of truth answers (a development mode, a config file, the control
//! plane's store). The data plane holds `Arc<dyn Authorizer>` / `Arc<dyn PlaybackGuard>` and
//! never knows which one it got.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

/// A camera's identifier as it appears in playback URLs (`/hls/{camera_id}/...`).
pub type CameraId = std::sync::Arc<str>;

/// What an encoder asked for.
#[derive(Debug, Clone)]
pub struct PublishRequest<'a> {
    /// The RTMP application (`live` in `rtmp://host/live/KEY`).
    pub app: &'a str,
    /// The stream key, without any `?query`.
    pub stream_key: &'a str,
    /// The `token` query parameter of the stream name (`KEY?token=...`), if any.
    pub token: Option<&'a str>,
    /// The encoder's address.
    pub peer: SocketAddr,
    /// Whether the connection is RTMPS.
    pub tls: bool,
}

/// Why a publish request was refused. The text goes to the log, never to the encoder.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Denied {
    /// No camera has this stream key.
    #[error("unknown stream key")]
    UnknownKey,
    /// The camera exists but is disabled.
    #[error("camera {0} is not active")]
    Inactive(String),
    /// The publish token is missing, expired or does not verify.
    #[error("publish token rejected: {0}")]
    BadToken(String),
    /// Only this RTMP application is served.
    #[error("unknown application {0:?}")]
    UnknownApp(String),
    /// The source of truth could not answer (database down, ...).
    #[error("authorization unavailable: {0}")]
    Unavailable(String),
    /// This cluster node may not ingest now (its lease lapsed: cut off from the majority,
    /// or still joining); the encoder should publish to another node.
    #[error("this node takes no publishers now: {0}")]
    Fenced(String),
}

/// A boxed future, as [`Authorizer`] returns (one allocation per publish request).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Decides whether a publish request may go on, and as which camera.
pub trait Authorizer: Send + Sync + 'static {
    /// Answers one publish request.
    ///
    /// # Errors
    /// [`Denied`] with the reason the ingest logs.
    fn authorize<'a>(&'a self, req: PublishRequest<'a>) -> BoxFuture<'a, Result<CameraId, Denied>>;
}

/// Decides whether an HTTP playback request may be served. Called for every playlist,
/// segment and part request, so implementations must be cheap: no database or network
/// round trip (verify an HMAC, compare an expiry).
pub trait PlaybackGuard: Send + Sync + 'static {
    /// Checks the `token` query parameter of a request for `camera_id`.
    ///
    /// # Errors
    /// [`PlaybackDenied`] with the reason; the HTTP layer answers 401 (missing) or 403.
    fn check(&self, camera_id: &str, token: Option<&str>) -> Result<(), PlaybackDenied>;
}

/// Why a playback request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlaybackDenied {
    /// No token was given and playback is not public.
    #[error("playback token missing")]
    Missing,
    /// The token does not verify, is for another camera, or expired.
    #[error("playback token rejected: {0}")]
    Invalid(String),
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

/// Camera ids appear in URLs and file names: 1–128 characters of `[A-Za-z0-9_.-]`, not
/// starting with a dot.
pub fn is_valid_camera_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camera_ids() {
        assert!(is_valid_camera_id("cam_01.a-b"));
        assert!(!is_valid_camera_id(""));
        assert!(!is_valid_camera_id(".hidden"));
        assert!(!is_valid_camera_id("a/b"));
        assert!(!is_valid_camera_id(&"x".repeat(129)));
    }

    #[test]
    fn constant_time_compare() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
