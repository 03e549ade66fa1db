//! Alerts raised by watching state rather than by an event: `CAMERA_OFFLINE` for an active
//! camera that was streaming and has been offline for its rule's duration (camera rule,
//! company rule, or `--alert-offline-after`), resolved when it streams again (or is
//! disabled or deleted, or its rule muted). Run by the control plane's sweeper; every node
//! of a cluster may run it (the store keeps one open alert per cause).
//! And `LOGIN_FAILURES`: more than [`LOGIN_FAILURES_PER_MINUTE`] failed (or throttled)
//! logins for one username or from one address within a minute, resolved after
//! [`LOGIN_QUIET`] without another burst.
//!
//! The rest lives in submodules: [`rules`] (defaults and the rule in force), [`quality`]
//! (stream quality), [`usage`] (unusual API usage), [`escalation`] (escalation steps and
//! history retention).

use std::collections::HashSet;
use std::time::Duration;

use crate::clock::rfc3339;
use crate::store::{NewAlert, Store, StoreError, StreamStatus};

pub(crate) mod escalation;
pub(crate) mod quality;
pub(crate) mod rules;
pub(crate) mod usage;

pub(crate) use rules::CAMERA_OFFLINE;
use rules::RuleSet;

/// Most cameras raised per pass (the rest next pass).
const BATCH: i64 = 1000;

