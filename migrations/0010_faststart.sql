-- Whether a profile's MP4s whose index (`moov`) comes after their media data are rewritten with
-- the index first before they are uploaded (src/transmux/faststart.rs). On unless a person
-- turns it off.
ALTER TABLE profiles ADD COLUMN faststart INTEGER NOT NULL DEFAULT 1;

-- SHA-256 of the local file where what was uploaded is a rewrite of it (`checksum` is the
-- uploaded bytes' own); NULL where the two are the same bytes.
ALTER TABLE media ADD COLUMN source_checksum TEXT;
ALTER TABLE episodes ADD COLUMN source_checksum TEXT;

-- When what the item's file holds was read (probed at upload, or through its stream URL for an
-- item found in storage, src/stream/found.rs), whether or not it could be; NULL: not yet. A scan
-- that finds the object replaced clears it.
ALTER TABLE media ADD COLUMN described_at INTEGER;
ALTER TABLE episodes ADD COLUMN described_at INTEGER;

DROP VIEW library_entries;
CREATE VIEW library_entries AS
SELECT 0 AS is_episode, id, profile_id, title, NULL AS series, NULL AS season, NULL AS episode, file_path,
       storage_backend_id, storage_path, size, content_type, checksum, status, uploaded_at, media_info,
       source_checksum
FROM media WHERE kind = 'file'
UNION ALL
SELECT 1, e.id, m.profile_id, e.title, m.title, e.season, e.episode, e.file_path,
       e.storage_backend_id, e.storage_path, e.size, e.content_type, e.checksum, e.status, e.uploaded_at, e.media_info,
       e.source_checksum
FROM episodes e JOIN media m ON m.id = e.series_id;
