import { describe, expect, it } from "vitest";
import type { S3Preset } from "./api";
import { SETTING_LIMITS, SETTING_RULES } from "./bindings";
import {
  bucketError,
  draftToSettings,
  isValid,
  settingsToDraft,
  splitPatterns,
  toBackendForm,
  urlError,
  validateBackendForm,
  validateSettings,
  type BackendDraft,
} from "./validate";

const MINIO: S3Preset = {
  provider: "minio",
  label: "MinIO",
  endpoint_template: null,
  default_region: "us-east-1",
  path_style: true,
  needs_endpoint: true,
};
const AWS: S3Preset = { ...MINIO, provider: "aws", label: "Amazon S3", path_style: false, needs_endpoint: false };

const s3 = (extra: Partial<BackendDraft> = {}): BackendDraft => ({
  profile_id: 1,
  name: "Bucket",
  kind: "s3",
  make_default: false,
  provider: "minio",
  endpoint: "http://nas.local:9000",
  bucket: "media",
  access_key_id: "AKIA",
  secret_access_key: "secret",
  ...extra,
});

describe("bucket names", () => {
  it("accepts valid names", () => {
    expect(bucketError("media")).toBeNull();
    expect(bucketError("my.media-2024")).toBeNull();
  });
  it("rejects each broken rule with a reason", () => {
    expect(bucketError("")).toMatch(/bucket name/);
    expect(bucketError("ab")).toMatch(/3 to 63/);
    expect(bucketError("a".repeat(64))).toMatch(/3 to 63/);
    expect(bucketError("Media")).toMatch(/lowercase/);
    expect(bucketError("my_bucket")).toMatch(/lowercase/);
    expect(bucketError("-media")).toMatch(/Start and end/);
    expect(bucketError("my..media")).toMatch(/dots/);
    expect(bucketError("192.168.1.10")).toMatch(/IP address/);
  });
});

describe("endpoint", () => {
  it("wants a full http(s) address without placeholders", () => {
    expect(urlError("https://s3.eu-central-1.amazonaws.com")).toBeNull();
    expect(urlError("nas.local:9000")).not.toBeNull();
    expect(urlError("ftp://nas.local")).toMatch(/https/);
    expect(urlError("https://{account}.r2.cloudflarestorage.com")).toMatch(/placeholder/);
  });
});

describe("validateBackendForm", () => {
  it("accepts a complete S3 form", () => {
    expect(validateBackendForm(s3(), MINIO)).toEqual({});
    expect(isValid(validateBackendForm(s3({ bucket: "x" }), MINIO))).toBe(false);
  });
  it("requires name and the S3 credentials", () => {
    const errors = validateBackendForm(s3({ name: " ", access_key_id: "", secret_access_key: "" }), MINIO);
    expect(Object.keys(errors).sort()).toEqual(["access_key_id", "name", "secret_access_key"]);
  });
  it("requires an endpoint only when the preset needs one", () => {
    expect(validateBackendForm(s3({ endpoint: "" }), MINIO).endpoint).toBeTruthy();
    expect(validateBackendForm(s3({ provider: "aws", endpoint: "" }), AWS).endpoint).toBeUndefined();
    expect(validateBackendForm(s3({ endpoint: "not a url" }), AWS).endpoint).toMatch(/https/);
  });
  it("checks the bucket", () => {
    expect(validateBackendForm(s3({ bucket: "Bad_Bucket" }), MINIO).bucket).toMatch(/lowercase/);
  });
  it("leaves the local folder and the cloud client id to the engine's defaults", () => {
    const local: BackendDraft = { profile_id: 1, name: "Disk", kind: "local", make_default: false, path: "" };
    expect(validateBackendForm(local)).toEqual({});
    expect(validateBackendForm({ ...local, name: "" }).name).toBeTruthy();
    const drive: BackendDraft = { profile_id: 1, name: "Drive", kind: "google-drive", make_default: false };
    expect(validateBackendForm(drive)).toEqual({});
  });
  it("sends only the chosen kind's fields, blanks as null", () => {
    const form = toBackendForm({ ...s3({ prefix: "  ", path: "/left/over" }), account_id: "abc", client_id: "x" });
    expect(form.prefix).toBeNull();
    expect(form).not.toHaveProperty("path");
    expect(form).not.toHaveProperty("client_id");
    expect(form).not.toHaveProperty("account_id");
    expect(form.bucket).toBe("media");
  });
});

describe("settings", () => {
  const settings = {
    workers: 2,
    bandwidth_limit: 5 * 1024 * 1024,
    bandwidth_schedule: "",
    yield_to_players: true,
    player_yield_limit: 0,
    quiet_period_secs: 30,
    stream_port: 8765,
    stream_bind: "127.0.0.1",
    url_lifetime_secs: 14400,
    library_scan_secs: 300,
    notifications: true,
    autostart: false,
  };
  it("round-trips the bandwidth through a readable unit", () => {
    const draft = settingsToDraft(settings);
    expect(draft.bandwidth).toBe(5);
    expect(draft.bandwidth_unit).toBe("MiB");
    expect(draftToSettings(draft)).toEqual(settings);
    expect(settingsToDraft({ ...settings, bandwidth_limit: 512 * 1024 }).bandwidth_unit).toBe("KiB");
    expect(draftToSettings({ ...draft, bandwidth: null }).bandwidth_limit).toBe(0);
  });
  it("rejects out-of-range values", () => {
    const draft = settingsToDraft(settings);
    expect(validateSettings(draft)).toEqual({});
    // The window's words are the engine's rule, so the CLI and the window refuse alike.
    expect(validateSettings({ ...draft, workers: SETTING_LIMITS.max_workers + 1 }).workers).toContain(
      SETTING_RULES.workers.slice(1),
    );
    expect(validateSettings({ ...draft, workers: SETTING_LIMITS.max_workers }).workers).toBeUndefined();
    expect(validateSettings({ ...draft, workers: 0 }).workers).toBeTruthy();
    expect(validateSettings({ ...draft, stream_port: 80 }).stream_port).toBeTruthy();
    expect(validateSettings({ ...draft, stream_port: 70000 }).stream_port).toBeTruthy();
    expect(validateSettings({ ...draft, bandwidth: -1 }).bandwidth).toBeTruthy();
    expect(validateSettings({ ...draft, quiet_period_secs: null }).quiet_period_secs).toBeTruthy();
    expect(draft.library_scan_minutes).toBe(5);
    expect(validateSettings({ ...draft, library_scan_minutes: 0 }).library_scan_minutes).toBeUndefined();
    expect(validateSettings({ ...draft, library_scan_minutes: 1440 }).library_scan_minutes).toBeUndefined();
    expect(validateSettings({ ...draft, library_scan_minutes: 1441 }).library_scan_minutes).toContain(
      SETTING_RULES.library_scan.slice(1),
    );
    expect(validateSettings({ ...draft, library_scan_minutes: 0.5 }).library_scan_minutes).toBeTruthy();
    expect(draftToSettings({ ...draft, library_scan_minutes: 0 }).library_scan_secs).toBe(0);
  });
});

describe("splitPatterns", () => {
  it("accepts commas and new lines", () => {
    expect(splitPatterns("*.mkv, *.mp4\n*.avi\n\n")).toEqual(["*.mkv", "*.mp4", "*.avi"]);
  });
});
