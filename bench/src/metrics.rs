//! What a run measures while it runs: counters, latency histograms and the per-camera
//! frame ledger that lets viewers turn a marker back into "when did this frame reach the
//! server". Shared by every task of a run behind one `Arc`.
//!
//! Latencies are µs on the run's monotonic clock ([`Clock`]): publishers, viewers and API
//! clients live in one process, so one clock serves them all and no clock sync is needed.
//! Summaries for the report are made here; the report's layout is `report`'s.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Frames a camera's ledger remembers (≈ 4.5 min at 30 fps): a viewer further behind
/// than that gets no ingest latency for its frames, only delivery.
const LEDGER_FRAMES: usize = 8192;
/// Highest latency a histogram holds, µs (10 min); longer values are clamped.
const HIST_MAX_US: u64 = 600_000_000;

/// The run's clock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    epoch: Instant,
}

impl Clock {
    pub(crate) fn new() -> Self {
        Self {
            epoch: Instant::now(),
        }
    }

    /// µs since the run started.
    pub(crate) fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    pub(crate) fn at_us(&self, us: u64) -> Instant {
        self.epoch + std::time::Duration::from_micros(us)
    }
}

/// Percentiles of one latency, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct LatencySummary {
    pub(crate) count: u64,
    pub(crate) p50_ms: f64,
    pub(crate) p95_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) max_ms: f64,
    pub(crate) mean_ms: f64,
}

/// A latency histogram (µs, 3 significant digits).
#[derive(Debug)]
pub(crate) struct Hist(Mutex<Histogram<u64>>);

impl Default for Hist {
    fn default() -> Self {
        Self(Mutex::new(
            Histogram::new_with_bounds(1, HIST_MAX_US, 3)
                .expect("static histogram bounds are valid"),
        ))
    }
}

impl Hist {
    pub(crate) fn record(&self, us: u64) {
        let v = us.clamp(1, HIST_MAX_US);
        if let Ok(mut h) = self.0.lock() {
            // Cannot fail: the value is clamped into the histogram's range.
            let _ = h.record(v);
        }
    }

    pub(crate) fn summary(&self) -> LatencySummary {
        self.0.lock().map(|h| summarize(&h)).unwrap_or_default()
    }

    /// (upper bound ms, count) buckets for plotting, 50 of them from 0 to the p99.9 value.
    pub(crate) fn buckets(&self) -> Vec<(f64, u64)> {
        let Ok(h) = self.0.lock() else {
            return Vec::new();
        };
        if h.is_empty() {
            return Vec::new();
        }
        let top = h.value_at_quantile(0.999).max(1000);
        let step = (top / 50).max(1);
        h.iter_linear(step)
            .map(|v| {
                (
                    v.value_iterated_to() as f64 / 1000.0,
                    v.count_since_last_iteration(),
                )
            })
            .take(50)
            .collect()
    }
}

/// Percentiles of a histogram, in ms.
pub(crate) fn summarize(h: &Histogram<u64>) -> LatencySummary {
    if h.is_empty() {
        return LatencySummary::default();
    }
    let ms = |us: u64| us as f64 / 1000.0;
    LatencySummary {
        count: h.len(),
        p50_ms: ms(h.value_at_quantile(0.50)),
        p95_ms: ms(h.value_at_quantile(0.95)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        max_ms: ms(h.max()),
        mean_ms: h.mean() / 1000.0,
    }
}

/// One camera's publishing record.
#[derive(Debug)]
pub(crate) struct CameraLedger {
    pub(crate) live: AtomicBool,
    pub(crate) frames: AtomicU64,
    pub(crate) bytes: AtomicU64,
    /// (seq, ingest µs) at index `seq % LEDGER_FRAMES`.
    ingest: Mutex<Vec<(u32, u64)>>,
}

impl Default for CameraLedger {
    fn default() -> Self {
        Self {
            live: AtomicBool::new(false),
            frames: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            ingest: Mutex::new(vec![(u32::MAX, 0); LEDGER_FRAMES]),
        }
    }
}

impl CameraLedger {
    /// Notes that video frame `seq`'s last byte was handed to the socket at `ingest_us`.
    pub(crate) fn record(&self, seq: u32, ingest_us: u64) {
        if let Ok(mut r) = self.ingest.lock() {
            r[seq as usize % LEDGER_FRAMES] = (seq, ingest_us);
        }
    }

    /// When frame `seq` reached the server, if still remembered.
    pub(crate) fn ingest_us(&self, seq: u32) -> Option<u64> {
        let r = self.ingest.lock().ok()?;
        let (s, t) = r[seq as usize % LEDGER_FRAMES];
        (s == seq).then_some(t)
    }

    /// The newest frame that had reached the server by `t_us`.
    pub(crate) fn last_seq_by(&self, t_us: u64) -> Option<u32> {
        let r = self.ingest.lock().ok()?;
        r.iter()
            .filter(|(s, t)| *s != u32::MAX && *t <= t_us)
            .map(|(s, _)| *s)
            .max()
    }
}

/// Which HLS flavour a viewer plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Flavor {
    /// Classic HLS, MPEG-TS segments.
    Hls,
    /// Low-Latency HLS, fMP4 parts.
    LlHls,
}

