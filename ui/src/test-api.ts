// Stand-ins for the Tauri bridge in component tests: every command resolves to undefined unless a
// test says otherwise, and every event subscription records its handler so a test can fire it.
import { vi } from "vitest";
import type * as Api from "./lib/api";
import type { Job } from "./lib/api";

export async function apiMock(): Promise<typeof Api> {
  const actual = await vi.importActual<typeof Api>("./lib/api");
  const api = Object.fromEntries(Object.keys(actual.api).map((name) => [name, vi.fn(async () => undefined)]));
  const events = Object.fromEntries(
    Object.keys(actual.events).map((name) => [name, vi.fn(async () => () => undefined)]),
  );
  return { ...actual, api, events } as unknown as typeof Api;
}

/** The handler a component registered for an event, to call it as the engine would. */
export function handlerOf<T>(subscribe: (handler: (payload: T) => void) => unknown): (payload: T) => void {
  const calls = vi.mocked(subscribe).mock.calls;
  if (calls.length === 0) throw new Error("the component never subscribed to this event");
  return calls[calls.length - 1][0];
}

/** A job as the engine lists it, queued and untouched unless `extra` says otherwise. */
export function makeJob(id: number, extra: Partial<Job> = {}): Job {
  return {
    id,
    profile_id: 1,
    backend_id: 1,
    watch_folder_id: null,
    local_path: `/dl/file${id}.mkv`,
    size: 100 * 1024 * 1024,
    mtime_ns: 0,
    remote_path: `media/file${id}.mkv`,
    state: "queued",
    bytes_done: 0,
    attempts: 0,
    last_error: null,
    action: null,
    next_attempt_at: 0,
    checksum: null,
    owner: null,
    library_item: null,
    created_at: 0,
    updated_at: 0,
    finished_at: null,
    ...extra,
  };
}
