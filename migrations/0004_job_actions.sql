-- What a person can do about a job's last error (an engine Action as JSON: sign in again,
-- correct a backend's setting, set the clock…); each shell words it its own way. NULL when there
-- is nothing to do, or no error.
ALTER TABLE upload_jobs ADD COLUMN action TEXT;