/// Latencies measured per flavour.
#[derive(Debug, Default)]
pub(crate) struct FlavorHists {
    /// Frame reached the server → the part/segment holding it was listed.
    pub(crate) ingest_to_available: Hist,
    /// Frame capture → its bytes were in the viewer (no player buffer).
    pub(crate) delivery: Hist,
    /// Frame capture → displayed by the simulated player (glass-to-glass proxy).
    pub(crate) glass_to_glass: Hist,
    /// Media request duration (request sent → body complete).
    pub(crate) fetch: Hist,
}

/// What one viewer saw, kept for the report's loss table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ViewerResult {
    pub(crate) camera: u32,
    pub(crate) flavor: Option<Flavor>,
    pub(crate) frames: u64,
    pub(crate) bytes: u64,
    pub(crate) missing_frames: u64,
    pub(crate) tail_missing_frames: u64,
    pub(crate) foreign_frames: u64,
    /// Stalls of at least 100 ms.
    pub(crate) stalls: u64,
    /// Stalls of at least 1 ms (reports written before this field read 0).
    #[serde(default)]
    pub(crate) stalls_1ms: u64,
    pub(crate) stall_ms: f64,
    pub(crate) resyncs: u64,
    pub(crate) http_errors: u64,
    pub(crate) started: bool,
}

/// Counters and histograms of a run.
#[derive(Debug)]
pub(crate) struct Metrics {
    pub(crate) clock: Clock,
    pub(crate) cameras: Vec<CameraLedger>,
    pub(crate) publishers_live: AtomicU64,
    pub(crate) publish_failures: AtomicU64,
    pub(crate) frames_sent: AtomicU64,
    pub(crate) bytes_sent: AtomicU64,
    /// Largest lateness of a send since the last sample, µs.
    pub(crate) lag_max_us: AtomicU64,
    pub(crate) viewers_active: AtomicU64,
    pub(crate) viewer_bytes: AtomicU64,
    pub(crate) viewer_frames: AtomicU64,
    pub(crate) http_errors: AtomicU64,
    /// Stalls of at least 100 ms.
    pub(crate) stalls: AtomicU64,
    /// Stalls of at least 1 ms.
    pub(crate) stalls_1ms: AtomicU64,
    /// Stalls past a player's warm-up (what the limit detector watches).
    pub(crate) settled_stalls: AtomicU64,
    pub(crate) api_requests: AtomicU64,
    pub(crate) api_errors: AtomicU64,
    pub(crate) hls: FlavorHists,
    pub(crate) llhls: FlavorHists,
    /// Blocking playlist reload: frame that completed the part reached the server → the
    /// reload answered.
    pub(crate) wakeup: Hist,
    /// The same, from the frame after the part's last one (the frame that closes the part,
    /// so the part cannot be listed before it): the server's own share (issue 11).
    pub(crate) wakeup_after_close: Hist,
    /// Publisher lateness: send time − due time.
    pub(crate) generator_lag: Hist,
    pub(crate) api_all: Hist,
    pub(crate) api_by_route: Mutex<BTreeMap<String, Hist>>,
    pub(crate) errors: Mutex<BTreeMap<String, u64>>,
}

