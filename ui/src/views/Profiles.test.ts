import { render, screen, within } from "@testing-library/svelte";
import userEvent from "@testing-library/user-event";
import { beforeEach, describe, expect, it, vi } from "vitest";
import { api, type Profile } from "../lib/api";
import Profiles from "./Profiles.svelte";

vi.mock("../lib/api", async () => (await import("../test-api")).apiMock());

const SHOWS: Profile = {
  id: 2,
  name: "Shows",
  remote_template: "{series}/Season {season}/{file}",
  upload_window: null,
  strm_dir: null,
  faststart: true,
  remux: false,
  after_upload: { policy: "keep" },
  created_at: 0,
  folders: [{ id: 9, profile_id: 2, path: "/dl/shows", recursive: true, include: ["*.mkv"], exclude: [] }],
  playlist_url: "http://127.0.0.1:8765/p/2.m3u",
  ffmpeg: false,
};

beforeEach(() => {
  vi.clearAllMocks();
  vi.mocked(api.listProfiles).mockResolvedValue([SHOWS]);
  vi.mocked(api.previewTemplate).mockImplementation(async (template, sample) => {
    if (template.includes("{nope}")) throw "Unknown placeholder {nope}.";
    return `${template} <- ${sample}`;
  });
});

describe("Profiles", () => {
  it("previews the remote path as the template is typed and shows the engine's objection", async () => {
    const user = userEvent.setup();
    render(Profiles);
    const section = await screen.findByTestId("profile-Shows");
    expect(await within(section).findByTestId("template-preview")).toHaveTextContent(
      "{series}/Season {season}/{file} <- The.Show.S01E02.1080p.mkv",
    );

    const input = within(section).getByTestId("remote-template");
    await user.clear(input);
    await user.type(input, "{{nope}");
    expect(await within(section).findByText("Unknown placeholder {nope}.")).toHaveClass("error");
    expect(within(section).queryByTestId("template-preview")).toBeNull();
    // Debounced: typing several characters costs one engine call per pause, not one per key.
    expect(vi.mocked(api.previewTemplate).mock.calls.length).toBeLessThan(4);
  });

  it("adds a typed watch folder with its patterns", async () => {
    const user = userEvent.setup();
    render(Profiles);
    const section = await screen.findByTestId("profile-Shows");
    await user.type(within(section).getByTestId("watch-folder-path"), "/dl/more");
    await user.type(within(section).getByLabelText(/Only files matching/), "*.mkv, *.mp4");
    await user.click(within(section).getByTestId("add-watch-folder"));
    expect(api.addWatchFolder).toHaveBeenCalledWith(2, "/dl/more", ["*.mkv", "*.mp4"], []);
  });

  it("saves an upload window, and clears it again", async () => {
    const user = userEvent.setup();
    render(Profiles);
    const section = await screen.findByTestId("profile-Shows");
    await user.type(within(section).getByTestId("upload-window"), "01:00-07:00");
    await user.click(within(section).getByTestId("save-profile"));
    expect(api.setUploadWindow).toHaveBeenCalledWith(2, "01:00-07:00");
    await user.clear(within(section).getByTestId("upload-window"));
    await user.click(within(section).getByTestId("save-profile"));
    expect(api.setUploadWindow).toHaveBeenLastCalledWith(2, null);
  });

  it("sets a media centre folder only when it changes", async () => {
    const user = userEvent.setup();
    render(Profiles);
    const section = await screen.findByTestId("profile-Shows");
    await user.click(within(section).getByTestId("save-profile"));
    expect(api.setStrmDir).not.toHaveBeenCalled();
    await user.type(within(section).getByTestId("strm-dir"), "/media/kodi");
    await user.click(within(section).getByTestId("save-profile"));
    expect(api.setStrmDir).toHaveBeenCalledWith(2, "/media/kodi");
  });

  it("turns the faststart rewrite off only when it changes", async () => {
    const user = userEvent.setup();
    render(Profiles);
    const section = await screen.findByTestId("profile-Shows");
    const toggle = within(section).getByTestId("faststart");
    expect(toggle).toBeChecked();
    await user.click(within(section).getByTestId("save-profile"));
    expect(api.setSwitch).not.toHaveBeenCalled();
    await user.click(toggle);
    await user.click(within(section).getByTestId("save-profile"));
    expect(api.setSwitch).toHaveBeenCalledWith(2, "faststart", false);
  });

  it("turns the remux on, and says what to install where ffmpeg is missing", async () => {
    const user = userEvent.setup();
    render(Profiles);
    const section = await screen.findByTestId("profile-Shows");
    const toggle = within(section).getByTestId("remux");
    expect(toggle).not.toBeChecked();
    expect(within(section).queryByTestId("remux-needs-ffmpeg")).toBeNull();
    await user.click(toggle);
    expect(within(section).getByTestId("remux-needs-ffmpeg")).toHaveTextContent("needs ffmpeg, which is not installed");
    await user.click(within(section).getByRole("button", { name: "ffmpeg.org" }));
    expect(api.openUrl).toHaveBeenCalledWith("https://ffmpeg.org/download.html");
    await user.click(within(section).getByTestId("save-profile"));
    expect(api.setSwitch).toHaveBeenCalledWith(2, "remux", true);
    expect(api.setSwitch).toHaveBeenCalledTimes(1);
  });

  it("saves the move policy with its folder", async () => {
    const user = userEvent.setup();
    render(Profiles);
    const section = await screen.findByTestId("profile-Shows");
    await user.click(within(section).getByLabelText("Move it to a folder"));
    expect(within(section).getByTestId("save-profile")).toBeDisabled();
    await user.type(within(section).getByLabelText("Move to"), "/dl/done");
    await user.click(within(section).getByTestId("save-profile"));
    expect(api.updateProfile).toHaveBeenCalledWith(2, SHOWS.remote_template, { policy: "move", dir: "/dl/done" });
    expect(await within(section).findByText("Saved")).toBeInTheDocument();
  });
});
