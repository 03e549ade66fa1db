//! Node-to-node request authentication: every request between cluster nodes (raft RPC,
//! forwarded proposals, joins) carries an HMAC-SHA256 signature made with a key derived from
//! the cluster secret. Sans-IO: the caller passes the clock, so the window and replay rules
//! are tested without sockets.
//!
//! Signed text: `METHOD \n PATH \n NODE \n TIME_MS \n NONCE \n hex(SHA-256(body)) \n`, sent as
//! the headers [`NODE_HEADER`], [`TIME_HEADER`], [`NONCE_HEADER`] (random per request, so two
//! identical requests in one millisecond are not taken for a replay) and
//! [`SIGNATURE_HEADER`] (hex). A request is accepted
//! when its time is within [`WINDOW_MS`] of the receiver's clock and its signature was not
//! seen before inside that window (so a captured request cannot be replayed, even inside the
//! window). The cluster secret itself never travels.

use std::collections::HashMap;
use std::sync::Mutex;

use camstream_protocol::auth::constant_time_eq;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// Header naming the sending node's id.
pub(crate) const NODE_HEADER: &str = "x-camstream-node";
/// Header with the sender's wall clock, UNIX milliseconds.
pub(crate) const TIME_HEADER: &str = "x-camstream-time";
/// Header with a random number, new for every request.
pub(crate) const NONCE_HEADER: &str = "x-camstream-nonce";
/// Header with the hex HMAC-SHA256 signature.
pub(crate) const SIGNATURE_HEADER: &str = "x-camstream-signature";
/// How far a request's time may be from the receiver's clock (either way). Clocks of the
/// nodes must agree this well (NTP does far better).
pub(crate) const WINDOW_MS: u64 = 30_000;

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AuthError {
    /// A header is missing.
    #[error("missing {0} header")]
    Missing(&'static str),
    /// A header does not parse.
    #[error("malformed {0} header")]
    Malformed(&'static str),
    /// The time is outside the window.
    #[error("request time {time_ms} is {skew_ms} ms away from now (window {WINDOW_MS} ms)")]
    Stale {
        /// The request's time.
        time_ms: u64,
        /// Distance from the receiver's clock.
        skew_ms: u64,
    },
    /// The signature does not match (wrong secret, or the request was changed).
    #[error("signature does not match")]
    BadSignature,
    /// The same signed request was seen before.
    #[error("replayed request")]
    Replayed,
}

/// The signing headers of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Signed {
    /// [`NODE_HEADER`] value.
    pub(crate) node: String,
    /// [`TIME_HEADER`] value.
    pub(crate) time: String,
    /// [`NONCE_HEADER`] value.
    pub(crate) nonce: String,
    /// [`SIGNATURE_HEADER`] value.
    pub(crate) signature: String,
}

/// The signing headers as a request presented them (any may be missing).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Presented<'a> {
    /// [`NODE_HEADER`].
    pub(crate) node: Option<&'a str>,
    /// [`TIME_HEADER`].
    pub(crate) time: Option<&'a str>,
    /// [`NONCE_HEADER`].
    pub(crate) nonce: Option<&'a str>,
    /// [`SIGNATURE_HEADER`].
    pub(crate) signature: Option<&'a str>,
}

impl<'a> Presented<'a> {
    /// Reads the three headers (a value that is not text counts as missing).
    pub(crate) fn from_headers(h: &'a axum::http::HeaderMap) -> Self {
        let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok());
        Self {
            node: get(NODE_HEADER),
            time: get(TIME_HEADER),
            nonce: get(NONCE_HEADER),
            signature: get(SIGNATURE_HEADER),
        }
    }
}

/// The key derived from the cluster secret, and the signatures seen recently.
pub(crate) struct ClusterKey {
    key: [u8; 32],
    seen: Mutex<HashMap<[u8; 32], u64>>,
}

impl std::fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterKey(..)")
    }
}

