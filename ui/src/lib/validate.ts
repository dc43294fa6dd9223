// Form rules the window checks while the user types. The engine validates again on save;
// these only exist so mistakes show up next to the field instead of after a round trip.

import type { BackendForm, S3Preset, Settings } from "./api";
import { SETTING_LIMITS, SETTING_RULES } from "./bindings";

export type Errors = Partial<Record<string, string>>;

export function isValid(errors: Errors): boolean {
  return Object.values(errors).every((message) => !message);
}

/** S3 bucket naming rules that every provider Offload presets for agrees on. */
export function bucketError(bucket: string): string | null {
  const name = bucket.trim();
  if (!name) return "Enter the bucket name.";
  if (name.length < 3 || name.length > 63) return "Bucket names are 3 to 63 characters long.";
  if (!/^[a-z0-9.-]+$/.test(name)) return "Use only lowercase letters, digits, dots and hyphens.";
  if (!/^[a-z0-9]/.test(name) || !/[a-z0-9]$/.test(name)) return "Start and end with a letter or digit.";
  if (name.includes("..")) return "Two dots in a row are not allowed.";
  if (/^\d+\.\d+\.\d+\.\d+$/.test(name)) return "A bucket name cannot look like an IP address.";
  return null;
}

/** Endpoints are base URLs; a path or query would be silently ignored by the engine's client. */
export function urlError(value: string, label = "address"): string | null {
  const text = value.trim();
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return `Enter a full ${label} starting with https:// or http://.`;
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") return `The ${label} must start with https:// or http://.`;
  if (!url.hostname) return `The ${label} needs a host name.`;
  if (text.includes("{")) return "Replace the {placeholder} in the address.";
  return null;
}

/** Fields the Add storage form shows, with the form's own extra (R2 account id). */
export interface BackendDraft extends BackendForm {
  account_id?: string;
}

/** `changing`: the form changes a stored backend, whose secrets stay unless new ones are typed. */
export function validateBackendForm(form: BackendDraft, preset?: S3Preset | null, changing = false): Errors {
  const errors: Errors = {};
  if (!form.name.trim()) errors.name = "Give this storage a name.";
  else if (form.name.trim().length > 64) errors.name = "Keep the name under 64 characters.";

  // A blank local folder means the default library, and a blank client id the configured OAuth
  // app, so only S3 has required fields beyond the name.
  switch (form.kind) {
    case "s3": {
      const needsEndpoint = preset ? preset.needs_endpoint : form.provider !== "aws";
      const endpoint = form.endpoint?.trim() ?? "";
      if (endpoint) {
        const problem = urlError(endpoint, "endpoint");
        if (problem) errors.endpoint = problem;
      } else if (needsEndpoint) {
        errors.endpoint =
          form.provider === "r2" ? "Enter your Cloudflare account id or the endpoint." : "Enter the endpoint address.";
      }
      const bucket = bucketError(form.bucket ?? "");
      if (bucket) errors.bucket = bucket;
      if (!form.access_key_id?.trim()) errors.access_key_id = "Enter the access key id.";
      if (!changing && !form.secret_access_key?.trim()) errors.secret_access_key = "Enter the secret access key.";
      const publicUrl = form.public_url?.trim();
      if (publicUrl) {
        const problem = urlError(publicUrl, "public address");
        if (problem) errors.public_url = problem;
      }
      break;
    }
  }
  return errors;
}

/** What the Settings form edits: the bandwidth limit as a number in a chosen unit; the rest of
 * the settings ride along unchanged. */
export interface SettingsDraft {
  base: Settings;
  workers: number | null;
  bandwidth: number | null;
  bandwidth_unit: "KiB" | "MiB";
  /** rclone's timetable ("08:00,2M 23:00,off"); the engine checks it on save. */
  bandwidth_schedule: string;
  quiet_period_secs: number | null;
  stream_port: number | null;
  /** The daemon's storage scan interval in minutes; 0: never. */
  library_scan_minutes: number | null;
  notifications: boolean;
  autostart: boolean;
}

const UNIT_BYTES = { KiB: 1024, MiB: 1024 * 1024 } as const;

