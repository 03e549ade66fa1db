-- Live grid layouts of the dashboard (issue 12), one set per user: a named grid of
-- grid_columns x grid_rows slots, tiles as JSON [{"cameraId": "...", "position": N}] (row-major
-- slot index), at most one default per user (kept by the store, not a constraint, so that
-- switching the default is one transaction on both databases).
CREATE TABLE layouts (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    grid_columns BIGINT NOT NULL,
    grid_rows    BIGINT NOT NULL,
    tiles        TEXT NOT NULL,
    is_default   BOOLEAN NOT NULL DEFAULT FALSE,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX layouts_user ON layouts (user_id, created_at);
