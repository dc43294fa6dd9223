// Human-readable numbers for the window. Binary units throughout, because file managers on
// every desktop Offload targets report sizes that way and the numbers should match.

import type { Action, Backend, BackendKind, Field, Held, MediaInfo, Problem, ScanView, Setting } from "./api";

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

export function formatSize(bytes: number | null | undefined): string {
  if (bytes == null || !Number.isFinite(bytes) || bytes < 0) return "—";
  if (bytes < 1024) return `${Math.round(bytes)} B`;
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  // Three significant digits keep columns steady without hiding meaningful change.
  const digits = value >= 100 ? 0 : value >= 10 ? 1 : 2;
  let text = value.toFixed(digits);
  if (digits > 0) text = text.replace(/\.?0+$/, "");
  return `${text} ${UNITS[unit]}`;
}

export function formatSpeed(bytesPerSecond: number | null | undefined): string {
  if (bytesPerSecond == null || !Number.isFinite(bytesPerSecond) || bytesPerSecond <= 0) return "—";
  if (bytesPerSecond < 1024) return `${Math.round(bytesPerSecond)} B/s`;
  const size = formatSize(bytesPerSecond);
  // One decimal reads calmer than two for a value that changes every second.
  const [num, unit] = size.split(" ");
  const n = Number(num);
  return `${n >= 100 ? n.toFixed(0) : n.toFixed(1)} ${unit}/s`;
}

export function formatEta(seconds: number | null | undefined): string {
  if (seconds == null || !Number.isFinite(seconds) || seconds < 0) return "";
  if (seconds < 10) return "a few seconds left";
  if (seconds < 60) return `${Math.round(seconds)} s left`;
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `${minutes} min left`;
  const hours = Math.floor(minutes / 60);
  const rest = minutes % 60;
  if (hours < 24) return rest === 0 ? `${hours} h left` : `${hours} h ${rest} min left`;
  const days = Math.round(hours / 24);
  return days === 1 ? "1 day left" : `${days} days left`;
}

/** How long an item plays: "1:52:04", or "4:05" under an hour. */
export function formatDuration(ms: number): string {
  const total = Math.round(ms / 1000);
  const [hours, minutes, seconds] = [Math.floor(total / 3600), Math.floor(total / 60) % 60, total % 60];
  const two = (n: number) => String(n).padStart(2, "0");
  return hours > 0 ? `${hours}:${two(minutes)}:${two(seconds)}` : `${minutes}:${two(seconds)}`;
}

/** The name people give a picture size: by its width, so that a 1920×800 film is 1080p. */
function resolution(width: number | null, height: number | null): string | null {
  const [w, h] = [width ?? 0, height ?? 0];
  if (w >= 3800 || h >= 2100) return "2160p";
  if (w >= 2500 || h >= 1400) return "1440p";
  if (w >= 1900 || h >= 1000) return "1080p";
  if (w >= 1200 || h >= 700) return "720p";
  return h > 0 ? `${h}p` : null;
}

const VIDEO_CODECS: Record<string, string> = { h264: "H.264", mpeg2video: "MPEG-2", mpeg4: "MPEG-4" };

/** What a file holds, as a person reads it: "1:52:04 · 1080p · HEVC · 2 audio · 3 subs". */
export function formatMedia(media: MediaInfo): string {
  const parts: string[] = [];
  if (media.duration_ms != null) parts.push(formatDuration(media.duration_ms));
  if (media.video) {
    const size = resolution(media.video.width, media.video.height);
    if (size) parts.push(size);
    parts.push(VIDEO_CODECS[media.video.codec] ?? media.video.codec.toUpperCase());
  }
  if (media.audio.length === 1) parts.push(media.audio[0].codec.toUpperCase());
  else if (media.audio.length > 1) parts.push(`${media.audio.length} audio`);
  if (media.subtitles.length) parts.push(media.subtitles.length === 1 ? "1 sub" : `${media.subtitles.length} subs`);
  return parts.join(" · ");
}

/** A timestamp (ms since the epoch) relative to `now`: "just now", "5 min ago", a date otherwise. */
export function formatTime(ms: number | null | undefined, now: number = Date.now()): string {
  if (ms == null || !Number.isFinite(ms)) return "—";
  const diff = Math.max(0, now - ms) / 1000;
  if (diff < 45) return "just now";
  if (diff < 3600) return `${Math.max(1, Math.round(diff / 60))} min ago`;
  const date = new Date(ms);
  const today = new Date(now);
  const sameDay = date.toDateString() === today.toDateString();
  const time = date.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
  if (sameDay) return `today ${time}`;
  const yesterday = new Date(now - 86_400_000);
  if (date.toDateString() === yesterday.toDateString()) return `yesterday ${time}`;
  return date.toLocaleDateString(undefined, { year: "numeric", month: "short", day: "numeric" });
}

