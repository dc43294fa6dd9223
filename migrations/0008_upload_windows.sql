-- The hours of the day a profile's uploads may run ("01:00-07:00", local time; across midnight
-- too). NULL: any time. Jobs of a profile whose window is closed wait in the queue, and one
-- running when it closes stops at a checkpoint and goes on when it opens.
ALTER TABLE profiles ADD COLUMN upload_window TEXT;
