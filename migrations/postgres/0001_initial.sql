-- camstream control plane schema, PostgreSQL flavour. Keep in step with ../sqlite/0001_initial.sql:
-- the same tables, columns, types (ids are UUID text, times are Unix milliseconds) and indexes,
-- so that one set of hand-written queries serves both databases.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    email         TEXT,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'viewer', 'api_only')),
    company       TEXT,
    is_active     BOOLEAN NOT NULL DEFAULT TRUE,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    last_login_at BIGINT
);

CREATE TABLE cameras (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    company         TEXT,
    model           TEXT,
    serial_number   TEXT NOT NULL UNIQUE,
    location        TEXT,
    place           TEXT,
    rtmp_url        TEXT NOT NULL,
    rtmp_key_prefix TEXT NOT NULL UNIQUE,
    rtmp_key_hash   TEXT NOT NULL,
    is_active       BOOLEAN NOT NULL DEFAULT TRUE,
    is_recording    BOOLEAN NOT NULL DEFAULT FALSE,
    stream_status   TEXT NOT NULL DEFAULT 'offline'
                    CHECK (stream_status IN ('online', 'offline', 'connecting', 'error')),
    assigned_node   TEXT,
    owner_id        TEXT REFERENCES users (id) ON DELETE SET NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX cameras_company ON cameras (company);
CREATE INDEX cameras_created_at ON cameras (created_at);

CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    remark       TEXT,
    prefix       TEXT NOT NULL UNIQUE,
    secret_hash  TEXT NOT NULL,
    permissions  TEXT NOT NULL,
    rate_limit   BIGINT NOT NULL,
    expires_at   BIGINT,
    last_used_at BIGINT,
    revoked_at   BIGINT,
    created_at   BIGINT NOT NULL
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

CREATE TABLE refresh_tokens (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_id  TEXT NOT NULL,
    prefix      TEXT NOT NULL UNIQUE,
    secret_hash TEXT NOT NULL,
    expires_at  BIGINT NOT NULL,
    revoked_at  BIGINT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);

CREATE TABLE alerts (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    severity    TEXT NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    camera_id   TEXT,
    user_id     TEXT,
    token_id    TEXT,
    message     TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    resolved_at BIGINT
);
CREATE INDEX alerts_created_at ON alerts (created_at);

CREATE TABLE recordings (
    id         TEXT PRIMARY KEY,
    camera_id  TEXT NOT NULL REFERENCES cameras (id) ON DELETE CASCADE,
    path       TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    ended_at   BIGINT,
    size_bytes BIGINT NOT NULL DEFAULT 0,
    tier       TEXT NOT NULL DEFAULT 'hot' CHECK (tier IN ('hot', 'warm', 'cold', 'archived')),
    created_at BIGINT NOT NULL
);
CREATE INDEX recordings_camera_time ON recordings (camera_id, started_at);
