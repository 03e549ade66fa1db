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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewAlert;
    use crate::store::rules::{Escalation, EscalationStep, NewAlertRule};
    use std::time::Duration;

    /// With a controlled clock: each step once, at its time; none after acknowledgement;
    /// a muted rule or a resolved alert takes none; the data is exactly the contract's.
    #[tokio::test]
    async fn steps_fire_once_each_at_their_time_and_never_after_ack() {
        let dir = std::env::temp_dir().join(format!("cs-esc-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = crate::store::connect(None, &dir).await.unwrap();
        let s = &*store;
        let steps = vec![
            EscalationStep {
                after_minutes: 1,
                user_ids: vec!["u-1".into()],
                channel_ids: vec![],
            },
            EscalationStep {
                after_minutes: 5,
                user_ids: vec!["u-2".into(), "u-3".into()],
                channel_ids: vec!["ch-1".into()],
            },
        ];
        s.create_alert_rule(NewAlertRule {
            company: "acme".into(),
            camera_id: None,
            kind: "CAMERA_OFFLINE".into(),
            enabled: true,
            severity: "critical".into(),
            threshold: None,
            minimum: None,
            duration_ms: Some(60_000),
            escalation: Escalation(steps),
        })
        .await
        .unwrap();
        let raise = |cause: &str, company: &str| NewAlert {
            kind: "CAMERA_OFFLINE".into(),
            severity: "critical".into(),
            message: "offline".into(),
            cause: Some(cause.into()),
            company: Some(company.into()),
            ..NewAlert::default()
        };
        let a = s.create_alert(raise("T:a", "acme")).await.unwrap();
        let acked = s.create_alert(raise("T:acked", "acme")).await.unwrap();
        let other = s.create_alert(raise("T:other", "globex")).await.unwrap();
        let rules = RuleSet::load(s, Duration::from_secs(300)).await.unwrap();
        let t0 = a.created_at.max(acked.created_at).max(other.created_at);
        let start = s.last_alert_event_seq().await.unwrap();
        let min = 60_000;
        assert_eq!(escalation_pass(s, &rules, t0 + 59_000).await.unwrap(), 0);
        s.acknowledge_alert(&acked.id, "u-1", t0 + 30_000)
            .await
            .unwrap();
        // Step 1 of the unacknowledged acme alert only (globex has no rule).
        assert_eq!(escalation_pass(s, &rules, t0 + min).await.unwrap(), 1);
        assert_eq!(escalation_pass(s, &rules, t0 + 2 * min).await.unwrap(), 0);
        assert_eq!(escalation_pass(s, &rules, t0 + 5 * min).await.unwrap(), 1);
        assert_eq!(escalation_pass(s, &rules, t0 + 60 * min).await.unwrap(), 0);
        let events: Vec<_> = s
            .alert_events_since(start, i64::MAX, 100)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.event == "escalated")
            .collect();
        assert_eq!(events.len(), 2);
        assert!(events.iter().all(|e| e.alert_id == a.id));
        assert_eq!(events[0].at, t0 + min);
        let data: Vec<serde_json::Value> = events
            .iter()
            .map(|e| serde_json::from_str(e.data.as_deref().unwrap()).unwrap())
            .collect();
        assert_eq!(
            data[0],
            serde_json::json!({"step": 1, "afterMinutes": 1, "userIds": ["u-1"], "channelIds": []})
        );
        assert_eq!(
            data[1],
            serde_json::json!({"step": 2, "afterMinutes": 5, "userIds": ["u-2", "u-3"], "channelIds": ["ch-1"]})
        );

        // A new alert acknowledged after step 1 takes no step 2.
        let b = s.create_alert(raise("T:b", "acme")).await.unwrap();
        assert_eq!(
            escalation_pass(s, &rules, b.created_at + min)
                .await
                .unwrap(),
            1
        );
        s.acknowledge_alert(&b.id, "u-1", b.created_at + min + 1)
            .await
            .unwrap();
        assert_eq!(
            escalation_pass(s, &rules, b.created_at + 10 * min)
                .await
                .unwrap(),
            0
        );
        // Resolved: nothing either.
        let c = s.create_alert(raise("T:c", "acme")).await.unwrap();
        s.resolve_cause("T:c", c.created_at + 1).await.unwrap();
        assert_eq!(
            escalation_pass(s, &rules, c.created_at + 10 * min)
                .await
                .unwrap(),
            0
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn retention_purges_old_resolved_alerts_and_zero_keeps_them() {
        let dir = std::env::temp_dir().join(format!("cs-ret-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = crate::store::connect(None, &dir).await.unwrap();
        let s = &*store;
        let now = crate::clock::now_ms();
        let day = 86_400_000;
        for (cause, resolved) in [
            ("old", Some(now - 91 * day)),
            ("new", Some(now - day)),
            ("open", None),
        ] {
            s.create_alert(NewAlert {
                kind: "STORAGE_FULL".into(),
                severity: "critical".into(),
                message: cause.into(),
                cause: Some(cause.into()),
                ..NewAlert::default()
            })
            .await
            .unwrap();
            if let Some(at) = resolved {
                s.resolve_cause(cause, at).await.unwrap();
            }
        }
        assert_eq!(retention_pass(s, 0, now).await.unwrap().alerts, 0);
        let p = retention_pass(s, 90, now).await.unwrap();
        assert_eq!((p.alerts, p.events), (1, 2));
        let left: Vec<String> = s
            .list_alerts(None, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.message)
            .collect();
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(!left.contains(&"old".to_owned()));
        let _ = std::fs::remove_dir_all(dir);
    }
}
