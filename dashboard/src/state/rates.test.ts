import { describe, expect, it } from "vitest";
import type { Bucket } from "../types";
import { CoverageTracker, freshness, STALE_AFTER_SECONDS, staleNote } from "./rates";
import { currentRate } from "./service-stats";

const W = 60;

function bucket(start: number, rate: number): Bucket {
  return { start, count: 1, sum: 0, min: null, max: null, avg: null, p50: null, p95: null, p99: null, rate };
}

describe("CoverageTracker", () => {
  it("remembers when a bucket's total last grew", () => {
    const tracker = new CoverageTracker();
    const history = [bucket(600, 10)];
    expect(tracker.observe("a", [...history, bucket(660, 1)], 670, W)).toEqual({ asOf: 670, first: null });
    // Same total a few seconds later: the data still ends at 670.
    expect(tracker.observe("a", [...history, bucket(660, 1)], 675, W).asOf).toBe(670);
    expect(tracker.observe("a", [...history, bucket(660, 2)], 680, W).asOf).toBe(680);
    expect(tracker.lastChange("a")).toBe(680);
  });

  it("marks a series that began inside its newest bucket, with the first total seen", () => {
    const tracker = new CoverageTracker();
    expect(tracker.observe("b", [bucket(660, 5)], 695, W)).toEqual({ asOf: 695, first: { at: 695, total: 300 } });
    // 5 s later: too soon to tell a rate from growth.
    const soon = tracker.observe("b", [bucket(660, 6)], 700, W);
    expect(currentRate([bucket(660, 6)], 700, W, soon)).toBeNull();
    const later = tracker.observe("b", [bucket(660, 10)], 715, W);
    expect(later).toEqual({ asOf: 715, first: { at: 695, total: 300 } });
    // (600 - 300) requests in 20 s.
    expect(currentRate([bucket(660, 10)], 715, W, later)).toBeCloseTo(15);
  });

  it("stops treating the series as new once the bucket before it is known (history loaded)", () => {
    const tracker = new CoverageTracker();
    tracker.observe("c", [bucket(660, 5)], 705, W);
    expect(tracker.observe("c", [bucket(600, 9), bucket(660, 5)], 706, W).first).toBeNull();
  });
});

describe("freshness", () => {
  it("is stale as soon as the live connection is down, with the time of the last data", () => {
    const fresh = freshness(1000, 1001, false);
    expect(fresh).toMatchObject({ stale: true, since: 1000, reason: "disconnected" });
    expect(staleNote(fresh)).toMatch(/^no data since \d\d:\d\d:\d\d$/);
  });

  it("is stale once a connected service has sent nothing for a while", () => {
    expect(freshness(1000, 1000 + STALE_AFTER_SECONDS, true).stale).toBe(false);
    expect(freshness(1000, 1001 + STALE_AFTER_SECONDS, true)).toMatchObject({ stale: true, reason: "quiet" });
    expect(staleNote(freshness(1000, 1010, true))).toBe("");
  });
});
