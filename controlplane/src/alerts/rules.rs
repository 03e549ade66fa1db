//! Which rule is in force: the built-in defaults of every alert type, and the effective
//! rule of a (company, camera, type) — the camera's stored rule, else the company's, else
//! the default. A rule is taken whole (a camera rule does not inherit the company rule's
//! fields). `enabled: false` mutes the type. Validation of what a rule may hold per type
//! lives here too, so the API and the producers agree on it.

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;

use crate::store::rules::{AlertRule, EscalationStep};
use crate::store::{Store, StoreError};

/// `CAMERA_OFFLINE`: a camera that was streaming stays offline for the rule's duration.
pub(crate) const CAMERA_OFFLINE: &str = "CAMERA_OFFLINE";
/// `STREAM_FPS_LOW`: frame rate below `threshold` × nominal for the duration.
pub(crate) const STREAM_FPS_LOW: &str = "STREAM_FPS_LOW";
/// `STREAM_FRAMES_DROPPED`: more than `threshold` dropped frames per minute for the
/// duration.
pub(crate) const STREAM_FRAMES_DROPPED: &str = "STREAM_FRAMES_DROPPED";
/// `STREAM_BITRATE_LOW`: bitrate below `threshold` × its recent median for the duration.
pub(crate) const STREAM_BITRATE_LOW: &str = "STREAM_BITRATE_LOW";
/// `API_UNUSUAL_USAGE`: a token's requests per minute above `threshold` × its usual rate
/// and above `minimum`.
pub(crate) const API_UNUSUAL_USAGE: &str = "API_UNUSUAL_USAGE";
/// `API_RATE_LIMIT`: a token was refused for its rate limit.
pub(crate) const API_RATE_LIMIT: &str = "API_RATE_LIMIT";
/// `LOGIN_FAILURES`: a burst of failed logins.
pub(crate) const LOGIN_FAILURES: &str = "LOGIN_FAILURES";
/// `RECORDING_FAILED`: the recorder could not write.
pub(crate) const RECORDING_FAILED: &str = "RECORDING_FAILED";
/// `STORAGE_FULL`: the recordings file system is (nearly) full.
pub(crate) const STORAGE_FULL: &str = "STORAGE_FULL";

/// A numeric setting a type takes: its default and the accepted range (inclusive).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Setting {
    pub(crate) default: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
    /// What it means, for error messages and docs.
    pub(crate) meaning: &'static str,
}

/// What a type takes and defaults to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Spec {
    pub(crate) kind: &'static str,
    pub(crate) severity: &'static str,
    pub(crate) threshold: Option<Setting>,
    pub(crate) minimum: Option<Setting>,
    /// Seconds (default, min, max); the offline default is `--alert-offline-after`.
    pub(crate) duration: Option<Setting>,
    /// Whether a rule may name a camera (the cause is a camera's).
    pub(crate) per_camera: bool,
}

const fn share(default: f64, meaning: &'static str) -> Setting {
    Setting {
        default,
        min: 0.01,
        max: 0.99,
        meaning,
    }
}

const fn seconds(default: f64, max: f64, meaning: &'static str) -> Setting {
    Setting {
        default,
        min: 1.0,
        max,
        meaning,
    }
}

