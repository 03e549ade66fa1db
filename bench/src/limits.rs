//! Where and why a run hit the machine's limit (sans-IO): fed one sample per second, it
//! names the first condition that held for `sustain_s` samples in a row. A number is
//! never reported without its conditions, and a run that hit a wall says which wall.

use serde::{Deserialize, Serialize};

use crate::report::Sample;
use crate::scenario::Limits;

/// A limit the run reached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Limit {
    /// Seconds into the run when the condition began.
    pub(crate) at_s: f64,
    pub(crate) cameras: u64,
    pub(crate) viewers: u64,
    /// `cpu`, `generator`, `publish-errors`, `http-errors` or `stalls`.
    pub(crate) kind: String,
    pub(crate) why: String,
}

/// Watches samples for a limit.
#[derive(Debug)]
pub(crate) struct Detector {
    cfg: Limits,
    cores: f64,
    /// (kind, first sample of the streak, streak length)
    streaks: Vec<(&'static str, Sample, u32)>,
    prev: Option<Sample>,
    pub(crate) found: Option<Limit>,
}

impl Detector {
    pub(crate) fn new(cfg: Limits, cores: usize) -> Self {
        Self {
            cfg,
            cores: cores.max(1) as f64,
            streaks: Vec::new(),
            prev: None,
            found: None,
        }
    }

    /// Takes one sample; returns the limit when it is first established.
    pub(crate) fn observe(&mut self, s: &Sample) -> Option<&Limit> {
        let prev = self.prev.replace(s.clone());
        if self.found.is_some() {
            return None;
        }
        let prev = prev.unwrap_or_default();
        let mut conditions: Vec<&'static str> = Vec::new();
        if s.publish_failures > prev.publish_failures {
            // A refused or dropped camera is a limit at once: no need to wait.
            self.found = Some(self.limit(s, "publish-errors", s));
            return self.found.as_ref();
        }
        // A machine kept busy by something else (a build next door) is noise, not the
        // limit of what is measured: the run's own processes must own most of the CPU.
        let ours = s.server_cpu_pct + s.peer_cpu_pct + s.generator_cpu_pct;
        if s.machine_cpu_pct >= self.cfg.machine_cpu_pct
            && ours >= 0.5 * s.machine_cpu_pct * self.cores
        {
            conditions.push("cpu");
        }
        if s.lag_max_ms >= self.cfg.generator_lag_ms {
            conditions.push("generator");
        }
        if s.http_errors > prev.http_errors {
            conditions.push("http-errors");
        }
        // Start-up stalls (a player joining a young stream) are not a limit.
        if s.settled_stalls > prev.settled_stalls {
            conditions.push("stalls");
        }
        self.streaks.retain(|(k, _, _)| conditions.contains(k));
        for c in conditions {
            match self.streaks.iter_mut().find(|(k, _, _)| *k == c) {
                Some(st) => st.2 += 1,
                None => self.streaks.push((c, s.clone(), 1)),
            }
        }
        let hit = self
            .streaks
            .iter()
            .find(|(_, _, n)| *n >= self.cfg.sustain_s.max(1))
            .cloned();
        if let Some((kind, first, _)) = hit {
            self.found = Some(self.limit(&first, kind, s));
        }
        self.found.as_ref()
    }

