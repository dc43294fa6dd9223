// The window's only door to the engine: every Tauri command and event the shell offers, typed.
// Shapes follow the engine's serde output (snake_case fields); command arguments are snake_case too
// (the shell's commands use `rename_all = "snake_case"`).

import { invoke } from "@tauri-apps/api/core";
import { listen, type UnlistenFn } from "@tauri-apps/api/event";

export type JobState = "queued" | "running" | "verifying" | "done" | "failed" | "paused" | "cancelled";
export type LibraryItem = { kind: "media" | "episode"; id: number };
export type BackendKind = "local" | "s3" | "google-drive" | "onedrive";
export type S3Provider = "aws" | "r2" | "b2" | "wasabi" | "minio" | "garage" | "other";
export type AfterUpload = { policy: "keep" } | { policy: "delete" } | { policy: "move"; dir: string };

export interface Job {
  id: number;
  profile_id: number;
  backend_id: number;
  watch_folder_id: number | null;
  local_path: string;
  size: number;
  remote_path: string;
  state: JobState;
  bytes_done: number;
  attempts: number;
  last_error: string | null;
  library_item: LibraryItem | null;
  created_at: number; // ms since the epoch
  updated_at: number;
  finished_at: number | null;
}

/** `upload-progress` event payload. */
export interface Progress {
  job_id: number;
  bytes_done: number;
  total: number;
  rate: number; // bytes per second, smoothed
  eta_seconds: number | null;
}

/** `upload-state` event payload (the engine's queue events other than progress). */
export type JobEvent =
  | { type: "queued"; job_id: number; local_path: string }
  | { type: "state"; job_id: number; state: JobState; message: string | null };

export interface LibraryEntry {
  item: LibraryItem;
  profile_id: number;
  title: string;
  series: string | null;
  season: number | null;
  episode: number | null;
  file_path: string | null;
  storage_backend_id: number | null;
  storage_path: string | null;
  size: number | null;
  content_type: string | null;
  status: string; // "uploaded", "removed", ...
  uploaded_at: number | null;
  /** The stable http://127.0.0.1:PORT/... URL a player opens. */
  stream_url: string;
}

export interface WatchFolder {
  id: number;
  profile_id: number;
  path: string;
  recursive: boolean;
  include: string[];
  exclude: string[];
}

export interface Profile {
  id: number;
  name: string;
  remote_template: string;
  after_upload: AfterUpload;
  created_at: number;
  watch_folders: WatchFolder[];
  /** The profile's library as a playlist a player opens. */
  playlist_url: string;
}

/** A backend as the Storage tab lists it. */
export interface Backend {
  id: number;
  profile_id: number;
  name: string;
  kind: BackendKind;
  is_default: boolean;
  /** One line, no secrets: a folder, "s3://bucket/prefix at endpoint", "drive root". */
  location: string;
  /** "ready" (local/S3), "connected", "not-signed-in", "disconnected". */
  status: "ready" | "connected" | "not-signed-in" | "disconnected";
  account: string | null;
  /** Why it is disconnected, in words. */
  message: string | null;
}

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
}
export interface ConnectionReport {
  checks: Check[];
}

/** What the storage form sends. Secrets travel only in this call and are sealed by the engine;
 * with `id`, it changes that backend, and an empty secret keeps the stored one. */
export interface BackendForm {
  id?: number;
  profile_id: number;
  name: string;
  kind: BackendKind;
  make_default: boolean;
  // local
  path?: string | null;
  // s3
  provider?: S3Provider;
  endpoint?: string | null;
  region?: string | null;
  bucket?: string | null;
  access_key_id?: string | null;
  secret_access_key?: string | null;
  prefix?: string | null;
  public_url?: string | null;
  path_style?: boolean;
  // google-drive / onedrive
  client_id?: string | null;
  client_secret?: string | null;
  folder_id?: string | null;
  // google-drive / onedrive, set from the command line (national clouds); kept as they are
  chunk_size?: number | null;
  auth_url?: string | null;
  token_url?: string | null;
  api_base?: string | null;
}

/** A stored backend's settings as the form changes them; never its secrets. */
export type StoredBackendForm = Omit<BackendForm, "id" | "profile_id" | "name" | "make_default">;

/** One S3 preset: what the form pre-fills and which fields it asks for. */
export interface S3Preset {
  provider: S3Provider;
  label: string; // "Amazon S3", "Cloudflare R2", ...
  endpoint_template: string | null; // e.g. "https://{account}.r2.cloudflarestorage.com"
  default_region: string | null;
  path_style: boolean;
  needs_endpoint: boolean;
}

export interface Settings {
  workers: number; // uploads at once, 1..=16
  bandwidth_limit: number; // bytes per second, 0 = unlimited
  quiet_period_secs: number; // how long a file must hold still
  stream_port: number;
  notifications: boolean;
  autostart: boolean;
}

export interface Overview {
  /** True until the welcome has been dismissed once. */
  first_run: boolean;
  data_dir: string;
  library_dir: string;
  stream_port: number;
}