/// Every type a rule can be written for, with its defaults.
pub(crate) const SPECS: &[Spec] = &[
    Spec {
        kind: CAMERA_OFFLINE,
        severity: "critical",
        threshold: None,
        minimum: None,
        duration: Some(seconds(300.0, 7.0 * 86_400.0, "seconds offline")),
        per_camera: true,
    },
    Spec {
        kind: STREAM_FPS_LOW,
        severity: "warning",
        threshold: Some(share(0.5, "share of the nominal frame rate")),
        minimum: None,
        duration: Some(seconds(60.0, 600.0, "seconds the frame rate stays low")),
        per_camera: true,
    },
    Spec {
        kind: STREAM_FRAMES_DROPPED,
        severity: "warning",
        threshold: Some(Setting {
            default: 60.0,
            min: 1.0,
            max: 1_000_000.0,
            meaning: "dropped frames per minute",
        }),
        minimum: None,
        duration: Some(seconds(60.0, 600.0, "seconds frames keep being dropped")),
        per_camera: true,
    },
    Spec {
        kind: STREAM_BITRATE_LOW,
        severity: "warning",
        threshold: Some(share(0.25, "share of the recent median bitrate")),
        minimum: None,
        duration: Some(seconds(60.0, 600.0, "seconds the bitrate stays low")),
        per_camera: true,
    },
    Spec {
        kind: API_UNUSUAL_USAGE,
        severity: "warning",
        threshold: Some(Setting {
            default: 5.0,
            min: 1.5,
            max: 1000.0,
            meaning: "factor over the token's usual request rate",
        }),
        minimum: Some(Setting {
            default: 60.0,
            min: 1.0,
            max: 1_000_000.0,
            meaning: "fewest requests per minute that count as unusual",
        }),
        duration: Some(seconds(600.0, 86_400.0, "quiet seconds before it resolves")),
        per_camera: false,
    },
    Spec {
        kind: API_RATE_LIMIT,
        severity: "warning",
        threshold: None,
        minimum: None,
        duration: None,
        per_camera: false,
    },
    Spec {
        kind: LOGIN_FAILURES,
        severity: "warning",
        threshold: None,
        minimum: None,
        duration: None,
        per_camera: false,
    },
    Spec {
        kind: RECORDING_FAILED,
        severity: "critical",
        threshold: None,
        minimum: None,
        duration: None,
        per_camera: true,
    },
    Spec {
        kind: STORAGE_FULL,
        severity: "critical",
        // The node's recordings file system over this share in use (the recorder raises
        // it per camera too, when it drops fragments below the free-space floor).
        threshold: Some(share(0.9, "share of the recordings file system in use")),
        minimum: None,
        duration: None,
        per_camera: true,
    },
];

/// The spec of a type.
pub(crate) fn spec(kind: &str) -> Option<&'static Spec> {
    SPECS.iter().find(|s| s.kind == kind)
}

/// Where an effective rule came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Source {
    /// The built-in default.
    Default,
    /// The company's rule.
    Company,
    /// The camera's rule.
    Camera,
}

/// The rule in force for one cause.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Effective {
    pub(crate) enabled: bool,
    pub(crate) severity: String,
    pub(crate) threshold: Option<f64>,
    pub(crate) minimum: Option<f64>,
    /// Milliseconds.
    pub(crate) duration_ms: Option<i64>,
    pub(crate) escalation: Vec<EscalationStep>,
    pub(crate) source: Source,
}

/// The built-in defaults; `offline_after` is `--alert-offline-after`.
pub(crate) fn default_rule(spec: &Spec, offline_after: Duration) -> Effective {
    let duration_ms = spec.duration.map(|d| {
        if spec.kind == CAMERA_OFFLINE {
            crate::clock::ms(offline_after)
        } else {
            (d.default * 1000.0) as i64
        }
    });
    Effective {
        enabled: true,
        severity: spec.severity.to_owned(),
        threshold: spec.threshold.map(|t| t.default),
        minimum: spec.minimum.map(|t| t.default),
        duration_ms,
        escalation: Vec::new(),
        source: Source::Default,
    }
}

fn from_row(r: &AlertRule, source: Source) -> Effective {
    Effective {
        enabled: r.enabled,
        severity: r.severity.clone(),
        threshold: r.threshold,
        minimum: r.minimum,
        duration_ms: r.duration_ms,
        escalation: r.escalation.0.clone(),
        source,
    }
}

/// Every stored rule, indexed for lookups; loaded once per sweep (and by the request paths
/// that raise alerts, per company).
#[derive(Debug, Clone, Default)]
pub(crate) struct RuleSet {
    /// (company, camera or "", kind) → rule.
    rules: HashMap<(String, String, String), AlertRule>,
    offline_after: Duration,
}

impl RuleSet {
    /// Every rule in the store.
    pub(crate) async fn load(
        store: &dyn Store,
        offline_after: Duration,
    ) -> Result<Self, StoreError> {
        Ok(Self::of(store.list_alert_rules(None).await?, offline_after))
    }

    /// One company's rules (`None`: no company, so only the defaults apply).
    pub(crate) async fn load_company(
        store: &dyn Store,
        company: Option<&str>,
        offline_after: Duration,
    ) -> Result<Self, StoreError> {
        let rows = match company {
            Some(c) => store.list_alert_rules(Some(c)).await?,
            None => Vec::new(),
        };
        Ok(Self::of(rows, offline_after))
    }

