//! Stream health from the data plane: each report (about once a second per camera) becomes
//! `stream:status:{cameraId}` (JSON, 30 s TTL) and `viewers:{cameraId}` in the cache, adds
//! to the day's `analytics:camera:{id}:{date}` counters, and — only when the state changes —
//! updates `cameras.stream_status`. A camera not reported for `health_timeout` is marked
//! offline by the sweeper. The data plane owns the measurements; this module only records.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use camstream_protocol::{StreamHealth, StreamState};
use serde::{Deserialize, Serialize};

use crate::cache::{Cache, CacheError, keys};
use crate::clock::{date, now_ms, rfc3339, to_ms};
use crate::store::{Store, StoreError, StreamStatus};

/// TTL of `stream:status:{id}` and `viewers:{id}`.
pub(crate) const STATUS_TTL: Duration = Duration::from_secs(30);
/// Per-day analytics are kept a little over a week.
const ANALYTICS_TTL: Duration = Duration::from_secs(8 * 24 * 3600);
/// A health series outlives its last sample by its own length.
const SERIES_TTL: Duration = Duration::from_secs(3600);
/// A gap between reports longer than this does not count as online time.
const MAX_ONLINE_STEP: Duration = Duration::from_secs(5);

/// A health report could not be recorded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HealthError {
    /// The cache refused.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The store refused.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A camera's live status as cached and served by `GET /cameras/{id}/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LiveStatus {
    /// Camera id.
    pub camera_id: String,
    /// `online`, `connecting`, `offline` or `error`.
    pub status: StreamStatus,
    /// When media last arrived (RFC 3339).
    pub last_seen: Option<String>,
    /// When the current state began (RFC 3339).
    pub since: Option<String>,
    /// The ingesting node.
    pub node_id: Option<String>,
    /// Viewers over the last sampling interval.
    pub viewer_count: u32,
    /// Video frames per second.
    pub fps: f32,
    /// Ingest bitrate, bits per second.
    pub bitrate: u64,
    /// Frames dropped since the stream started.
    pub dropped_frames: u64,
    /// `WIDTHxHEIGHT`, when there is video.
    pub resolution: Option<String>,
    /// RFC 6381 codec strings.
    pub codecs: Vec<String>,
}

/// A camera's counters for one UTC day.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DayAnalytics {
    /// `YYYY-MM-DD` (UTC).
    pub date: String,
    /// Media bytes received.
    pub bytes_in: u64,
    /// Media bytes served.
    pub bytes_out: u64,
    /// Most viewers seen at once.
    pub peak_viewers: u32,
    /// Seconds the stream was online.
    pub online_seconds: f64,
    /// Frames dropped.
    pub dropped_frames: u64,
    /// Health samples while online.
    pub samples: u64,
    /// Mean ingest bitrate while online, bits per second.
    pub avg_bitrate: u64,
}

#[derive(Debug, Clone)]
struct Seen {
    status: StreamStatus,
    at: Instant,
    bytes_in: u64,
    bytes_out: u64,
    dropped: u64,
    /// When the last sample went into the camera's series.
    sampled: Option<Instant>,
}

/// Seconds between two samples of a camera's health series.
pub(crate) const SERIES_STEP_S: u64 = 10;
/// Samples kept: one hour.
pub(crate) const SERIES_LEN: usize = 360;

/// One sample of a camera's health series: (UNIX s, fps, bits/s, dropped frames since the
/// publish began, viewers). A tuple keeps the cached JSON small (360 of them per camera).
pub(crate) type Sample = (i64, f32, u64, u64, u32);

/// A camera's last hour of health, one sample every [`SERIES_STEP_S`] while it reports,
/// kept in the cache (`health:series:{id}`) so every node of a cluster reads the same.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Series {
    pub(crate) samples: std::collections::VecDeque<Sample>,
}

/// What the control plane remembers between reports (per process).
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    cameras: Mutex<HashMap<String, Seen>>,
}

