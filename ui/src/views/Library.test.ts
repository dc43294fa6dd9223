import { render, screen, within } from "@testing-library/svelte";
import userEvent from "@testing-library/user-event";
import { beforeEach, describe, expect, it, vi } from "vitest";
import { api, events, type LibraryEntry, type ScanProgress } from "../lib/api";
import { handlerOf } from "../test-api";
import { JobsStore } from "../lib/stores.svelte";
import Library from "./Library.svelte";

vi.mock("../lib/api", async () => (await import("../test-api")).apiMock());

function entry(id: number, title: string, extra: Partial<LibraryEntry> = {}): LibraryEntry {
  return {
    item: { kind: extra.series ? "episode" : "media", id },
    profile_id: 1,
    title,
    series: null,
    season: null,
    episode: null,
    file_path: null,
    storage_backend_id: 1,
    storage_path: null,
    size: 1024 * 1024 * 700,
    content_type: "video/x-matroska",
    checksum: null,
    status: "uploaded",
    uploaded_at: Date.now(),
    media: null,
    source_checksum: null,
    stream_url: `http://127.0.0.1:8765/s/${id}`,
    poster_url: null,
    ...extra,
  };
}

beforeEach(() => {
  vi.clearAllMocks();
  vi.mocked(api.listProfiles).mockResolvedValue([]);
  vi.mocked(api.listLibrary).mockResolvedValue([
    entry(1, "Arrival"),
    entry(2, "Pilot", { series: "The Show", season: 1, episode: 2 }),
    entry(3, "Opening", { series: "The Show", season: 1, episode: 1 }),
  ]);
});