impl Metrics {
    pub(crate) fn new(cameras: usize) -> Self {
        Self {
            clock: Clock::new(),
            cameras: (0..cameras).map(|_| CameraLedger::default()).collect(),
            publishers_live: AtomicU64::new(0),
            publish_failures: AtomicU64::new(0),
            frames_sent: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            lag_max_us: AtomicU64::new(0),
            viewers_active: AtomicU64::new(0),
            viewer_bytes: AtomicU64::new(0),
            viewer_frames: AtomicU64::new(0),
            http_errors: AtomicU64::new(0),
            stalls: AtomicU64::new(0),
            stalls_1ms: AtomicU64::new(0),
            settled_stalls: AtomicU64::new(0),
            api_requests: AtomicU64::new(0),
            api_errors: AtomicU64::new(0),
            hls: FlavorHists::default(),
            llhls: FlavorHists::default(),
            wakeup: Hist::default(),
            wakeup_after_close: Hist::default(),
            generator_lag: Hist::default(),
            api_all: Hist::default(),
            api_by_route: Mutex::new(BTreeMap::new()),
            errors: Mutex::new(BTreeMap::new()),
        }
    }

    pub(crate) fn flavor(&self, f: Flavor) -> &FlavorHists {
        match f {
            Flavor::Hls => &self.hls,
            Flavor::LlHls => &self.llhls,
        }
    }

    /// Counts an error under a short class name (`"viewer: http 404"`); the report lists them.
    pub(crate) fn error(&self, class: String) {
        if let Ok(mut e) = self.errors.lock() {
            // Bounded: classes are built from status codes and fixed words, but a server
            // could invent status texts; past 200 classes they are lumped together.
            let n = e.len();
            let key = if n < 200 || e.contains_key(&class) {
                class
            } else {
                "other".to_owned()
            };
            *e.entry(key).or_default() += 1;
        }
    }

    pub(crate) fn api_record(&self, route: &str, us: u64) {
        self.api_all.record(us);
        if let Ok(mut m) = self.api_by_route.lock() {
            m.entry(route.to_owned()).or_default().record(us);
        }
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_in_ms() {
        let h = Hist::default();
        for ms in 1..=100u64 {
            h.record(ms * 1000);
        }
        let s = h.summary();
        assert_eq!(s.count, 100);
        assert!((s.p50_ms - 50.0).abs() < 0.1, "{s:?}");
        assert!((s.p95_ms - 95.0).abs() < 0.1, "{s:?}");
        assert!((s.p99_ms - 99.0).abs() < 0.1, "{s:?}");
        assert!((s.max_ms - 100.0).abs() < 0.1, "{s:?}");
        assert!((s.mean_ms - 50.5).abs() < 0.1, "{s:?}");
        let b = h.buckets();
        assert!(!b.is_empty() && b.len() <= 50);
        assert_eq!(
            b.iter().map(|x| x.1).sum::<u64>(),
            100,
            "every value in a bucket: {b:?}"
        );
    }

    #[test]
    fn huge_and_zero_latencies_are_clamped_not_lost() {
        let h = Hist::default();
        h.record(0);
        h.record(u64::MAX);
        let s = h.summary();
        assert_eq!(s.count, 2);
        assert!(s.max_ms >= 599_000.0);
        assert_eq!(Hist::default().summary(), LatencySummary::default());
    }

    #[test]
    fn ledger_remembers_recent_frames_only() {
        let l = CameraLedger::default();
        for seq in 0..(LEDGER_FRAMES as u32 + 10) {
            l.record(seq, u64::from(seq) * 33_000);
        }
        assert_eq!(l.ingest_us(5), None, "overwritten by a newer frame");
        assert_eq!(
            l.ingest_us(LEDGER_FRAMES as u32 + 5),
            Some((LEDGER_FRAMES as u64 + 5) * 33_000)
        );
        assert_eq!(l.last_seq_by(100 * 33_000 + 5), Some(100));
        assert_eq!(
            l.last_seq_by(5 * 33_000),
            None,
            "frames 0..=9 are forgotten"
        );
        assert_eq!(l.last_seq_by(8200 * 33_000 + 5), Some(8200));
    }
}
