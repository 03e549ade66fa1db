//! The worker: leases due deliveries (several nodes can run it: a lease is one conditional
//! `UPDATE`), asks the destination's breaker, sends, and records the outcome. A failure is
//! retried after an exponential backoff with full jitter (a uniform delay between 0 and
//! `base · 2^(attempt-1)`, capped) until `max_attempts`, then the delivery is dead (a dead
//! letter an admin can retry). A node killed mid-send loses its lease after `lease` and the
//! delivery is sent again: delivery is at least once; receivers de-duplicate on the
//! `X-Camstream-Delivery` id (the row's id).

use rand::Rng;
use serde_json::Value;

use super::Notifier;
use super::breaker::Decision;
use super::channels::Rendered;
use crate::store::StoreError;
use crate::store::notify::{Delivery, Outcome};

/// Deliveries leased per claim.
const BATCH: i64 = 32;

/// Full-jitter backoff: uniform in `[0, min(max, base · 2^(attempt-1))]` ms.
pub(crate) fn backoff_ms(attempt: i64, base_ms: i64, max_ms: i64) -> i64 {
    rand::rng().random_range(0..=backoff_ceiling(attempt, base_ms, max_ms))
}

/// The backoff ceiling for `attempt` (what [`backoff_ms`] draws under).
pub(crate) fn backoff_ceiling(attempt: i64, base_ms: i64, max_ms: i64) -> i64 {
    let shift = u32::try_from(attempt.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    base_ms.saturating_mul(1_i64 << shift).min(max_ms).max(1)
}

/// Subject, text and JSON of one delivery's payload.
fn render(p: &Value) -> Rendered {
    let s = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or_default();
    let mut text = format!(
        "{}\n\nAlert: {}\nType: {}\nSeverity: {}\nEvent: {} at {}\n",
        s("message"),
        s("alertId"),
        s("kind"),
        s("severity"),
        s("event"),
        s("at"),
    );
    if !s("cameraId").is_empty() {
        text.push_str(&format!("Camera: {}\n", s("cameraId")));
    }
    if !s("company").is_empty() {
        text.push_str(&format!("Company: {}\n", s("company")));
    }
    if let Some(step) = p.pointer("/escalation/step") {
        text.push_str(&format!("Escalation step: {step}\n"));
    }
    Rendered {
        subject: format!(
            "[camstream] {} {} {}",
            s("severity").to_uppercase(),
            s("kind"),
            s("event")
        ),
        text,
        json: p.clone(),
    }
}

impl Notifier {
    /// Leases due deliveries and attempts them concurrently; how many were attempted or
    /// released.
    ///
    /// # Errors
    /// The claim failed.
    pub(crate) async fn work_pass(self: &std::sync::Arc<Self>) -> Result<usize, StoreError> {
        let mut total = 0;
        loop {
            let now = self.clock.now_ms();
            let batch = self
                .store
                .claim_deliveries(&self.owner, now, crate::clock::ms(self.cfg.lease), BATCH)
                .await?;
            let n = batch.len();
            total += n;
            let mut set = tokio::task::JoinSet::new();
            for d in batch {
                let me = self.clone();
                set.spawn(async move { me.attempt(d).await });
            }
            while let Some(r) = set.join_next().await {
                match r {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e, "recording a delivery outcome failed"),
                    Err(e) => tracing::warn!(error = %e, "a delivery attempt panicked"),
                }
            }
            if (n as i64) < BATCH {
                return Ok(total);
            }
        }
    }

    async fn attempt(&self, d: Delivery) -> Result<(), StoreError> {
        let now = self.clock.now_ms();
        let decision = self
            .breakers
            .lock()
            .expect("breaker lock")
            .check(&d.breaker_key, now);
        if let Decision::Wait(until) = decision {
            self.store
                .finish_delivery(&d.id, &self.owner, Outcome::Release { next: until }, now)
                .await?;
            return Ok(());
        }
        let result = self.send(&d).await;
        let now = self.clock.now_ms();
        let state = self.breakers.lock().expect("breaker lock").on_result(
            &d.breaker_key,
            result.is_ok(),
            now,
        );
        metrics::gauge!("camstream_notify_breaker_state", "destination" => d.breaker_key.clone())
            .set(state.gauge());
        let kind = d.channel_kind.clone();
        let outcome = match result {
            Ok(()) => {
                metrics::counter!("camstream_notify_sent_total", "channel" => kind).increment(1);
                Outcome::Sent { at: now }
            }
            Err(error) => {
                metrics::counter!("camstream_notify_failed_total", "channel" => kind.clone())
                    .increment(1);
                let attempts = d.attempts + 1;
                tracing::debug!(delivery = %d.id, attempts, %error, "delivery failed");
                if attempts >= i64::from(self.cfg.max_attempts) {
                    metrics::counter!("camstream_notify_dead_total", "channel" => kind)
                        .increment(1);
                    tracing::warn!(delivery = %d.id, target = %d.target, attempts, %error, "delivery is a dead letter");
                    Outcome::Dead { error }
                } else {
                    let delay = backoff_ms(
                        attempts,
                        crate::clock::ms(self.cfg.backoff_base),
                        crate::clock::ms(self.cfg.backoff_max),
                    );
                    Outcome::Retry {
                        next: now + delay,
                        error,
                    }
                }
            }
        };
        if !self
            .store
            .finish_delivery(&d.id, &self.owner, outcome, now)
            .await?
        {
            tracing::warn!(delivery = %d.id, "the delivery's lease ran out before its outcome was recorded");
        }
        Ok(())
    }

    async fn send(&self, d: &Delivery) -> Result<(), String> {
        let p: Value = serde_json::from_str(&d.payload).map_err(|e| format!("payload: {e}"))?;
        let rendered = if d.is_digest {
            let lines = self
                .store
                .digest_lines(&d.id)
                .await
                .map_err(|e| e.to_string())?;
            Rendered {
                subject: format!("[camstream] digest: {} alert events", lines.len()),
                text: lines.join("\n") + "\n",
                json: p,
            }
        } else {
            render(&p)
        };
        match d.channel_kind.as_str() {
            "email" => self.senders.email(&d.target, &rendered).await,
            "sms" => self.senders.sms(&d.target, &rendered).await,
            "webhook" => {
                let channel = match &d.channel_id {
                    Some(id) => self
                        .store
                        .get_channel(id)
                        .await
                        .map_err(|e| e.to_string())?,
                    None => None,
                };
                let Some(channel) = channel else {
                    return Err("the webhook channel was deleted".into());
                };
                let mut body = rendered;
                if let Value::Object(m) = &mut body.json {
                    m.insert("deliveryId".into(), Value::String(d.id.clone()));
                }
                self.senders
                    .webhook(
                        &d.target,
                        channel.secret.as_deref().unwrap_or_default(),
                        &d.id,
                        // Receivers compare it with their own clock: always real time.
                        crate::clock::now_ms(),
                        &body,
                    )
                    .await
            }
            other => Err(format!("unknown channel kind {other:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_stays_under_a_doubling_capped_ceiling() {
        for attempt in 1..12 {
            let c = backoff_ceiling(attempt, 100, 10_000);
            assert_eq!(c, (100_i64 << (attempt - 1)).min(10_000));
            for _ in 0..50 {
                let d = backoff_ms(attempt, 100, 10_000);
                assert!((0..=c).contains(&d), "{attempt}: {d} > {c}");
            }
        }
    }
}
