-- What happens to a job's local file once its upload is verified, when whoever handed the file
-- over (`offload add --after-upload`, a download client's hook) said so for this file; NULL
-- follows the profile's policy. Written as the policy reads: keep, delete or move:<folder>.
ALTER TABLE upload_jobs ADD COLUMN after_upload TEXT;
