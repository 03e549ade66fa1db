//! Random secrets that are shown once and stored as digests: API tokens (`cst_...`), refresh
//! tokens (`csr_...`) and stream keys. Each has a public lookup prefix (the first
//! [`PREFIX_LEN`] random characters, indexed and unique in the store) and a SHA-256 digest of
//! the whole secret; the row is found by prefix and the digests are compared in constant
//! time, so no plaintext is stored and no table is scanned. A plain hash is enough because
//! the secrets carry ~262 bits of randomness (no dictionary to guess from).

use rand::Rng;
use rand::distr::Alphanumeric;
use sha2::{Digest, Sha256};

use camstream_protocol::auth::constant_time_eq;

/// Length of the lookup prefix.
pub const PREFIX_LEN: usize = 12;
/// Length of the random part after the prefix.
const SECRET_LEN: usize = 32;

/// Kinds of secrets, by their visible tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `cst_...`: an API token.
    ApiToken,
    /// `csr_...`: a refresh token.
    Refresh,
    /// A stream key: no tag (it appears in RTMP URLs and file names).
    StreamKey,
}

impl Kind {
    fn tag(self) -> &'static str {
        match self {
            Kind::ApiToken => "cst_",
            Kind::Refresh => "csr_",
            Kind::StreamKey => "",
        }
    }
}

/// A freshly generated secret.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The whole secret, to show once.
    pub secret: String,
    /// The lookup prefix to store.
    pub prefix: String,
    /// The digest to store.
    pub hash: String,
}

/// Generates a secret of `kind`.
pub fn generate(kind: Kind) -> Generated {
    let random: String = rand::rng()
        .sample_iter(Alphanumeric)
        .take(PREFIX_LEN + SECRET_LEN)
        .map(char::from)
        .collect();
    let secret = format!("{}{random}", kind.tag());
    Generated {
        prefix: random[..PREFIX_LEN].to_owned(),
        hash: digest(&secret),
        secret,
    }
}

/// The lookup prefix of a presented secret, or `None` when it does not have the shape of
/// `kind` (wrong tag, wrong length, characters outside `[A-Za-z0-9]`).
pub fn prefix_of(kind: Kind, presented: &str) -> Option<&str> {
    let body = presented.strip_prefix(kind.tag())?;
    if body.len() != PREFIX_LEN + SECRET_LEN || !body.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    Some(&body[..PREFIX_LEN])
}

/// SHA-256 of `secret`, lowercase hex.
pub fn digest(secret: &str) -> String {
    let d = Sha256::digest(secret.as_bytes());
    let mut s = String::with_capacity(64);
    for b in d {
        use std::fmt::Write;
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Whether `presented` hashes to `stored_hash`, compared in constant time.
pub fn matches(presented: &str, stored_hash: &str) -> bool {
    constant_time_eq(digest(presented).as_bytes(), stored_hash.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_verify_and_parse() {
        for kind in [Kind::ApiToken, Kind::Refresh, Kind::StreamKey] {
            let g = generate(kind);
            assert_eq!(prefix_of(kind, &g.secret), Some(g.prefix.as_str()));
            assert!(matches(&g.secret, &g.hash));
            let mut wrong = g.secret.clone();
            let last = wrong.pop().unwrap();
            wrong.push(if last == 'a' { 'b' } else { 'a' });
            assert!(!matches(&wrong, &g.hash));
        }
        let g = generate(Kind::ApiToken);
        assert_eq!(prefix_of(Kind::Refresh, &g.secret), None);
        assert_eq!(prefix_of(Kind::ApiToken, "cst_short"), None);
        assert_eq!(prefix_of(Kind::StreamKey, &"é".repeat(22)), None);
    }
}
