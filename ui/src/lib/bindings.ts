// Generated from the Rust types the window shares with the engine and the shell
// (src-tauri/src/bindings.rs). Do not edit: run
// `OFFLOAD_WRITE_BINDINGS=1 cargo test -p offload-desktop bindings` after changing them.

export type Action = { "do": "sign-in", backend_id: number, } | { "do": "change-backend", backend_id: number | null, field: Field, } | { "do": "change-setting", setting: Setting, } | { "do": "set-clock" } | { "do": "free-space" };

export type Setting = "workers" | "quiet_period" | "bandwidth_limit" | "bandwidth_schedule" | "player_yield_limit" | "stream_port" | "stream_bind" | "url_lifetime" | "library_scan";

export type Settings = { 
/**
 * Files uploaded at once.
 */
workers: number, 
/**
 * How long a file must hold still before it counts as finished, in seconds.
 */
quiet_period_secs: number, 
/**
 * Bytes per second for all uploads together; 0: no limit.
 */
bandwidth_limit: number, 
/**
 * The limit by time of day, in rclone's `--bwlimit` timetable form (`08:00,2M 23:00,off`,
 * days optional: `Mon-08:00,2M`); empty: `bandwidth_limit` all day.
 */
bandwidth_schedule: string, 
/**
 * The port of the stream server, part of every stream URL.
 */
stream_port: number, 
/**
 * The address the stream server listens on: loopback unless a person chose another.
 */
stream_bind: string, 
/**
 * How long a presigned URL minted for one playback lives, in seconds: long enough for a film
 * watched with pauses, short enough that one copied from a player's history is dead the same
 * day.
 */
url_lifetime_secs: number, 
/**
 * How often the daemon looks through every backend for what changed there (files another
 * computer or tool added, deleted or replaced), in seconds; 0: never.
 */
library_scan_secs: number, 
/**
 * While a player streams from remote storage through the stream server (and for a minute
 * after), uploads slow down to leave it the link.
 */
yield_to_players: boolean, 
/**
 * Bytes per second uploads keep to while they yield; 0: half of what they took before.
 */
player_yield_limit: number, 
/**
 * Desktop notifications for finished and failed uploads.
 */
notifications: boolean, 
/**
 * Start the desktop app when the person logs in.
 */
autostart: boolean, };

export type Field = "path" | "endpoint" | "region" | "bucket" | "access_key_id" | "secret_access_key" | "prefix" | "public_url" | "folder_id" | "client_id" | "client_secret" | "chunk_size";

export type Fix = { "fix": "change", "field": Field } | { "fix": "sign-in" } | { "fix": "set-clock" } | { "fix": "free-space" };

export type BackendKind = "local" | "s3" | "google-drive" | "onedrive";

export type Check = { name: string, ok: boolean, detail: string, fix: Fix | null, };

export type ConnectionReport = { checks: Array<Check>, };

export type S3Provider = "aws" | "r2" | "b2" | "wasabi" | "minio" | "garage" | "other";

export type S3Preset = { provider: S3Provider, label: string, endpoint_template: string | null, default_region: string | null, path_style: boolean, 
/**
 * The endpoint cannot be derived from the region alone.
 */
needs_endpoint: boolean, };

export type BackendForm = { kind: BackendKind | null, 
/**
 * local: the library folder (the default library when absent).
 */
path: string | null, 
/**
 * s3
 */
provider: S3Provider, endpoint: string | null, region: string | null, bucket: string | null, access_key_id: string | null, secret_access_key: string | null, prefix: string | null, public_url: string | null, path_style: boolean, 
/**
 * google-drive, onedrive: the OAuth app registration (the configured one when absent).
 */
client_id: string | null, client_secret: string | null, folder_id: string | null, chunk_size: number | null, auth_url: string | null, token_url: string | null, api_base: string | null, };

export type Readiness = { "status": "ready" } | { "status": "connected", account: string | null, } | { "status": "not-signed-in" } | { "status": "disconnected", reason: string, };

export type BackendView = { id: number, profile_id: number, name: string, kind: BackendKind, is_default: boolean, 
/**
 * One line: the folder, the endpoint with bucket and prefix, or the drive folder.
 */
location: string, } & ({ "status": "ready" } | { "status": "connected", account: string | null, } | { "status": "not-signed-in" } | { "status": "disconnected", reason: string, });

