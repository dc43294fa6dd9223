import { render, screen } from "@testing-library/svelte";
import userEvent from "@testing-library/user-event";
import { beforeEach, describe, expect, it, vi } from "vitest";
import { api } from "./lib/api";
import App from "./App.svelte";

vi.mock("./lib/api", async () => (await import("./test-api")).apiMock());

const overview = { first_run: true, data_dir: "/data", library_dir: "/data/library", stream_port: 8765 };

beforeEach(() => {
  vi.clearAllMocks();
  vi.mocked(api.listJobs).mockResolvedValue([]);
  vi.mocked(api.listProfiles).mockResolvedValue([]);
  vi.mocked(api.listBackends).mockResolvedValue([]);
});

describe("App", () => {
  it("welcomes on first run, then goes to Transfers once dismissed", async () => {
    vi.mocked(api.overview).mockResolvedValue(overview);
    const user = userEvent.setup();
    render(App);
    expect(await screen.findByTestId("welcome")).toHaveTextContent("/data/library");
    await user.click(screen.getByTestId("welcome-dismiss"));
    expect(api.dismissWelcome).toHaveBeenCalled();
    expect(await screen.findByRole("heading", { name: "Transfers" })).toBeInTheDocument();
    expect(screen.queryByTestId("nav-welcome")).toBeNull();
  });

  it("starts on Transfers after the first run", async () => {
    vi.mocked(api.overview).mockResolvedValue({ ...overview, first_run: false });
    render(App);
    expect(await screen.findByRole("heading", { name: "Transfers" })).toBeInTheDocument();
    expect(screen.queryByTestId("welcome")).toBeNull();
    expect(screen.getByTestId("summary")).toHaveTextContent("Idle");
  });
});
