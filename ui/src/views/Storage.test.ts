import { render, screen, waitFor, within } from "@testing-library/svelte";
import userEvent from "@testing-library/user-event";
import { beforeEach, describe, expect, it, vi } from "vitest";
import { api, events, type Backend, type Profile, type S3Preset } from "../lib/api";
import { handlerOf } from "../test-api";
import Storage from "./Storage.svelte";

vi.mock("../lib/api", async () => (await import("../test-api")).apiMock());

const PROFILE: Profile = {
  id: 1,
  name: "Films",
  remote_template: "{title}",
  upload_window: null,
  strm_dir: null,
  faststart: true,
  remux: false,
  after_upload: { policy: "keep" },
  created_at: 0,
  folders: [],
  playlist_url: "http://127.0.0.1:8765/p/1.m3u",
  ffmpeg: true,
};
const PRESETS: S3Preset[] = [
  { provider: "aws", label: "Amazon S3", endpoint_template: null, default_region: "us-east-1", path_style: false, needs_endpoint: false },
  {
    provider: "r2",
    label: "Cloudflare R2",
    endpoint_template: "https://{account}.r2.cloudflarestorage.com",
    default_region: "auto",
    path_style: false,
    needs_endpoint: true,
  },
  { provider: "minio", label: "MinIO", endpoint_template: null, default_region: "us-east-1", path_style: true, needs_endpoint: true },
];
const DRIVE: Backend = {
  id: 7,
  profile_id: 1,
  name: "Drive",
  kind: "google-drive",
  is_default: false,
  location: "drive root",
  status: "not-signed-in",
};

beforeEach(() => {
  vi.clearAllMocks();
  vi.mocked(api.listProfiles).mockResolvedValue([PROFILE]);
  vi.mocked(api.listBackends).mockResolvedValue([]);
  vi.mocked(api.s3Presets).mockResolvedValue(PRESETS);
});

async function openS3Form() {
  const user = userEvent.setup();
  render(Storage);
  await user.click(await screen.findByTestId("add-storage"));
  await user.selectOptions(screen.getByTestId("backend-kind"), "s3");
  await user.selectOptions(screen.getByTestId("field-provider"), "minio");
  await user.type(screen.getByTestId("field-name"), "NAS");
  await user.type(screen.getByTestId("field-endpoint"), "http://nas.local:9000");
  await user.type(screen.getByTestId("field-bucket"), "media");
  await user.type(screen.getByTestId("field-access_key_id"), "AKIA123");
  await user.type(screen.getByTestId("field-secret_access_key"), "s3cret");
  return user;
}

describe("Add storage", () => {
  it("walks a person through registering an app when this build has no client id", async () => {
    vi.mocked(api.clientIdConfigured).mockImplementation(async (kind) => kind === "onedrive");
    const user = userEvent.setup();
    render(Storage);
    await user.click(await screen.findByTestId("add-storage"));
    await user.selectOptions(screen.getByTestId("backend-kind"), "google-drive");
    const steps = await screen.findByTestId("register-app");
    expect(steps).toHaveTextContent("Desktop app");
    expect(steps).toHaveTextContent("enable the Google Drive API");

    await user.selectOptions(screen.getByTestId("backend-kind"), "onedrive");
    await vi.waitFor(() => expect(screen.queryByTestId("register-app")).toBeNull());
    expect(api.clientIdConfigured).toHaveBeenCalledWith("onedrive");
  });

  it("shows each check of a connection test, failures with their detail", async () => {
    vi.mocked(api.testBackendForm).mockResolvedValue({
      checks: [
        { name: "Credentials", ok: true, detail: "accepted", fix: null },
        { name: "Write", ok: false, detail: "AccessDenied: no s3:PutObject on media", fix: null },
      ],
    });
    const user = await openS3Form();
    await user.click(screen.getByTestId("test-connection"));

    const report = await screen.findByTestId("connection-report");
    const failed = within(report).getByText(/Write: AccessDenied/);
    expect(failed.closest("li")).toHaveClass("fail");
    expect(within(report).getByText(/Credentials: accepted/).closest("li")).toHaveClass("ok");
    expect(report).toHaveTextContent("1 of 2 checks failed");
    expect(api.testBackendForm).toHaveBeenCalledWith(
      expect.objectContaining({ kind: "s3", provider: "minio", bucket: "media", path_style: true, profile_id: 1 }),
    );
  });

  it("shows a rejected save verbatim and keeps what was typed", async () => {
    vi.mocked(api.addBackend).mockRejectedValue("The bucket “media” does not exist at http://nas.local:9000.");
    const user = await openS3Form();
    await user.click(screen.getByTestId("save-backend"));

    expect(await screen.findByTestId("form-error")).toHaveTextContent(
      "The bucket “media” does not exist at http://nas.local:9000.",
    );
    expect(screen.getByTestId("field-name")).toHaveValue("NAS");
    expect(screen.getByTestId("field-bucket")).toHaveValue("media");
    expect(screen.getByTestId("field-secret_access_key")).toHaveValue("s3cret");
    expect(screen.getByTestId("backend-kind")).toHaveValue("s3");
  });

  it("explains a bad bucket name under the field and blocks saving", async () => {
    const user = await openS3Form();
    await user.clear(screen.getByTestId("field-bucket"));
    await user.type(screen.getByTestId("field-bucket"), "My_Bucket");

    expect(screen.getByTestId("field-bucket-message")).toHaveTextContent(/lowercase/);
    expect(screen.getByTestId("save-backend")).toBeDisabled();
  });

  it("puts the R2 account id into the endpoint", async () => {
    const user = userEvent.setup();
    render(Storage);
    await user.click(await screen.findByTestId("add-storage"));
    await user.selectOptions(screen.getByTestId("backend-kind"), "s3");
    await user.selectOptions(screen.getByTestId("field-provider"), "r2");
    expect(screen.getByTestId("field-endpoint")).toHaveAttribute("placeholder", "https://{account}.r2.cloudflarestorage.com");
    expect(screen.getByTestId("field-region")).toHaveValue("auto");
    await user.type(screen.getByTestId("field-account_id"), "abc123");
    expect(screen.getByTestId("field-endpoint")).toHaveValue("https://abc123.r2.cloudflarestorage.com");
  });
});