describe("Library", () => {
  it("orders episodes under their series and filters by search", async () => {
    const user = userEvent.setup();
    render(Library, { jobs: new JobsStore() });
    await screen.findAllByTestId("library-item");
    const urls = screen.getAllByTestId("library-item").map((row) => row.getAttribute("data-stream-url"));
    expect(urls).toEqual(["http://127.0.0.1:8765/s/1", "http://127.0.0.1:8765/s/3", "http://127.0.0.1:8765/s/2"]);

    await user.type(screen.getByTestId("library-search"), "the SHOW");
    expect(screen.getAllByTestId("library-item")).toHaveLength(2);
    expect(screen.queryAllByText("Arrival")).toHaveLength(0);
  });

  it("says what each file holds where its headers were read", async () => {
    vi.mocked(api.listLibrary).mockResolvedValue([
      entry(1, "Arrival", {
        media: {
          container: "matroska",
          duration_ms: 6_967_000,
          video: { codec: "hevc", width: 3840, height: 1600 },
          audio: [{ codec: "eac3", language: "eng" }],
          subtitles: [],
        },
      }),
      entry(2, "Found Film", { uploaded_at: null }),
    ]);
    render(Library, { jobs: new JobsStore() });
    const rows = await screen.findAllByTestId("library-item");
    expect(within(rows[0]).getByTestId("library-media").textContent).toBe("1:56:07 · 2160p · HEVC · EAC3");
    expect(within(rows[1]).queryByTestId("library-media")).toBeNull();
  });

  it("shows each item as a card with its picture, or its initial where there is none", async () => {
    vi.mocked(api.listLibrary).mockResolvedValue([
      entry(1, "Alien (1979)", {
        poster_url: "http://127.0.0.1:8765/api/media/1/poster.jpg?token=t",
        media: { container: "mp4", duration_ms: 7_020_000, video: { codec: "h264", width: 1920, height: 1080 }, audio: [], subtitles: [] },
      }),
      entry(2, "brazil"),
    ]);
    render(Library, { jobs: new JobsStore() });
    const cards = await screen.findAllByTestId("library-item");
    expect(within(cards[0]).getByTestId("library-poster").getAttribute("src")).toBe(
      "http://127.0.0.1:8765/api/media/1/poster.jpg?token=t",
    );
    expect(within(cards[0]).getByText("1:57:00")).toBeInTheDocument();
    expect(within(cards[1]).queryByTestId("library-poster")).toBeNull();
    expect(within(cards[1]).getByText("B")).toBeInTheDocument();
  });

  it("asks before removing and names what goes", async () => {
    const user = userEvent.setup();
    render(Library, { jobs: new JobsStore() });
    const row = (await screen.findAllByTestId("library-item"))[0];
    expect(row).toHaveTextContent("Arrival");
    await user.click(within(row).getByRole("button", { name: /Remove/ }));

    const dialog = screen.getByRole("alertdialog");
    expect(dialog).toHaveTextContent("Remove “Arrival”?");
    expect(dialog).toHaveTextContent(/deletes the remote copy/);
    await user.keyboard("{Escape}");
    expect(screen.queryByRole("alertdialog")).toBeNull();
    expect(api.removeLibraryItem).not.toHaveBeenCalled();

    await user.click(within(row).getByRole("button", { name: /Remove/ }));
    await user.click(screen.getByTestId("dialog-confirm"));
    expect(api.removeLibraryItem).toHaveBeenCalledWith({ kind: "media", id: 1 });
    expect(screen.queryAllByText("Arrival")).toHaveLength(0);
  });

  it("looks in storage on request, says what it found and lists it", async () => {
    const user = userEvent.setup();
    render(Library, { jobs: new JobsStore() });
    await screen.findAllByTestId("library-item");
    vi.mocked(api.scanLibrary).mockResolvedValue([
      { backend_id: 1, backend_name: "Bucket", report: { found: 4, added: 1, changed: 0, gone: 0 }, problem: null },
    ]);
    vi.mocked(api.listLibrary).mockResolvedValue([
      entry(1, "Arrival"),
      entry(4, "Found Film", { uploaded_at: null }),
    ]);
    await user.click(screen.getByTestId("library-scan"));
    expect(await screen.findByTestId("library-scan-result")).toHaveTextContent("Found 4 items in Bucket (1 new).");
    expect(api.scanLibrary).toHaveBeenCalledWith(null);
    const found = (await screen.findAllByTestId("library-item")).find((row) => row.textContent?.includes("Found Film"));
    expect(found).toHaveTextContent("found in storage");
  });

  it("shows a look through storage while it runs, whoever started it, and lists again after", async () => {
    render(Library, { jobs: new JobsStore() });
    await screen.findAllByTestId("library-item");
    const heard = handlerOf<ScanProgress>(events.scan);
    heard({ backend_id: 2, backend_name: "Cloud", found: 1240, done: false });
    expect(await screen.findByTestId("library-scan-progress")).toHaveTextContent("Looking in Cloud… 1,240 found so far");

    vi.mocked(api.listLibrary).mockResolvedValue([entry(1, "Arrival"), entry(5, "From Elsewhere", { uploaded_at: null })]);
    const listed = vi.mocked(api.listLibrary).mock.calls.length;
    heard({ backend_id: 2, backend_name: "Cloud", found: 1241, done: true });
    await vi.waitFor(() =>
      expect(screen.getAllByTestId("library-item").some((row) => row.textContent?.includes("From Elsewhere"))).toBe(true),
    );
    expect(vi.mocked(api.listLibrary).mock.calls.length).toBeGreaterThan(listed);
    expect(screen.queryByTestId("library-scan-progress")).toBeNull();
  });

  it("lists again when items found in storage were described, to show their pictures", async () => {
    render(Library, { jobs: new JobsStore() });
    await screen.findAllByTestId("library-item");
    vi.mocked(api.listLibrary).mockResolvedValue([
      entry(1, "Arrival", { poster_url: "http://127.0.0.1:8765/api/media/1/poster.jpg?token=t" }),
    ]);
    handlerOf<number>(events.described)(1);
    expect(await screen.findByTestId("library-poster")).toBeInTheDocument();
  });
});
