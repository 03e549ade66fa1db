//! Alert rules, escalation steps taken and alert history retention ([`AlertRuleStore`], a
//! supertrait of [`Store`](super::Store)). Both SQL stores implement it with the same
//! statements (`sql/rules.rs`). What a rule means (defaults, validation, which rule is in
//! force) is `alerts::rules`' business, not the store's.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::StoreError;
use super::alerts::AlertEvent;

/// One escalation step of a rule: `after_minutes` after an alert opened and while nobody
/// acknowledged it, tell these users and channels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EscalationStep {
    /// Minutes after the alert opened.
    #[schema(minimum = 1, maximum = 10080)]
    pub after_minutes: i64,
    /// Users to notify (ids).
    #[serde(default)]
    #[schema(max_items = 20)]
    pub user_ids: Vec<String>,
    /// Notification channels to use (ids of the delivery service's channels).
    #[serde(default)]
    #[schema(max_items = 20)]
    pub channel_ids: Vec<String>,
}

/// The escalation list of a rule as stored (a JSON array).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Escalation(pub Vec<EscalationStep>);

impl TryFrom<String> for Escalation {
    type Error = serde_json::Error;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        serde_json::from_str(&s).map(Self)
    }
}

impl Escalation {
    /// The JSON stored.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.0).unwrap_or_else(|_| "[]".to_owned())
    }
}

/// A stored rule.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AlertRule {
    /// UUID.
    pub id: String,
    /// The company it applies to.
    pub company: String,
    /// The camera it applies to; `None`: every camera (and camera-less cause) of the company.
    pub camera_id: Option<String>,
    /// The alert type (`CAMERA_OFFLINE`, ...).
    pub kind: String,
    /// `false` mutes the type.
    pub enabled: bool,
    /// `info`, `warning` or `critical`.
    pub severity: String,
    /// The type's threshold.
    pub threshold: Option<f64>,
    /// The type's second threshold (`API_UNUSUAL_USAGE`: fewest requests per minute).
    pub minimum: Option<f64>,
    /// How long the cause must hold, ms.
    pub duration_ms: Option<i64>,
    /// Escalation steps.
    #[sqlx(try_from = "String")]
    pub escalation: Escalation,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub updated_at: i64,
}

/// What a rule is created or replaced with.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAlertRule {
    /// Company.
    pub company: String,
    /// Camera, if the rule is a camera's.
    pub camera_id: Option<String>,
    /// Type.
    pub kind: String,
    /// Enabled.
    pub enabled: bool,
    /// Severity.
    pub severity: String,
    /// Threshold.
    pub threshold: Option<f64>,
    /// Second threshold.
    pub minimum: Option<f64>,
    /// Duration, ms.
    pub duration_ms: Option<i64>,
    /// Escalation steps.
    pub escalation: Escalation,
}

/// What a retention purge deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AlertPurge {
    /// Resolved alerts.
    pub alerts: u64,
    /// Their outbox rows (`alert_events`).
    pub events: u64,
}

/// An active camera whose stream went offline, and when.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OfflineCamera {
    /// Camera id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Company.
    pub company: Option<String>,
    /// Unix ms of the change to offline.
    pub status_changed_at: i64,
}

/// Alert rules, escalations and history retention.
///
/// # Cancel safety
/// As [`Store`](super::Store): a dropped future leaves its statement or transaction applied
/// or not, never half.
#[async_trait]
pub trait AlertRuleStore: Send + Sync + 'static {
    /// Rules, of one company or (`None`) every company, ordered by company, camera (company
    /// rules first), type.
    async fn list_alert_rules(&self, company: Option<&str>) -> Result<Vec<AlertRule>, StoreError>;
    /// One rule.
    async fn get_alert_rule(&self, id: &str) -> Result<Option<AlertRule>, StoreError>;
    /// Creates a rule; [`StoreError::Conflict`] (`field: "type"`) when its scope (company,
    /// camera, type) has one already.
    async fn create_alert_rule(&self, rule: NewAlertRule) -> Result<AlertRule, StoreError>;
    /// Replaces a rule; `None` when there is no such rule; a conflict as creating.
    async fn update_alert_rule(
        &self,
        id: &str,
        rule: NewAlertRule,
    ) -> Result<Option<AlertRule>, StoreError>;
    /// Deletes a rule; whether there was one.
    async fn delete_alert_rule(&self, id: &str) -> Result<bool, StoreError>;
    /// Takes escalation `step` of an alert at `at`: records it and writes the `escalated`
    /// outbox row with `data` in one transaction, only when the alert is open, not
    /// acknowledged and the step was not taken before (by any node). The event, or `None`.
    async fn escalate_alert(
        &self,
        alert_id: &str,
        step: i64,
        at: i64,
        data: &str,
    ) -> Result<Option<AlertEvent>, StoreError>;
    /// The escalation steps taken of alerts still open: `(alert id, step)`.
    async fn open_alert_escalations(&self) -> Result<Vec<(String, i64)>, StoreError>;
    /// Active cameras that went offline before `before` (Unix ms) and stayed so, oldest
    /// first, at most `limit` (cameras that never streamed are not among them).
    async fn offline_cameras(
        &self,
        before: i64,
        limit: i64,
    ) -> Result<Vec<OfflineCamera>, StoreError>;
    /// Deletes alerts resolved before `before` (Unix ms) with their outbox rows and
    /// escalation steps.
    async fn purge_resolved_alerts(&self, before: i64) -> Result<AlertPurge, StoreError>;
}