fn status_of(s: StreamState) -> StreamStatus {
    match s {
        StreamState::Online => StreamStatus::Online,
        StreamState::Reconnecting => StreamStatus::Connecting,
        _ => StreamStatus::Offline,
    }
}

/// The increments one report adds to the day's counters.
struct Delta {
    bytes_in: u64,
    bytes_out: u64,
    dropped: u64,
    online: Duration,
    changed: bool,
    /// A series sample is due.
    sample: bool,
}

impl Tracker {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Seen>> {
        // Every update is a single insert: a poisoned map is still consistent.
        self.cameras.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn observe(&self, h: &StreamHealth, now: Instant) -> Delta {
        let status = status_of(h.state);
        let mut map = self.lock();
        let prev = map.get(&h.camera_id).cloned();
        // Counters are cumulative per publish: a smaller value means a new publish began.
        let grow = |cur: u64, last: Option<u64>| match last {
            Some(l) if cur >= l => cur - l,
            _ => cur,
        };
        let delta = Delta {
            bytes_in: grow(h.bytes_in, prev.as_ref().map(|p| p.bytes_in)),
            bytes_out: grow(h.bytes_out, prev.as_ref().map(|p| p.bytes_out)),
            dropped: grow(h.dropped_frames, prev.as_ref().map(|p| p.dropped)),
            online: match &prev {
                Some(p) if p.status == StreamStatus::Online && status == StreamStatus::Online => {
                    now.duration_since(p.at).min(MAX_ONLINE_STEP)
                }
                _ => Duration::ZERO,
            },
            changed: prev.as_ref().is_none_or(|p| p.status != status),
            sample: prev
                .as_ref()
                .and_then(|p| p.sampled)
                .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(SERIES_STEP_S)),
        };
        let sampled = if delta.sample {
            Some(now)
        } else {
            prev.as_ref().and_then(|p| p.sampled)
        };
        map.insert(
            h.camera_id.clone(),
            Seen {
                status,
                at: now,
                bytes_in: h.bytes_in,
                bytes_out: h.bytes_out,
                dropped: h.dropped_frames,
                sampled,
            },
        );
        delta
    }

    /// Cameras not reported within `timeout` that were not offline; forgets them.
    fn stale(&self, now: Instant, timeout: Duration) -> Vec<String> {
        let mut map = self.lock();
        let gone: Vec<String> = map
            .iter()
            .filter(|(_, s)| now.duration_since(s.at) > timeout)
            .map(|(id, _)| id.clone())
            .collect();
        let mut out = Vec::new();
        for id in gone {
            if let Some(s) = map.remove(&id)
                && s.status != StreamStatus::Offline
            {
                out.push(id);
            }
        }
        out
    }
}