fn cause(camera: &str) -> String {
    format!("{CAMERA_OFFLINE}:{camera}")
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OfflinePass {
    pub(crate) raised: usize,
    pub(crate) resolved: usize,
    /// `CAMERA_OFFLINE` alerts open after the pass (`camstream_alerts_open`).
    pub(crate) open: usize,
}

/// One pass at `now_ms`: raises for cameras offline longer than their effective rule's
/// duration (camera rule, company rule, or `--alert-offline-after`) without an open alert,
/// unless the rule is disabled; resolves open alerts of cameras that stream again, are
/// disabled or gone, or whose rule was disabled since.
pub(crate) async fn offline_pass(
    store: &dyn Store,
    rules: &RuleSet,
    now_ms: i64,
) -> Result<OfflinePass, StoreError> {
    let mut pass = OfflinePass::default();
    let open = store.open_alerts(CAMERA_OFFLINE).await?;
    let mut still_open = HashSet::new();
    for a in &open {
        let Some(id) = &a.camera_id else { continue };
        let camera = store.get_camera(id).await?;
        let offline = camera
            .as_ref()
            .is_some_and(|c| c.is_active && c.stream_status == StreamStatus::Offline);
        let muted = camera.as_ref().is_some_and(|c| {
            !rules
                .effective(CAMERA_OFFLINE, c.company.as_deref(), Some(&c.id))
                .enabled
        });
        if (!offline || muted) && store.resolve_cause(&cause(id), now_ms).await? {
            pass.resolved += 1;
            tracing::info!(camera_id = %id, muted, "alert resolved: camera back (or disabled, deleted, or its rule muted)");
        } else {
            still_open.insert(id.clone());
        }
    }
    // The shortest duration in force decides which cameras are worth a look.
    let shortest = rules
        .of_kind(CAMERA_OFFLINE)
        .filter(|r| r.enabled)
        .filter_map(|r| r.duration_ms)
        .chain(rules.effective(CAMERA_OFFLINE, None, None).duration_ms)
        .min()
        .unwrap_or(0);
    let before = now_ms.saturating_sub(shortest);
    for c in store.offline_cameras(before, BATCH).await? {
        if still_open.contains(&c.id) {
            continue;
        }
        let rule = rules.effective(CAMERA_OFFLINE, c.company.as_deref(), Some(&c.id));
        let after = rule.duration_ms.unwrap_or(0);
        if !rule.enabled || c.status_changed_at > now_ms.saturating_sub(after) {
            continue;
        }
        store
            .create_alert(NewAlert {
                kind: CAMERA_OFFLINE.into(),
                severity: rule.severity.clone(),
                camera_id: Some(c.id.clone()),
                message: format!(
                    "camera {} has been offline for more than {} s",
                    c.name,
                    after / 1000
                ),
                cause: Some(cause(&c.id)),
                company: c.company.clone(),
                ..NewAlert::default()
            })
            .await?;
        pass.raised += 1;
        tracing::warn!(camera_id = %c.id, offline_since = %rfc3339(c.status_changed_at), rule = ?rule.source, "alert: camera offline");
    }
    pass.open = still_open.len() + pass.raised;
    Ok(pass)
}

pub(crate) use rules::LOGIN_FAILURES;
use rules::STORAGE_FULL;
/// Failed logins per username or address within a minute above which it is raised.
pub(crate) const LOGIN_FAILURES_PER_MINUTE: i64 = 10;
/// A login-failure alert with no new burst for this long is resolved.
pub(crate) const LOGIN_QUIET: Duration = Duration::from_secs(300);

/// Failed logins are counted in buckets of this many milliseconds; "within a minute" is the
/// current bucket and the 11 before it (a sliding minute to 5 s: a burst that straddles a
/// clock minute is seen whole, which fixed per-minute counters split in two).
const LOGIN_BUCKET_MS: i64 = 5_000;
const LOGIN_BUCKETS: i64 = 60_000 / LOGIN_BUCKET_MS;

/// Counts one failure of `subject` in `bucket` and returns the failures of the sliding
/// minute that ends with it.
async fn failures_in_last_minute(
    cache: &dyn crate::cache::Cache,
    subject: &str,
    bucket: i64,
) -> Result<i64, crate::cache::CacheError> {
    let key = |b: i64| format!("alert:login_fail:{subject}:{b}");
    let ttl = Duration::from_millis((LOGIN_BUCKET_MS * (LOGIN_BUCKETS + 1)) as u64);
    let mut n = cache.incr(&key(bucket), 1, ttl).await?.value;
    for b in bucket - (LOGIN_BUCKETS - 1)..bucket {
        if let Some(v) = cache.get(&key(b)).await? {
            n += v.parse::<i64>().unwrap_or(0);
        }
    }
    Ok(n)
}

/// Counts a failed login for `username` and the client address; raises (or counts another
/// occurrence of) `LOGIN_FAILURES` when either goes over the limit within a minute. Never
/// fails the request: a cache or store problem is logged.
pub(crate) async fn login_failed(
    state: &crate::state::Shared,
    username: &str,
    ip: Option<std::net::IpAddr>,
) {
    let bucket = crate::clock::now_ms() / LOGIN_BUCKET_MS;
    let mut subjects = vec![format!("user:{}", username.to_lowercase())];
    if let Some(ip) = ip {
        subjects.push(format!("ip:{ip}"));
    }
    for subject in subjects {
        let n = match failures_in_last_minute(&*state.cache, &subject, bucket).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "failed-login counter not kept");
                continue;
            }
        };
        // Each failure adds one and failures only leave the window as it slides, so the
        // count passes the limit exactly at this value (again after it fell back: another
        // occurrence of the open alert).
        if n != LOGIN_FAILURES_PER_MINUTE + 1 {
            continue;
        }
        // A user's burst belongs to the user's company; an address's to admins.
        let company = match subject.strip_prefix("user:") {
            Some(name) => state
                .store
                .get_user_by_username(name)
                .await
                .ok()
                .flatten()
                .and_then(|u| u.company),
            None => None,
        };
        let rule = rules::effective_now(
            &*state.store,
            state.config.alert_offline_after,
            LOGIN_FAILURES,
            company.as_deref(),
            None,
        )
        .await;
        if !rule.enabled {
            continue;
        }
        let raised = state
            .store
            .create_alert(NewAlert {
                kind: LOGIN_FAILURES.into(),
                severity: rule.severity,
                message: format!(
                    "more than {LOGIN_FAILURES_PER_MINUTE} failed logins within a minute for {subject}"
                ),
                cause: Some(format!("{LOGIN_FAILURES}:{subject}")),
                company,
                ..NewAlert::default()
            })
            .await;
        match raised {
            Ok(a) => tracing::warn!(
                subject,
                occurrences = a.occurrences,
                "alert: repeated failed logins"
            ),
            Err(e) => tracing::warn!(error = %e, "failed-login alert not stored"),
        }
    }
}

/// Resolves login-failure alerts with no new burst for [`LOGIN_QUIET`]; how many.
pub(crate) async fn quiet_logins_pass(store: &dyn Store, now_ms: i64) -> Result<usize, StoreError> {
    let quiet = i64::try_from(LOGIN_QUIET.as_millis()).unwrap_or(i64::MAX);
    let mut resolved = 0;
    for a in store.open_alerts(LOGIN_FAILURES).await? {
        let last = a.last_seen_at.unwrap_or(a.created_at);
        if now_ms - last >= quiet
            && let Some(cause) = &a.cause
            && store.resolve_cause(cause, now_ms).await?
        {
            resolved += 1;
        }
    }
    Ok(resolved)
}

