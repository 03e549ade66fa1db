//! Edge-added part latency of the relay benchmark: when an LL-HLS part first appeared in a
//! blocking reload answered by the edge, minus when it first appeared in one answered by
//! the origin, for the same camera and the same (media sequence number, part index). Both
//! nodes number parts alike (docs/architecture.md, "Relay between nodes"), so the position
//! is the key.
//!
//! Pure bookkeeping: the probe (`relay`) does the HTTP and hands in the times it saw.

use std::collections::BTreeMap;

use crate::metrics::LatencySummary;

/// Which node answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Origin,
    Edge,
}

/// First-seen times (µs on the run's clock) of one camera's parts on both nodes, paired.
#[derive(Debug, Default)]
pub(crate) struct PartClock {
    /// (msn, part index) → (origin µs, edge µs), until both are known.
    pending: BTreeMap<(u64, u32), (Option<u64>, Option<u64>)>,
}

/// Positions kept waiting for their other side; older ones are dropped (a part the other
/// node never listed, e.g. while the relay was starting).
const MAX_PENDING: usize = 512;

impl PartClock {
    /// Records that `side` listed part `(msn, index)` for the first time at `t_us`. Returns
    /// edge minus origin in µs once both sides have listed it (negative when the edge's
    /// answer came first: both are HTTP answers, so the figure carries their jitter).
    pub(crate) fn seen(&mut self, side: Side, msn: u64, index: u32, t_us: u64) -> Option<i64> {
        let e = self.pending.entry((msn, index)).or_default();
        let slot = match side {
            Side::Origin => &mut e.0,
            Side::Edge => &mut e.1,
        };
        if slot.is_none() {
            *slot = Some(t_us);
        }
        if let (Some(o), Some(d)) = *e {
            self.pending.remove(&(msn, index));
            return Some(d as i64 - o as i64);
        }
        while self.pending.len() > MAX_PENDING {
            self.pending.pop_first();
        }
        None
    }
}

/// Percentiles of signed differences in µs, as milliseconds (nearest rank).
pub(crate) fn summarize_signed(deltas_us: &[i64]) -> LatencySummary {
    if deltas_us.is_empty() {
        return LatencySummary::default();
    }
    let mut v = deltas_us.to_vec();
    v.sort_unstable();
    let at = |q: f64| {
        let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
        v[rank - 1] as f64 / 1000.0
    };
    LatencySummary {
        count: v.len() as u64,
        p50_ms: at(0.50),
        p95_ms: at(0.95),
        p99_ms: at(0.99),
        max_ms: v[v.len() - 1] as f64 / 1000.0,
        mean_ms: v.iter().sum::<i64>() as f64 / v.len() as f64 / 1000.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_by_position_in_either_order() {
        let mut c = PartClock::default();
        assert_eq!(c.seen(Side::Origin, 10, 0, 1_000), None);
        assert_eq!(c.seen(Side::Edge, 10, 1, 5_000), None);
        assert_eq!(c.seen(Side::Edge, 10, 0, 4_000), Some(3_000));
        assert_eq!(c.seen(Side::Origin, 10, 1, 4_500), Some(500));
        assert!(c.pending.is_empty());
    }

    #[test]
    fn keeps_the_first_sighting_and_may_go_negative() {
        let mut c = PartClock::default();
        assert_eq!(c.seen(Side::Edge, 1, 2, 900), None);
        assert_eq!(c.seen(Side::Edge, 1, 2, 2_000), None, "a repeat is ignored");
        assert_eq!(c.seen(Side::Origin, 1, 2, 1_000), Some(-100));
    }

    #[test]
    fn unpaired_positions_are_bounded() {
        let mut c = PartClock::default();
        for i in 0..(MAX_PENDING as u32 + 100) {
            c.seen(Side::Origin, 0, i, u64::from(i));
        }
        assert_eq!(c.pending.len(), MAX_PENDING);
        assert_eq!(c.seen(Side::Edge, 0, 0, 50), None, "the oldest was dropped");
        assert_eq!(
            c.seen(
                Side::Edge,
                0,
                MAX_PENDING as u32 + 99,
                MAX_PENDING as u64 + 199
            ),
            Some(100)
        );
    }

    #[test]
    fn signed_percentiles() {
        assert_eq!(summarize_signed(&[]), LatencySummary::default());
        let v: Vec<i64> = (1..=100).map(|i| i * 1000).collect();
        let s = summarize_signed(&v);
        assert_eq!(
            (s.count, s.p50_ms, s.p95_ms, s.p99_ms, s.max_ms, s.mean_ms),
            (100, 50.0, 95.0, 99.0, 100.0, 50.5)
        );
        let s = summarize_signed(&[-2000, 1000, 3000]);
        assert_eq!((s.p50_ms, s.max_ms), (1.0, 3.0));
    }
}
