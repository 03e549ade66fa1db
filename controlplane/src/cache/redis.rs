//! The Redis cache over a `ConnectionManager` (reconnects by itself). Counters use one
//! `MULTI` with `INCRBY`, `PEXPIRE NX` and `PTTL`, so the first increment of a window sets
//! its expiry and later ones keep it, as the in-memory cache does. Needs Redis ≥ 7.0 for
//! `PEXPIRE ... NX`.

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{Cache, CacheError, Counter};

/// The Redis [`Cache`].
#[derive(Clone)]
pub struct RedisCache {
    conn: ConnectionManager,
}

impl std::fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCache").finish_non_exhaustive()
    }
}

impl RedisCache {
    /// Connects to `redis://host:port/db`.
    ///
    /// # Errors
    /// A bad URL or an unreachable server.
    pub async fn connect(url: &str) -> Result<Self, CacheError> {
        let client = redis::Client::open(url)?;
        // Bounded waits: a hung Redis must turn into 503s, not requests that never end.
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(2)
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)));
        let conn = ConnectionManager::new_with_config(client, config).await?;
        Ok(Self { conn })
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[async_trait]
impl Cache for RedisCache {
    fn backend(&self) -> &'static str {
        "redis"
    }

    async fn get(&self, key: &str) -> Result<Option<String>, CacheError> {
        let mut c = self.conn.clone();
        Ok(redis::cmd("GET").arg(key).query_async(&mut c).await?)
    }

    async fn set(&self, key: &str, value: &str, ttl: Option<Duration>) -> Result<(), CacheError> {
        let mut c = self.conn.clone();
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(value);
        if let Some(t) = ttl {
            cmd.arg("PX").arg(ms(t));
        }
        let () = cmd.query_async(&mut c).await?;
        Ok(())
    }

    async fn del(&self, key: &str) -> Result<bool, CacheError> {
        let mut c = self.conn.clone();
        let n: i64 = redis::cmd("DEL").arg(key).query_async(&mut c).await?;
        Ok(n > 0)
    }

    async fn incr(&self, key: &str, by: i64, ttl: Duration) -> Result<Counter, CacheError> {
        let mut c = self.conn.clone();
        let (value, _set, pttl): (i64, i64, i64) = redis::pipe()
            .atomic()
            .cmd("INCRBY")
            .arg(key)
            .arg(by)
            .cmd("PEXPIRE")
            .arg(key)
            .arg(ms(ttl))
            .arg("NX")
            .cmd("PTTL")
            .arg(key)
            .query_async(&mut c)
            .await?;
        Ok(Counter {
            value,
            ttl: Duration::from_millis(u64::try_from(pttl).unwrap_or(0)),
        })
    }

    async fn ttl(&self, key: &str) -> Result<Option<Duration>, CacheError> {
        let mut c = self.conn.clone();
        let pttl: i64 = redis::cmd("PTTL").arg(key).query_async(&mut c).await?;
        // -2: no key, -1: no expiry.
        Ok(u64::try_from(pttl).ok().map(Duration::from_millis))
    }
}
