//! Notification delivery records ([`NotifyStore`], a supertrait of [`Store`](super::Store)):
//! channels (a company's email/SMS/webhook destinations), the durable delivery queue with
//! leases, digest items and per-user preferences. The queue's `dedup_key` is unique, so
//! enqueueing the same outbox event twice (two nodes, a re-read window) inserts one row.
//! What to enqueue and when to send is `crate::notify`'s business, not the store's.

use async_trait::async_trait;

use super::StoreError;

/// A destination of a company (`company` `None`: the admins' own, for alerts without a
/// tenant).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Channel {
    /// UUID.
    pub id: String,
    /// Tenant.
    pub company: Option<String>,
    /// `email`, `sms` or `webhook`.
    pub kind: String,
    /// Display name.
    pub name: String,
    /// Address, phone number or URL.
    pub target: String,
    /// Webhook signing secret.
    pub secret: Option<String>,
    /// Disabled channels receive nothing.
    pub enabled: bool,
    /// Lowest alert severity delivered (`info`, `warning`, `critical`).
    pub min_severity: String,
    /// JSON array of alert kinds delivered; `None`: all.
    pub kinds: Option<String>,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub updated_at: i64,
}

/// Fields of a new or replaced channel.
#[derive(Debug, Clone)]
pub struct NewChannel {
    /// Tenant.
    pub company: Option<String>,
    /// `email`, `sms` or `webhook`.
    pub kind: String,
    /// Display name.
    pub name: String,
    /// Address, phone number or URL.
    pub target: String,
    /// Webhook signing secret.
    pub secret: Option<String>,
    /// Enabled.
    pub enabled: bool,
    /// Lowest severity delivered.
    pub min_severity: String,
    /// JSON array of kinds, `None`: all.
    pub kinds: Option<String>,
}

/// One queued notification.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Delivery {
    /// UUID.
    pub id: String,
    /// Unique: `{seq}:c:{channel}`, `{seq}:u:{user}:{kind}` or `digest:{user}:{window}`.
    pub dedup_key: String,
    /// The outbox event (the first one, for digests).
    pub event_seq: i64,
    /// The alert.
    pub alert_id: Option<String>,
    /// `opened`, `resolved`, `acknowledged`, `escalated` or `digest`.
    pub event: String,
    /// `email`, `sms` or `webhook`.
    pub channel_kind: String,
    /// The channel, for channel deliveries.
    pub channel_id: Option<String>,
    /// The user, for user deliveries.
    pub user_id: Option<String>,
    /// The alert's tenant.
    pub company: Option<String>,
    /// Address, phone or URL.
    pub target: String,
    /// The circuit breaker this delivery goes through.
    pub breaker_key: String,
    /// `pending`, `sending`, `sent`, `dead`.
    pub state: String,
    /// Failed attempts so far.
    pub attempts: i64,
    /// Not sent before (Unix ms).
    pub next_attempt_at: i64,
    /// The node holding the lease while `sending`.
    pub lease_owner: Option<String>,
    /// The lease ends (Unix ms); an expired `sending` row is claimed again.
    pub lease_until: Option<i64>,
    /// The last failure.
    pub last_error: Option<String>,
    /// JSON: the event as delivered.
    pub payload: String,
    /// A digest (its lines are in the digest items).
    pub is_digest: bool,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub updated_at: i64,
    /// Unix ms.
    pub sent_at: Option<i64>,
}

/// Fields of a delivery to enqueue.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    /// See [`Delivery::dedup_key`].
    pub dedup_key: String,
    /// The outbox event.
    pub event_seq: i64,
    /// The alert.
    pub alert_id: Option<String>,
    /// The event name.
    pub event: String,
    /// `email`, `sms` or `webhook`.
    pub channel_kind: String,
    /// The channel.
    pub channel_id: Option<String>,
    /// The user.
    pub user_id: Option<String>,
    /// The tenant.
    pub company: Option<String>,
    /// Address, phone or URL.
    pub target: String,
    /// The breaker.
    pub breaker_key: String,
    /// Not before (Unix ms).
    pub next_attempt_at: i64,
    /// JSON payload.
    pub payload: String,
    /// A digest.
    pub is_digest: bool,
}

/// How a claimed delivery ended (the lease holder reports it).
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Delivered at this time.
    Sent {
        /// Unix ms.
        at: i64,
    },
    /// Failed; try again at `next` (attempts + 1).
    Retry {
        /// Unix ms.
        next: i64,
        /// Why.
        error: String,
    },
    /// Failed for the last time (attempts + 1).
    Dead {
        /// Why.
        error: String,
    },
    /// Not attempted (its breaker is open): back to pending at `next`, attempts unchanged.
    Release {
        /// Unix ms.
        next: i64,
    },
}

