//! The cache: short-lived shared state with TTLs and counters, in Redis (`--redis-url`) or
//! in process ([`MemoryCache`]) with the same semantics. The keys are the design's:
//! `session:{id}` (24 h), `stream:status:{cameraId}` (30 s), `analytics:camera:{id}:{date}`,
//! `viewers:{cameraId}`, `rate_limit:{tokenId}:{window}`, plus `login_fail:{user|ip}:{..}` for
//! login throttling. Values are strings (JSON where structured); nothing here is durable.
//! The suite in `tests/cache.rs` runs against both implementations.

mod memory;
mod redis;

use std::time::Duration;

use async_trait::async_trait;

pub use self::memory::MemoryCache;
pub use self::redis::RedisCache;

/// A cache failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// Redis refused or could not be reached.
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    /// The in-memory cache is at its entry limit even after dropping expired entries.
    #[error("cache full ({0} entries)")]
    Full(usize),
}

/// A counter after an increment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter {
    /// The value after the increment.
    pub value: i64,
    /// Time until the counter expires.
    pub ttl: Duration,
}

/// Key names, in one place so the Redis and memory paths cannot disagree.
pub mod keys {
    /// A login session (value: user id), 24 h.
    pub fn session(id: &str) -> String {
        format!("session:{id}")
    }
    /// A camera's live status (JSON), 30 s.
    pub fn stream_status(camera_id: &str) -> String {
        format!("stream:status:{camera_id}")
    }
    /// A camera's per-day analytics (JSON).
    pub fn analytics(camera_id: &str, date: &str) -> String {
        format!("analytics:camera:{camera_id}:{date}")
    }
    /// A camera's last hour of health samples (JSON, see `health::Series`).
    pub fn health_series(camera_id: &str) -> String {
        format!("health:series:{camera_id}")
    }
    /// A camera's current viewer count.
    pub fn viewers(camera_id: &str) -> String {
        format!("viewers:{camera_id}")
    }
    /// Requests of a token or user in one rate-limit window.
    pub fn rate_limit(subject: &str, window: u64) -> String {
        format!("rate_limit:{subject}:{window}")
    }
    /// Failed logins of a username or address.
    pub fn login_fail(subject: &str) -> String {
        format!("login_fail:{subject}")
    }
}

/// Shared short-lived state. Implementations are cheap to share (`Arc<dyn Cache>`).
///
/// # Cancel safety
/// A dropped call may or may not have been applied; each call is one atomic step.
#[async_trait]
pub trait Cache: Send + Sync + 'static {
    /// `redis` or `memory`.
    fn backend(&self) -> &'static str;
    /// The value of `key`, if present and not expired.
    async fn get(&self, key: &str) -> Result<Option<String>, CacheError>;
    /// Sets `key`, replacing any value and TTL; `ttl: None` keeps it until deleted.
    async fn set(&self, key: &str, value: &str, ttl: Option<Duration>) -> Result<(), CacheError>;
    /// Deletes `key`; whether it existed.
    async fn del(&self, key: &str) -> Result<bool, CacheError>;
    /// Adds `by` to the integer at `key` (0 when absent). A counter created by this call
    /// expires after `ttl`; later increments keep its expiry (fixed windows).
    async fn incr(&self, key: &str, by: i64, ttl: Duration) -> Result<Counter, CacheError>;
    /// Time left before `key` expires; `None` when absent or without expiry.
    async fn ttl(&self, key: &str) -> Result<Option<Duration>, CacheError>;
}