/// Records one batch of reports; the cameras whose state changed are pushed to `changed`
/// (as they are stored, so a failure part-way keeps the ones before it).
pub(crate) async fn record(
    tracker: &Tracker,
    store: &dyn Store,
    cache: &dyn Cache,
    node_id: &str,
    reports: Vec<StreamHealth>,
    changed: &mut Vec<(String, StreamStatus)>,
) -> Result<(), HealthError> {
    let now = Instant::now();
    let now_ms = now_ms();
    for h in reports {
        if !camstream_protocol::auth::is_valid_camera_id(&h.camera_id) {
            continue;
        }
        let delta = tracker.observe(&h, now);
        let status = status_of(h.state);
        let live = LiveStatus {
            camera_id: h.camera_id.clone(),
            status,
            last_seen: Some(rfc3339(to_ms(h.last_seen))),
            since: Some(rfc3339(to_ms(h.since))),
            node_id: Some(node_id.to_owned()),
            viewer_count: h.viewers,
            fps: h.fps,
            bitrate: h.bitrate_bps,
            dropped_frames: h.dropped_frames,
            resolution: h.resolution.map(|(w, hh)| format!("{w}x{hh}")),
            codecs: h.codecs.clone(),
        };
        let json = serde_json::to_string(&live).unwrap_or_default();
        cache
            .set(&keys::stream_status(&h.camera_id), &json, Some(STATUS_TTL))
            .await?;
        cache
            .set(
                &keys::viewers(&h.camera_id),
                &h.viewers.to_string(),
                Some(STATUS_TTL),
            )
            .await?;

        // One writer (the data plane's reporting task) per camera: read-modify-write is safe.
        let day = date(now_ms);
        let key = keys::analytics(&h.camera_id, &day);
        let mut a: DayAnalytics = cache
            .get(&key)
            .await?
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_else(|| DayAnalytics {
                date: day.clone(),
                ..DayAnalytics::default()
            });
        a.bytes_in = a.bytes_in.saturating_add(delta.bytes_in);
        a.bytes_out = a.bytes_out.saturating_add(delta.bytes_out);
        a.dropped_frames = a.dropped_frames.saturating_add(delta.dropped);
        a.peak_viewers = a.peak_viewers.max(h.viewers);
        a.online_seconds += delta.online.as_secs_f64();
        if status == StreamStatus::Online {
            // Running mean over the day's online samples.
            a.avg_bitrate = running_mean(a.avg_bitrate, a.samples, h.bitrate_bps);
            a.samples = a.samples.saturating_add(1);
        }
        let json = serde_json::to_string(&a).unwrap_or_default();
        cache.set(&key, &json, Some(ANALYTICS_TTL)).await?;

        if delta.sample {
            // One writer per camera (its node's report loop): read-modify-write is safe.
            let key = keys::health_series(&h.camera_id);
            let mut series: Series = cache
                .get(&key)
                .await?
                .and_then(|s| serde_json::from_str(&s).ok())
                .unwrap_or_default();
            series.samples.push_back((
                now_ms / 1000,
                h.fps,
                h.bitrate_bps,
                h.dropped_frames,
                h.viewers,
            ));
            while series.samples.len() > SERIES_LEN {
                series.samples.pop_front();
            }
            let json = serde_json::to_string(&series).unwrap_or_default();
            cache.set(&key, &json, Some(SERIES_TTL)).await?;
        }

        if delta.changed {
            let node = (status != StreamStatus::Offline).then_some(node_id);
            store.set_stream_status(&h.camera_id, status, node).await?;
            tracing::info!(camera_id = %h.camera_id, status = status.as_str(), "stream status changed");
            changed.push((h.camera_id.clone(), status));
        }
    }
    Ok(())
}

/// A camera's health samples of the last `minutes` (oldest first).
pub(crate) async fn series(
    cache: &dyn Cache,
    camera_id: &str,
    minutes: u32,
) -> Result<Vec<Sample>, CacheError> {
    let Some(json) = cache.get(&keys::health_series(camera_id)).await? else {
        return Ok(Vec::new());
    };
    let series: Series = serde_json::from_str(&json).unwrap_or_default();
    let since = now_ms() / 1000 - i64::from(minutes) * 60;
    Ok(series
        .samples
        .into_iter()
        .filter(|s| s.0 >= since)
        .collect())
}

/// Marks cameras whose reports stopped as offline; pushes them to `changed` as it goes.
pub(crate) async fn sweep(
    tracker: &Tracker,
    store: &dyn Store,
    cache: &dyn Cache,
    timeout: Duration,
    changed: &mut Vec<(String, StreamStatus)>,
) -> Result<(), HealthError> {
    let stale = tracker.stale(Instant::now(), timeout);
    for id in stale {
        store
            .set_stream_status(&id, StreamStatus::Offline, None)
            .await?;
        cache.del(&keys::stream_status(&id)).await?;
        tracing::info!(camera_id = %id, "stream reports stopped: offline");
        changed.push((id, StreamStatus::Offline));
    }
    Ok(())
}

