-- Whether a profile's MPEG-TS, AVI and FLV files are remuxed into MP4 by ffmpeg (packets
-- copied, nothing re-encoded) before they are uploaded (src/transmux/remux.rs). Off unless a
-- person turns it on: it changes the stored file's name and format.
ALTER TABLE profiles ADD COLUMN remux INTEGER NOT NULL DEFAULT 0;
