-- Offload's schema, version 1. Times are Unix milliseconds (UTC). Sealed columns hold
-- "v1:<base64>" values produced by src/secrets.rs and bound to their row and field.

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- The product plan's "organization": each profile has its own storage, folders and policy.
CREATE TABLE profiles (
    id               INTEGER PRIMARY KEY,
    name             TEXT NOT NULL UNIQUE CHECK (length(trim(name)) > 0),
    remote_template  TEXT NOT NULL DEFAULT '{relative_path}',
    after_upload     TEXT NOT NULL DEFAULT 'keep' CHECK (after_upload IN ('keep', 'delete', 'move')),
    after_upload_dir TEXT,
    created_at       INTEGER NOT NULL,
    CHECK ((after_upload = 'move') = (after_upload_dir IS NOT NULL))
);

CREATE TABLE watch_folders (
    id               INTEGER PRIMARY KEY,
    profile_id       INTEGER NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
    path             TEXT NOT NULL,
    recursive        INTEGER NOT NULL DEFAULT 1 CHECK (recursive IN (0, 1)),
    include_patterns TEXT NOT NULL DEFAULT '[]', -- JSON array of globs
    exclude_patterns TEXT NOT NULL DEFAULT '[]', -- JSON array of globs
    created_at       INTEGER NOT NULL,
    UNIQUE (profile_id, path)
);

CREATE TABLE storage_backends (
    id         INTEGER PRIMARY KEY,
    profile_id INTEGER NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
    name       TEXT NOT NULL CHECK (length(trim(name)) > 0),
    type       TEXT NOT NULL CHECK (type IN ('local', 's3', 'google-drive', 'onedrive')),
    config     TEXT NOT NULL DEFAULT '{}', -- JSON; every secret field inside is sealed
    is_default INTEGER NOT NULL DEFAULT 0 CHECK (is_default IN (0, 1)),
    created_at INTEGER NOT NULL,
    UNIQUE (profile_id, name)
);
-- At most one default backend per profile, enforced here rather than trusted to callers.
CREATE UNIQUE INDEX storage_backends_one_default ON storage_backends (profile_id) WHERE is_default = 1;

CREATE TABLE oauth_connections (
    id            INTEGER PRIMARY KEY,
    profile_id    INTEGER NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
    provider      TEXT NOT NULL CHECK (provider IN ('google', 'microsoft')),
    account       TEXT,
    access_token  TEXT, -- sealed
    refresh_token TEXT, -- sealed
    expires_at    INTEGER,
    scope         TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

-- A file in the library, or a series (kind 'series') whose files are rows of `episodes`.
CREATE TABLE media (
    id                 INTEGER PRIMARY KEY,
    profile_id         INTEGER NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
    kind               TEXT NOT NULL CHECK (kind IN ('file', 'series')),
    title              TEXT NOT NULL,
    file_path          TEXT,
    storage_backend_id INTEGER REFERENCES storage_backends (id),
    storage_path       TEXT,
    size               INTEGER,
    content_type       TEXT,
    checksum           TEXT,
    status             TEXT NOT NULL DEFAULT 'uploaded' CHECK (status IN ('pending', 'uploaded', 'removed')),
    uploaded_at        INTEGER,
    created_at         INTEGER NOT NULL,
    CHECK (kind = 'file' OR storage_path IS NULL)
);
CREATE UNIQUE INDEX media_one_series_per_title ON media (profile_id, title) WHERE kind = 'series';
CREATE UNIQUE INDEX media_one_row_per_object ON media (storage_backend_id, storage_path) WHERE storage_path IS NOT NULL;

CREATE TABLE episodes (
    id                 INTEGER PRIMARY KEY,
    series_id          INTEGER NOT NULL REFERENCES media (id) ON DELETE CASCADE,
    season             INTEGER NOT NULL,
    episode            INTEGER NOT NULL,
    title              TEXT NOT NULL,
    file_path          TEXT,
    storage_backend_id INTEGER REFERENCES storage_backends (id),
    storage_path       TEXT,
    size               INTEGER,
    content_type       TEXT,
    checksum           TEXT,
    status             TEXT NOT NULL DEFAULT 'uploaded' CHECK (status IN ('pending', 'uploaded', 'removed')),
    uploaded_at        INTEGER,
    created_at         INTEGER NOT NULL
);
CREATE INDEX episodes_by_series ON episodes (series_id, season, episode);
CREATE UNIQUE INDEX episodes_one_row_per_object ON episodes (storage_backend_id, storage_path) WHERE storage_path IS NOT NULL;

-- The persistent upload queue.
CREATE TABLE upload_jobs (
    id              INTEGER PRIMARY KEY,
    profile_id      INTEGER NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
    backend_id      INTEGER NOT NULL REFERENCES storage_backends (id) ON DELETE CASCADE,
    watch_folder_id INTEGER REFERENCES watch_folders (id) ON DELETE SET NULL,
    local_path      TEXT NOT NULL,
    size            INTEGER NOT NULL,          -- when queued (or last restarted)
    mtime_ns        INTEGER NOT NULL,          -- when queued (or last restarted)
    remote_path     TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('queued', 'running', 'verifying', 'done', 'failed', 'paused', 'cancelled')),
    bytes_done      INTEGER NOT NULL DEFAULT 0,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    next_attempt_at INTEGER NOT NULL DEFAULT 0,
    resume          TEXT,                      -- JSON: what the provider needs to continue (no secrets in clear)
    checksum        TEXT,                      -- of the verified upload, "sha256:<hex>"
    owner           TEXT,                      -- the process holding a running/verifying job
    media_id        INTEGER REFERENCES media (id) ON DELETE SET NULL,
    episode_id      INTEGER REFERENCES episodes (id) ON DELETE SET NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    finished_at     INTEGER
);
-- The same file is never queued twice for one target while a job for it is alive.
CREATE UNIQUE INDEX upload_jobs_one_live_job_per_file
    ON upload_jobs (profile_id, backend_id, local_path)
    WHERE state IN ('queued', 'running', 'verifying', 'paused');
CREATE INDEX upload_jobs_by_state ON upload_jobs (state, next_attempt_at);
CREATE INDEX upload_jobs_by_file ON upload_jobs (local_path, size, mtime_ns);
