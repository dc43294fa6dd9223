-- What an item's file holds, as its headers say (src/probe): container, duration, video codec
-- and picture size, audio and subtitle tracks, as JSON. NULL where nothing has probed it, or it
-- could not be probed; a scan that finds the object replaced clears it.
ALTER TABLE media ADD COLUMN media_info TEXT;
ALTER TABLE episodes ADD COLUMN media_info TEXT;

DROP VIEW library_entries;
CREATE VIEW library_entries AS
SELECT 0 AS is_episode, id, profile_id, title, NULL AS series, NULL AS season, NULL AS episode, file_path,
       storage_backend_id, storage_path, size, content_type, checksum, status, uploaded_at, media_info
FROM media WHERE kind = 'file'
UNION ALL
SELECT 1, e.id, m.profile_id, e.title, m.title, e.season, e.episode, e.file_path,
       e.storage_backend_id, e.storage_path, e.size, e.content_type, e.checksum, e.status, e.uploaded_at, e.media_info
FROM episodes e JOIN media m ON m.id = e.series_id;

-- A folder of `.strm` files the daemon keeps in step with the profile's library, for Kodi,
-- Jellyfin and Emby (src/stream/strm.rs); NULL: none.
ALTER TABLE profiles ADD COLUMN strm_dir TEXT;