    fn limit(&self, first: &Sample, kind: &str, now: &Sample) -> Limit {
        let who = if now.generator_cpu_pct > now.server_cpu_pct {
            "the load generator uses more CPU than the server, so this is the generator's limit, not the server's"
        } else {
            "the server uses most of it"
        };
        let why = match kind {
            "cpu" => format!(
                "CPU saturated: machine at {:.0} % of all cores (server {:.0} % of one core, generator {:.0} %); {who}",
                now.machine_cpu_pct, now.server_cpu_pct, now.generator_cpu_pct
            ),
            "generator" => format!(
                "generator saturated: publishers {:.0} ms behind real time (generator {:.0} % of one core, machine {:.0} %)",
                now.lag_max_ms, now.generator_cpu_pct, now.machine_cpu_pct
            ),
            "publish-errors" => format!(
                "errors: {} publisher(s) refused or dropped by the server (see the error list)",
                now.publish_failures
            ),
            "http-errors" => format!(
                "errors: viewers got HTTP errors for {} s in a row ({} in all)",
                self.cfg.sustain_s, now.http_errors
            ),
            _ => format!(
                "viewers past their first 10 s of playback stalled for {} s in a row ({} stalls in all, {} past start-up)",
                self.cfg.sustain_s, now.stalls, now.settled_stalls
            ),
        };
        Limit {
            at_s: first.t_s,
            cameras: first.cameras,
            viewers: first.viewers,
            kind: kind.to_owned(),
            why,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: f64, cameras: u64, cpu: f64) -> Sample {
        Sample {
            t_s: t,
            cameras,
            machine_cpu_pct: cpu,
            server_cpu_pct: cpu * 1.5,
            generator_cpu_pct: cpu * 0.2,
            ..Sample::default()
        }
    }

    #[test]
    fn cpu_must_stay_saturated_to_count() {
        let mut d = Detector::new(Limits::default(), 2);
        assert!(d.observe(&sample(1.0, 10, 97.0)).is_none());
        assert!(
            d.observe(&sample(2.0, 20, 50.0)).is_none(),
            "a spike is not a limit"
        );
        assert!(d.observe(&sample(3.0, 30, 96.0)).is_none());
        assert!(d.observe(&sample(4.0, 40, 99.0)).is_none());
        let l = d
            .observe(&sample(5.0, 50, 98.0))
            .cloned()
            .expect("3 s saturated");
        assert_eq!(
            (l.kind.as_str(), l.at_s, l.cameras),
            ("cpu", 3.0, 30),
            "dated from the streak's start"
        );
        assert!(l.why.contains("server uses most"), "{}", l.why);
        assert!(d.observe(&sample(6.0, 60, 99.0)).is_none(), "reported once");
        assert_eq!(d.found.as_ref().map(|l| l.cameras), Some(30));
    }

    #[test]
    fn a_machine_busy_with_other_work_is_not_our_limit() {
        let mut d = Detector::new(Limits::default(), 2);
        for t in 1..=5 {
            let mut s = sample(f64::from(t), 4, 100.0);
            s.server_cpu_pct = 3.0;
            s.generator_cpu_pct = 10.0;
            assert!(d.observe(&s).is_none());
        }
    }

    #[test]
    fn publish_failures_are_immediate_and_generator_is_named() {
        let mut d = Detector::new(Limits::default(), 2);
        let mut s = sample(1.0, 5, 10.0);
        s.publish_failures = 1;
        assert_eq!(
            d.observe(&s).map(|l| l.kind.clone()),
            Some("publish-errors".into())
        );

        let mut d = Detector::new(Limits::default(), 2);
        for t in 1..=3 {
            let mut s = sample(f64::from(t), 100, 60.0);
            s.lag_max_ms = 800.0;
            s.generator_cpu_pct = 150.0;
            s.server_cpu_pct = 20.0;
            let got = d.observe(&s).cloned();
            assert_eq!(got.is_some(), t == 3);
            if let Some(l) = got {
                assert_eq!(l.kind, "generator");
                assert!(l.why.contains("800 ms"), "{}", l.why);
            }
        }
    }

    #[test]
    fn errors_and_stalls_need_to_keep_rising() {
        let mut d = Detector::new(Limits::default(), 2);
        let mut s = sample(1.0, 1, 5.0);
        for t in 1..=5 {
            s.t_s = f64::from(t);
            s.http_errors = if t == 2 { 1 } else { s.http_errors };
            assert!(d.observe(&s).is_none(), "one error at t=2 then none");
        }
        // Start-up stalls alone never make a limit.
        for t in 6..=10 {
            s.t_s = f64::from(t);
            s.stalls += 1;
            assert!(d.observe(&s).is_none(), "start-up stalls at t={t}");
        }
        for t in 11..=13 {
            s.t_s = f64::from(t);
            s.stalls += 1;
            s.settled_stalls += 1;
            assert_eq!(d.observe(&s).is_some(), t == 13);
        }
    }
}
