// Stand-ins for the Tauri bridge in component tests: every command resolves to undefined unless a
// test says otherwise, and every event subscription records its handler so a test can fire it.
import { vi } from "vitest";
import type * as Api from "./lib/api";

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
