import { invoke } from "@tauri-apps/api/core";
import { listen } from "@tauri-apps/api/event";

/** A job as the engine's `Job` serialises it (the fields this page shows). */
interface Job {
  id: number;
  local_path: string;
  state: string;
  size: number;
  bytes_done: number;
}

/** The engine's `Event::Progress` payload. */
interface Progress {
  job_id: number;
  bytes_done: number;
  total: number;
}

const jobs = new Map<number, Job>();

function render(): void {
  const body = document.querySelector<HTMLTableSectionElement>("#jobs tbody");
  const summary = document.querySelector<HTMLParagraphElement>("#summary");
  if (!body || !summary) return;
  body.replaceChildren(
    ...[...jobs.values()].map((job) => {
      const row = document.createElement("tr");
      const name = document.createElement("td");
      name.textContent = job.local_path.split(/[\\/]/).pop() ?? job.local_path;
      const state = document.createElement("td");
      state.textContent = job.state;
      const cell = document.createElement("td");
      const bar = document.createElement("progress");
      bar.max = Math.max(job.size, 1);
      bar.value = job.state === "done" ? bar.max : job.bytes_done;
      cell.append(bar);
      row.append(name, state, cell);
      return row;
    }),
  );
  const active = [...jobs.values()].filter((job) => ["queued", "running", "verifying"].includes(job.state)).length;
  summary.textContent = active === 0 ? "Idle: every finished download is uploaded." : `Uploading ${active} file(s)`;
}

async function refresh(): Promise<void> {
  const list = await invoke<Job[]>("list_jobs");
  jobs.clear();
  for (const job of list) jobs.set(job.id, job);
  render();
}

void listen<Progress>("upload-progress", (event) => {
  const job = jobs.get(event.payload.job_id);
  if (job) {
    job.bytes_done = event.payload.bytes_done;
    render();
  }
});
void listen("upload-state", () => void refresh());
void refresh();