describe("Cloud sign-in", () => {
  it("shows the sign-in address, then the connected account", async () => {
    vi.mocked(api.listBackends).mockResolvedValue([DRIVE]);
    vi.mocked(api.connectBackend).mockResolvedValue("https://accounts.google.com/o/oauth2/auth?x=1");
    const user = userEvent.setup();
    render(Storage);

    const row = await screen.findByTestId("backend-Drive");
    expect(within(row).getByTestId("backend-status")).toHaveTextContent("Not signed in");
    await user.click(within(row).getByRole("button", { name: "Connect" }));
    expect(await within(row).findByTestId("sign-in-url")).toHaveValue("https://accounts.google.com/o/oauth2/auth?x=1");
    expect(row).toHaveTextContent("Your browser should open; if not, open this address");

    vi.mocked(api.listBackends).mockResolvedValue([{ ...DRIVE, status: "connected", account: "me@example.com" }]);
    vi.mocked(api.scanLibrary).mockResolvedValue([
      { backend_id: 7, backend_name: "Drive", report: { found: 12, added: 12, changed: 0, gone: 0 }, problem: null },
    ]);
    handlerOf(events.accountConnected)({ backend_id: 7, account: "me@example.com" });
    // What the account already holds is looked for at once, and said.
    expect(await within(screen.getByTestId("backend-Drive")).findByText(/Found 12 items in Drive \(12 new\)\./)).toBeTruthy();
    expect(api.scanLibrary).toHaveBeenCalledWith(null, 7);
    expect(within(screen.getByTestId("backend-Drive")).getByTestId("drive-scope")).toHaveTextContent(
      "files added on the Drive website or by other apps stay out of its library",
    );
    await waitFor(() =>
      expect(within(screen.getByTestId("backend-Drive")).getByTestId("backend-status")).toHaveTextContent(
        "Connected as me@example.com",
      ),
    );
    expect(screen.queryByTestId("sign-in-url")).toBeNull();
  });

  it("shows why a sign-in failed", async () => {
    vi.mocked(api.listBackends).mockResolvedValue([DRIVE]);
    vi.mocked(api.connectBackend).mockResolvedValue("https://login.example/auth");
    const user = userEvent.setup();
    render(Storage);
    await user.click(await screen.findByRole("button", { name: "Connect" }));
    await screen.findByTestId("sign-in-url");
    handlerOf(events.accountFailed)({ backend_id: 7, message: "Access was denied in the browser.", action: null });
    expect(await screen.findByTestId("sign-in-error")).toHaveTextContent("Access was denied in the browser.");
  });
});

describe("Change storage", () => {
  const NAS: Backend = {
    id: 9,
    profile_id: 1,
    name: "NAS",
    kind: "s3",
    is_default: true,
    location: "http://nas.local:9000/media",
    status: "ready",
  };

  it("shows the stored settings without the secret, and saves a change keeping it", async () => {
    vi.mocked(api.listBackends).mockResolvedValue([NAS]);
    vi.mocked(api.backendForm).mockResolvedValue({
      kind: "s3",
      provider: "minio",
      endpoint: "http://nas.local:9000",
      region: "us-east-1",
      bucket: "media",
      access_key_id: "AKIA123",
      prefix: "",
      public_url: null,
      path_style: false,
    });
    vi.mocked(api.updateBackend).mockResolvedValue({ ...NAS, location: "http://nas.local:9000/media/films" });
    const user = userEvent.setup();
    render(Storage);
    await user.click(within(await screen.findByTestId("backend-NAS")).getByTestId("backend-change"));

    expect(await screen.findByRole("heading", { name: "Change “NAS”" })).toBeInTheDocument();
    await waitFor(() => expect(screen.getByTestId("field-endpoint")).toHaveValue("http://nas.local:9000"));
    expect(screen.getByTestId("backend-kind")).toBeDisabled();
    expect(screen.getByTestId("field-secret_access_key")).toHaveValue("");
    expect(screen.getByTestId("field-path_style")).not.toBeChecked();
    expect(screen.queryByTestId("field-make_default")).toBeNull();

    await user.type(screen.getByTestId("field-prefix"), "films");
    await user.click(screen.getByTestId("save-backend"));
    await waitFor(() => expect(api.updateBackend).toHaveBeenCalledTimes(1));
    expect(api.updateBackend).toHaveBeenCalledWith(
      expect.objectContaining({ id: 9, name: "NAS", prefix: "films", secret_access_key: null, bucket: "media" }),
    );
    expect(api.addBackend).not.toHaveBeenCalled();
    await waitFor(() => expect(screen.queryByTestId("save-backend")).toBeNull());
  });
});
