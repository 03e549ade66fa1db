//! Stream quality alerts from the health reports: `STREAM_FPS_LOW` (frame rate below the
//! rule's share of nominal), `STREAM_FRAMES_DROPPED` (more dropped frames per minute than the
//! rule allows) and `STREAM_BITRATE_LOW` (bitrate below the rule's share of its recent
//! median), each raised when it held for the rule's whole duration and resolved when the
//! newest report is fine again (or the camera stops).
//!
//! Nominal frame rate: cameras have no configured rate in the store, so it is the camera's
//! own median over the [`BASELINE`] before the evaluation window; while a condition holds,
//! the nominal it was raised against is kept (a long outage does not become the new normal
//! and resolve itself).
//!
//! Each node keeps the recent reports of the cameras it ingests ([`Tracker`], fed by
//! `report_health`); the sweeper evaluates them with the time passed in. Alerts of cameras
//! no longer reported here are resolved by any node once the camera is offline.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;

use camstream_protocol::{StreamHealth, StreamState};

use super::rules::{Effective, RuleSet, STREAM_BITRATE_LOW, STREAM_FPS_LOW, STREAM_FRAMES_DROPPED};
use crate::store::{NewAlert, Store, StoreError, StreamStatus};

/// The quality alert types.
pub(crate) const KINDS: [&str; 3] = [STREAM_FPS_LOW, STREAM_FRAMES_DROPPED, STREAM_BITRATE_LOW];
/// How far before the evaluation window the nominal values are taken from (ms).
pub(crate) const BASELINE: i64 = 5 * 60_000;
/// Fewest baseline samples for a nominal value.
const MIN_BASELINE: usize = 3;
/// Reports closer than this to the previous sample are not kept (ms).
const MIN_STEP: i64 = 900;
/// The newest sample must be this recent for a condition to hold (ms).
const FRESH: i64 = 5_000;
/// Longest duration a quality rule may have (ms); samples older than it plus the baseline
/// are dropped.
pub(crate) const MAX_DURATION: i64 = 600_000;
/// How long a camera's company is remembered (ms).
const COMPANY_TTL: i64 = 60_000;

#[derive(Debug, Clone, Copy, PartialEq)]
struct Sample {
    at: i64,
    fps: f32,
    bitrate: u64,
    dropped: u64,
}

/// A camera's company and when it was read (Unix ms).
type KnownCompany = (Option<String>, i64);

#[derive(Debug, Default)]
struct Camera {
    samples: VecDeque<Sample>,
    company: Option<KnownCompany>,
    /// Nominal value per kind while its condition holds.
    frozen: HashMap<&'static str, f64>,
}

/// The recent health of this node's cameras.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    cameras: Mutex<HashMap<String, Camera>>,
}

/// What a condition looks like now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Verdict {
    /// Held for the whole duration: (measured, limit) for the message.
    Holds(f64, f64),
    /// The newest sample is fine (or there is none fresh).
    Clear,
    /// Not enough history to say.
    Unknown,
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.len() < MIN_BASELINE {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    Some(v[v.len() / 2])
}

impl Tracker {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Camera>> {
        // Each update is a whole push or removal: a poisoned map is still consistent.
        self.cameras.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps the reports of streaming cameras; a camera that stops streaming is forgotten.
    pub(crate) fn observe(&self, reports: &[StreamHealth], now_ms: i64) {
        let mut map = self.lock();
        for h in reports {
            if h.state != StreamState::Online {
                map.remove(&h.camera_id);
                continue;
            }
            let cam = map.entry(h.camera_id.clone()).or_default();
            if cam.samples.back().is_some_and(|s| now_ms - s.at < MIN_STEP) {
                continue;
            }
            cam.samples.push_back(Sample {
                at: now_ms,
                fps: h.fps,
                bitrate: h.bitrate_bps,
                dropped: h.dropped_frames,
            });
            while cam
                .samples
                .front()
                .is_some_and(|s| s.at < now_ms - MAX_DURATION - BASELINE)
            {
                cam.samples.pop_front();
            }
        }
    }