/** File name of a local path, whichever separator the platform used. */
export function basename(path: string): string {
  const trimmed = path.replace(/[\\/]+$/, "");
  const parts = trimmed.split(/[\\/]/);
  return parts[parts.length - 1] || path;
}

export function percent(done: number, total: number): number {
  if (!(total > 0)) return 0;
  return Math.min(100, Math.max(0, Math.floor((done / total) * 100)));
}

/** "1 file" / "3 files". */
export function plural(count: number, one: string, many: string = `${one}s`): string {
  return `${count} ${count === 1 ? one : many}`;
}

/** Uploads waiting for their upload window, as a sentence: "2 uploads wait for their upload
 * window, which opens at 01:00." `null` when nothing waits. */
export function heldText(held: Held): string | null {
  if (held.jobs === 0) return null;
  const waiting = `${plural(held.jobs, "upload")} ${held.jobs === 1 ? "waits" : "wait"} for the upload window`;
  // The engine's local time, `2026-12-08T01:00:00`: the hours and minutes are what a person reads.
  const opens = held.opens_at?.match(/T(\d\d:\d\d)/)?.[1];
  return opens ? `${waiting}, which opens at ${opens}.` : `${waiting}.`;
}

/** What each part of a backend's settings is called in the storage form. */
export const FIELD_LABELS: Record<Field, string> = {
  path: "folder",
  endpoint: "endpoint",
  region: "region",
  bucket: "bucket",
  access_key_id: "access key id",
  secret_access_key: "secret access key",
  prefix: "folder inside the bucket",
  public_url: "public address",
  folder_id: "folder id",
  client_id: "client id",
  client_secret: "client secret",
  chunk_size: "chunk size",
};

/** What each setting is called in Settings. */
export const SETTING_LABELS: Record<Setting, string> = {
  workers: "Uploads at once",
  quiet_period: "Quiet period",
  bandwidth_limit: "Bandwidth limit",
  bandwidth_schedule: "Bandwidth by time of day",
  player_yield_limit: "Limit while a player streams",
  stream_port: "Stream port",
  stream_bind: "Stream address",
  url_lifetime: "Stream URL lifetime",
  library_scan: "Look for changes in storage",
};

/** One backend's scan, as a sentence: "Found 1,240 items in Bucket (3 new, 1 gone)." */
export function scanText(scan: ScanView): string {
  if (scan.problem) return `Could not look through ${scan.backend_name}: ${errorText(scan.problem)}`;
  const report = scan.report;
  if (!report) return "";
  const found = `Found ${report.found.toLocaleString("en-US")} ${report.found === 1 ? "item" : "items"} in ${scan.backend_name}`;
  const changes = [
    report.added && `${report.added} new`,
    report.changed && `${report.changed} changed`,
    report.gone && `${report.gone} gone`,
  ].filter(Boolean);
  return changes.length ? `${found} (${changes.join(", ")}).` : `${found}; nothing changed.`;
}

/** What to do about a failure, as the window says it: the button to press or the field to
 * correct. `names` gives backends' names by id, where the view has them. */
export function actionText(action: Action, names?: Map<number, string>): string {
  const named = (id: number | null) => {
    const name = id === null ? undefined : names?.get(id);
    return name ? ` of “${name}”` : "";
  };
  switch (action.do) {
    case "sign-in": {
      const name = names?.get(action.backend_id);
      return `Sign in again: press Connect${name ? ` for “${name}”` : ""} in Storage.`;
    }
    case "change-backend":
      return action.backend_id === null
        ? `Correct the ${FIELD_LABELS[action.field]}.`
        : `Correct the ${FIELD_LABELS[action.field]}${named(action.backend_id)}: Change it in Storage.`;
    case "change-setting":
      return `Choose another ${SETTING_LABELS[action.setting].toLowerCase()} in Settings.`;
    case "set-clock":
      return "Set this computer's clock (turn on automatic date and time).";
    case "free-space":
      return "Free some space where the files go.";
  }
}

function isProblem(error: unknown): error is Problem {
  return typeof error === "object" && error !== null && typeof (error as Problem).message === "string";
}

/** A refused command arrives as the engine's sentence and what to do about it; anything else is a
 * bug worth showing as it is. */
export function errorText(error: unknown, names?: Map<number, string>): string {
  if (isProblem(error)) return error.action ? `${error.message}. ${actionText(error.action, names)}` : error.message;
  if (typeof error === "string") return error;
  if (error instanceof Error) return error.message;
  return String(error);
}

/** The Storage tab's status badge wording. */
export function backendStatusText(backend: Backend): string {
  switch (backend.status) {
    case "ready":
      return "Ready";
    case "connected":
      return backend.account ? `Connected as ${backend.account}` : "Connected";
    case "not-signed-in":
      return "Not signed in";
    case "disconnected":
      return `Disconnected: ${backend.reason}`;
  }
}

export const KIND_LABELS: Record<BackendKind, string> = {
  local: "Local folder",
  s3: "S3-compatible",
  "google-drive": "Google Drive",
  onedrive: "OneDrive",
};
