-- What the storage said an item's object was when a scan last saw it (an S3 ETag, a local
-- file's modification time): a scan compares it with the next listing to tell an unchanged
-- object from one replaced elsewhere, without reading either. NULL until a scan saw it.
ALTER TABLE media ADD COLUMN remote_tag TEXT;
ALTER TABLE episodes ADD COLUMN remote_tag TEXT;
