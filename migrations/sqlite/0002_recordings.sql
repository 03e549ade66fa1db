-- Recordings service (issue 5), SQLite flavour. Keep in step with ../postgres/0002_recordings.sql
-- (same tables, columns and indexes; only BLOB/BYTEA differ).
--
-- recordings: one row per fMP4 file, wherever it lives now (hot/warm/cold directory or the
-- archive bucket). No foreign key to cameras: recordings outlive their camera row (retention
-- deletes them) and cameras of --allow-any-key or the config file are not in the store.
-- recording_index: the fragment index, appended in compact chunks (one per progress report)
-- so VOD playlists never re-parse files. recording_jobs: the journal of tier moves and
-- deletes, so a crash at any step is finished or undone by the next run.

-- Nothing wrote the first recordings table: replace it with the full design.
DROP TABLE recordings;

CREATE TABLE recordings (
    id                    TEXT PRIMARY KEY,
    camera_id             TEXT NOT NULL,
    segment_number        BIGINT NOT NULL,
    filename              TEXT NOT NULL,
    file_path             TEXT NOT NULL UNIQUE,
    duration_ms           BIGINT NOT NULL DEFAULT 0,
    file_size             BIGINT NOT NULL DEFAULT 0,
    init_size             BIGINT NOT NULL DEFAULT 0,
    start_time            BIGINT NOT NULL,
    end_time              BIGINT NOT NULL,
    status                TEXT NOT NULL DEFAULT 'recording'
                          CHECK (status IN ('recording', 'complete')),
    storage_tier          TEXT NOT NULL DEFAULT 'hot'
                          CHECK (storage_tier IN ('hot', 'warm', 'cold', 'archived')),
    is_archived           BOOLEAN NOT NULL DEFAULT FALSE,
    cloud_url             TEXT,
    signed_url_expires_at BIGINT,
    checksum              TEXT,
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL
);
CREATE INDEX recordings_camera_time ON recordings (camera_id, start_time);
CREATE INDEX recordings_end_time ON recordings (end_time);

CREATE TABLE recording_index (
    recording_id TEXT NOT NULL REFERENCES recordings (id) ON DELETE CASCADE,
    seq          BIGINT NOT NULL,
    entries      BLOB NOT NULL,
    PRIMARY KEY (recording_id, seq)
);

CREATE TABLE recording_jobs (
    recording_id TEXT PRIMARY KEY,
    kind         TEXT NOT NULL CHECK (kind IN ('move', 'delete')),
    state        TEXT NOT NULL CHECK (state IN ('copying', 'copied', 'switched', 'deleting')),
    from_tier    TEXT NOT NULL,
    to_tier      TEXT,
    src_path     TEXT NOT NULL,
    dst_path     TEXT,
    checksum     TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);

-- scope '*' is the default policy; any other scope is a camera id. NULL: never.
CREATE TABLE retention_policies (
    scope           TEXT PRIMARY KEY,
    warm_after_s    BIGINT,
    cold_after_s    BIGINT,
    archive_after_s BIGINT,
    delete_after_s  BIGINT,
    updated_at      BIGINT NOT NULL
);

CREATE TABLE bookmarks (
    id         TEXT PRIMARY KEY,
    camera_id  TEXT NOT NULL,
    at         BIGINT NOT NULL,
    label      TEXT NOT NULL,
    user_id    TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX bookmarks_camera_at ON bookmarks (camera_id, at);

CREATE TABLE audit_log (
    id           TEXT PRIMARY KEY,
    action       TEXT NOT NULL,
    user_id      TEXT,
    token_id     TEXT,
    camera_id    TEXT,
    recording_id TEXT,
    ip           TEXT,
    detail       TEXT,
    created_at   BIGINT NOT NULL
);
CREATE INDEX audit_log_created_at ON audit_log (created_at);

CREATE INDEX alerts_camera_time ON alerts (camera_id, created_at);