export function settingsToDraft(settings: Settings): SettingsDraft {
  const limit = settings.bandwidth_limit;
  const inMiB = limit >= UNIT_BYTES.MiB && limit % UNIT_BYTES.MiB === 0;
  return {
    base: settings,
    workers: settings.workers,
    bandwidth: limit === 0 ? null : inMiB ? limit / UNIT_BYTES.MiB : Math.round((limit / UNIT_BYTES.KiB) * 100) / 100,
    bandwidth_unit: limit === 0 || inMiB ? "MiB" : "KiB",
    bandwidth_schedule: settings.bandwidth_schedule,
    quiet_period_secs: settings.quiet_period_secs,
    stream_port: settings.stream_port,
    library_scan_minutes: Math.round(settings.library_scan_secs / 60),
    notifications: settings.notifications,
    autostart: settings.autostart,
  };
}

function isInt(value: number | null): value is number {
  return value != null && Number.isInteger(value);
}

/** The engine's rules for the settings, in the engine's words (generated from it), checked as
 * the person types; the engine checks them again on save. */
export function validateSettings(draft: SettingsDraft): Errors {
  const errors: Errors = {};
  const rule = (setting: keyof typeof SETTING_RULES) => sentence(SETTING_RULES[setting]);
  if (!isInt(draft.workers) || draft.workers < 1 || draft.workers > SETTING_LIMITS.max_workers)
    errors.workers = rule("workers");
  if (draft.bandwidth != null && (!Number.isFinite(draft.bandwidth) || draft.bandwidth < 0))
    errors.bandwidth = rule("bandwidth_limit");
  if (
    !isInt(draft.quiet_period_secs) ||
    draft.quiet_period_secs < 0 ||
    draft.quiet_period_secs > SETTING_LIMITS.max_quiet_period_secs
  )
    errors.quiet_period_secs = rule("quiet_period");
  if (!isInt(draft.stream_port) || draft.stream_port < SETTING_LIMITS.min_stream_port || draft.stream_port > 65_535)
    errors.stream_port = rule("stream_port");
  const scan = draft.library_scan_minutes;
  if (
    !isInt(scan) ||
    (scan !== 0 &&
      (scan * 60 < SETTING_LIMITS.min_library_scan_secs || scan * 60 > SETTING_LIMITS.max_library_scan_secs))
  )
    errors.library_scan_minutes = rule("library_scan");
  return errors;
}

/** The engine's lowercase clause as a sentence for the window. */
export function sentence(text: string): string {
  return `${text.charAt(0).toUpperCase()}${text.slice(1)}.`;
}

/** Only call with a draft that passed `validateSettings`. */
export function draftToSettings(draft: SettingsDraft): Settings {
  const bandwidth = draft.bandwidth ?? 0;
  return {
    ...draft.base,
    workers: draft.workers ?? 1,
    bandwidth_limit: Math.round(bandwidth * UNIT_BYTES[draft.bandwidth_unit]),
    bandwidth_schedule: draft.bandwidth_schedule.trim(),
    quiet_period_secs: draft.quiet_period_secs ?? 0,
    stream_port: draft.stream_port ?? 0,
    library_scan_secs: (draft.library_scan_minutes ?? 0) * 60,
    notifications: draft.notifications,
    autostart: draft.autostart,
  };
}

/** Glob patterns typed one per line or comma separated. */
export function splitPatterns(text: string): string[] {
  return text
    .split(/[,\n]/)
    .map((pattern) => pattern.trim())
    .filter((pattern) => pattern.length > 0);
}

function optional(value: string | null | undefined): string | null {
  const text = value?.trim();
  return text ? text : null;
}

/** The payload for the engine: only the chosen kind's fields, blanks as null. */
export function toBackendForm(draft: BackendDraft): BackendForm {
  const base: BackendForm = {
    profile_id: draft.profile_id,
    name: draft.name.trim(),
    kind: draft.kind,
    make_default: draft.make_default,
  };
  switch (draft.kind) {
    case "local":
      return { ...base, path: optional(draft.path) };
    case "s3":
      return {
        ...base,
        provider: draft.provider ?? "other",
        endpoint: optional(draft.endpoint),
        region: optional(draft.region),
        bucket: optional(draft.bucket),
        access_key_id: optional(draft.access_key_id),
        // Secrets are sent exactly as typed: a leading or trailing space may be part of them.
        secret_access_key: draft.secret_access_key || null,
        prefix: optional(draft.prefix),
        public_url: optional(draft.public_url),
        path_style: draft.path_style ?? false,
      };
    case "google-drive":
    case "onedrive":
      return {
        ...base,
        client_id: optional(draft.client_id),
        client_secret: draft.client_secret || null,
        folder_id: optional(draft.folder_id),
        chunk_size: draft.chunk_size ?? null,
        auth_url: optional(draft.auth_url),
        token_url: optional(draft.token_url),
        api_base: optional(draft.api_base),
      };
  }
}
