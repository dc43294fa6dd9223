// The window's only door to the engine: every Tauri command and event the shell offers, typed.
// Shapes follow the engine's serde output (snake_case fields); command arguments are snake_case too
// (the shell's commands use `rename_all = "snake_case"`).

import { invoke } from "@tauri-apps/api/core";
import { listen, type UnlistenFn } from "@tauri-apps/api/event";

import type {
  AccountConnected,
  AccountFailed,
  AfterUpload,
  BackendKind,
  BackendView,
  ConnectionReport,
  Event,
  Held,
  Job,
  LibraryItem,
  LibraryRow,
  NewBackend,
  Overview,
  ProfileView,
  Progress,
  S3Preset,
  ScanProgress,
  ScanView,
  Settings,
  Switch,
} from "./bindings";

// The shapes are generated from the engine's and the shell's Rust types (./bindings.ts); the
// names the views use for them:
export type * from "./bindings";
/** A backend as the Storage tab lists it. */
export type Backend = BackendView;
/** A profile with its watched folders and playlist. */
export type Profile = ProfileView;
/** An item of the library, with the URL a player opens. */
export type LibraryEntry = LibraryRow;
/** `upload-state` event payload: the queue's events other than progress. */
export type JobEvent = Extract<Event, { type: "queued" } | { type: "state" } | { type: "held" }>;

/** What the storage form sends: the fields of the chosen kind. Secrets travel only in this call
 * and are sealed by the engine; with `id`, it changes that backend, and an empty secret keeps
 * the stored one. */
export type BackendForm = Pick<NewBackend, "profile_id" | "name" | "make_default"> &
  Partial<Omit<NewBackend, "kind">> & { kind: BackendKind };

/** A stored backend's settings as the form changes them; never its secrets. */
export type StoredBackendForm = Omit<BackendForm, "id" | "profile_id" | "name" | "make_default">;

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

  listLibrary: (profile_id: number | null) => invoke<LibraryRow[]>("list_library", { profile_id }),
  removeLibraryItem: (item: LibraryItem) => invoke<void>("remove_library_item", { item }),
  /** Looks through storage for what is already there: one backend, or a profile's (null: all). */
  scanLibrary: (profile_id: number | null, backend_id: number | null = null) =>
    invoke<ScanView[]>("scan_library", { profile_id, backend_id }),
  /** Opens a URL (stream URL, playlist, sign-in page) in the desktop's default handler. */
  openUrl: (url: string) => invoke<void>("open_url", { url }),

  listProfiles: () => invoke<ProfileView[]>("list_profiles"),
  createProfile: (name: string) => invoke<ProfileView>("create_profile", { name }),
  renameProfile: (id: number, name: string) => invoke<void>("rename_profile", { id, name }),
  deleteProfile: (id: number) => invoke<void>("delete_profile", { id }),
  /** `window` like "01:00-07:00" (local time); null: at any time. */
  setUploadWindow: (id: number, window: string | null) => invoke<void>("set_upload_window", { id, window }),
  setStrmDir: (id: number, dir: string | null) => invoke<void>("set_strm_dir", { id, dir }),
  setSwitch: (id: number, which: Switch, on: boolean) => invoke<void>("set_switch", { id, switch: which, on }),
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

  listBackends: (profile_id: number | null) => invoke<BackendView[]>("list_backends", { profile_id }),
  s3Presets: () => invoke<S3Preset[]>("s3_presets"),
  /** Tests an unsaved form (S3: credentials, bucket, write/read/delete of a probe object). */
  testBackendForm: (form: BackendForm) => invoke<ConnectionReport>("test_backend_form", { form }),
  addBackend: (form: BackendForm) => invoke<BackendView>("add_backend", { form }),
  backendForm: (id: number) => invoke<StoredBackendForm>("backend_form", { id }),
  /** New settings for backend `form.id`; the running engine uses them for its next upload. */
  updateBackend: (form: BackendForm & { id: number }) => invoke<BackendView>("update_backend", { form }),
  testBackend: (id: number) => invoke<ConnectionReport>("test_backend", { id }),
  setDefaultBackend: (id: number) => invoke<void>("set_default_backend", { id }),
  removeBackend: (id: number) => invoke<void>("remove_backend", { id }),
  /** Starts the sign-in in the system browser and returns its URL (also shown, copyable).
   * Ends with an `account-connected` or `account-failed` event. */
  connectBackend: (id: number) => invoke<string>("connect_backend", { id }),

  /** The uploads closed upload windows hold back now; `held` events say when it changes. */
  heldBack: () => invoke<Held>("held_back"),
  /** Whether storage of `kind` signs in without a client id of the person's own. */
  clientIdConfigured: (kind: BackendKind) => invoke<boolean>("client_id_configured", { kind }),
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
  /** A look through a backend as it goes, whoever started it (the window, the daemon's rounds). */
  scan: (handler: (progress: ScanProgress) => void): Promise<UnlistenFn> =>
    listen<ScanProgress>("library-scan", (event) => handler(event.payload)),
  /** Items found in storage were described (their length, picture size, pictures). */
  described: (handler: (items: number) => void): Promise<UnlistenFn> =>
    listen<number>("library-described", (event) => handler(event.payload)),
  /** Something changed the profiles, backends or library outside the window (CLI, deep link). */
  changed: (handler: () => void): Promise<UnlistenFn> => listen("data-changed", () => handler()),
};