impl ClusterKey {
    /// Derives the request-signing key from the cluster secret (HMAC with a fixed label, so
    /// the secret is never used directly and other keys can be derived from it later).
    pub(crate) fn derive(secret: &str) -> Self {
        let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("any key length");
        mac.update(b"camstream cluster rpc v1");
        Self {
            key: mac.finalize().into_bytes().into(),
            seen: Mutex::new(HashMap::new()),
        }
    }

    fn mac(&self, method: &str, path: &str, head: [&str; 3], body: &[u8]) -> [u8; 32] {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("any key length");
        let body_hash = hex(&Sha256::digest(body));
        let [node, time, nonce] = head;
        for part in [method, path, node, time, nonce, body_hash.as_str()] {
            mac.update(part.as_bytes());
            mac.update(b"\n");
        }
        mac.finalize().into_bytes().into()
    }

    /// Signs a request from `node` at `now_ms`.
    pub(crate) fn sign(
        &self,
        method: &str,
        path: &str,
        node: u64,
        now_ms: u64,
        body: &[u8],
    ) -> Signed {
        let node = node.to_string();
        let time = now_ms.to_string();
        let nonce = rand::random::<u64>().to_string();
        let signature = hex(&self.mac(method, path, [&node, &time, &nonce], body));
        Signed {
            node,
            time,
            nonce,
            signature,
        }
    }

    /// Checks a request received at `now_ms`; returns the sender's node id.
    ///
    /// # Errors
    /// [`AuthError`]: missing or malformed headers, a time outside the window, a signature
    /// that does not match, or one already seen.
    pub(crate) fn verify(
        &self,
        method: &str,
        path: &str,
        presented: Presented<'_>,
        body: &[u8],
        now_ms: u64,
    ) -> Result<u64, AuthError> {
        let Presented {
            node,
            time,
            nonce,
            signature,
        } = presented;
        let node = node.ok_or(AuthError::Missing(NODE_HEADER))?;
        let time = time.ok_or(AuthError::Missing(TIME_HEADER))?;
        let nonce = nonce.ok_or(AuthError::Missing(NONCE_HEADER))?;
        let signature = signature.ok_or(AuthError::Missing(SIGNATURE_HEADER))?;
        let node_id: u64 = node
            .parse()
            .map_err(|_| AuthError::Malformed(NODE_HEADER))?;
        let time_ms: u64 = time
            .parse()
            .map_err(|_| AuthError::Malformed(TIME_HEADER))?;
        let given = unhex(signature).ok_or(AuthError::Malformed(SIGNATURE_HEADER))?;
        let want = self.mac(method, path, [node, time, nonce], body);
        if !constant_time_eq(&given, &want) {
            return Err(AuthError::BadSignature);
        }
        let skew_ms = now_ms.abs_diff(time_ms);
        if skew_ms > WINDOW_MS {
            return Err(AuthError::Stale { time_ms, skew_ms });
        }
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.retain(|_, t| now_ms.abs_diff(*t) <= WINDOW_MS);
        if seen.insert(want, time_ms).is_some() {
            return Err(AuthError::Replayed);
        }
        Ok(node_id)
    }
}

