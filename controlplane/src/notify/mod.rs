//! Notification delivery (issue 13): email (SMTP), SMS (HTTP gateway) and signed webhooks
//! for alert events, through a durable queue (`notification_deliveries`) so that a restart
//! or a dead node loses nothing.
//!
//! Two loops per node, both safe to run on every node of a cluster:
//! - the enqueuer ([`enqueue`]) tails the `alert_events` outbox and inserts deliveries
//!   (unique per event and destination, so concurrent readers insert once);
//! - the worker ([`worker`]) leases due deliveries, sends them through a per-destination
//!   circuit breaker ([`breaker`]), and retries with backoff until they are sent or dead.
//!
//! Channels and their wire formats are in [`channels`]; quiet hours in [`quiet`]. The REST
//! API over channels, deliveries and preferences is `api::notifications`. The clock is
//! injectable ([`Clock`]) so tests control quiet hours, backoff and breaker cooldowns.

mod breaker;
mod channels;
mod clock;
pub(crate) mod enqueue;
pub(crate) mod guard;
mod quiet;
mod worker;

use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

pub use channels::webhook_signature;
pub use clock::{Clock, ManualClock, SystemClock};

use crate::config::NotifyConfig;

/// How often the queue gauges are refreshed.
const GAUGES_EVERY: std::time::Duration = std::time::Duration::from_secs(15);
/// How often sent and dead deliveries past the retention are deleted.
const PURGE_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);
use crate::store::Store;

pub(crate) use quiet::{parse_hhmm, parse_zone};

/// The notifier of one node.
pub(crate) struct Notifier {
    store: Arc<dyn Store>,
    cfg: NotifyConfig,
    clock: Arc<dyn Clock>,
    senders: channels::Senders,
    breakers: Mutex<breaker::Breakers>,
    /// Lease owner: node id plus a per-process id, so a restarted node does not mistake a
    /// dead process's leases for its own.
    owner: String,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

impl Notifier {
    /// Builds the notifier.
    ///
    /// # Errors
    /// An unusable SMTP URL or sender address.
    pub(crate) fn new(
        store: Arc<dyn Store>,
        cfg: NotifyConfig,
        node_id: &str,
    ) -> Result<Self, String> {
        let senders = channels::Senders::new(&cfg)?;
        let breakers =
            breaker::Breakers::new(cfg.breaker_failures, crate::clock::ms(cfg.breaker_cooldown));
        Ok(Self {
            store,
            clock: cfg.clock.clone(),
            cfg,
            senders,
            breakers: Mutex::new(breakers),
            owner: format!("{node_id}:{}", uuid::Uuid::new_v4()),
        })
    }

    /// Runs the enqueuer until cancelled.
    pub(crate) async fn run_enqueuer(self: Arc<Self>, cancel: CancellationToken) {
        let mut cursor = enqueue::Cursor::default();
        let mut tick = tokio::time::interval(self.cfg.poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                _ = tick.tick() => {}
            }
            let pass = self.enqueue_pass(&mut cursor);
            tokio::select! {
                () = cancel.cancelled() => break,
                r = pass => if let Err(e) = r {
                    tracing::warn!(error = %e, "notification enqueue pass failed");
                },
            }
        }
    }

    /// Runs the worker (and, hourly, the purge of old deliveries) until cancelled.
    pub(crate) async fn run_worker(self: Arc<Self>, cancel: CancellationToken) {
        let mut last_purge: Option<tokio::time::Instant> = None;
        let mut last_gauges: Option<tokio::time::Instant> = None;
        let mut tick = tokio::time::interval(self.cfg.poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                _ = tick.tick() => {}
            }
            // Not raced with cancellation: an attempt in flight records its outcome (a
            // dropped one would be re-sent after its lease).
            if let Err(e) = self.work_pass().await {
                tracing::warn!(error = %e, "notification worker pass failed");
            }
            if last_gauges.is_none_or(|t| t.elapsed() >= GAUGES_EVERY) {
                last_gauges = Some(tokio::time::Instant::now());
                self.queue_gauges().await;
            }
            if last_purge.is_none_or(|t| t.elapsed() >= PURGE_EVERY) {
                last_purge = Some(tokio::time::Instant::now());
                let before = self.clock.now_ms() - crate::clock::ms(self.cfg.retention);
                match self.store.purge_deliveries(before).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(deleted = n, "purged old notification deliveries"),
                    Err(e) => tracing::warn!(error = %e, "purging notification deliveries failed"),
                }
            }
        }
    }

    /// `camstream_notify_queue{state="pending"|"dead"}` from the shared store (every node
    /// reports the same count; rules take the max).
    async fn queue_gauges(&self) {
        for state in ["pending", "dead"] {
            match self.store.list_deliveries(Some(state), 0, 1).await {
                Ok((_, total)) => {
                    metrics::gauge!("camstream_notify_queue", "state" => state).set(total as f64);
                }
                Err(e) => tracing::debug!(error = %e, "notification queue gauge"),
            }
        }
    }
}