/// The live status of a camera: the cached report, or the stored state when none is fresh.
pub(crate) async fn live_status(
    cache: &dyn Cache,
    camera_id: &str,
    stored: StreamStatus,
) -> Result<LiveStatus, CacheError> {
    if let Some(s) = cache.get(&keys::stream_status(camera_id)).await?
        && let Ok(live) = serde_json::from_str::<LiveStatus>(&s)
    {
        return Ok(live);
    }
    Ok(LiveStatus {
        camera_id: camera_id.to_owned(),
        // Without a fresh report nothing is streaming here, whatever the row says.
        status: if stored == StreamStatus::Error {
            StreamStatus::Error
        } else {
            StreamStatus::Offline
        },
        last_seen: None,
        since: None,
        node_id: None,
        viewer_count: 0,
        fps: 0.0,
        bitrate: 0,
        dropped_frames: 0,
        resolution: None,
        codecs: Vec::new(),
    })
}

/// The mean of `samples` values averaging `avg`, and `x`. In u128: a report's bitrate comes
/// from the data plane or a peer node and a day holds tens of thousands of samples, so the
/// product overflowed u64 on absurd values (a debug build panicked).
fn running_mean(avg: u64, samples: u64, x: u64) -> u64 {
    let sum = u128::from(avg) * u128::from(samples) + u128::from(x);
    u64::try_from(sum / (u128::from(samples) + 1)).unwrap_or(u64::MAX)
}

/// The day's analytics of a camera (zeros when nothing was recorded).
pub(crate) async fn day_analytics(
    cache: &dyn Cache,
    camera_id: &str,
    day: &str,
) -> Result<DayAnalytics, CacheError> {
    Ok(cache
        .get(&keys::analytics(camera_id, day))
        .await?
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_else(|| DayAnalytics {
            date: day.to_owned(),
            ..DayAnalytics::default()
        }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn report(state: StreamState, bytes_in: u64) -> StreamHealth {
        StreamHealth {
            camera_id: "cam".into(),
            state,
            fps: 30.0,
            bitrate_bps: 2_000_000,
            dropped_frames: 0,
            resolution: Some((1280, 720)),
            codecs: vec!["avc1.64001f".into()],
            viewers: 3,
            bytes_in,
            bytes_out: 0,
            since: SystemTime::now(),
            last_seen: SystemTime::now(),
        }
    }

    #[test]
    fn deltas_and_changes() {
        let t = Tracker::default();
        let t0 = Instant::now();
        let d = t.observe(&report(StreamState::Online, 1000), t0);
        assert!(d.changed);
        assert_eq!(d.bytes_in, 1000);
        let d = t.observe(
            &report(StreamState::Online, 1500),
            t0 + Duration::from_secs(1),
        );
        assert!(!d.changed);
        assert_eq!(d.bytes_in, 500);
        assert_eq!(d.online, Duration::from_secs(1));
        // A new publish restarts the cumulative counter.
        let d = t.observe(
            &report(StreamState::Online, 200),
            t0 + Duration::from_secs(2),
        );
        assert_eq!(d.bytes_in, 200);
        let d = t.observe(
            &report(StreamState::Offline, 200),
            t0 + Duration::from_secs(3),
        );
        assert!(d.changed);
        assert_eq!(d.online, Duration::ZERO);
    }

    #[test]
    fn running_mean_never_overflows() {
        assert_eq!(running_mean(0, 0, 2_000_000), 2_000_000);
        assert_eq!(running_mean(2_000_000, 1, 4_000_000), 3_000_000);
        assert_eq!(running_mean(u64::MAX, u64::MAX - 1, u64::MAX), u64::MAX);
        assert_eq!(
            running_mean(1_700_000_000_000_000, 86_400, 0),
            1_699_980_324_301_802
        );
    }

    #[test]
    fn stale_cameras() {
        let t = Tracker::default();
        let t0 = Instant::now();
        t.observe(&report(StreamState::Online, 0), t0);
        assert!(
            t.stale(t0 + Duration::from_secs(10), Duration::from_secs(30))
                .is_empty()
        );
        assert_eq!(
            t.stale(t0 + Duration::from_secs(31), Duration::from_secs(30)),
            vec!["cam".to_owned()]
        );
        assert!(
            t.stale(t0 + Duration::from_secs(62), Duration::from_secs(30))
                .is_empty()
        );
    }
}
