//! Signing keys and the four kinds of signed tokens: access JWTs (HS256, 15 min), publish
//! JWTs (HS256, scoped to one camera, carried as `?token=` in the RTMP URL), playback
//! tokens (a compact HMAC-SHA256 over camera id and expiry, checked on every HLS request, so
//! it must cost microseconds and no I/O) and recording URL tokens (the same compact form over
//! what a download or VOD URL grants). Each kind has its own key derived from one master
//! secret (HMAC with a label), so a token of one kind never verifies as another.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use camstream_protocol::auth::constant_time_eq;

use crate::rbac::Role;

type HmacSha256 = Hmac<Sha256>;

/// Bytes of the truncated playback signature (128 bits).
const PLAYBACK_SIG_LEN: usize = 16;

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Malformed, bad signature, wrong kind or wrong scope.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// Well-formed and signed, but past its expiry.
    #[error("token expired")]
    Expired,
}

/// The claims of an access JWT.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// User id.
    pub sub: String,
    /// Login session id (`session:{sid}` in the cache; logout deletes it).
    pub sid: String,
    /// Role at issue time.
    pub role: Role,
    /// Tenant at issue time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Expiry, Unix seconds.
    pub exp: i64,
    /// Always `access`.
    pub typ: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct PublishClaims {
    sub: String,
    iat: i64,
    exp: i64,
    typ: String,
}

/// The keys, derived from one master secret.
pub struct Keys {
    access_enc: EncodingKey,
    access_dec: DecodingKey,
    publish_enc: EncodingKey,
    publish_dec: DecodingKey,
    playback: [u8; 32],
    recording: [u8; 32],
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(..)")
    }
}

fn derive(master: &[u8], label: &str) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(master).expect("HMAC accepts any key length");
    mac.update(label.as_bytes());
    mac.finalize().into_bytes().into()
}

fn validation() -> Validation {
    let mut v = Validation::new(Algorithm::HS256);
    // One process issues and checks: no clock skew to allow for.
    v.leeway = 0;
    v.required_spec_claims = ["exp", "sub"].iter().map(|s| (*s).to_owned()).collect();
    v
}

impl Keys {
    /// Derives every key from `master` (at least 32 bytes are expected; the caller
    /// generates 32 random bytes when none is configured).
    ///
    /// # Errors
    /// An empty master secret.
    pub fn from_master(master: &[u8]) -> Result<Self, TokenError> {
        if master.is_empty() {
            return Err(TokenError::Invalid("empty master secret".into()));
        }
        let a = derive(master, "camstream access jwt v1");
        let p = derive(master, "camstream publish jwt v1");
        let bad = |e: jsonwebtoken::errors::Error| TokenError::Invalid(e.to_string());
        Ok(Self {
            access_enc: EncodingKey::from_secret(&a).map_err(bad)?,
            access_dec: DecodingKey::from_secret(&a).map_err(bad)?,
            publish_enc: EncodingKey::from_secret(&p).map_err(bad)?,
            publish_dec: DecodingKey::from_secret(&p).map_err(bad)?,
            playback: derive(master, "camstream playback hmac v1"),
            recording: derive(master, "camstream recording url v1"),
        })
    }

