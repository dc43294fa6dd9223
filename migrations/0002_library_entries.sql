-- The library as one list: files, and episodes with their series. The stream server looks items
-- up by id through it and `offload media list` lists it, so both read the same columns.
CREATE VIEW library_entries AS
SELECT 0 AS is_episode, id, profile_id, title, NULL AS series, NULL AS season, NULL AS episode, file_path,
       storage_backend_id, storage_path, size, content_type, checksum, status, uploaded_at
FROM media WHERE kind = 'file'
UNION ALL
SELECT 1, e.id, m.profile_id, e.title, m.title, e.season, e.episode, e.file_path,
       e.storage_backend_id, e.storage_path, e.size, e.content_type, e.checksum, e.status, e.uploaded_at
FROM episodes e JOIN media m ON m.id = e.series_id;