/** `account-connected` / `account-failed` event payloads after `connect_backend`. */
export interface AccountConnected {
  backend_id: number;
  account: string | null;
}
export interface AccountFailed {
  /** null when a deep link that matched no sign-in was refused. */
  backend_id: number | null;
  message: string;
}

/** A rejected command: the engine's message, in words a person can act on. */
export type CommandError = string;

export const api = {
  overview: () => invoke<Overview>("overview"),
  /** Closes the window (its web view is freed); Offload goes on in the tray. */
  closeWindow: () => invoke<void>("close_window"),
  dismissWelcome: () => invoke<void>("dismiss_welcome"),

  listJobs: () => invoke<Job[]>("list_jobs"),
  pauseJob: (id: number | null) => invoke<void>("pause_job", { id }),
  resumeJob: (id: number | null) => invoke<void>("resume_job", { id }),
  retryJob: (id: number) => invoke<void>("retry_job", { id }),
  cancelJob: (id: number) => invoke<void>("cancel_job", { id }),

  listLibrary: (profile_id: number | null) => invoke<LibraryEntry[]>("list_library", { profile_id }),
  removeLibraryItem: (item: LibraryItem) => invoke<void>("remove_library_item", { item }),
  /** Opens a URL (stream URL, playlist, sign-in page) in the desktop's default handler. */
  openUrl: (url: string) => invoke<void>("open_url", { url }),

  listProfiles: () => invoke<Profile[]>("list_profiles"),
  createProfile: (name: string) => invoke<Profile>("create_profile", { name }),
  renameProfile: (id: number, name: string) => invoke<void>("rename_profile", { id, name }),
  deleteProfile: (id: number) => invoke<void>("delete_profile", { id }),
  updateProfile: (id: number, remote_template: string, after_upload: AfterUpload) =>
    invoke<void>("update_profile", { id, remote_template, after_upload }),
  /** Where `sample` (a file name like "Show.S01E02.mkv") would go; rejects a bad template with its reason. */
  previewTemplate: (remote_template: string, sample: string) =>
    invoke<string>("preview_template", { remote_template, sample }),
  /** Opens the native folder picker; null when cancelled. */
  pickFolder: () => invoke<string | null>("pick_folder"),
  addWatchFolder: (profile_id: number, path: string, include: string[], exclude: string[]) =>
    invoke<void>("add_watch_folder", { profile_id, path, include, exclude }),
  removeWatchFolder: (id: number) => invoke<void>("remove_watch_folder", { id }),

  listBackends: (profile_id: number | null) => invoke<Backend[]>("list_backends", { profile_id }),
  s3Presets: () => invoke<S3Preset[]>("s3_presets"),
  /** Tests an unsaved form (S3: credentials, bucket, write/read/delete of a probe object). */
  testBackendForm: (form: BackendForm) => invoke<ConnectionReport>("test_backend_form", { form }),
  addBackend: (form: BackendForm) => invoke<Backend>("add_backend", { form }),
  backendForm: (id: number) => invoke<StoredBackendForm>("backend_form", { id }),
  /** New settings for backend `form.id`; the running engine uses them for its next upload. */
  updateBackend: (form: BackendForm & { id: number }) => invoke<Backend>("update_backend", { form }),
  testBackend: (id: number) => invoke<ConnectionReport>("test_backend", { id }),
  setDefaultBackend: (id: number) => invoke<void>("set_default_backend", { id }),
  removeBackend: (id: number) => invoke<void>("remove_backend", { id }),
  /** Starts the sign-in in the system browser and returns its URL (also shown, copyable).
   * Ends with an `account-connected` or `account-failed` event. */
  connectBackend: (id: number) => invoke<string>("connect_backend", { id }),

  getSettings: () => invoke<Settings>("get_settings"),
  saveSettings: (settings: Settings) => invoke<void>("save_settings", { settings }),
};

export const events = {
  progress: (handler: (progress: Progress) => void): Promise<UnlistenFn> =>
    listen<Progress>("upload-progress", (event) => handler(event.payload)),
  job: (handler: (event: JobEvent) => void): Promise<UnlistenFn> =>
    listen<JobEvent>("upload-state", (event) => handler(event.payload)),
  notice: (handler: (message: string) => void): Promise<UnlistenFn> =>
    listen<string>("notice", (event) => handler(event.payload)),
  accountConnected: (handler: (payload: AccountConnected) => void): Promise<UnlistenFn> =>
    listen<AccountConnected>("account-connected", (event) => handler(event.payload)),
  accountFailed: (handler: (payload: AccountFailed) => void): Promise<UnlistenFn> =>
    listen<AccountFailed>("account-failed", (event) => handler(event.payload)),
  /** Something changed the profiles, backends or library outside the window (CLI, deep link). */
  changed: (handler: () => void): Promise<UnlistenFn> => listen("data-changed", () => handler()),
};
