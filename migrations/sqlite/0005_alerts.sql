-- Alerts v1 (issues 12 and 13): one open alert per cause (`cause`, e.g.
-- `CAMERA_OFFLINE:<camera id>`) counting its occurrences, acknowledgement, the tenant it
-- belongs to (the camera's company when it was raised; NULL: admins only), and auto-resolve
-- (`resolved_at`). Cameras remember when their stream status last changed, so "offline for
-- longer than N minutes" is a query.
ALTER TABLE alerts ADD COLUMN cause TEXT;
ALTER TABLE alerts ADD COLUMN occurrences BIGINT NOT NULL DEFAULT 1;
ALTER TABLE alerts ADD COLUMN last_seen_at BIGINT;
ALTER TABLE alerts ADD COLUMN acknowledged_at BIGINT;
ALTER TABLE alerts ADD COLUMN acknowledged_by TEXT;
ALTER TABLE alerts ADD COLUMN company TEXT;
CREATE UNIQUE INDEX alerts_open_cause ON alerts (cause) WHERE resolved_at IS NULL;
CREATE INDEX alerts_company_created ON alerts (company, created_at);
ALTER TABLE cameras ADD COLUMN status_changed_at BIGINT;
