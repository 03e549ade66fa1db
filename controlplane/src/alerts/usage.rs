//! `API_UNUSUAL_USAGE`: an API token whose requests in the current bucket (a minute; tests
//! shorten it with `ControlPlaneConfig::api_usage_bucket`) go above its rule's `threshold`
//! times its usual rate and above the rule's `minimum` (requests per minute). The usual rate
//! is an exponentially weighted mean of the token's requests per bucket ([`ALPHA`] per
//! bucket), counted only after [`WARMUP`] buckets of history.
//!
//! Everything lives in the cache, so a cluster sharing a Redis judges a token as one: the
//! bucket counter `api_usage:{token}:{bucket}` (an atomic increment: each count is seen by
//! exactly one request, so exactly one request crosses the threshold per bucket) and the
//! baseline `api_usage:base:{token}` (JSON), folded forward by the request that opens a
//! bucket (the one that counted 1). Each node remembers a token's threshold for the
//! current bucket, so a request costs one increment. Resolved after the rule's duration
//! without another crossing (the sweeper).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::rules::{API_UNUSUAL_USAGE, RuleSet};
use crate::cache::{Cache, CacheError};
use crate::store::{NewAlert, Store, StoreError};

/// Weight of the newest bucket in the usual rate.
pub(crate) const ALPHA: f64 = 0.05;
/// Buckets of history before a token can be unusual.
pub(crate) const WARMUP: u32 = 5;
/// Bucket counters are kept this many buckets (the fold reads at most these back).
const KEEP: i64 = 12;

/// A token's usual rate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) struct Baseline {
    /// Mean requests per bucket.
    pub(crate) ewma: f64,
    /// The last bucket folded in.
    pub(crate) bucket: i64,
    /// Buckets folded in.
    pub(crate) n: u32,
}

/// Folds the buckets after `base` up to `bucket - 1` into it; `count(k)` is bucket k's
/// requests, `None` when its counter is gone (no request, or expired).
pub(crate) fn fold(base: Option<Baseline>, bucket: i64, count: &HashMap<i64, i64>) -> Baseline {
    let mut b = base.unwrap_or(Baseline {
        ewma: 0.0,
        bucket: bucket - 1,
        n: 0,
    });
    if b.bucket >= bucket - 1 {
        // New token: the previous bucket, if it had requests, is its first history.
        if base.is_none()
            && let Some(&x) = count.get(&(bucket - 1))
        {
            return Baseline {
                ewma: x as f64,
                bucket: bucket - 1,
                n: 1,
            };
        }
        return b;
    }
    let gap = bucket - 1 - b.bucket;
    if gap > KEEP {
        // Idle far longer than the counters live: decay in one step.
        let idle = gap - KEEP;
        b.ewma *= (1.0 - ALPHA).powi(i32::try_from(idle).unwrap_or(i32::MAX));
        b.n = b.n.saturating_add(u32::try_from(idle).unwrap_or(u32::MAX));
        b.bucket += idle;
    }
    for k in b.bucket + 1..bucket {
        let x = count.get(&k).copied().unwrap_or(0) as f64;
        b.ewma = if b.n == 0 {
            x
        } else {
            ALPHA * x + (1.0 - ALPHA) * b.ewma
        };
        b.n = b.n.saturating_add(1);
    }
    b.bucket = bucket - 1;
    b
}

/// The count above which a bucket is unusual, `None` while warming up.
pub(crate) fn threshold(b: &Baseline, factor: f64, minimum_per_bucket: f64) -> Option<f64> {
    (b.n >= WARMUP).then(|| (factor * b.ewma).max(minimum_per_bucket))
}

/// Per-node memory: each token's threshold in the current bucket.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    memo: Mutex<HashMap<String, (i64, Option<Baseline>)>>,
}

