-- The provider's id of an item's file where it names files by id (Google Drive, OneDrive): their
-- feeds of changes say "file X changed" or "file X is gone", not which path it had.
ALTER TABLE media ADD COLUMN remote_id TEXT;
ALTER TABLE episodes ADD COLUMN remote_id TEXT;
CREATE INDEX media_by_remote_id ON media (storage_backend_id, remote_id) WHERE remote_id IS NOT NULL;
CREATE INDEX episodes_by_remote_id ON episodes (storage_backend_id, remote_id) WHERE remote_id IS NOT NULL;

-- Where a backend's feed of changes stood after its last scan, the id of the backend's own
-- folder in it, and when the backend was last listed in full. A scan follows the feed from
-- `point` instead of listing everything.
CREATE TABLE library_feeds (
    backend_id INTEGER PRIMARY KEY REFERENCES storage_backends (id) ON DELETE CASCADE,
    point      TEXT NOT NULL,
    root       TEXT NOT NULL,
    listed_at  INTEGER NOT NULL
);

-- The folders under such a backend's folder, by the provider's id, with their paths under it:
-- where a feed's entries ("file X is now in folder F") are placed.
CREATE TABLE remote_folders (
    backend_id INTEGER NOT NULL REFERENCES storage_backends (id) ON DELETE CASCADE,
    folder_id  TEXT NOT NULL,
    path       TEXT NOT NULL,
    PRIMARY KEY (backend_id, folder_id)
);
