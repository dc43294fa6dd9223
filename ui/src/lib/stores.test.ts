import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { api } from "./api";
import { JobsStore, summarize, throttle } from "./stores.svelte";
import { makeJob } from "../test-api";

vi.mock("./api", async () => (await import("../test-api")).apiMock());

const MiB = 1024 * 1024;

const job = makeJob;

describe("summarize", () => {
  it("says idle when there is nothing", () => {
    expect(summarize([], new Map()).text).toBe("Idle");
  });
  it("adds up running files, percent and speed", () => {
    const jobs = [job(1, { state: "running" }), job(2, { state: "running" }), job(3, { state: "failed" })];
    const progress = new Map([
      [1, { job_id: 1, bytes_done: 50 * MiB, total: 100 * MiB, rate: 10 * MiB, eta_seconds: 5 }],
      [2, { job_id: 2, bytes_done: 36 * MiB, total: 100 * MiB, rate: 2.4 * MiB, eta_seconds: 27 }],
    ]);
    const summary = summarize(jobs, progress);
    expect(summary.text).toBe("Uploading 2 files · 43% · 12.4 MiB/s · 1 failed");
    expect(summary.percent).toBe(43);
  });
  it("counts waiting files when nothing runs yet", () => {
    expect(summarize([job(1), job(2, { state: "paused" })], new Map()).text).toBe("1 file waiting · 1 paused");
  });
});

describe("JobsStore", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("applies progress in place", () => {
    const store = new JobsStore();
    store.setJobs([job(1, { state: "running" })]);
    store.applyProgress({ job_id: 1, bytes_done: 25 * MiB, total: 100 * MiB, rate: MiB, eta_seconds: 75 });
    expect(store.jobs[0].bytes_done).toBe(25 * MiB);
    expect(store.summary.text).toBe("Uploading 1 file · 25% · 1.0 MiB/s");
  });

  it("applies a state event at once and refetches, throttled", async () => {
    const listJobs = vi.mocked(api.listJobs);
    listJobs.mockResolvedValue([job(1, { state: "done", bytes_done: 100 * MiB })]);
    const store = new JobsStore(300);
    store.setJobs([job(1, { state: "running" })]);
    store.applyProgress({ job_id: 1, bytes_done: 99 * MiB, total: 100 * MiB, rate: MiB, eta_seconds: 1 });

    store.applyEvent({ type: "state", job_id: 1, state: "done", message: null, action: null });
    store.applyEvent({ type: "state", job_id: 1, state: "done", message: null, action: null });
    store.applyEvent({ type: "state", job_id: 1, state: "done", message: null, action: null });

    expect(store.jobs[0].state).toBe("done");
    expect(store.progress.has(1)).toBe(false);
    expect(store.finishedTick).toBe(3);
    expect(store.summary.text).toBe("Nothing uploading");
    expect(listJobs).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(300);
    expect(listJobs).toHaveBeenCalledTimes(2);
    await vi.advanceTimersByTimeAsync(1000);
    expect(listJobs).toHaveBeenCalledTimes(2);
  });

  it("keeps the failure reason from the event", () => {
    const store = new JobsStore();
    store.setJobs([job(1, { state: "running" })]);
    store.applyEvent({ type: "state", job_id: 1, state: "failed", message: "bucket is full", action: null });
    expect(store.jobs[0]).toMatchObject({ state: "failed", last_error: "bucket is full" });
    expect(store.summary.text).toBe("Nothing uploading · 1 failed");
  });
});

describe("throttle", () => {
  it("runs at once, then once more after the window", () => {
    vi.useFakeTimers();
    const fn = vi.fn();
    const run = throttle(fn, 100);
    run();
    run();
    run();
    expect(fn).toHaveBeenCalledTimes(1);
    vi.advanceTimersByTime(100);
    expect(fn).toHaveBeenCalledTimes(2);
    vi.advanceTimersByTime(500);
    expect(fn).toHaveBeenCalledTimes(2);
    vi.useRealTimers();
  });
});
