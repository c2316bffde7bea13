import { gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import {
  baseWindow,
  DEFAULT_STATE,
  formatState,
  openSnapshotFile,
  parseState,
  playbackDelayMs,
  queryWindow,
  readSnapshot,
  stepMinute,
  toMs,
} from "./model";

const SNAPSHOT = {
  version: 1,
  service: "api",
  type: "cpu",
  unit: "nanoseconds",
  from: 1_700_000_000_000,
  to: 1_700_000_600_000,
  timeline: [
    { t: 1_700_000_040_000, total: 60 },
    { t: 1_700_000_100_000, total: 40 },
  ],
  flamegraph: { total: 100, names: ["total", "main", "work"], levels: [[0, 100, 0, 0], [0, 100, 20, 1], [0, 80, 80, 2]] },
};

describe("URL state", () => {
  it("round-trips everything the page keeps in the URL", () => {
    const state = {
      service: "a b/c",
      type: "alloc_space",
      range: "6h" as const,
      selection: { from: 1_700_000_000, to: 1_700_000_600 },
      minute: 1_700_000_060,
      diff: true,
      search: "db.query",
      labels: "env=prod,region=eu",
      focus: "pq.exec",
    };
    expect(parseState(formatState(state))).toEqual(state);
  });

  it("defaults and ignores what it cannot use", () => {
    expect(parseState("")).toEqual(DEFAULT_STATE);
    expect(formatState(DEFAULT_STATE)).toBe("");
    expect(parseState("range=99y&from=10&to=5&minute=x&service=")).toEqual(DEFAULT_STATE);
  });

  it("queries whole minutes ending after the current one, or the selection", () => {
    expect(queryWindow(DEFAULT_STATE, 1_000_030)).toEqual({ from: 1_000_080 - 3600, to: 1_000_080 });
    expect(queryWindow({ ...DEFAULT_STATE, selection: { from: 60, to: 600 } }, 1_000_030)).toEqual({ from: 60, to: 600 });
    expect(baseWindow({ from: 600, to: 900 })).toEqual({ from: 300, to: 600 });
  });
});

describe("playback", () => {
  const minutes = [60, 120, 240];

  it("steps through stored minutes and stops at either end", () => {
    expect(stepMinute(minutes, null, 1)).toBe(60);
    expect(stepMinute(minutes, null, -1)).toBe(240);
    expect(stepMinute(minutes, 60, 1)).toBe(120);
    expect(stepMinute(minutes, 120, 1)).toBe(240); // gaps are skipped
    expect(stepMinute(minutes, 240, 1)).toBeNull();
    expect(stepMinute(minutes, 60, -1)).toBeNull();
    expect(stepMinute([], null, 1)).toBeNull();
  });

  it("steps from a minute that has no data to its neighbours", () => {
    expect(stepMinute(minutes, 180, 1)).toBe(240);
    expect(stepMinute(minutes, 180, -1)).toBe(120);
    expect(stepMinute(minutes, 300, -1)).toBe(240);
    expect(stepMinute(minutes, 0, 1)).toBe(60);
  });

  it("plays one minute per second at 1×", () => {
    expect(playbackDelayMs(1)).toBe(1000);
    expect(playbackDelayMs(4)).toBe(250);
    expect(playbackDelayMs(0)).toBe(10_000);
  });

  it("reads minute starts in ms (and tolerates seconds)", () => {
    expect(toMs(1_700_000_040_000)).toBe(1_700_000_040_000);
    expect(toMs(1_700_000_040)).toBe(1_700_000_040_000);
  });
});

describe("snapshots", () => {
  it("validates and builds the tree", () => {
    const { snapshot, tree } = readSnapshot(SNAPSHOT);
    expect(snapshot.service).toBe("api");
    expect(tree.total).toBe(100);
    expect(tree.levels).toHaveLength(3);
  });

  it("refuses files that are not snapshots, saying what is wrong", () => {
    expect(() => readSnapshot({ ...SNAPSHOT, version: 2 })).toThrow(/not a Flowscope profile snapshot \(version/);
    expect(() => readSnapshot({ ...SNAPSHOT, timeline: "x" })).toThrow(/timeline/);
    expect(() => readSnapshot({ ...SNAPSHOT, flamegraph: { ...SNAPSHOT.flamegraph, levels: [[0, 1, 0, 7]] } })).toThrow(
      /malformed: level 0: name index 7/,
    );
    expect(() => readSnapshot(null)).toThrow(/not a Flowscope profile snapshot/);
  });

  it("opens gzip files (as downloaded) and plain JSON", async () => {
    const gz = new Blob([gzipSync(JSON.stringify(SNAPSHOT))]);
    expect((await openSnapshotFile(gz)).tree.total).toBe(100);
    expect((await openSnapshotFile(new Blob([JSON.stringify(SNAPSHOT)]))).snapshot.type).toBe("cpu");
  });

  it("refuses a gzip bomb, broken gzip and non-JSON", async () => {
    const bomb = new Blob([gzipSync(Buffer.alloc(2 * 1024 * 1024, 32))]);
    await expect(openSnapshotFile(bomb, 1024 * 1024)).rejects.toThrow(/over 1 MB unzipped/);
    const broken = new Blob([new Uint8Array([0x1f, 0x8b, 8, 0, 1, 2, 3, 4, 5])]);
    await expect(openSnapshotFile(broken)).rejects.toThrow(/cannot unzip|not JSON/);
    await expect(openSnapshotFile(new Blob(["hello"]))).rejects.toThrow(/not JSON/);
  });
});
