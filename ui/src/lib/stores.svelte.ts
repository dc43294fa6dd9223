// Live transfer state shared by the status strip and the Transfers view. Progress events patch
// rows in place (they arrive several times a second per job); state events patch the state at once
// and schedule a throttled refetch, because only the engine knows the full row after a change.

import { api, events, type Held, type Job, type JobEvent, type JobState, type Progress } from "./api";
import { errorText, formatSpeed, percent, plural } from "./format";

export const ACTIVE: readonly JobState[] = ["running", "verifying"];
const FINISHED: readonly JobState[] = ["done", "cancelled"];

export interface Summary {
  text: string;
  /** Overall percent of the files currently moving or waiting, null when nothing is. */
  percent: number | null;
  rate: number;
}

export function jobPercent(job: Job, progress?: Progress): number {
  if (job.state === "done") return 100;
  const done = progress && job.state !== "queued" ? progress.bytes_done : job.bytes_done;
  const total = progress?.total || job.size;
  return percent(done, total);
}

export function summarize(jobs: readonly Job[], progress: ReadonlyMap<number, Progress>): Summary {
  const active = jobs.filter((job) => ACTIVE.includes(job.state));
  const queued = jobs.filter((job) => job.state === "queued");
  const failed = jobs.filter((job) => job.state === "failed").length;
  const paused = jobs.filter((job) => job.state === "paused").length;

  const extras: string[] = [];
  if (paused) extras.push(`${paused} paused`);
  if (failed) extras.push(`${failed} failed`);

  if (active.length === 0 && queued.length === 0) {
    const head = jobs.some((job) => FINISHED.includes(job.state)) || extras.length ? "Nothing uploading" : "Idle";
    return { text: [head, ...extras].join(" · "), percent: null, rate: 0 };
  }

  let done = 0;
  let total = 0;
  let rate = 0;
  for (const job of [...active, ...queued]) {
    const p = progress.get(job.id);
    const size = p?.total || job.size;
    total += size;
    done += Math.min(size, p && job.state !== "queued" ? p.bytes_done : job.bytes_done);
    if (p && ACTIVE.includes(job.state)) rate += p.rate;
  }
  const overall = percent(done, total);
  const parts =
    active.length > 0
      ? [`Uploading ${plural(active.length, "file")}`, `${overall}%`, ...(rate > 0 ? [formatSpeed(rate)] : [])]
      : [`${plural(queued.length, "file")} waiting`];
  if (active.length > 0 && queued.length > 0) parts.push(`${queued.length} queued`);
  return { text: [...parts, ...extras].join(" · "), percent: overall, rate };
}

/** At most one call per `ms`, always ending with a call after the last request. */
export function throttle(fn: () => void, ms: number): () => void {
  let timer: ReturnType<typeof setTimeout> | null = null;
  let again = false;
  const fire = () => {
    timer = null;
    if (again) {
      again = false;
      fn();
      timer = setTimeout(fire, ms);
    }
  };
  return () => {
    again = true;
    if (timer === null) {
      again = false;
      fn();
      timer = setTimeout(fire, ms);
    }
  };
}

export class JobsStore {
  jobs = $state<Job[]>([]);
  progress = $state(new Map<number, Progress>());
  loaded = $state(false);
  error = $state<string | null>(null);
  /** Bumped whenever a job reaches `done`, so the library knows to reload. */
  finishedTick = $state(0);
  /** Queued uploads waiting for their profiles' upload windows, and when the first opens. */
  held = $state<Held>({ jobs: 0, opens_at: null });

  summary = $derived(summarize(this.jobs, this.progress));

  readonly #refetch: () => void;

  constructor(refetchEveryMs = 300) {
    this.#refetch = throttle(() => void this.load(), refetchEveryMs);
  }

  async load(): Promise<void> {
    try {
      this.setJobs(await api.listJobs());
      this.error = null;
    } catch (error) {
      this.error = errorText(error);
    } finally {
      this.loaded = true;
    }
  }

  setJobs(list: Job[]): void {
    this.jobs = list;
    // Drop progress of jobs no longer moving so a re-run starts from the engine's numbers.
    const next = new Map<number, Progress>();
    for (const job of list) {
      const p = this.progress.get(job.id);
      if (p && ACTIVE.includes(job.state)) next.set(job.id, p);
    }
    this.progress = next;
  }

  applyProgress(p: Progress): void {
    const next = new Map(this.progress);
    next.set(p.job_id, p);
    this.progress = next;
    const job = this.jobs.find((j) => j.id === p.job_id);
    if (job) {
      job.bytes_done = p.bytes_done;
      if (job.state === "queued") job.state = "running";
    }
  }

  applyEvent(event: JobEvent): void {
    if (event.type === "held") {
      this.held = { jobs: event.jobs, opens_at: event.opens_at };
      return;
    }
    if (event.type === "state") {
      const job = this.jobs.find((j) => j.id === event.job_id);
      if (job) {
        job.state = event.state;
        if (event.message) job.last_error = event.message;
        if (event.state === "done") job.bytes_done = job.size;
      }
      if (!ACTIVE.includes(event.state) && this.progress.has(event.job_id)) {
        const next = new Map(this.progress);
        next.delete(event.job_id);
        this.progress = next;
      }
      if (event.state === "done") this.finishedTick += 1;
    }
    this.#refetch();
  }

  /** Subscribes to the engine's events; returns the unsubscribe. */
  connect(): () => void {
    const pending = [events.progress((p) => this.applyProgress(p)), events.job((e) => this.applyEvent(e))];
    api.heldBack().then(
      (held) => {
        if (held) this.held = held;
      },
      // Only the waiting line is missing; the next `held` event brings it.
      () => {},
    );
    return () => {
      for (const unlisten of pending) void unlisten.then((stop) => stop());
    };
  }
}

/** Bumped on the engine's `data-changed`, so every view showing profiles, backends or the library reloads. */
export const dataChanged = $state({ tick: 0 });
