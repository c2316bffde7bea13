import { describe, expect, it } from "vitest";
import type { Bucket } from "../types";
import { CoverageTracker, freshness, STALE_AFTER_SECONDS, staleNote } from "./rates";
import { chartRate, currentRate } from "./service-stats";

const W = 60;

function bucket(start: number, rate: number): Bucket {
  return { start, count: 1, sum: 0, min: null, max: null, avg: null, p50: null, p95: null, p99: null, rate };
}

describe("CoverageTracker", () => {
  it("remembers when a bucket's total last grew", () => {
    const tracker = new CoverageTracker();
    const history = [bucket(540, 10), bucket(600, 10)];
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

describe("where the open bucket's data starts", () => {
  it("is when the bucket before it last grew", () => {
    const tracker = new CoverageTracker();
    const history = [bucket(540, 10), bucket(600, 9)];
    tracker.observe("g", history, 640, W);
    tracker.observe("g", [bucket(540, 10), bucket(600, 10)], 651, W);
    const coverage = tracker.observe("g", [...history, bucket(660, 1)], 662, W);
    expect(coverage.from).toBe(651);
  });
});

describe("the first minute after start-up", () => {
  it("measures a series' partial first minute, so it can stand in for the next minute's first seconds", () => {
    const tracker = new CoverageTracker();
    // Started at 690 (30 s into the 660 bucket) at 20/s; seen from 692 on.
    tracker.observe("d", [bucket(660, (2 * 20) / 60)], 692, W);
    tracker.observe("d", [bucket(660, (29 * 20) / 60)], 719, W);
    // 3 s into the next minute: the first minute's own rate is 10/s (600 / 60 s), its real one 20/s.
    const buckets = [bucket(660, (30 * 20) / 60), bucket(720, (3 * 20) / 60)];
    const coverage = tracker.observe("d", buckets, 723, W);
    expect(coverage.previousRate).toBeCloseTo(20);
    expect(currentRate(buckets, 723, W, coverage)).toBeCloseTo(20);
    expect(chartRate(bucket(660, 10), buckets, 723, W, coverage)).toBeCloseTo(20);
  });

  it("leaves an unmeasured first minute unknown rather than low", () => {
    const tracker = new CoverageTracker();
    tracker.observe("e", [bucket(660, 1)], 715, W);
    const buckets = [bucket(660, 3), bucket(720, 0.5)];
    const coverage = tracker.observe("e", buckets, 722, W);
    expect(coverage.previousRate).toBeNull();
    expect(currentRate(buckets, 722, W, coverage)).toBeNull();
    expect(chartRate(bucket(660, 3), buckets, 722, W, coverage)).toBeNull();
  });

  it("reads a long-running series' previous minute as it is", () => {
    const tracker = new CoverageTracker();
    const history = [bucket(600, 10), bucket(660, 10)];
    tracker.observe("f", history, 700, W);
    const coverage = tracker.observe("f", [...history, bucket(720, 1)], 722, W);
    expect(coverage.previousRate).toBeUndefined();
    expect(currentRate([...history, bucket(720, 1)], 722, W, coverage)).toBe(10);
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
