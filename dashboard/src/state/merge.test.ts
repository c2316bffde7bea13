import { describe, expect, it } from "vitest";
import type { Bucket } from "../types";
import { mergeBuckets, moreComplete, quantilesApproximate } from "./merge";

function bucket(fields: Partial<Bucket>): Bucket {
  return { start: 60, count: 0, sum: 0, min: null, max: null, avg: null, p50: null, p95: null, p99: null, rate: 0, ...fields };
}

describe("mergeBuckets", () => {
  it("adds counts, sums and rates and keeps the extreme min and max", () => {
    const merged = mergeBuckets(60, [
      bucket({ count: 10, sum: 100, min: 2, max: 30, rate: 1 }),
      bucket({ count: 30, sum: 60, min: 1, max: 9, rate: 0.5 }),
      bucket({ count: 0, sum: 0 }),
    ]);
    expect(merged).toMatchObject({ start: 60, count: 40, sum: 160, min: 1, max: 30, avg: 4, rate: 1.5 });
  });

  it("keeps one series' quantiles exactly", () => {
    const merged = mergeBuckets(60, [bucket({ count: 5, p50: 12, p95: 40, p99: 90 }), bucket({ count: 3 })]);
    expect([merged.p50, merged.p95, merged.p99]).toEqual([12, 40, 90]);
  });

  it("weights several series' quantiles by their counts", () => {
    const merged = mergeBuckets(60, [bucket({ count: 30, p95: 10 }), bucket({ count: 10, p95: 50 })]);
    expect(merged.p95).toBeCloseTo(20);
  });

  it("has no average or quantiles without observations", () => {
    const merged = mergeBuckets(60, []);
    expect(merged).toMatchObject({ count: 0, avg: null, p50: null, min: null, max: null });
  });
});

describe("moreComplete", () => {
  it("prefers the bucket that has seen more points", () => {
    const history = bucket({ count: 10, p95: 5 });
    const live = bucket({ count: 12, p95: 6 });
    expect(moreComplete(history, live)).toBe(live);
    expect(moreComplete(live, history)).toBe(live);
  });

  it("prefers the server's bucket on a tie (its quantiles are exact)", () => {
    const history = bucket({ count: 10, p95: 5 });
    expect(moreComplete(history, bucket({ count: 10, p95: 6 }))).toBe(history);
  });

  it("keeps the server's exact quantiles when live is ahead only with approximated ones", () => {
    const history = bucket({ count: 10, p50: 1, p95: 5, p99: 9 });
    const live = bucket({ count: 12, rate: 3, p50: 2, p95: 4, p99: 7 });
    expect(moreComplete(history, live, true)).toEqual({ ...live, p50: 1, p95: 5, p99: 9 });
    expect(moreComplete(history, live, false)).toBe(live);
    // Nothing exact to keep: live's approximation is better than no quantiles.
    expect(moreComplete(bucket({ count: 10 }), live, true)).toBe(live);
  });

  it("knows when a merge approximated quantiles", () => {
    expect(quantilesApproximate([bucket({ p95: 1 }), bucket({})])).toBe(false);
    expect(quantilesApproximate([bucket({ p95: 1 }), bucket({ p99: 2 })])).toBe(true);
  });

  it("uses whichever exists", () => {
    const only = bucket({ count: 1 });
    expect(moreComplete(undefined, only)).toBe(only);
    expect(moreComplete(only, undefined)).toBe(only);
    expect(moreComplete(undefined, undefined)).toBeUndefined();
  });
});
