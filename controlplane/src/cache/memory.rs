//! The in-process cache: a map under a mutex, entries expiring on a tokio clock (so tests can
//! pause time). No lock is held across an await. Bounded: past `capacity` entries, expired
//! ones are swept, and a set that still does not fit fails instead of growing without end.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::{Cache, CacheError, Counter};

/// Default entry limit: sessions, statuses and rate-limit windows of a large single node.
pub(crate) const DEFAULT_CAPACITY: usize = 1_000_000;

#[derive(Debug)]
struct Entry {
    value: String,
    expires: Option<Instant>,
}

impl Entry {
    fn live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|e| e > now)
    }
}

/// The in-memory [`Cache`].
#[derive(Debug)]
pub struct MemoryCache {
    map: Mutex<HashMap<String, Entry>>,
    capacity: usize,
}

impl Default for MemoryCache {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }
}

impl MemoryCache {
    /// A cache holding at most `capacity` entries.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// Drops expired entries; returns how many. The control plane calls it periodically.
    pub fn sweep(&self) -> usize {
        let now = Instant::now();
        let mut map = self.lock();
        let before = map.len();
        map.retain(|_, e| e.live(now));
        before - map.len()
    }

    /// Number of entries, expired ones included until swept.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // A panic while holding the lock cannot leave an entry half-written (every mutation
        // is a single insert/remove), so a poisoned map is still consistent.
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn make_room(&self, map: &mut HashMap<String, Entry>, key: &str) -> Result<(), CacheError> {
        if map.len() < self.capacity || map.contains_key(key) {
            return Ok(());
        }
        let now = Instant::now();
        map.retain(|_, e| e.live(now));
        if map.len() < self.capacity {
            Ok(())
        } else {
            Err(CacheError::Full(self.capacity))
        }
    }
}

#[async_trait]
impl Cache for MemoryCache {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn get(&self, key: &str) -> Result<Option<String>, CacheError> {
        let now = Instant::now();
        let mut map = self.lock();
        match map.get(key) {
            Some(e) if e.live(now) => Ok(Some(e.value.clone())),
            Some(_) => {
                map.remove(key);
                Ok(None)
            }
            None => Ok(None),
        }
    }

    async fn set(&self, key: &str, value: &str, ttl: Option<Duration>) -> Result<(), CacheError> {
        let mut map = self.lock();
        self.make_room(&mut map, key)?;
        map.insert(
            key.to_owned(),
            Entry {
                value: value.to_owned(),
                expires: ttl.map(|t| Instant::now() + t),
            },
        );
        Ok(())
    }

    async fn del(&self, key: &str) -> Result<bool, CacheError> {
        let now = Instant::now();
        Ok(self.lock().remove(key).is_some_and(|e| e.live(now)))
    }

    async fn incr(&self, key: &str, by: i64, ttl: Duration) -> Result<Counter, CacheError> {
        let now = Instant::now();
        let mut map = self.lock();
        let current = match map.get(key) {
            Some(e) if e.live(now) => Some((e.value.parse::<i64>().unwrap_or(0), e.expires)),
            _ => None,
        };
        let (value, expires) = match current {
            Some((v, exp)) => (v.saturating_add(by), exp),
            None => {
                self.make_room(&mut map, key)?;
                (by, Some(now + ttl))
            }
        };
        map.insert(
            key.to_owned(),
            Entry {
                value: value.to_string(),
                expires,
            },
        );
        Ok(Counter {
            value,
            ttl: expires.map_or(Duration::ZERO, |e| e.saturating_duration_since(now)),
        })
    }

    async fn ttl(&self, key: &str) -> Result<Option<Duration>, CacheError> {
        let now = Instant::now();
        Ok(self
            .lock()
            .get(key)
            .filter(|e| e.live(now))
            .and_then(|e| e.expires)
            .map(|e| e.saturating_duration_since(now)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn entries_expire_on_the_tokio_clock() {
        let c = MemoryCache::default();
        c.set("a", "1", Some(Duration::from_secs(30)))
            .await
            .unwrap();
        tokio::time::advance(Duration::from_secs(29)).await;
        assert_eq!(c.get("a").await.unwrap().as_deref(), Some("1"));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(c.get("a").await.unwrap(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn full_cache_refuses_until_swept() {
        let c = MemoryCache::with_capacity(2);
        c.set("a", "1", Some(Duration::from_secs(1))).await.unwrap();
        c.set("b", "1", None).await.unwrap();
        assert!(matches!(
            c.set("c", "1", None).await,
            Err(CacheError::Full(2))
        ));
        // Replacing an existing key needs no room.
        c.set("b", "2", None).await.unwrap();
        tokio::time::advance(Duration::from_secs(2)).await;
        c.set("c", "1", None).await.unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c.sweep(), 0);
    }
}
