//! The enqueuer: tails the `alert_events` outbox and turns each event into durable
//! deliveries. It keeps a cursor and re-reads a window behind it (a PostgreSQL transaction
//! may commit a lower `seq` later), skipping the seqs it handled; the queue's unique
//! `dedup_key` makes a second reader (another node, a restart) insert nothing new.
//!
//! Routing:
//! - `opened`, `resolved`, `acknowledged` go to the alert company's enabled channels whose
//!   minimum severity and kinds match, and to that company's users (admins for alerts
//!   without a company) whose preferences list `email`/`sms` for the alert's type (or else
//!   its severity). `repeated` is not delivered: the open alert was announced already, and
//!   a flapping cause would otherwise page people on every occurrence.
//! - `escalated` goes to exactly the channels and users its data names (of the alert's
//!   company, or admins and the admins' channels); a named user without preferences gets
//!   email at the account address.
//! - Quiet hours delay a user's non-critical deliveries to the end of the quiet period;
//!   critical ones go through (an outage at night is what critical is for).
//! - A user with the digest on gets non-critical events by email as lines of one digest per
//!   interval; critical ones still go at once.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::Notifier;
use super::quiet;
use crate::store::alerts::AlertEvent;
use crate::store::notify::{Channel, DigestAdd, NewDelivery, Preferences, Recipient};
use crate::store::{Alert, StoreError};

/// Events read per query.
const PAGE: i64 = 500;
/// How far behind its cursor a running enqueuer re-reads (a transaction that committed a
/// lower `seq` late; PostgreSQL transactions here last milliseconds).
const STEADY_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

/// The enqueuer's read position.
#[derive(Debug, Default)]
pub(crate) struct Cursor {
    /// Highest seq handled.
    after: i64,
    /// Seqs handled inside the re-read window, with their time.
    seen: HashMap<i64, i64>,
    started: bool,
}

/// `info` < `warning` < `critical`.
pub(crate) fn severity_rank(s: &str) -> u8 {
    match s {
        "critical" => 2,
        "warning" => 1,
        _ => 0,
    }
}

fn json_list(s: Option<&str>) -> Option<Vec<String>> {
    serde_json::from_str(s?).ok()
}

/// Does the channel take this event?
pub(crate) fn channel_matches(c: &Channel, kind: &str, severity: &str) -> bool {
    if !c.enabled || severity_rank(severity) < severity_rank(&c.min_severity) {
        return false;
    }
    match json_list(c.kinds.as_deref()) {
        Some(kinds) if !kinds.is_empty() => kinds.iter().any(|k| k == kind),
        _ => true,
    }
}

/// The channel kinds (`email`, `sms`) a user asks for on this alert type and severity.
pub(crate) fn wanted(p: &Preferences, kind: &str, severity: &str) -> Vec<String> {
    let by_kind: Option<HashMap<String, Vec<String>>> = p
        .kinds
        .as_deref()
        .and_then(|k| serde_json::from_str(k).ok());
    if let Some(list) = by_kind.and_then(|mut m| m.remove(kind)) {
        return list;
    }
    let by_sev: HashMap<String, Vec<String>> =
        serde_json::from_str(&p.channels).unwrap_or_default();
    by_sev.get(severity).cloned().unwrap_or_default()
}

/// The circuit breaker a target goes through: a webhook's or gateway's `host:port`, an
/// email address's domain.
pub(crate) fn breaker_key(kind: &str, target: &str, sms_url: Option<&str>) -> String {
    let host = |u: &str| {
        reqwest::Url::parse(u)
            .ok()
            .and_then(|u| {
                u.host_str()
                    .map(|h| format!("{h}:{}", u.port_or_known_default().unwrap_or(0)))
            })
            .unwrap_or_else(|| u.to_owned())
    };
    match kind {
        "webhook" => format!("webhook:{}", host(target)),
        "sms" => format!("sms:{}", sms_url.map(host).unwrap_or_default()),
        _ => format!(
            "email:{}",
            target.rsplit_once('@').map_or(target, |(_, d)| d)
        ),
    }
}

/// The delivered JSON of an event.
fn payload(e: &AlertEvent, alert: Option<&Alert>) -> Value {
    json!({
        "eventSeq": e.seq,
        "event": e.event,
        "alertId": e.alert_id,
        "kind": e.kind,
        "severity": e.severity,
        "company": e.company,
        "cameraId": e.camera_id,
        "message": alert.map_or(e.kind.as_str(), |a| a.message.as_str()),
        "occurrences": alert.map(|a| a.occurrences),
        "at": crate::clock::rfc3339(e.at),
        "actor": e.actor,
        "escalation": e.data.as_deref().and_then(|d| serde_json::from_str::<Value>(d).ok()),
    })
}

