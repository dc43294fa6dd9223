-- Sign-ins in progress, and whether a connected account still works.

-- One row per connect attempt: the callback must bring back `state`, within 10 minutes, once.
CREATE TABLE oauth_flows (
    id            INTEGER PRIMARY KEY,
    state         TEXT NOT NULL UNIQUE,
    provider      TEXT NOT NULL CHECK (provider IN ('google', 'microsoft')),
    backend_id    INTEGER NOT NULL REFERENCES storage_backends (id) ON DELETE CASCADE,
    code_verifier TEXT NOT NULL, -- sealed (PKCE)
    redirect_uri  TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    used_at       INTEGER
);

-- A refresh refused with invalid_grant leaves the account disconnected until the user signs in
-- again; its backends' jobs wait with the reason instead of failing.
ALTER TABLE oauth_connections ADD COLUMN status TEXT NOT NULL DEFAULT 'connected'
    CHECK (status IN ('connected', 'disconnected'));
ALTER TABLE oauth_connections ADD COLUMN status_reason TEXT;

-- A job whose account needs signing in again waits, paused, instead of failing; signing in
-- queues it again. NULL for every other pause.
ALTER TABLE upload_jobs ADD COLUMN waiting_for TEXT CHECK (waiting_for IN ('sign-in'));
