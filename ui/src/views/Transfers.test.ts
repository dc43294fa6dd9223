import { render, screen, within } from "@testing-library/svelte";
import userEvent from "@testing-library/user-event";
import { flushSync } from "svelte";
import { beforeEach, describe, expect, it, vi } from "vitest";
import { api, type Job } from "../lib/api";
import { JobsStore } from "../lib/stores.svelte";
import Transfers from "./Transfers.svelte";
import { makeJob } from "../test-api";

vi.mock("../lib/api", async () => (await import("../test-api")).apiMock());

const MiB = 1024 * 1024;

function job(id: number, extra: Partial<Job>): Job {
  return makeJob(id, {
    backend_id: 3,
    local_path: `/home/me/Downloads/Film ${id}.mkv`,
    size: 200 * MiB,
    remote_path: `films/Film ${id}.mkv`,
    ...extra,
  });
}

beforeEach(() => {
  vi.clearAllMocks();
  vi.mocked(api.listBackends).mockResolvedValue([
    {
      id: 3,
      profile_id: 1,
      name: "NAS",
      kind: "s3",
      is_default: true,
      location: "s3://media at nas",
      status: "ready",
    },
  ]);
});

describe("Transfers", () => {
  it("says when the upload window opens while uploads wait for it, and stops once it opened", () => {
    const store = new JobsStore();
    store.setJobs([job(1, { state: "queued" }), job(2, { state: "queued" })]);
    render(Transfers, { jobs: store });
    expect(screen.queryByTestId("held")).toBeNull();

    store.applyEvent({ type: "held", jobs: 2, opens_at: "2026-12-08T01:00:00" });
    flushSync();
    expect(screen.getByTestId("held").textContent).toBe("2 uploads wait for the upload window, which opens at 01:00.");
    store.applyEvent({ type: "held", jobs: 0, opens_at: null });
    flushSync();
    expect(screen.queryByTestId("held")).toBeNull();
  });

  it("renders a running job with its progress, speed and target, updated live", async () => {
    const store = new JobsStore();
    store.setJobs([job(1, { state: "running", bytes_done: 50 * MiB })]);
    render(Transfers, { jobs: store });

    const row = screen.getByTestId("job-1");
    expect(row).toHaveAttribute("data-state", "running");
    expect(row).toHaveTextContent("Film 1.mkv");
    expect(row).toHaveTextContent("200 MiB");
    expect(row.querySelector("progress")).toHaveAttribute("data-percent", "25");
    expect(await within(row).findByText(/NAS · films\/Film 1\.mkv/)).toBeInTheDocument();

    store.applyProgress({ job_id: 1, bytes_done: 150 * MiB, total: 200 * MiB, rate: 12.4 * MiB, eta_seconds: 180 });
    flushSync();
    expect(row.querySelector("progress")).toHaveAttribute("data-percent", "75");
    expect(row).toHaveTextContent("12.4 MiB/s");
    expect(row).toHaveTextContent("3 min left");
  });

  it("shows why a job failed and retries it", async () => {
    const store = new JobsStore();
    store.setJobs([
      job(2, { state: "failed", last_error: "The bucket is full." }),
      job(3, { state: "done", bytes_done: 0 }),
    ]);
    const user = userEvent.setup();
    render(Transfers, { jobs: store });

    const failed = screen.getByTestId("job-2");
    expect(failed).toHaveTextContent("Failed: The bucket is full.");
    expect(within(failed).queryByTestId("job-pause")).toBeNull();
    await user.click(within(failed).getByTestId("job-retry"));
    expect(api.retryJob).toHaveBeenCalledWith(2);

    const done = screen.getByTestId("job-3");
    expect(done.querySelector("progress")).toHaveAttribute("data-percent", "100");
    expect(within(done).queryByRole("button")).toBeNull();
  });

  it("pauses everything at once", async () => {
    const store = new JobsStore();
    store.setJobs([job(4, { state: "queued" })]);
    const user = userEvent.setup();
    render(Transfers, { jobs: store });
    await user.click(screen.getByTestId("pause-all"));
    expect(api.pauseJob).toHaveBeenCalledWith(null);
    expect(screen.getByTestId("resume-all")).toBeDisabled();
  });
});