/// One digest line.
fn line(p: &Value) -> String {
    let s = |k: &str| {
        p.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    format!(
        "{} [{}] {} {}: {}",
        s("at"),
        s("severity"),
        s("kind"),
        s("event"),
        s("message")
    )
}

impl Notifier {
    /// Reads new outbox events (and the window behind the cursor) and enqueues their
    /// deliveries; how many events it handled.
    ///
    /// # Errors
    /// The store failed; the events from the failing one on are read again next pass.
    pub(crate) async fn enqueue_pass(&self, cur: &mut Cursor) -> Result<usize, StoreError> {
        let real_now = crate::clock::now_ms();
        // A starting node looks back the whole `lookback` (events the previous run may not
        // have enqueued); afterwards a short window covers late commits.
        let window = if cur.started {
            self.cfg.lookback.min(STEADY_WINDOW)
        } else {
            self.cfg.lookback
        };
        let window_start = real_now - crate::clock::ms(window);
        if !cur.started {
            // Events older than the window were handled by an earlier run (or are too old
            // to be worth sending now); newer ones may not have been.
            cur.after = self.store.last_alert_event_seq().await?;
            cur.started = true;
        }
        let mut handled = 0;
        // The window behind the cursor (late commits, a previous run's last events).
        let recent = self
            .store
            .alert_events_since(i64::MAX, window_start, 10 * PAGE)
            .await?;
        for e in recent {
            if cur.seen.contains_key(&e.seq) {
                continue;
            }
            self.handle(&e).await?;
            cur.seen.insert(e.seq, e.at);
            cur.after = cur.after.max(e.seq);
            handled += 1;
        }
        loop {
            let page = self
                .store
                .alert_events_since(cur.after, i64::MAX, PAGE)
                .await?;
            let n = page.len();
            for e in page {
                if !cur.seen.contains_key(&e.seq) {
                    self.handle(&e).await?;
                    handled += 1;
                }
                cur.seen.insert(e.seq, e.at);
                cur.after = cur.after.max(e.seq);
            }
            if (n as i64) < PAGE {
                break;
            }
        }
        cur.seen.retain(|_, at| *at >= window_start - 60_000);
        Ok(handled)
    }

    async fn handle(&self, e: &AlertEvent) -> Result<(), StoreError> {
        match e.event.as_str() {
            "opened" | "resolved" | "acknowledged" => self.fan_out(e).await,
            "escalated" => self.escalate(e).await,
            _ => Ok(()),
        }
    }

    async fn fan_out(&self, e: &AlertEvent) -> Result<(), StoreError> {
        let alert = self.store.get_alert(&e.alert_id).await?;
        let p = payload(e, alert.as_ref());
        for c in self.store.enabled_channels(e.company.as_deref()).await? {
            if channel_matches(&c, &e.kind, &e.severity) {
                self.channel_delivery(e, &c, &p).await?;
            }
        }
        for r in self.store.notify_recipients(e.company.as_deref()).await? {
            let Some(prefs) = self.store.get_preferences(&r.id).await? else {
                continue;
            };
            for ch in wanted(&prefs, &e.kind, &e.severity) {
                self.user_delivery(e, &r, Some(&prefs), &ch, &p, false)
                    .await?;
            }
        }
        Ok(())
    }

    async fn escalate(&self, e: &AlertEvent) -> Result<(), StoreError> {
        let data: Value = e
            .data
            .as_deref()
            .and_then(|d| serde_json::from_str(d).ok())
            .unwrap_or(Value::Null);
        let ids = |k: &str| -> Vec<String> {
            data.get(k)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let alert = self.store.get_alert(&e.alert_id).await?;
        let p = payload(e, alert.as_ref());
        // Only the alert's tenant or the admins: an escalation list naming another
        // company's channel or user must not leak the alert there.
        for id in ids("channelIds") {
            match self.store.get_channel(&id).await? {
                Some(c) if c.enabled && (c.company.is_none() || c.company == e.company) => {
                    self.channel_delivery(e, &c, &p).await?;
                }
                _ => {
                    tracing::warn!(channel = %id, alert_id = %e.alert_id, "escalation names a missing, disabled or foreign channel")
                }
            }
        }
        for r in self.store.recipients_by_id(&ids("userIds")).await? {
            if r.role != "admin" && (r.company.is_none() || r.company != e.company) {
                tracing::warn!(user_id = %r.id, alert_id = %e.alert_id, "escalation names a user of another company");
                continue;
            }
            let prefs = self.store.get_preferences(&r.id).await?;
            let mut chans = prefs
                .as_ref()
                .map(|p| wanted(p, &e.kind, &e.severity))
                .unwrap_or_default();
            if chans.is_empty() {
                chans.push("email".into());
            }
            for ch in chans {
                self.user_delivery(e, &r, prefs.as_ref(), &ch, &p, true)
                    .await?;
            }
        }
        Ok(())
    }

    async fn channel_delivery(
        &self,
        e: &AlertEvent,
        c: &Channel,
        p: &Value,
    ) -> Result<(), StoreError> {
        let d = NewDelivery {
            dedup_key: format!("{}:c:{}", e.seq, c.id),
            event_seq: e.seq,
            alert_id: Some(e.alert_id.clone()),
            event: e.event.clone(),
            channel_kind: c.kind.clone(),
            channel_id: Some(c.id.clone()),
            user_id: None,
            company: e.company.clone(),
            target: c.target.clone(),
            breaker_key: breaker_key(&c.kind, &c.target, self.cfg.sms_url.as_deref()),
            next_attempt_at: self.clock.now_ms(),
            payload: p.to_string(),
            is_digest: false,
        };
        self.store.enqueue_delivery(d, self.clock.now_ms()).await?;
        Ok(())
    }

    async fn user_delivery(
        &self,
        e: &AlertEvent,
        r: &Recipient,
        prefs: Option<&Preferences>,
        ch: &str,
        p: &Value,
        escalation: bool,
    ) -> Result<(), StoreError> {
        let target = match ch {
            "email" => prefs
                .and_then(|p| p.email.clone())
                .or_else(|| r.email.clone()),
            "sms" => prefs.and_then(|p| p.phone.clone()),
            _ => None,
        };
        let Some(target) = target.filter(|t| !t.is_empty()) else {
            tracing::debug!(user_id = %r.id, channel = ch, "no address for the user's channel");
            return Ok(());
        };
        let now = self.clock.now_ms();
        let critical = e.severity == "critical";
        let key = breaker_key(ch, &target, self.cfg.sms_url.as_deref());
        if let Some(prefs) = prefs.filter(|p| p.digest && ch == "email" && !critical && !escalation)
        {
            return self.digest(e, r, prefs, target, key, p).await;
        }
        let next = match prefs {
            Some(prefs) if !critical => quiet_end(prefs, now).unwrap_or(now),
            _ => now,
        };
        let d = NewDelivery {
            dedup_key: format!("{}:u:{}:{ch}", e.seq, r.id),
            event_seq: e.seq,
            alert_id: Some(e.alert_id.clone()),
            event: e.event.clone(),
            channel_kind: ch.to_owned(),
            channel_id: None,
            user_id: Some(r.id.clone()),
            company: e.company.clone(),
            target,
            breaker_key: key,
            next_attempt_at: next,
            payload: p.to_string(),
            is_digest: false,
        };
        self.store.enqueue_delivery(d, now).await?;
        Ok(())
    }

    async fn digest(
        &self,
        e: &AlertEvent,
        r: &Recipient,
        prefs: &Preferences,
        target: String,
        key: String,
        p: &Value,
    ) -> Result<(), StoreError> {
        let now = self.clock.now_ms();
        let interval = prefs.digest_minutes.clamp(1, 24 * 60) * 60_000;
        let mut w = now.div_euclid(interval);
        let text = line(p);
        // A window whose digest is already out takes the event into the next one.
        for _ in 0..3 {
            let end = (w + 1) * interval;
            let d = NewDelivery {
                dedup_key: format!("digest:{}:{w}", r.id),
                event_seq: e.seq,
                alert_id: None,
                event: "digest".into(),
                channel_kind: "email".into(),
                channel_id: None,
                user_id: Some(r.id.clone()),
                company: e.company.clone(),
                target: target.clone(),
                breaker_key: key.clone(),
                next_attempt_at: quiet_end(prefs, end).unwrap_or(end),
                payload: json!({"event": "digest", "userId": r.id, "window": w, "intervalMinutes": prefs.digest_minutes}).to_string(),
                is_digest: true,
            };
            match self.store.add_digest_item(d, &r.id, &text, now).await? {
                DigestAdd::Added | DigestAdd::Present => return Ok(()),
                DigestAdd::Closed => w += 1,
            }
        }
        tracing::warn!(user_id = %r.id, seq = e.seq, "no open digest window for the event");
        Ok(())
    }
}

/// When the user's quiet period containing `at` ends, if it does.
pub(crate) fn quiet_end(p: &Preferences, at: i64) -> Option<i64> {
    let start = quiet::parse_hhmm(p.quiet_start.as_deref()?)?;
    let end = quiet::parse_hhmm(p.quiet_end.as_deref()?)?;
    let zone = quiet::parse_zone(p.time_zone.as_deref().unwrap_or("UTC"))?;
    quiet::quiet_until(at, start, end, zone)
}