/// The alerting state a node keeps: the rules snapshot (reloaded by every sweep and after
/// every change through this node's API) and the quality and usage trackers.
#[derive(Debug, Default)]
pub(crate) struct Alerting {
    rules: std::sync::RwLock<std::sync::Arc<RuleSet>>,
    pub(crate) quality: quality::Tracker,
    pub(crate) usage: usage::Tracker,
    /// Whether this node's recordings file system is over its `STORAGE_FULL` threshold
    /// (`None` until the first report).
    storage_over: std::sync::Mutex<Option<bool>>,
}

impl Alerting {
    /// The rules in force (as of the last reload).
    pub(crate) fn rules(&self) -> std::sync::Arc<RuleSet> {
        self.rules.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Reads the rules from the store into the snapshot.
    pub(crate) async fn reload(
        &self,
        store: &dyn Store,
        offline_after: Duration,
    ) -> Result<std::sync::Arc<RuleSet>, StoreError> {
        let set = std::sync::Arc::new(RuleSet::load(store, offline_after).await?);
        *self.rules.write().unwrap_or_else(|p| p.into_inner()) = set.clone();
        Ok(set)
    }
}

/// Below the threshold by this much before a storage-usage alert resolves (a disk hovering
/// at the threshold does not open and resolve it every second).
const STORAGE_HYSTERESIS: f64 = 0.02;

/// The cause of this node's storage-usage alert (one per node: the file system is the
/// node's, not a camera's).
fn storage_cause(node: &str) -> String {
    format!("{STORAGE_FULL}:node:{node}:used")
}

/// Judges this node's recordings file system from its used share (`df`'s Use%, once a
/// second): raises `STORAGE_FULL` (for admins) when it goes over the rule's threshold
/// (default 0.9), resolves it when it is back below the threshold less 2 %. The store is
/// touched only when the state changes (and once at start, to resolve one left open by an
/// earlier run). Never fails: a store problem is logged and tried again on the next report.
pub(crate) async fn storage_used(state: &crate::state::Shared, used_ratio: f64) {
    let rule = state.alerting.rules().effective(STORAGE_FULL, None, None);
    let threshold = rule.threshold.unwrap_or(0.9);
    let was = *state
        .alerting
        .storage_over
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let over = if was == Some(true) {
        used_ratio >= threshold - STORAGE_HYSTERESIS
    } else {
        used_ratio > threshold
    };
    let over = over && rule.enabled;
    if was == Some(over) {
        return;
    }
    let cause = storage_cause(&state.config.node_id);
    let done = if over {
        state
            .store
            .create_alert(NewAlert {
                kind: STORAGE_FULL.into(),
                severity: rule.severity,
                message: format!(
                    "the recordings file system of node {} is {:.0} % used (over {:.0} %)",
                    state.config.node_id,
                    used_ratio * 100.0,
                    threshold * 100.0
                ),
                cause: Some(cause),
                ..NewAlert::default()
            })
            .await
            .map(|a| {
                tracing::warn!(used_ratio, threshold, alert_id = %a.id, "alert: recordings storage almost full");
            })
    } else {
        state
            .store
            .resolve_cause(&cause, crate::clock::now_ms())
            .await
            .map(|resolved| {
                if resolved {
                    tracing::info!(
                        used_ratio,
                        threshold,
                        "alert resolved: recordings storage has room"
                    );
                }
            })
    };
    match done {
        Ok(()) => {
            *state
                .alerting
                .storage_over
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Some(over);
        }
        Err(e) => tracing::warn!(error = %e, "storage alert not recorded; trying again"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::MemoryCache;

    #[tokio::test]
    async fn failed_logins_are_counted_over_a_sliding_minute() {
        let cache = MemoryCache::default();
        let count = |b: i64| failures_in_last_minute(&cache, "user:x", b);
        // Six failures just before a clock minute ends and five just after: one burst.
        for _ in 0..6 {
            count(11).await.unwrap();
        }
        let mut last = 0;
        for _ in 0..5 {
            last = count(12).await.unwrap();
        }
        assert_eq!(
            last, 11,
            "a burst across a minute boundary is counted whole"
        );
        // Eleven buckets later the first six have left the minute.
        assert_eq!(count(11 + LOGIN_BUCKETS).await.unwrap(), 5 + 1);
        // Other subjects are counted apart.
        assert_eq!(
            failures_in_last_minute(&cache, "ip:1.2.3.4", 12)
                .await
                .unwrap(),
            1
        );
    }
}