export type AfterUpload = { "policy": "keep" } | { "policy": "delete" } | { "policy": "move", "dir": string };

export type Profile = { id: number, name: string, remote_template: string, after_upload: AfterUpload, 
/**
 * The hours its uploads may run, as `01:00-07:00` (local time); `None`: any time.
 */
upload_window: string | null, 
/**
 * The folder of `.strm` files kept in step with its library, for media centres.
 */
strm_dir: string | null, 
/**
 * Whether its MP4s with the index after the media data are rewritten index-first before
 * upload, so players start them from the first bytes.
 */
faststart: boolean, 
/**
 * Whether its MPEG-TS, AVI and FLV files are remuxed into MP4 before upload (where ffmpeg
 * is installed).
 */
remux: boolean, created_at: number, };

export type Switch = "faststart" | "remux";

export type WatchFolder = { id: number, profile_id: number, path: string, recursive: boolean, include: Array<string>, exclude: Array<string>, };

export type ProfileView = { folders: Array<WatchFolder>, playlist_url: string | null, 
/**
 * Whether ffmpeg is installed where Offload looks for it: the remux needs it (and the
 * Library's pictures).
 */
ffmpeg: boolean, id: number, name: string, remote_template: string, after_upload: AfterUpload, 
/**
 * The hours its uploads may run, as `01:00-07:00` (local time); `None`: any time.
 */
upload_window: string | null, 
/**
 * The folder of `.strm` files kept in step with its library, for media centres.
 */
strm_dir: string | null, 
/**
 * Whether its MP4s with the index after the media data are rewritten index-first before
 * upload, so players start them from the first bytes.
 */
faststart: boolean, 
/**
 * Whether its MPEG-TS, AVI and FLV files are remuxed into MP4 before upload (where ffmpeg
 * is installed).
 */
remux: boolean, created_at: number, };

export type Container = "mp4" | "matroska" | "webm" | "mpegts" | "avi" | "flv" | "other";

export type Video = { 
/**
 * ffmpeg's name for the codec (`h264`, `hevc`, `av1`…), as ffprobe says it.
 */
codec: string, width: number | null, height: number | null, };

export type Track = { 
/**
 * ffmpeg's name for the codec (`aac`, `eac3`, `subrip`…).
 */
codec: string, 
/**
 * The ISO 639-2 code the file gives, where it gives one (never `und`).
 */
language: string | null, };

export type MediaInfo = { container: Container, 
/**
 * Whole milliseconds; absent where the file does not say.
 */
duration_ms: number | null, 
/**
 * The first video track (a second one is rare and never the film).
 */
video: Video | null, audio: Array<Track>, subtitles: Array<Track>, };

export type LibraryItem = { "kind": "media", "id": number } | { "kind": "episode", "id": number };

export type LibraryEntry = { item: LibraryItem, profile_id: number, title: string, series: string | null, season: number | null, episode: number | null, file_path: string | null, storage_backend_id: number | null, storage_path: string | null, size: number | null, content_type: string | null, checksum: string | null, status: string, uploaded_at: number | null, 
/**
 * What the file holds (duration, picture, tracks), where it has been probed.
 */
media: MediaInfo | null, 
/**
 * The local file's SHA-256 where the stored bytes are a rewrite of it (its index moved to
 * the front); `checksum` is the stored bytes' own.
 */
source_checksum: string | null, };

export type LibraryRow = { stream_url: string | null, 
/**
 * Its picture, where one was taken (ffmpeg installed) and a stream URL can be signed.
 */
poster_url: string | null, item: LibraryItem, profile_id: number, title: string, series: string | null, season: number | null, episode: number | null, file_path: string | null, storage_backend_id: number | null, storage_path: string | null, size: number | null, content_type: string | null, checksum: string | null, status: string, uploaded_at: number | null, 
/**
 * What the file holds (duration, picture, tracks), where it has been probed.
 */
media: MediaInfo | null, 
/**
 * The local file's SHA-256 where the stored bytes are a rewrite of it (its index moved to
 * the front); `checksum` is the stored bytes' own.
 */
source_checksum: string | null, };