/// A user's notification preferences.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Preferences {
    /// The user.
    pub user_id: String,
    /// Email address override (else the account's).
    pub email: Option<String>,
    /// Phone for SMS.
    pub phone: Option<String>,
    /// JSON `{"info":[..],"warning":[..],"critical":[..]}` of `email`/`sms`.
    pub channels: String,
    /// JSON `{"KIND":[..]}` overriding the severity's list for an alert type.
    pub kinds: Option<String>,
    /// `HH:MM` local.
    pub quiet_start: Option<String>,
    /// `HH:MM` local.
    pub quiet_end: Option<String>,
    /// IANA zone of the quiet hours.
    pub time_zone: Option<String>,
    /// One email per interval instead of one per event.
    pub digest: bool,
    /// The digest interval.
    pub digest_minutes: i64,
    /// Unix ms.
    pub updated_at: i64,
}

/// A user who may be notified: id, account email, role, tenant.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Recipient {
    /// The user.
    pub id: String,
    /// The account's address.
    pub email: Option<String>,
    /// `admin`, `operator`, ...
    pub role: String,
    /// The user's company.
    pub company: Option<String>,
}

/// What adding an event to a digest did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestAdd {
    /// Added to the digest delivery.
    Added,
    /// The event is in one of this user's digests already.
    Present,
    /// That digest is being sent or was sent: use the next window.
    Closed,
}

/// Notification channels, the delivery queue and preferences.
///
/// # Cancel safety
/// As [`Store`](super::Store): a dropped future leaves its statement applied or not.
#[async_trait]
pub trait NotifyStore: Send + Sync + 'static {
    /// Creates a channel.
    async fn create_channel(&self, c: NewChannel) -> Result<Channel, StoreError>;
    /// One channel.
    async fn get_channel(&self, id: &str) -> Result<Option<Channel>, StoreError>;
    /// Channels of one tenant (`Some`), or all (`None`), oldest first.
    async fn list_channels(&self, tenant: Option<&str>) -> Result<Vec<Channel>, StoreError>;
    /// Replaces a channel's fields; `None` when there is no such channel.
    async fn update_channel(&self, id: &str, c: NewChannel) -> Result<Option<Channel>, StoreError>;
    /// Deletes a channel; whether it existed.
    async fn delete_channel(&self, id: &str) -> Result<bool, StoreError>;
    /// Enabled channels of `company` (`None`: the company-less ones).
    async fn enabled_channels(&self, company: Option<&str>) -> Result<Vec<Channel>, StoreError>;

    /// Enqueues unless a delivery with the same `dedup_key` exists; whether it inserted.
    async fn enqueue_delivery(&self, d: NewDelivery, now: i64) -> Result<bool, StoreError>;
    /// Leases up to `limit` due deliveries (pending and due, or sending with an expired
    /// lease) to `owner` until `now + lease_ms`, oldest due first.
    async fn claim_deliveries(
        &self,
        owner: &str,
        now: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<Delivery>, StoreError>;
    /// Records how a delivery leased to `owner` ended; `false` when the lease was lost.
    async fn finish_delivery(
        &self,
        id: &str,
        owner: &str,
        outcome: Outcome,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// A page of deliveries (newest first), optionally in one state, and the total.
    async fn list_deliveries(
        &self,
        state: Option<&str>,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<Delivery>, i64), StoreError>;
    /// One delivery.
    async fn get_delivery(&self, id: &str) -> Result<Option<Delivery>, StoreError>;
    /// A dead delivery back to pending (attempts 0, due `now`); `None` when there is no
    /// dead delivery with this id.
    async fn retry_dead_delivery(&self, id: &str, now: i64)
    -> Result<Option<Delivery>, StoreError>;

    /// Deletes sent and dead deliveries (and their digest lines) last changed before
    /// `before` (Unix ms); how many deliveries.
    async fn purge_deliveries(&self, before: i64) -> Result<u64, StoreError>;

    /// Adds an event line to the digest delivery `d` (created pending when missing).
    async fn add_digest_item(
        &self,
        d: NewDelivery,
        user_id: &str,
        line: &str,
        now: i64,
    ) -> Result<DigestAdd, StoreError>;
    /// The lines of a digest delivery, in event order.
    async fn digest_lines(&self, delivery_id: &str) -> Result<Vec<String>, StoreError>;

    /// A user's preferences.
    async fn get_preferences(&self, user_id: &str) -> Result<Option<Preferences>, StoreError>;
    /// Stores a user's preferences (replacing them).
    async fn put_preferences(&self, p: Preferences) -> Result<Preferences, StoreError>;
    /// Active users of `company`, or the active admins when `None`.
    async fn notify_recipients(&self, company: Option<&str>) -> Result<Vec<Recipient>, StoreError>;
    /// These users, when active.
    async fn recipients_by_id(&self, ids: &[String]) -> Result<Vec<Recipient>, StoreError>;
}
