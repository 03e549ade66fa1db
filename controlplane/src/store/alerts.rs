//! Alerts beyond recording them ([`AlertStore`], a supertrait of [`Store`](super::Store)):
//! the filtered list, acknowledgement, resolving a cause, and the cameras offline long enough
//! to raise `CAMERA_OFFLINE`. Both SQL stores implement it with the same statements
//! (`sql/alerts.rs`).

use async_trait::async_trait;

use super::{Alert, Camera, StoreError};

/// One row of the alert outbox (`alert_events`), written in the same transaction as the
/// change it records: `opened`, `repeated` (the open cause raised again), `resolved`,
/// `acknowledged` (first acknowledgement only) or `escalated`.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertEvent {
    /// Order of the events (a reader's cursor).
    pub seq: i64,
    /// The alert.
    pub alert_id: String,
    /// `opened`, `repeated`, `resolved`, `acknowledged`, `escalated`.
    pub event: String,
    /// Unix ms.
    pub at: i64,
    /// The alert's tenant (`None`: admins only).
    pub company: Option<String>,
    /// The alert's camera.
    pub camera_id: Option<String>,
    /// The alert's kind (`CAMERA_OFFLINE`, ...).
    pub kind: String,
    /// The alert's severity.
    pub severity: String,
    /// Who caused it (the acknowledging user's id), if anyone.
    pub actor: Option<String>,
    /// JSON detail (the escalation step), if any.
    pub data: Option<String>,
}

/// Which alerts to list (newest first).
#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    /// `info`, `warning` or `critical`.
    pub severity: Option<String>,
    /// One kind (`CAMERA_OFFLINE`, ...).
    pub kind: Option<String>,
    /// One camera.
    pub camera_id: Option<String>,
    /// Acknowledged (`true`) or not (`false`).
    pub acknowledged: Option<bool>,
    /// Open (`true`: not resolved) or resolved (`false`).
    pub open: Option<bool>,
    /// Raised at or after (Unix ms).
    pub from: Option<i64>,
    /// Raised before (Unix ms).
    pub to: Option<i64>,
    /// Only this tenant's alerts; `None`: every alert (admins).
    pub tenant: Option<String>,
    /// Rows to skip.
    pub offset: i64,
    /// Rows to return.
    pub limit: i64,
}

/// Alerts: listing, acknowledging, resolving.
///
/// # Cancel safety
/// As [`Store`](super::Store): a dropped future leaves its statement applied or not.
#[async_trait]
pub trait AlertStore: Send + Sync + 'static {
    /// A filtered page, newest first, and the filtered total.
    async fn list_alerts_page(&self, f: &AlertFilter) -> Result<(Vec<Alert>, i64), StoreError>;
    /// One alert.
    async fn get_alert(&self, id: &str) -> Result<Option<Alert>, StoreError>;
    /// Acknowledges an alert by `user` at `at` (an acknowledged one keeps its first
    /// acknowledgement); the row, or `None` when there is no such alert.
    async fn acknowledge_alert(
        &self,
        id: &str,
        user: &str,
        at: i64,
    ) -> Result<Option<Alert>, StoreError>;
    /// Resolves the open alert of `cause` at `at`; whether there was one.
    async fn resolve_cause(&self, cause: &str, at: i64) -> Result<bool, StoreError>;
    /// Outbox events with `seq > after` or raised at or after `since_at` (Unix ms; a reader
    /// re-reads a short window behind its cursor because a concurrent transaction may commit
    /// a lower `seq` later), in `seq` order, at most `limit`.
    async fn alert_events_since(
        &self,
        after: i64,
        since_at: i64,
        limit: i64,
    ) -> Result<Vec<AlertEvent>, StoreError>;
    /// The highest `seq` written so far (0 when none): where a new reader starts.
    async fn last_alert_event_seq(&self) -> Result<i64, StoreError>;
    /// Records an event on an alert not made by the other methods (`escalated`, with its
    /// step as JSON `data`); `None` when there is no such alert.
    async fn record_alert_event(
        &self,
        alert_id: &str,
        event: &str,
        actor: Option<&str>,
        data: Option<&str>,
    ) -> Result<Option<AlertEvent>, StoreError>;
    /// The open alerts of one kind.
    async fn open_alerts(&self, kind: &str) -> Result<Vec<Alert>, StoreError>;
    /// Active cameras whose stream went offline before `before` (Unix ms) and stayed so
    /// (cameras that never streamed are not among them), at most `limit`.
    async fn cameras_offline_since(
        &self,
        before: i64,
        limit: i64,
    ) -> Result<Vec<Camera>, StoreError>;
}