fn hex(b: &[u8]) -> String {
    use std::fmt::Write;
    b.iter()
        .fold(String::with_capacity(b.len() * 2), |mut s, x| {
            let _ = write!(s, "{x:02x}");
            s
        })
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000_000;

    fn presented(s: &Signed) -> Presented<'_> {
        Presented {
            node: Some(&s.node),
            time: Some(&s.time),
            nonce: Some(&s.nonce),
            signature: Some(&s.signature),
        }
    }

    fn raw<'a>(node: Option<&'a str>, time: &'a str, sig: &'a str) -> Presented<'a> {
        Presented {
            node,
            time: Some(time),
            nonce: Some("1"),
            signature: Some(sig),
        }
    }

    fn check(key: &ClusterKey, s: &Signed, body: &[u8], now: u64) -> Result<u64, AuthError> {
        key.verify("POST", "/raft/append", presented(s), body, now)
    }

    #[test]
    fn a_signed_request_passes_once() {
        let key = ClusterKey::derive("a shared cluster secret");
        let s = key.sign("POST", "/raft/append", 7, NOW, b"{\"x\":1}");
        assert_eq!(check(&key, &s, b"{\"x\":1}", NOW + 1_000), Ok(7));
        assert_eq!(
            check(&key, &s, b"{\"x\":1}", NOW + 2_000),
            Err(AuthError::Replayed)
        );
        // The same body signed again (even in the same millisecond) is a new request.
        let s2 = key.sign("POST", "/raft/append", 7, NOW, b"{\"x\":1}");
        assert_eq!(check(&key, &s2, b"{\"x\":1}", NOW + 2_000), Ok(7));
    }

    #[test]
    fn a_wrong_secret_is_refused() {
        let ours = ClusterKey::derive("a shared cluster secret");
        let theirs = ClusterKey::derive("another cluster secret!");
        let s = theirs.sign("POST", "/raft/append", 7, NOW, b"{}");
        assert_eq!(check(&ours, &s, b"{}", NOW), Err(AuthError::BadSignature));
    }

    #[test]
    fn a_stale_or_future_time_is_refused() {
        let key = ClusterKey::derive("a shared cluster secret");
        let old = key.sign("POST", "/raft/append", 7, NOW - WINDOW_MS - 1, b"{}");
        assert_eq!(
            check(&key, &old, b"{}", NOW),
            Err(AuthError::Stale {
                time_ms: NOW - WINDOW_MS - 1,
                skew_ms: WINDOW_MS + 1
            })
        );
        let future = key.sign("POST", "/raft/append", 7, NOW + WINDOW_MS + 5, b"{}");
        assert!(matches!(
            check(&key, &future, b"{}", NOW),
            Err(AuthError::Stale { .. })
        ));
        let edge = key.sign("POST", "/raft/append", 7, NOW - WINDOW_MS, b"{}");
        assert_eq!(check(&key, &edge, b"{}", NOW), Ok(7));
    }

    #[test]
    fn a_tampered_request_is_refused() {
        let key = ClusterKey::derive("a shared cluster secret");
        let s = key.sign("POST", "/raft/append", 7, NOW, b"{\"term\":1}");
        assert_eq!(
            check(&key, &s, b"{\"term\":9}", NOW),
            Err(AuthError::BadSignature)
        );
        let other_node = Signed {
            node: "8".into(),
            ..s.clone()
        };
        assert_eq!(
            check(&key, &other_node, b"{\"term\":1}", NOW),
            Err(AuthError::BadSignature)
        );
        let other_path = key.verify("POST", "/raft/vote", presented(&s), b"{\"term\":1}", NOW);
        assert_eq!(other_path, Err(AuthError::BadSignature));
        let moved_time = Signed {
            time: (NOW + 1).to_string(),
            ..s.clone()
        };
        assert_eq!(
            check(&key, &moved_time, b"{\"term\":1}", NOW),
            Err(AuthError::BadSignature)
        );
        let other_nonce = Signed {
            nonce: "12345".into(),
            ..s.clone()
        };
        assert_eq!(
            check(&key, &other_nonce, b"{\"term\":1}", NOW),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn missing_or_malformed_headers_are_refused() {
        let key = ClusterKey::derive("a shared cluster secret");
        assert_eq!(
            key.verify("POST", "/p", raw(None, "1", "00"), b"", NOW),
            Err(AuthError::Missing(NODE_HEADER))
        );
        assert_eq!(
            key.verify("POST", "/p", raw(Some("x"), "1", "00"), b"", NOW),
            Err(AuthError::Malformed(NODE_HEADER))
        );
        assert_eq!(
            key.verify("POST", "/p", raw(Some("1"), "1", "zz"), b"", NOW),
            Err(AuthError::Malformed(SIGNATURE_HEADER))
        );
    }
}
