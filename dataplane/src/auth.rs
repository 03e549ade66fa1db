//! The data plane's own publish and playback policies.
//!
//! The ingest asks an [`Authorizer`] (trait in `camstream_protocol::auth`) once per publish
//! request; the answer maps a stream key to the camera it publishes. One implementation per
//! source of truth: [`AllowAnyKey`] (development and benchmarks), [`StaticKeys`] (a key →
//! camera table from the config file), and the control plane's store, which implements the
//! trait in its own crate. Playback is checked by a [`PlaybackGuard`] per request.

use std::collections::HashMap;

pub use camstream_protocol::auth::{
    Authorizer, BoxFuture, CameraId, Denied, PlaybackDenied, PlaybackGuard, PublishRequest,
    constant_time_eq, is_valid_camera_id,
};

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

/// Asks several authorizers in order; the first that accepts wins. When all refuse, the
/// last refusal is returned (the most authoritative source goes last).
pub struct FirstOf {
    sources: Vec<std::sync::Arc<dyn Authorizer>>,
}

impl FirstOf {
    /// Builds the chain.
    pub fn new(sources: Vec<std::sync::Arc<dyn Authorizer>>) -> Self {
        Self { sources }
    }
}

impl Authorizer for FirstOf {
    fn authorize<'a>(&'a self, req: PublishRequest<'a>) -> BoxFuture<'a, Result<CameraId, Denied>> {
        Box::pin(async move {
            let mut last = Denied::UnknownKey;
            for source in &self.sources {
                match source.authorize(req.clone()).await {
                    Ok(camera) => return Ok(camera),
                    Err(e) => last = e,
                }
            }
            Err(last)
        })
    }
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
}