    pub(crate) fn of(rows: Vec<AlertRule>, offline_after: Duration) -> Self {
        let rules = rows
            .into_iter()
            .map(|r| {
                (
                    (
                        r.company.clone(),
                        r.camera_id.clone().unwrap_or_default(),
                        r.kind.clone(),
                    ),
                    r,
                )
            })
            .collect();
        Self {
            rules,
            offline_after,
        }
    }

    /// Whether any rule has escalation steps (the escalation pass has nothing to do
    /// otherwise).
    pub(crate) fn escalates(&self) -> bool {
        self.rules.values().any(|r| !r.escalation.0.is_empty())
    }

    /// The companies with a rule that has escalation steps.
    pub(crate) fn companies_escalating(&self) -> impl Iterator<Item = &str> {
        self.rules
            .values()
            .filter(|r| !r.escalation.0.is_empty())
            .map(|r| r.company.as_str())
    }

    /// Every rule of a type.
    pub(crate) fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a AlertRule> {
        self.rules.values().filter(move |r| r.kind == kind)
    }

    /// The rule in force for `kind` of `camera` in `company`: the camera's, the company's,
    /// or the default. A type without a spec gets an enabled rule of `warning` and nothing
    /// else (it is never written by a rule).
    pub(crate) fn effective(
        &self,
        kind: &str,
        company: Option<&str>,
        camera: Option<&str>,
    ) -> Effective {
        if let Some(company) = company {
            if let Some(camera) = camera
                && let Some(r) =
                    self.rules
                        .get(&(company.to_owned(), camera.to_owned(), kind.to_owned()))
            {
                return from_row(r, Source::Camera);
            }
            if let Some(r) = self
                .rules
                .get(&(company.to_owned(), String::new(), kind.to_owned()))
            {
                return from_row(r, Source::Company);
            }
        }
        match spec(kind) {
            Some(s) => default_rule(s, self.offline_after),
            None => Effective {
                enabled: true,
                severity: "warning".into(),
                threshold: None,
                minimum: None,
                duration_ms: None,
                escalation: Vec::new(),
                source: Source::Default,
            },
        }
    }
}

/// The rule in force for one cause, read from the store (the request paths that raise
/// alerts: rate limits, logins, the recorder). A store failure falls back to the default,
/// logged: an alert is better raised by the default than lost.
pub(crate) async fn effective_now(
    store: &dyn Store,
    offline_after: Duration,
    kind: &str,
    company: Option<&str>,
    camera: Option<&str>,
) -> Effective {
    match RuleSet::load_company(store, company, offline_after).await {
        Ok(set) => set.effective(kind, company, camera),
        Err(e) => {
            tracing::warn!(error = %e, kind, "alert rules not read; the default applies");
            RuleSet::default().effective(kind, company, camera)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::rules::Escalation;

    fn rule(company: &str, camera: Option<&str>, kind: &str, secs: i64) -> AlertRule {
        AlertRule {
            id: format!("{company}-{camera:?}-{kind}"),
            company: company.into(),
            camera_id: camera.map(str::to_owned),
            kind: kind.into(),
            enabled: true,
            severity: "info".into(),
            threshold: None,
            minimum: None,
            duration_ms: Some(secs * 1000),
            escalation: Escalation::default(),
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn camera_over_company_over_default() {
        let set = RuleSet::of(
            vec![
                rule("acme", None, CAMERA_OFFLINE, 60),
                rule("acme", Some("cam1"), CAMERA_OFFLINE, 10),
            ],
            Duration::from_secs(300),
        );
        let e = set.effective(CAMERA_OFFLINE, Some("acme"), Some("cam1"));
        assert_eq!((e.source, e.duration_ms), (Source::Camera, Some(10_000)));
        let e = set.effective(CAMERA_OFFLINE, Some("acme"), Some("cam2"));
        assert_eq!((e.source, e.duration_ms), (Source::Company, Some(60_000)));
        let e = set.effective(CAMERA_OFFLINE, Some("globex"), Some("cam1"));
        assert_eq!((e.source, e.duration_ms), (Source::Default, Some(300_000)));
        assert_eq!(e.severity, "critical");
        // No company: defaults only.
        let e = set.effective(CAMERA_OFFLINE, None, Some("cam1"));
        assert_eq!(e.source, Source::Default);
        let e = set.effective(STREAM_FPS_LOW, Some("acme"), Some("cam1"));
        assert_eq!(e.threshold, Some(0.5));
    }
}