    /// Signs access claims.
    ///
    /// # Errors
    /// Serialization failure (never with these claims).
    pub fn issue_access(&self, claims: &AccessClaims) -> Result<String, TokenError> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.access_enc)
            .map_err(|e| TokenError::Invalid(e.to_string()))
    }

    /// Verifies an access JWT.
    ///
    /// # Errors
    /// [`TokenError::Expired`] or [`TokenError::Invalid`].
    pub fn verify_access(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let data = jsonwebtoken::decode::<AccessClaims>(token, &self.access_dec, &validation())
            .map_err(jwt_error)?;
        if data.claims.typ != "access" {
            return Err(TokenError::Invalid("not an access token".into()));
        }
        Ok(data.claims)
    }

    /// Signs a publish token for `camera_id`, valid until `exp` (Unix seconds).
    ///
    /// # Errors
    /// Serialization failure (never).
    pub fn issue_publish(&self, camera_id: &str, iat: i64, exp: i64) -> Result<String, TokenError> {
        let claims = PublishClaims {
            sub: camera_id.to_owned(),
            iat,
            exp,
            typ: "publish".into(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.publish_enc)
            .map_err(|e| TokenError::Invalid(e.to_string()))
    }

    /// Verifies a publish token for `camera_id`.
    ///
    /// # Errors
    /// [`TokenError::Expired`], or [`TokenError::Invalid`] (also for another camera's token).
    pub fn verify_publish(&self, token: &str, camera_id: &str) -> Result<(), TokenError> {
        let data = jsonwebtoken::decode::<PublishClaims>(token, &self.publish_dec, &validation())
            .map_err(jwt_error)?;
        if data.claims.typ != "publish" {
            return Err(TokenError::Invalid("not a publish token".into()));
        }
        if !constant_time_eq(data.claims.sub.as_bytes(), camera_id.as_bytes()) {
            return Err(TokenError::Invalid("token is for another camera".into()));
        }
        Ok(())
    }

    /// A playback token for `camera_id` expiring at `exp` (Unix seconds):
    /// `{exp}.{base64url(hmac[..16])}`.
    pub fn sign_playback(&self, camera_id: &str, exp: i64) -> String {
        let sig = self.playback_sig(camera_id, exp);
        format!("{exp}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    /// Checks a playback token for `camera_id` at `now` (Unix seconds).
    ///
    /// # Errors
    /// [`TokenError::Expired`] or [`TokenError::Invalid`].
    pub fn verify_playback(
        &self,
        token: &str,
        camera_id: &str,
        now: i64,
    ) -> Result<(), TokenError> {
        verify_compact(&self.playback, token, camera_id, now)
    }

    /// A recording URL token granting `scope` (what the URL may do, e.g. one file's
    /// download for one user) until `exp` (Unix seconds): `{exp}.{base64url(hmac[..16])}`.
    pub fn sign_url(&self, scope: &str, exp: i64) -> String {
        let sig = compact_sig(&self.recording, scope, exp);
        format!("{exp}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    /// Checks a recording URL token for `scope` at `now` (Unix seconds).
    ///
    /// # Errors
    /// [`TokenError::Expired`] or [`TokenError::Invalid`] (also for any other scope).
    pub fn verify_url(&self, token: &str, scope: &str, now: i64) -> Result<(), TokenError> {
        verify_compact(&self.recording, token, scope, now)
    }

    fn playback_sig(&self, camera_id: &str, exp: i64) -> [u8; PLAYBACK_SIG_LEN] {
        compact_sig(&self.playback, camera_id, exp)
    }
}

/// HMAC-SHA256 of `subject` and `exp` under `key`, truncated.
fn compact_sig(key: &[u8; 32], subject: &str, exp: i64) -> [u8; PLAYBACK_SIG_LEN] {
    let mut mac = HmacSha256::new_from_slice(key).expect("any key length");
    mac.update(subject.as_bytes());
    mac.update(b"\n");
    mac.update(exp.to_string().as_bytes());
    let full: [u8; 32] = mac.finalize().into_bytes().into();
    let mut out = [0u8; PLAYBACK_SIG_LEN];
    out.copy_from_slice(&full[..PLAYBACK_SIG_LEN]);
    out
}

/// Checks `{exp}.{sig}` for `subject` at `now`; the signature before the expiry, so a
/// forged token never learns whether it was expired.
fn verify_compact(key: &[u8; 32], token: &str, subject: &str, now: i64) -> Result<(), TokenError> {
    let (exp, sig) = token
        .split_once('.')
        .ok_or_else(|| TokenError::Invalid("malformed".into()))?;
    let exp: i64 = exp
        .parse()
        .map_err(|_| TokenError::Invalid("malformed expiry".into()))?;
    // 22 base64 characters encode the 16 signature bytes; anything else is not ours.
    if sig.len() != 22 {
        return Err(TokenError::Invalid("malformed signature".into()));
    }
    let given = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| TokenError::Invalid("malformed signature".into()))?;
    let want = compact_sig(key, subject, exp);
    if !constant_time_eq(&given, &want) {
        return Err(TokenError::Invalid("bad signature".into()));
    }
    if exp <= now {
        return Err(TokenError::Expired);
    }
    Ok(())
}

fn jwt_error(e: jsonwebtoken::errors::Error) -> TokenError {
    match e.kind() {
        ErrorKind::ExpiredSignature => TokenError::Expired,
        _ => TokenError::Invalid(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        Keys::from_master(b"0123456789abcdef0123456789abcdef").unwrap()
    }

    fn claims(exp: i64) -> AccessClaims {
        AccessClaims {
            sub: "u1".into(),
            sid: "s1".into(),
            role: Role::Operator,
            tenant: Some("acme".into()),
            iat: 0,
            exp,
            typ: "access".into(),
        }
    }

    #[test]
    fn access_tokens() {
        let k = keys();
        let now = crate::clock::now_ms() / 1000;
        let t = k.issue_access(&claims(now + 60)).unwrap();
        assert_eq!(k.verify_access(&t).unwrap(), claims(now + 60));
        let old = k.issue_access(&claims(now - 10)).unwrap();
        assert_eq!(k.verify_access(&old), Err(TokenError::Expired));
        assert!(matches!(
            k.verify_access("a.b.c"),
            Err(TokenError::Invalid(_))
        ));
        let other = Keys::from_master(b"another master secret, 32 bytes!").unwrap();
        assert!(matches!(
            other.verify_access(&t),
            Err(TokenError::Invalid(_))
        ));
        // A publish token is signed with another key: never an access token.
        let p = k.issue_publish("u1", now, now + 60).unwrap();
        assert!(matches!(k.verify_access(&p), Err(TokenError::Invalid(_))));
    }

    #[test]
    fn publish_tokens_are_scoped() {
        let k = keys();
        let now = crate::clock::now_ms() / 1000;
        let t = k.issue_publish("cam-a", now, now + 60).unwrap();
        assert_eq!(k.verify_publish(&t, "cam-a"), Ok(()));
        assert!(matches!(
            k.verify_publish(&t, "cam-b"),
            Err(TokenError::Invalid(_))
        ));
        let old = k.issue_publish("cam-a", now - 20, now - 10).unwrap();
        assert_eq!(k.verify_publish(&old, "cam-a"), Err(TokenError::Expired));
    }

    #[test]
    fn recording_url_tokens() {
        let k = keys();
        let t = k.sign_url("dl\nrec-1\nuser-1", 1000);
        assert_eq!(k.verify_url(&t, "dl\nrec-1\nuser-1", 999), Ok(()));
        assert_eq!(
            k.verify_url(&t, "dl\nrec-1\nuser-1", 1000),
            Err(TokenError::Expired)
        );
        assert!(matches!(
            k.verify_url(&t, "dl\nrec-2\nuser-1", 999),
            Err(TokenError::Invalid(_))
        ));
        // A playback token for the same text is signed with another key.
        let p = k.sign_playback("dl\nrec-1\nuser-1", 1000);
        assert!(matches!(
            k.verify_url(&p, "dl\nrec-1\nuser-1", 999),
            Err(TokenError::Invalid(_))
        ));
    }

    #[test]
    fn playback_tokens() {
        let k = keys();
        let t = k.sign_playback("cam-a", 1000);
        assert_eq!(k.verify_playback(&t, "cam-a", 999), Ok(()));
        assert_eq!(
            k.verify_playback(&t, "cam-a", 1000),
            Err(TokenError::Expired)
        );
        assert!(matches!(
            k.verify_playback(&t, "cam-b", 999),
            Err(TokenError::Invalid(_))
        ));
        // Moving the expiry breaks the signature.
        let forged = t.replacen("1000", "9999", 1);
        assert!(matches!(
            k.verify_playback(&forged, "cam-a", 999),
            Err(TokenError::Invalid(_))
        ));
        for junk in [
            "",
            ".",
            "abc",
            "1000.",
            "1000.!!!!!!!!!!!!!!!!!!!!!!",
            "x.AAAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert!(
                matches!(
                    k.verify_playback(junk, "cam-a", 0),
                    Err(TokenError::Invalid(_))
                ),
                "{junk}"
            );
        }
    }
}
