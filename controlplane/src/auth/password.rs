//! Passwords: argon2id hashing (in `spawn_blocking`: a hash costs tens of milliseconds of
//! CPU) and the strength rule every new password must pass.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

/// Shortest accepted password.
pub const MIN_LEN: usize = 12;
/// Longest accepted password (argon2 input is bounded so a request cannot buy CPU time).
pub const MAX_LEN: usize = 128;

/// Why a password is too weak; the text goes to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WeakPassword {
    /// Too short.
    #[error("must be at least {MIN_LEN} characters")]
    TooShort,
    /// Too long.
    #[error("must be at most {MAX_LEN} characters")]
    TooLong,
    /// Not enough character classes.
    #[error("must mix at least three of: lowercase, uppercase, digits, symbols")]
    TooSimple,
    /// Contains the username.
    #[error("must not contain the username")]
    ContainsUsername,
}

/// Checks the strength rule: 12–128 characters, three of four character classes, and not
/// containing the username.
///
/// # Errors
/// The first rule that fails.
pub fn check_strength(password: &str, username: &str) -> Result<(), WeakPassword> {
    let n = password.chars().count();
    if n < MIN_LEN {
        return Err(WeakPassword::TooShort);
    }
    if n > MAX_LEN {
        return Err(WeakPassword::TooLong);
    }
    let classes = [
        password.chars().any(|c| c.is_lowercase()),
        password.chars().any(|c| c.is_uppercase()),
        password.chars().any(|c| c.is_ascii_digit()),
        password.chars().any(|c| !c.is_alphanumeric()),
    ];
    if classes.iter().filter(|x| **x).count() < 3 {
        return Err(WeakPassword::TooSimple);
    }
    if !username.is_empty() && password.to_lowercase().contains(&username.to_lowercase()) {
        return Err(WeakPassword::ContainsUsername);
    }
    Ok(())
}

/// Hashes a password (argon2id, default parameters) into a PHC string. Runs on the blocking
/// pool.
///
/// # Errors
/// A message when hashing fails (never with valid input).
pub async fn hash(password: String) -> Result<String, String> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Verifies a password against a PHC string on the blocking pool. A malformed stored hash
/// verifies nothing.
pub async fn verify(password: String, phc: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&phc)
            .map(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

/// A hash of a random password, verified against when the username does not exist, so
/// both failures take the same time.
pub async fn dummy_hash() -> String {
    use std::sync::OnceLock;
    static DUMMY: OnceLock<String> = OnceLock::new();
    if let Some(h) = DUMMY.get() {
        return h.clone();
    }
    let h = hash(generate(24)).await.unwrap_or_default();
    DUMMY.get_or_init(|| h).clone()
}

/// A random password that passes [`check_strength`] (for the first admin).
pub fn generate(len: usize) -> String {
    use rand::Rng;
    const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
    const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
    const DIGIT: &[u8] = b"23456789";
    const SYMBOL: &[u8] = b"-_.!@#%+=";
    let mut rng = rand::rng();
    let sets = [LOWER, UPPER, DIGIT, SYMBOL];
    let len = len.max(MIN_LEN);
    let mut out: Vec<u8> = (0..len)
        .map(|i| {
            let set = sets[i % sets.len()];
            set[rng.random_range(0..set.len())]
        })
        .collect();
    // Shuffle so the class pattern is not fixed.
    for i in (1..out.len()).rev() {
        out.swap(i, rng.random_range(0..=i));
    }
    String::from_utf8(out).expect("ascii alphabet")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strength_rules() {
        assert_eq!(
            check_strength("Short1!", "bob"),
            Err(WeakPassword::TooShort)
        );
        assert_eq!(
            check_strength("alllowercaseletters", "bob"),
            Err(WeakPassword::TooSimple)
        );
        assert_eq!(
            check_strength("Xx9-alice-Xx9", "Alice"),
            Err(WeakPassword::ContainsUsername)
        );
        assert_eq!(
            check_strength(&"Aa1!".repeat(40), "bob"),
            Err(WeakPassword::TooLong)
        );
        assert_eq!(check_strength("Correct-Horse-9", "bob"), Ok(()));
        for _ in 0..20 {
            assert_eq!(check_strength(&generate(20), "admin"), Ok(()));
        }
    }

    #[tokio::test]
    async fn hash_and_verify() {
        let h = hash("Correct-Horse-9".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("Correct-Horse-9".into(), h.clone()).await);
        assert!(!verify("Correct-Horse-8".into(), h).await);
        assert!(!verify("x".into(), "not a phc string".into()).await);
    }
}
