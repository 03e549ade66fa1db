-- Alert rules (issue 13): per company, or per camera of a company, one row per alert type.
-- The effective rule of a (company, camera, type) is the camera's row, else the company's
-- (camera_id NULL), else the built-in default (alerts::rules). `threshold` and `minimum`
-- mean what the type says (a share of nominal fps, dropped frames per minute, a factor over
-- the usual rate, ...); `duration_ms` how long the cause must hold (CAMERA_OFFLINE: offline
-- time; API_UNUSUAL_USAGE: the quiet period before it resolves). `escalation` is JSON
-- [{"afterMinutes": N, "userIds": [..], "channelIds": [..]}], in increasing afterMinutes.
CREATE TABLE alert_rules (
    id          TEXT PRIMARY KEY,
    company     TEXT NOT NULL,
    camera_id   TEXT REFERENCES cameras (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    enabled     BOOLEAN NOT NULL,
    severity    TEXT NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    threshold   REAL,
    minimum     REAL,
    duration_ms BIGINT,
    escalation  TEXT NOT NULL DEFAULT '[]',
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX alert_rules_scope ON alert_rules (company, COALESCE(camera_id, ''), kind);
-- One row per escalation step taken: the primary key makes "escalate once per step" hold
-- across nodes (the outbox row is written in the same transaction, only when this insert
-- did insert).
CREATE TABLE alert_escalations (
    alert_id TEXT NOT NULL,
    step     BIGINT NOT NULL,
    at       BIGINT NOT NULL,
    PRIMARY KEY (alert_id, step)
);
-- History retention deletes resolved alerts by age.
CREATE INDEX alerts_resolved_at ON alerts (resolved_at);