    /// Judges one condition of one camera at `now_ms`; `None` when the camera is not here.
    fn judge(
        &self,
        camera: &str,
        kind: &'static str,
        rule: &Effective,
        now_ms: i64,
    ) -> Option<Verdict> {
        let mut map = self.lock();
        let cam = map.get_mut(camera)?;
        let v = verdict(
            &cam.samples,
            cam.frozen.get(kind).copied(),
            kind,
            rule,
            now_ms,
        );
        match v.0 {
            Verdict::Holds(..) => {
                if let Some(n) = v.1 {
                    cam.frozen.insert(kind, n);
                }
            }
            Verdict::Clear => {
                cam.frozen.remove(kind);
            }
            Verdict::Unknown => {}
        }
        Some(v.0)
    }

    fn cameras(&self) -> Vec<(String, Option<KnownCompany>)> {
        self.lock()
            .iter()
            .map(|(id, c)| (id.clone(), c.company.clone()))
            .collect()
    }

    fn set_company(&self, camera: &str, company: Option<String>, now_ms: i64) {
        if let Some(c) = self.lock().get_mut(camera) {
            c.company = Some((company, now_ms));
        }
    }

    fn forget(&self, camera: &str) {
        self.lock().remove(camera);
    }
}

/// The verdict on `samples` (oldest first) for `kind` under `rule` at `now_ms`, and the
/// nominal value it used. `frozen`: the nominal kept while the condition holds.
fn verdict(
    samples: &VecDeque<Sample>,
    frozen: Option<f64>,
    kind: &str,
    rule: &Effective,
    now_ms: i64,
) -> (Verdict, Option<f64>) {
    let Some(newest) = samples.back() else {
        return (Verdict::Clear, None);
    };
    if now_ms - newest.at > FRESH {
        return (Verdict::Clear, None);
    }
    let threshold = rule.threshold.unwrap_or(0.0);
    let duration = rule.duration_ms.unwrap_or(60_000).clamp(0, MAX_DURATION);
    let start = now_ms - duration;
    let covered = samples.front().is_some_and(|s| s.at <= start);
    if kind == STREAM_FRAMES_DROPPED {
        // Rate per minute between consecutive samples ending inside the window.
        let rate = |a: &Sample, b: &Sample| {
            let dt = (b.at - a.at).max(1) as f64;
            b.dropped.saturating_sub(a.dropped) as f64 * 60_000.0 / dt
        };
        let pairs: Vec<f64> = samples
            .iter()
            .zip(samples.iter().skip(1))
            .filter(|(_, b)| b.at > start)
            .map(|(a, b)| rate(a, b))
            .collect();
        let Some(&last) = pairs.last() else {
            return (Verdict::Unknown, None);
        };
        if last <= threshold {
            return (Verdict::Clear, None);
        }
        if covered && pairs.iter().all(|r| *r > threshold) {
            let min = pairs.iter().copied().fold(f64::INFINITY, f64::min);
            return (Verdict::Holds(min, threshold), None);
        }
        return (Verdict::Unknown, None);
    }
    let value = |s: &Sample| {
        if kind == STREAM_FPS_LOW {
            f64::from(s.fps)
        } else {
            s.bitrate as f64
        }
    };
    let nominal = frozen.or_else(|| {
        median(
            samples
                .iter()
                .filter(|s| s.at < start && s.at >= start - BASELINE)
                .map(value)
                .collect(),
        )
    });
    let Some(nominal) = nominal.filter(|n| *n > 0.0) else {
        return (Verdict::Unknown, None);
    };
    let limit = threshold * nominal;
    if value(newest) >= limit {
        return (Verdict::Clear, None);
    }
    let window: Vec<f64> = samples.iter().filter(|s| s.at > start).map(value).collect();
    if covered && window.iter().all(|v| *v < limit) {
        let max = window.iter().copied().fold(0.0, f64::max);
        return (Verdict::Holds(max, limit), Some(nominal));
    }
    (Verdict::Unknown, None)
}

fn cause(kind: &str, camera: &str) -> String {
    format!("{kind}:{camera}")
}

fn message(kind: &str, name: &str, measured: f64, limit: f64, secs: i64) -> String {
    match kind {
        STREAM_FPS_LOW => format!(
            "camera {name}: frame rate {measured:.1} fps, below {limit:.1} fps for {secs} s"
        ),
        STREAM_FRAMES_DROPPED => format!(
            "camera {name}: {measured:.0} dropped frames per minute (limit {limit:.0}) for {secs} s"
        ),
        _ => format!(
            "camera {name}: bitrate {:.0} kbit/s, below {:.0} kbit/s for {secs} s",
            measured / 1000.0,
            limit / 1000.0
        ),
    }
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QualityPass {
    pub(crate) raised: usize,
    pub(crate) resolved: usize,
    /// Quality alerts open after the pass, per kind (same order as [`KINDS`]).
    pub(crate) open: [usize; 3],
}

/// Raises and resolves the quality alerts of the cameras reported here, and resolves those
/// of cameras no longer streaming anywhere.
pub(crate) async fn quality_pass(
    store: &dyn Store,
    rules: &RuleSet,
    tracker: &Tracker,
    now_ms: i64,
) -> Result<QualityPass, StoreError> {
    let mut pass = QualityPass::default();
    let mut open: HashMap<&'static str, HashSet<String>> = HashMap::new();
    for kind in KINDS {
        let ids = store
            .open_alerts(kind)
            .await?
            .into_iter()
            .filter_map(|a| a.camera_id)
            .collect();
        open.insert(kind, ids);
    }
    let here = tracker.cameras();
    let here_ids: HashSet<&str> = here.iter().map(|(id, _)| id.as_str()).collect();
    for (id, company) in &here {
        let (company, name) = match company {
            Some((c, at)) if now_ms - at < COMPANY_TTL => (c.clone(), id.clone()),
            _ => match store.get_camera(id).await? {
                Some(c) => {
                    tracker.set_company(id, c.company.clone(), now_ms);
                    (c.company, c.name)
                }
                None => {
                    tracker.forget(id);
                    continue;
                }
            },
        };
        for kind in KINDS {
            let rule = rules.effective(kind, company.as_deref(), Some(id));
            let is_open = open.get(kind).is_some_and(|s| s.contains(id));
            let v = if rule.enabled {
                tracker
                    .judge(id, kind, &rule, now_ms)
                    .unwrap_or(Verdict::Clear)
            } else {
                Verdict::Clear
            };
            match v {
                Verdict::Holds(measured, limit) if !is_open => {
                    let secs = rule.duration_ms.unwrap_or(0) / 1000;
                    store
                        .create_alert(NewAlert {
                            kind: kind.into(),
                            severity: rule.severity.clone(),
                            camera_id: Some(id.clone()),
                            message: message(kind, &name, measured, limit, secs),
                            cause: Some(cause(kind, id)),
                            company: company.clone(),
                            ..NewAlert::default()
                        })
                        .await?;
                    open.entry(kind).or_default().insert(id.clone());
                    pass.raised += 1;
                    tracing::warn!(camera_id = %id, kind, measured, limit, "alert: stream quality");
                }
                Verdict::Clear if is_open => {
                    if store.resolve_cause(&cause(kind, id), now_ms).await? {
                        pass.resolved += 1;
                        tracing::info!(camera_id = %id, kind, "alert resolved: stream quality back");
                    }
                    if let Some(s) = open.get_mut(kind) {
                        s.remove(id);
                    }
                }
                _ => {}
            }
        }
    }
    // Cameras not reported here: resolved once they stream nowhere (their node, if any,
    // judges them otherwise).
    for kind in KINDS {
        let Some(ids) = open.get_mut(kind) else {
            continue;
        };
        let elsewhere: Vec<String> = ids
            .iter()
            .filter(|id| !here_ids.contains(id.as_str()))
            .cloned()
            .collect();
        for id in elsewhere {
            let streaming = store
                .get_camera(&id)
                .await?
                .is_some_and(|c| c.is_active && c.stream_status == StreamStatus::Online);
            if !streaming && store.resolve_cause(&cause(kind, &id), now_ms).await? {
                pass.resolved += 1;
                ids.remove(&id);
                tracing::info!(camera_id = %id, kind, "alert resolved: the stream stopped");
            }
        }
    }
    for (i, kind) in KINDS.iter().enumerate() {
        pass.open[i] = open.get(kind).map_or(0, HashSet::len);
    }
    Ok(pass)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::rules::{Source, default_rule, spec};

    fn rule(kind: &str, threshold: f64, secs: i64) -> Effective {
        Effective {
            threshold: Some(threshold),
            duration_ms: Some(secs * 1000),
            source: Source::Company,
            ..default_rule(spec(kind).unwrap(), std::time::Duration::from_secs(300))
        }
    }

    fn feed(t: &Tracker, from_s: i64, to_s: i64, fps: f32, bitrate: u64, dropped_per_s: u64) {
        for s in from_s..to_s {
            let h = StreamHealth {
                camera_id: "cam".into(),
                state: StreamState::Online,
                fps,
                bitrate_bps: bitrate,
                dropped_frames: dropped_per_s * u64::try_from(s).unwrap(),
                resolution: None,
                codecs: Vec::new(),
                viewers: 0,
                bytes_in: 0,
                bytes_out: 0,
                since: std::time::SystemTime::now(),
                last_seen: std::time::SystemTime::now(),
            };
            t.observe(&[h], s * 1000);
        }
    }

    #[test]
    fn low_fps_holds_after_the_duration_and_clears_on_recovery() {
        let t = Tracker::default();
        let r = rule(STREAM_FPS_LOW, 0.5, 10);
        feed(&t, 0, 30, 25.0, 2_000_000, 0);
        assert_eq!(
            t.judge("cam", STREAM_FPS_LOW, &r, 29_000),
            Some(Verdict::Clear)
        );
        feed(&t, 30, 35, 5.0, 2_000_000, 0);
        // Low for 5 s of a 10 s rule: not yet.
        assert_eq!(
            t.judge("cam", STREAM_FPS_LOW, &r, 34_000),
            Some(Verdict::Unknown)
        );
        feed(&t, 35, 45, 5.0, 2_000_000, 0);
        assert_eq!(
            t.judge("cam", STREAM_FPS_LOW, &r, 44_000),
            Some(Verdict::Holds(5.0, 12.5))
        );
        // Still held long after: the nominal is kept.
        feed(&t, 45, 400, 5.0, 2_000_000, 0);
        assert!(matches!(
            t.judge("cam", STREAM_FPS_LOW, &r, 399_000),
            Some(Verdict::Holds(..))
        ));
        feed(&t, 400, 401, 25.0, 2_000_000, 0);
        assert_eq!(
            t.judge("cam", STREAM_FPS_LOW, &r, 400_000),
            Some(Verdict::Clear)
        );
        // Stale reports: clear.
        assert_eq!(
            t.judge("cam", STREAM_FPS_LOW, &r, 500_000),
            Some(Verdict::Clear)
        );
    }

    #[test]
    fn bitrate_collapse_and_dropped_frames() {
        let t = Tracker::default();
        let b = rule(STREAM_BITRATE_LOW, 0.25, 5);
        let d = rule(STREAM_FRAMES_DROPPED, 60.0, 5);
        feed(&t, 0, 20, 25.0, 2_000_000, 0);
        feed(&t, 20, 30, 25.0, 100_000, 3);
        assert!(matches!(
            t.judge("cam", STREAM_BITRATE_LOW, &b, 29_000),
            Some(Verdict::Holds(..))
        ));
        // 3 frames a second is 180 a minute.
        assert!(matches!(
            t.judge("cam", STREAM_FRAMES_DROPPED, &d, 29_000),
            Some(Verdict::Holds(..))
        ));
        feed(&t, 30, 31, 25.0, 2_000_000, 3);
        assert_eq!(
            t.judge("cam", STREAM_BITRATE_LOW, &b, 30_000),
            Some(Verdict::Clear)
        );
        assert!(t.judge("other", STREAM_BITRATE_LOW, &b, 30_000).is_none());
    }
}
