//! Circuit breakers, one per destination (`breaker_key`: a webhook's host, the SMS gateway,
//! the SMTP relay). A sans-IO state machine: the worker asks before each attempt and reports
//! the result; time comes in as `now`.
//!
//! Closed → (N consecutive failures) → Open → (cooldown) → HalfOpen with one probe → Closed on
//! success, Open again on failure. While open, deliveries wait (released with their attempt
//! count unchanged) instead of burning attempts. State is per node: each node learns about a
//! broken destination from its own attempts.

use std::collections::HashMap;

/// What the worker may do with a delivery to this destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Send.
    Send,
    /// Send as the half-open probe.
    Probe,
    /// Do not send before this time (Unix ms).
    Wait(i64),
}

/// A breaker's state, as the gauge shows it (0 closed, 1 open, 2 half-open).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Sending.
    Closed,
    /// Refusing until `until`.
    Open {
        /// Unix ms.
        until: i64,
    },
    /// One probe allowed; `probing` while it is out.
    HalfOpen {
        /// A probe is in flight.
        probing: bool,
    },
}

impl State {
    /// The gauge value.
    pub(crate) fn gauge(self) -> f64 {
        match self {
            State::Closed => 0.0,
            State::Open { .. } => 1.0,
            State::HalfOpen { .. } => 2.0,
        }
    }
}

/// One destination's breaker.
#[derive(Debug, Clone)]
pub(crate) struct Breaker {
    state: State,
    failures: u32,
}

impl Default for Breaker {
    fn default() -> Self {
        Self {
            state: State::Closed,
            failures: 0,
        }
    }
}

/// The breakers of every destination, with their thresholds.
#[derive(Debug)]
pub(crate) struct Breakers {
    map: HashMap<String, Breaker>,
    /// Consecutive failures that open a breaker.
    threshold: u32,
    /// How long an open breaker refuses before the probe (ms).
    cooldown_ms: i64,
}

impl Breakers {
    pub(crate) fn new(threshold: u32, cooldown_ms: i64) -> Self {
        Self {
            map: HashMap::new(),
            threshold: threshold.max(1),
            cooldown_ms,
        }
    }

    /// May a delivery to `key` go now? A `Probe` must be answered with
    /// [`Breakers::on_result`].
    pub(crate) fn check(&mut self, key: &str, now: i64) -> Decision {
        let b = self.map.entry(key.to_owned()).or_default();
        match b.state {
            State::Closed => Decision::Send,
            State::Open { until } if now < until => Decision::Wait(until),
            State::Open { .. } | State::HalfOpen { probing: false } => {
                b.state = State::HalfOpen { probing: true };
                Decision::Probe
            }
            // Others wait about a cooldown; a successful probe closes the breaker and the
            // next poll takes them sooner only if they are due, so keep the wait short.
            State::HalfOpen { probing: true } => Decision::Wait(now + self.cooldown_ms.min(1000)),
        }
    }

    /// Reports an attempt's result; returns the new state.
    pub(crate) fn on_result(&mut self, key: &str, ok: bool, now: i64) -> State {
        let b = self.map.entry(key.to_owned()).or_default();
        if ok {
            b.failures = 0;
            b.state = State::Closed;
        } else {
            b.failures = b.failures.saturating_add(1);
            let reopen = matches!(b.state, State::HalfOpen { .. });
            if reopen || b.failures >= self.threshold {
                b.state = State::Open {
                    until: now + self.cooldown_ms,
                };
            }
        }
        b.state
    }

    /// The state of `key` (closed when never used).
    #[cfg(test)]
    pub(crate) fn state(&self, key: &str) -> State {
        self.map.get(key).map_or(State::Closed, |b| b.state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_n_failures_probes_once_and_closes() {
        let mut b = Breakers::new(3, 10_000);
        for i in 0..3 {
            assert_eq!(b.check("h", i), Decision::Send);
            b.on_result("h", false, i);
        }
        assert_eq!(b.state("h"), State::Open { until: 10_002 });
        assert_eq!(b.check("h", 5_000), Decision::Wait(10_002));
        assert_eq!(b.check("h", 10_002), Decision::Probe);
        assert!(matches!(b.check("h", 10_003), Decision::Wait(_)));
        // The probe fails: open again for a cooldown.
        assert_eq!(
            b.on_result("h", false, 10_010),
            State::Open { until: 20_010 }
        );
        assert_eq!(b.check("h", 20_010), Decision::Probe);
        assert_eq!(b.on_result("h", true, 20_020), State::Closed);
        assert_eq!(b.check("h", 20_021), Decision::Send);
        // Another destination is independent.
        assert_eq!(b.state("other"), State::Closed);
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let mut b = Breakers::new(2, 1_000);
        b.on_result("h", false, 0);
        b.on_result("h", true, 1);
        b.on_result("h", false, 2);
        assert_eq!(b.state("h"), State::Closed);
    }
}
