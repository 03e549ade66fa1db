-- Alert events (issue 13): an outbox written in the same transaction as the alert change it
-- records, so every node of a cluster (WebSocket fan-out, notification delivery) sees every
-- opening, repeat, resolution, acknowledgement and escalation exactly as the database did,
-- and a restart loses none. `seq` orders them; readers keep a cursor and re-read a short
-- window behind it (a concurrent transaction may commit a lower seq later on PostgreSQL).
-- `event`: opened, repeated, resolved, acknowledged, escalated. `data`: JSON or NULL
-- (escalated: the escalation step).
CREATE TABLE alert_events (
    seq BIGSERIAL PRIMARY KEY,
    alert_id TEXT NOT NULL,
    event TEXT NOT NULL CHECK (event IN ('opened', 'repeated', 'resolved', 'acknowledged', 'escalated')),
    at BIGINT NOT NULL,
    company TEXT,
    camera_id TEXT,
    kind TEXT NOT NULL,
    severity TEXT NOT NULL,
    actor TEXT,
    data TEXT
);
CREATE INDEX alert_events_at ON alert_events (at);
CREATE INDEX alert_events_alert ON alert_events (alert_id);
