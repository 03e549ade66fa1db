//! Who may publish: the [`Authorizer`] trait and its built-in implementations.
//!
//! The ingest asks an [`Authorizer`] once per publish request; the answer maps a stream key
//! to the camera it publishes. One implementation per source of truth: [`AllowAnyKey`]
//! (development and benchmarks), [`StaticKeys`] (a key → camera table from the config file),
//! and the control plane's store, which implements the trait in its own crate.

use std::collections::HashMap;
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

/// Accepts every key and uses the key itself as the camera id. For development and
/// benchmarks only: the server logs a warning when it is on.
#[derive(Debug, Default, Clone)]
pub struct AllowAnyKey;

impl Authorizer for AllowAnyKey {
    fn authorize<'a>(&'a self, req: PublishRequest<'a>) -> BoxFuture<'a, Result<CameraId, Denied>> {
        let result = if is_valid_camera_id(req.stream_key) {
            Ok(CameraId::from(req.stream_key))
        } else {
            Err(Denied::UnknownKey)
        };
        Box::pin(std::future::ready(result))
    }
}

/// A fixed key → camera table (the `[streams]` table of the config file). Keys are
/// compared in constant time.
#[derive(Debug, Default, Clone)]
pub struct StaticKeys {
    keys: Vec<(Vec<u8>, CameraId)>,
}

impl StaticKeys {
    /// Builds the table from `key → camera id` pairs.
    pub fn new(map: &HashMap<String, String>) -> Self {
        Self {
            keys: map
                .iter()
                .map(|(k, c)| (k.as_bytes().to_vec(), CameraId::from(c.as_str())))
                .collect(),
        }
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl Authorizer for StaticKeys {
    fn authorize<'a>(&'a self, req: PublishRequest<'a>) -> BoxFuture<'a, Result<CameraId, Denied>> {
        // Scan every entry whatever matches, so timing says nothing about which key is close.
        let mut found = None;
        for (key, camera) in &self.keys {
            if constant_time_eq(key, req.stream_key.as_bytes()) {
                found = Some(camera.clone());
            }
        }
        Box::pin(std::future::ready(found.ok_or(Denied::UnknownKey)))
    }
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

/// Public playback: every request is allowed (`--public-playback`, implied by
/// `--allow-any-key`).
#[derive(Debug, Default, Clone)]
pub struct PublicPlayback;

impl PlaybackGuard for PublicPlayback {
    fn check(&self, _camera_id: &str, _token: Option<&str>) -> Result<(), PlaybackDenied> {
        Ok(())
    }
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

    fn req(key: &str) -> PublishRequest<'_> {
        PublishRequest {
            app: "live",
            stream_key: key,
            token: None,
            peer: "127.0.0.1:5000".parse().unwrap(),
            tls: false,
        }
    }

    fn block<T>(f: BoxFuture<'_, T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn allow_any_key_uses_key_as_camera() {
        assert_eq!(
            &*block(AllowAnyKey.authorize(req("cam-1"))).unwrap(),
            "cam-1"
        );
        assert_eq!(
            block(AllowAnyKey.authorize(req("../etc"))),
            Err(Denied::UnknownKey)
        );
    }

    #[test]
    fn static_keys_refuse_unknown() {
        let mut m = HashMap::new();
        m.insert("secret".to_string(), "front-door".to_string());
        let a = StaticKeys::new(&m);
        assert_eq!(&*block(a.authorize(req("secret"))).unwrap(), "front-door");
        assert_eq!(block(a.authorize(req("secreT"))), Err(Denied::UnknownKey));
        assert_eq!(block(a.authorize(req(""))), Err(Denied::UnknownKey));
    }

    #[test]
    fn camera_ids() {
        assert!(is_valid_camera_id("cam_01.a-b"));
        assert!(!is_valid_camera_id(""));
        assert!(!is_valid_camera_id(".hidden"));
        assert!(!is_valid_camera_id("a/b"));
        assert!(!is_valid_camera_id(&"x".repeat(129)));
    }
}