impl Tracker {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (i64, Option<Baseline>)>> {
        self.memo.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets tokens not seen since before `bucket` (the sweeper calls it).
    pub(crate) fn prune(&self, bucket: i64) {
        self.lock().retain(|_, (b, _)| *b >= bucket);
    }
}

fn counter_key(token: &str, bucket: i64) -> String {
    format!("api_usage:{token}:{bucket}")
}

fn base_key(token: &str) -> String {
    format!("api_usage:base:{token}")
}

/// The requesting token.
pub(crate) struct Caller<'a> {
    pub(crate) token_id: &'a str,
    pub(crate) user_id: &'a str,
    pub(crate) company: Option<&'a str>,
}

/// Counts one request of a token at `now_ms` and raises `API_UNUSUAL_USAGE` when it
/// crosses the token's threshold. Returns whether it raised.
///
/// # Errors
/// The cache or the store refused (the caller logs it; the request goes on).
pub(crate) async fn observe(
    cache: &dyn Cache,
    store: &dyn Store,
    tracker: &Tracker,
    rules: &RuleSet,
    bucket_len: Duration,
    caller: &Caller<'_>,
    now_ms: i64,
) -> Result<bool, UsageError> {
    let len_ms = crate::clock::ms(bucket_len).max(1);
    let bucket = now_ms / len_ms;
    let ttl = bucket_len.saturating_mul(u32::try_from(KEEP).unwrap_or(12));
    let c = cache
        .incr(&counter_key(caller.token_id, bucket), 1, ttl)
        .await?
        .value;
    let memo = tracker.lock().get(caller.token_id).copied();
    let base = match memo {
        Some((b, base)) if b == bucket => base,
        _ => {
            let stored: Option<Baseline> = cache
                .get(&base_key(caller.token_id))
                .await?
                .and_then(|s| serde_json::from_str(&s).ok());
            let base = if c == 1 {
                // This request opened the bucket: fold the finished ones in, for everyone.
                let mut counts = HashMap::new();
                let from = stored.map_or(bucket - 1, |s| (s.bucket + 1).max(bucket - KEEP));
                for k in from..bucket {
                    if let Some(v) = cache.get(&counter_key(caller.token_id, k)).await?
                        && let Ok(v) = v.parse::<i64>()
                    {
                        counts.insert(k, v);
                    }
                }
                let b = fold(stored, bucket, &counts);
                let json = serde_json::to_string(&b).unwrap_or_default();
                cache
                    .set(
                        &base_key(caller.token_id),
                        &json,
                        Some(Duration::from_secs(7 * 86_400).max(ttl)),
                    )
                    .await?;
                Some(b)
            } else {
                stored
            };
            tracker
                .lock()
                .insert(caller.token_id.to_owned(), (bucket, base));
            base
        }
    };
    let Some(base) = base else { return Ok(false) };
    let rule = rules.effective(API_UNUSUAL_USAGE, caller.company, None);
    if !rule.enabled {
        return Ok(false);
    }
    let factor = rule.threshold.unwrap_or(5.0);
    let per_bucket = rule.minimum.unwrap_or(60.0) * len_ms as f64 / 60_000.0;
    let Some(limit) = threshold(&base, factor, per_bucket) else {
        return Ok(false);
    };
    let (now, before) = (c as f64, (c - 1) as f64);
    if !(now > limit && before <= limit) {
        return Ok(false);
    }
    let usual_per_min = base.ewma * 60_000.0 / len_ms as f64;
    store
        .create_alert(NewAlert {
            kind: API_UNUSUAL_USAGE.into(),
            severity: rule.severity.clone(),
            user_id: Some(caller.user_id.to_owned()),
            token_id: Some(caller.token_id.to_owned()),
            message: format!(
                "API token {} made more than {:.0} requests this minute, {factor}x above its usual {usual_per_min:.1} per minute",
                caller.token_id,
                limit * 60_000.0 / len_ms as f64,
            ),
            cause: Some(format!("{API_UNUSUAL_USAGE}:{}", caller.token_id)),
            company: caller.company.map(str::to_owned),
            ..NewAlert::default()
        })
        .await?;
    tracing::warn!(token_id = %caller.token_id, requests = c, limit, usual = base.ewma, "alert: unusual API usage");
    Ok(true)
}

