import { describe, expect, it } from "vitest";
import { backendStatusText, basename, formatEta, formatMedia, formatSize, formatSpeed, formatTime, percent, scanText } from "./format";

describe("formatSize", () => {
  it("uses binary units with three significant digits", () => {
    expect(formatSize(0)).toBe("0 B");
    expect(formatSize(1023)).toBe("1023 B");
    expect(formatSize(1024)).toBe("1 KiB");
    expect(formatSize(1536)).toBe("1.5 KiB");
    expect(formatSize(10.5 * 1024 * 1024)).toBe("10.5 MiB");
    expect(formatSize(734 * 1024 * 1024)).toBe("734 MiB");
    expect(formatSize(4.37 * 1024 ** 3)).toBe("4.37 GiB");
  });
  it("shows a dash for unknown sizes", () => {
    expect(formatSize(null)).toBe("—");
    expect(formatSize(-1)).toBe("—");
  });
});

describe("formatSpeed", () => {
  it("keeps one decimal per second", () => {
    expect(formatSpeed(12.4 * 1024 * 1024)).toBe("12.4 MiB/s");
    expect(formatSpeed(2 * 1024 * 1024)).toBe("2.0 MiB/s");
    expect(formatSpeed(512)).toBe("512 B/s");
    expect(formatSpeed(150 * 1024)).toBe("150 KiB/s");
  });
  it("shows a dash when nothing moves", () => {
    expect(formatSpeed(0)).toBe("—");
  });
});

describe("formatEta", () => {
  it("speaks in minutes and hours", () => {
    expect(formatEta(null)).toBe("");
    expect(formatEta(5)).toBe("a few seconds left");
    expect(formatEta(42)).toBe("42 s left");
    expect(formatEta(180)).toBe("3 min left");
    expect(formatEta(3600)).toBe("1 h left");
    expect(formatEta(4800)).toBe("1 h 20 min left");
    expect(formatEta(3 * 86400)).toBe("3 days left");
  });
});

describe("formatMedia", () => {
  it("says length, picture, codec and tracks the way a person reads them", () => {
    const track = (codec: string) => ({ codec, language: null });
    expect(
      formatMedia({
        container: "matroska",
        duration_ms: 6_724_400,
        video: { codec: "hevc", width: 1920, height: 800 },
        audio: [track("eac3"), track("aac")],
        subtitles: [track("subrip"), track("subrip"), track("ass")],
      }),
    ).toBe("1:52:04 · 1080p · HEVC · 2 audio · 3 subs");
    expect(
      formatMedia({ container: "mp4", duration_ms: 5_000, video: { codec: "h264", width: 160, height: 120 }, audio: [track("aac")], subtitles: [] }),
    ).toBe("0:05 · 120p · H.264 · AAC");
    expect(formatMedia({ container: "mpegts", duration_ms: null, video: null, audio: [], subtitles: [] })).toBe("");
  });
});

describe("formatTime", () => {
  const now = new Date(2024, 5, 15, 12, 0).getTime();
  it("is relative for recent times", () => {
    expect(formatTime(now - 10_000, now)).toBe("just now");
    expect(formatTime(now - 5 * 60_000, now)).toBe("5 min ago");
    expect(formatTime(now - 3 * 3600_000, now)).toMatch(/^today /);
    expect(formatTime(now - 24 * 3600_000, now)).toMatch(/^yesterday /);
    expect(formatTime(null, now)).toBe("—");
  });
});

describe("helpers", () => {
  it("takes the file name from either separator", () => {
    expect(basename("/home/me/Downloads/Film.mkv")).toBe("Film.mkv");
    expect(basename("C:\\Users\\me\\Film.mkv")).toBe("Film.mkv");
  });
  it("clamps percentages and survives an empty file", () => {
    expect(percent(50, 200)).toBe(25);
    expect(percent(300, 200)).toBe(100);
    expect(percent(0, 0)).toBe(0);
  });
  it("words the backend status badge", () => {
    const backend = { id: 1, profile_id: 1, name: "Drive", kind: "google-drive", is_default: true, location: "drive root" } as const;
    expect(backendStatusText({ ...backend, status: "ready" })).toBe("Ready");
    expect(backendStatusText({ ...backend, status: "connected", account: "me@example.com" })).toBe(
      "Connected as me@example.com",
    );
    expect(backendStatusText({ ...backend, status: "connected", account: null })).toBe("Connected");
    expect(backendStatusText({ ...backend, status: "not-signed-in" })).toBe("Not signed in");
    expect(backendStatusText({ ...backend, status: "disconnected", reason: "token revoked" })).toBe(
      "Disconnected: token revoked",
    );
  });
});

describe("scanText", () => {
  const report = (found: number, added = 0, changed = 0, gone = 0) => ({ found, added, changed, gone });
  it("says what a scan found and what changed", () => {
    expect(scanText({ backend_id: 1, backend_name: "Bucket", report: report(1240, 1240), problem: null })).toBe(
      "Found 1,240 items in Bucket (1240 new).",
    );
    expect(scanText({ backend_id: 1, backend_name: "Bucket", report: report(4, 0, 1, 2), problem: null })).toBe(
      "Found 4 items in Bucket (1 changed, 2 gone).",
    );
    expect(scanText({ backend_id: 1, backend_name: "Lib", report: report(1), problem: null })).toBe(
      "Found 1 item in Lib; nothing changed.",
    );
  });
  it("says why a backend could not be looked through", () => {
    const problem = { message: "the bucket does not exist", action: null };
    expect(scanText({ backend_id: 1, backend_name: "Bucket", report: null, problem })).toBe(
      "Could not look through Bucket: the bucket does not exist",
    );
  });
});
