//! Escalation and history retention, both run by the sweeper with the time passed in.
//!
//! Escalation: an open, unacknowledged alert whose rule in force has escalation steps takes
//! step N (1-based, in the rule's order) once `afterMinutes` have passed since it opened:
//! the store records the step and writes an `escalated` outbox event with data
//! `{"step": N, "afterMinutes": M, "userIds": [..], "channelIds": [..]}` in one transaction,
//! at most once per alert and step across every node (the delivery service sends it).
//! Acknowledged or resolved alerts take no more steps.
//!
//! Retention: resolved alerts older than `--alert-retention-days` are deleted with their
//! outbox rows and escalation steps (0 keeps them forever).

use std::collections::HashSet;

use super::rules::RuleSet;
use crate::store::alerts::AlertFilter;
use crate::store::{Store, StoreError};

/// Most alerts looked at per company and pass.
const BATCH: i64 = 1000;

/// The `data` of an `escalated` event.
pub(crate) fn step_data(step: usize, s: &crate::store::rules::EscalationStep) -> String {
    serde_json::json!({
        "step": step,
        "afterMinutes": s.after_minutes,
        "userIds": s.user_ids,
        "channelIds": s.channel_ids,
    })
    .to_string()
}

/// Takes every escalation step due at `now_ms`; how many were taken (by this node).
pub(crate) async fn escalation_pass(
    store: &dyn Store,
    rules: &RuleSet,
    now_ms: i64,
) -> Result<usize, StoreError> {
    if !rules.escalates() {
        return Ok(0);
    }
    let companies: HashSet<String> = rules.companies_escalating().map(str::to_owned).collect();
    let taken: HashSet<(String, i64)> = store.open_alert_escalations().await?.into_iter().collect();
    let mut escalated = 0;
    for company in companies {
        let (open, _) = store
            .list_alerts_page(&AlertFilter {
                open: Some(true),
                acknowledged: Some(false),
                tenant: Some(company.clone()),
                limit: BATCH,
                ..AlertFilter::default()
            })
            .await?;
        for a in open {
            let rule = rules.effective(&a.kind, a.company.as_deref(), a.camera_id.as_deref());
            if !rule.enabled {
                continue;
            }
            for (i, s) in rule.escalation.iter().enumerate() {
                let step = i + 1;
                let n = i64::try_from(step).unwrap_or(i64::MAX);
                let due = a
                    .created_at
                    .saturating_add(s.after_minutes.saturating_mul(60_000));
                if due > now_ms || taken.contains(&(a.id.clone(), n)) {
                    continue;
                }
                let data = step_data(step, s);
                if store
                    .escalate_alert(&a.id, n, now_ms, &data)
                    .await?
                    .is_some()
                {
                    escalated += 1;
                    tracing::warn!(alert_id = %a.id, kind = %a.kind, step, after_minutes = s.after_minutes, users = s.user_ids.len(), channels = s.channel_ids.len(), "alert escalated");
                }
            }
        }
    }
    Ok(escalated)
}

/// Deletes resolved alerts older than `days` days at `now_ms` (0: keeps them forever).
pub(crate) async fn retention_pass(
    store: &dyn Store,
    days: u32,
    now_ms: i64,
) -> Result<crate::store::rules::AlertPurge, StoreError> {
    if days == 0 {
        return Ok(Default::default());
    }
    let before = now_ms.saturating_sub(i64::from(days) * 86_400_000);
    let purged = store.purge_resolved_alerts(before).await?;
    if purged.alerts > 0 {
        tracing::info!(
            alerts = purged.alerts,
            events = purged.events,
            retention_days = days,
            "alert history purged"
        );
    }
    Ok(purged)
}
