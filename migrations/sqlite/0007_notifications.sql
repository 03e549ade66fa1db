-- Notification delivery (issue 13): channels, the durable delivery queue, per-user
-- preferences and digest items. Times are Unix ms; JSON lists/maps are TEXT.
--
-- notification_channels: a company's destinations (company NULL: admins' own, for alerts
-- without a tenant). kinds: JSON array of alert kinds, NULL = every kind.
CREATE TABLE notification_channels (
    id           TEXT PRIMARY KEY,
    company      TEXT,
    kind         TEXT NOT NULL CHECK (kind IN ('email', 'sms', 'webhook')),
    name         TEXT NOT NULL,
    target       TEXT NOT NULL,
    secret       TEXT,
    enabled      BOOLEAN NOT NULL DEFAULT TRUE,
    min_severity TEXT NOT NULL DEFAULT 'info' CHECK (min_severity IN ('info', 'warning', 'critical')),
    kinds        TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX notification_channels_company ON notification_channels (company);

-- notification_deliveries: the queue. dedup_key is unique so that two nodes reading the same
-- outbox event (or one node re-reading its look-back window) enqueue it once:
-- `{seq}:c:{channel id}`, `{seq}:u:{user id}:{email|sms}` or `digest:{user id}:{window}`.
-- breaker_key names the circuit breaker the delivery goes through (webhook host, SMS
-- gateway, SMTP relay). state: pending -> sending (leased) -> sent | pending (retry) | dead.
CREATE TABLE notification_deliveries (
    id              TEXT PRIMARY KEY,
    dedup_key       TEXT NOT NULL UNIQUE,
    event_seq       BIGINT NOT NULL,
    alert_id        TEXT,
    event           TEXT NOT NULL,
    channel_kind    TEXT NOT NULL CHECK (channel_kind IN ('email', 'sms', 'webhook')),
    channel_id      TEXT,
    user_id         TEXT,
    company         TEXT,
    target          TEXT NOT NULL,
    breaker_key     TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'sending', 'sent', 'dead')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_owner     TEXT,
    lease_until     BIGINT,
    last_error      TEXT,
    payload         TEXT NOT NULL,
    is_digest       BOOLEAN NOT NULL DEFAULT FALSE,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    sent_at         BIGINT
);
CREATE INDEX notification_deliveries_due ON notification_deliveries (state, next_attempt_at);
CREATE INDEX notification_deliveries_created ON notification_deliveries (created_at);

-- One line per event collected into a user's digest delivery; (user_id, event_seq) unique
-- so an event joins one digest only.
CREATE TABLE notification_digest_items (
    user_id     TEXT NOT NULL,
    event_seq   BIGINT NOT NULL,
    delivery_id TEXT NOT NULL,
    line        TEXT NOT NULL,
    at          BIGINT NOT NULL,
    PRIMARY KEY (user_id, event_seq)
);
CREATE INDEX notification_digest_items_delivery ON notification_digest_items (delivery_id);

-- notification_preferences: per user. channels: JSON {"info":[..],"warning":[..],
-- "critical":["email","sms"]}; kinds: JSON {"CAMERA_OFFLINE":["email"]} overriding the
-- severity's list for that alert type. quiet_start/quiet_end: "HH:MM" local time in
-- time_zone (IANA name).
CREATE TABLE notification_preferences (
    user_id          TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    email            TEXT,
    phone            TEXT,
    channels         TEXT NOT NULL,
    kinds            TEXT,
    quiet_start      TEXT,
    quiet_end        TEXT,
    time_zone        TEXT,
    digest           BOOLEAN NOT NULL DEFAULT FALSE,
    digest_minutes   BIGINT NOT NULL DEFAULT 60,
    updated_at       BIGINT NOT NULL
);