/// Usage tracking failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UsageError {
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Resolves `API_UNUSUAL_USAGE` alerts quiet for their rule's duration; how many.
pub(crate) async fn quiet_pass(
    store: &dyn Store,
    rules: &RuleSet,
    now_ms: i64,
) -> Result<usize, StoreError> {
    let mut resolved = 0;
    for a in store.open_alerts(API_UNUSUAL_USAGE).await? {
        let quiet = rules
            .effective(API_UNUSUAL_USAGE, a.company.as_deref(), None)
            .duration_ms
            .unwrap_or(600_000);
        let last = a.last_seen_at.unwrap_or(a.created_at);
        if now_ms - last >= quiet
            && let Some(cause) = &a.cause
            && store.resolve_cause(cause, now_ms).await?
        {
            resolved += 1;
            tracing::info!(alert_id = %a.id, "alert resolved: API usage back to usual");
        }
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::MemoryCache;

    #[test]
    fn folding_buckets() {
        let counts: HashMap<i64, i64> = [(9, 4), (10, 2)].into_iter().collect();
        // A new token starts from the previous bucket.
        let b = fold(None, 10, &counts);
        assert_eq!((b.ewma, b.bucket, b.n), (4.0, 9, 1));
        let b = fold(Some(b), 12, &counts);
        // Bucket 10 (2), bucket 11 (0).
        let want = (1.0 - ALPHA) * (ALPHA * 2.0 + (1.0 - ALPHA) * 4.0);
        assert!((b.ewma - want).abs() < 1e-9, "{b:?}");
        assert_eq!((b.bucket, b.n), (11, 3));
        // Folding the same bucket again changes nothing.
        assert_eq!(fold(Some(b), 12, &counts), b);
        // A long idle decays.
        let idle = fold(Some(b), 1000, &HashMap::new());
        assert!(idle.ewma < 1e-6 && idle.bucket == 999, "{idle:?}");
        assert!(threshold(&idle, 5.0, 3.0) == Some(3.0));
        assert!(
            threshold(
                &Baseline {
                    ewma: 1.0,
                    bucket: 0,
                    n: 1
                },
                5.0,
                3.0
            )
            .is_none()
        );
    }

    /// Counting through the real in-memory cache with a controlled clock: a steady token is
    /// not flagged, a burst of 5x its usual rate is, once per bucket.
    #[tokio::test]
    async fn a_burst_is_flagged_once_per_bucket() {
        let cache = MemoryCache::default();
        let dir = std::env::temp_dir().join(format!("cs-usage-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = crate::store::connect(None, &dir).await.unwrap();
        let tracker = Tracker::default();
        let rules = RuleSet::default();
        let caller = Caller {
            token_id: "tok",
            user_id: "u",
            company: Some("acme"),
        };
        let len = Duration::from_secs(60);
        let mut raised = 0;
        for minute in 0..20i64 {
            for i in 0..20 {
                let now = minute * 60_000 + i * 1000;
                raised += usize::from(
                    observe(&cache, &*store, &tracker, &rules, len, &caller, now)
                        .await
                        .unwrap(),
                );
            }
        }
        assert_eq!(raised, 0, "a steady rate is usual");
        for i in 0..150 {
            let now = 20 * 60_000 + i * 100;
            raised += usize::from(
                observe(&cache, &*store, &tracker, &rules, len, &caller, now)
                    .await
                    .unwrap(),
            );
        }
        assert_eq!(raised, 1);
        let open = store.open_alerts(API_UNUSUAL_USAGE).await.unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].token_id.as_deref(), Some("tok"));
        assert_eq!(open[0].company.as_deref(), Some("acme"));
        // Quiet for the default 10 minutes: resolved.
        let last = open[0].last_seen_at.unwrap();
        assert_eq!(quiet_pass(&*store, &rules, last + 60_000).await.unwrap(), 0);
        assert_eq!(
            quiet_pass(&*store, &rules, last + 600_000).await.unwrap(),
            1
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
