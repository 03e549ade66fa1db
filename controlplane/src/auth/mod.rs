//! Authentication primitives: passwords, random secrets, signing keys, and the data-plane
//! contracts implemented over the store ([`StoreAuthorizer`] for publish,
//! [`SignedPlayback`] for playback). Who may call which HTTP route is decided in
//! `api::guard`, not here.

pub mod keys;
pub mod password;
pub mod secret;

use std::sync::Arc;

use camstream_protocol::auth::{
    Authorizer, BoxFuture, CameraId, Denied, PlaybackDenied, PlaybackGuard, PublishRequest,
};

use crate::store::Store;
use keys::{Keys, TokenError};

/// Publish authorization over the store: stream key → camera (found by key prefix, digest
/// compared in constant time), camera must be active, publish token checked when given and
/// demanded when `require_token`. Refusals are logged with their reason.
pub struct StoreAuthorizer {
    store: Arc<dyn Store>,
    keys: Arc<Keys>,
    app: String,
    require_token: bool,
}

impl StoreAuthorizer {
    /// An authorizer accepting the RTMP application `app` (`live`).
    pub fn new(store: Arc<dyn Store>, keys: Arc<Keys>, app: String, require_token: bool) -> Self {
        Self {
            store,
            keys,
            app,
            require_token,
        }
    }

    async fn decide(&self, req: &PublishRequest<'_>) -> Result<CameraId, Denied> {
        if req.app != self.app {
            return Err(Denied::UnknownApp(req.app.to_owned()));
        }
        let prefix =
            secret::prefix_of(secret::Kind::StreamKey, req.stream_key).ok_or(Denied::UnknownKey)?;
        let camera = self
            .store
            .get_camera_by_key_prefix(prefix)
            .await
            .map_err(|e| Denied::Unavailable(e.to_string()))?
            .ok_or(Denied::UnknownKey)?;
        if !secret::matches(req.stream_key, &camera.rtmp_key_hash) {
            return Err(Denied::UnknownKey);
        }
        if !camera.is_active {
            return Err(Denied::Inactive(camera.id));
        }
        match req.token {
            Some(t) => self
                .keys
                .verify_publish(t, &camera.id)
                .map_err(|e| Denied::BadToken(e.to_string()))?,
            None if self.require_token => {
                return Err(Denied::BadToken("publish token required".into()));
            }
            None => {}
        }
        Ok(CameraId::from(camera.id.as_str()))
    }
}

impl Authorizer for StoreAuthorizer {
    fn authorize<'a>(&'a self, req: PublishRequest<'a>) -> BoxFuture<'a, Result<CameraId, Denied>> {
        Box::pin(async move {
            let result = self.decide(&req).await;
            match &result {
                Ok(camera) => {
                    tracing::info!(peer = %req.peer, camera_id = %camera, tls = req.tls, "publish authorized")
                }
                Err(reason) => {
                    tracing::warn!(peer = %req.peer, tls = req.tls, %reason, "publish refused")
                }
            }
            result
        })
    }
}

/// Playback authorization: an HMAC-signed token scoped to one camera with an expiry, or
/// anything when playback is public. No I/O per check.
#[derive(Debug)]
pub struct SignedPlayback {
    keys: Arc<Keys>,
    public: bool,
}

impl SignedPlayback {
    /// A guard; with `public` every request passes.
    pub fn new(keys: Arc<Keys>, public: bool) -> Self {
        Self { keys, public }
    }
}

impl PlaybackGuard for SignedPlayback {
    fn check(&self, camera_id: &str, token: Option<&str>) -> Result<(), PlaybackDenied> {
        if self.public {
            return Ok(());
        }
        let token = token.ok_or(PlaybackDenied::Missing)?;
        let now = crate::clock::now_ms() / 1000;
        self.keys
            .verify_playback(token, camera_id, now)
            .map_err(|e| match e {
                TokenError::Expired => PlaybackDenied::Invalid("expired".into()),
                TokenError::Invalid(why) => PlaybackDenied::Invalid(why),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn playback_guard() {
        let keys = Arc::new(Keys::from_master(&[7u8; 32]).unwrap());
        let guard = SignedPlayback::new(keys.clone(), false);
        let exp = crate::clock::now_ms() / 1000 + 60;
        let t = keys.sign_playback("cam", exp);
        assert_eq!(guard.check("cam", Some(&t)), Ok(()));
        assert_eq!(guard.check("cam", None), Err(PlaybackDenied::Missing));
        assert!(matches!(
            guard.check("other", Some(&t)),
            Err(PlaybackDenied::Invalid(_))
        ));
        let old = keys.sign_playback("cam", exp - 120);
        assert_eq!(
            guard.check("cam", Some(&old)),
            Err(PlaybackDenied::Invalid("expired".into()))
        );
        let public = SignedPlayback::new(keys, true);
        assert_eq!(public.check("cam", None), Ok(()));
    }
}