export type ScanReport = { 
/**
 * Media items the backend holds now.
 */
found: number, 
/**
 * Items the library did not have before.
 */
added: number, 
/**
 * Items whose object was replaced by a different one (another size or tag).
 */
changed: number, 
/**
 * Items whose object is no longer there.
 */
gone: number, };

export type ScanProgress = { backend_id: number, backend_name: string, 
/**
 * Media items found so far.
 */
found: number, 
/**
 * The scan ended (whether it worked is in its report).
 */
done: boolean, };

export type JobState = "queued" | "running" | "verifying" | "done" | "failed" | "paused" | "cancelled";

export type Job = { id: number, profile_id: number, backend_id: number, watch_folder_id: number | null, local_path: string, size: number, mtime_ns: number, remote_path: string, state: JobState, bytes_done: number, attempts: number, last_error: string | null, 
/**
 * What a person can do about `last_error`, where the engine knows.
 */
action: Action | null, next_attempt_at: number, checksum: string | null, owner: string | null, library_item: LibraryItem | null, created_at: number, updated_at: number, finished_at: number | null, };

export type Progress = { job_id: number, bytes_done: number, total: number, 
/**
 * Bytes per second, smoothed.
 */
rate: number, eta_seconds: number | null, };

export type Event = { "type": "queued", job_id: number, local_path: string, } | { "type": "progress" } & Progress | { "type": "state", job_id: number, state: JobState, message: string | null, 
/**
 * What a person can do about `message`, where the engine knows.
 */
action: Action | null, } | { "type": "notice", message: string, } | { "type": "scan" } & ScanProgress | { "type": "described", items: number, } | { "type": "held" } & Held;

export type Held = { jobs: number, opens_at: string | null, };

export type Problem = { message: string, action: Action | null, };

export type ScanView = { backend_id: number, backend_name: string, report: ScanReport | null, problem: Problem | null, };

export type Overview = { 
/**
 * True until the welcome has been dismissed once.
 */
first_run: boolean, data_dir: string, library_dir: string, stream_port: number, };

export type NewBackend = { id: number | null, profile_id: number, name: string, make_default: boolean, kind: BackendKind | null, 
/**
 * local: the library folder (the default library when absent).
 */
path: string | null, 
/**
 * s3
 */
provider: S3Provider, endpoint: string | null, region: string | null, bucket: string | null, access_key_id: string | null, secret_access_key: string | null, prefix: string | null, public_url: string | null, path_style: boolean, 
/**
 * google-drive, onedrive: the OAuth app registration (the configured one when absent).
 */
client_id: string | null, client_secret: string | null, folder_id: string | null, chunk_size: number | null, auth_url: string | null, token_url: string | null, api_base: string | null, };

export type AccountConnected = { backend_id: number, account: string | null, };

export type AccountFailed = { backend_id: number | null, message: string, action: Action | null, };

/** Each setting's rule, in the words the engine refuses a value with. */
export const SETTING_RULES: Record<Setting, string> = {
  "bandwidth_limit": "the bandwidth limit must be 0 (none) or more bytes per second",
  "bandwidth_schedule": "a bandwidth timetable is times and rates like 08:00,2M 23:00,off (days optional, as in Mon-08:00,2M), or empty",
  "library_scan": "storage is looked through for changes every 1 minute to 1 day, or never (0)",
  "player_yield_limit": "the limit while a player streams must be 0 (half the upload rate) or more bytes per second",
  "quiet_period": "the quiet period must be from 0 to 86400 seconds",
  "stream_bind": "the stream server's address must be an IP address of this computer",
  "stream_port": "the stream port must be from 1024 to 65535 (lower ports need administrator rights)",
  "url_lifetime": "a stream URL must live from 1 second to 7 days",
  "workers": "uploads at once must be a whole number from 1 to 64"
};

/** The limits the engine checks the settings against. */
export const SETTING_LIMITS = {
  max_workers: 64,
  max_quiet_period_secs: 86400,
  min_stream_port: 1024,
  max_url_lifetime_secs: 604800,
  min_library_scan_secs: 60,
  max_library_scan_secs: 86400,
} as const;
