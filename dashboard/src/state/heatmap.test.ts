import { describe, expect, it } from "vitest";
import type { Bucket } from "../types";
import { latencyHeatmap, latencySummary, logEdges } from "./heatmap";

function bucket(fields: Partial<Bucket>): Bucket {
  return { start: 0, count: 0, sum: 0, min: null, max: null, avg: null, p50: null, p95: null, p99: null, rate: 0, ...fields };
}

const ms = (v: number) => v;
const column = (heatmap: ReturnType<typeof latencyHeatmap>, i: number) =>
  [...heatmap.counts.subarray(i * heatmap.rows, (i + 1) * heatmap.rows)];
const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);

describe("latencyHeatmap", () => {
  const typical = bucket({ start: 60, count: 1000, min: 1, p50: 10, p95: 50, p99: 200, max: 1000 });

  it("keeps every request: each column adds up to its buckets' counts", () => {
    const other = bucket({ start: 60, count: 500, min: 2, p50: 3, p95: 4, p99: 5, max: 6 });
    const later = bucket({ start: 120, count: 42, min: 5, p50: 5, p95: 5, p99: 5, max: 5 });
    const heatmap = latencyHeatmap([
      { buckets: [typical, later], toMs: ms },
      { buckets: [other], toMs: ms },
    ]);
    expect(heatmap.starts).toEqual([60, 120]);
    expect(sum(column(heatmap, 0))).toBeCloseTo(1500);
    expect(sum(column(heatmap, 1))).toBeCloseTo(42);
  });

  it("puts half the requests below p50 and 95 % below p95, to within a row", () => {
    const heatmap = latencyHeatmap([{ buckets: [typical], toMs: ms }], 40);
    const cells = column(heatmap, 0);
    const below = (limit: number) =>
      sum(cells.filter((_, row) => (heatmap.edges[row + 1] ?? Infinity) <= limit));
    const upTo = (limit: number) =>
      sum(cells.filter((_, row) => (heatmap.edges[row] ?? Infinity) < limit));
    expect(below(10)).toBeLessThanOrEqual(500 + 1e-9);
    expect(upTo(10)).toBeGreaterThanOrEqual(500 - 1e-9);
    expect(below(50)).toBeLessThanOrEqual(950 + 1e-9);
    expect(upTo(50)).toBeGreaterThanOrEqual(950 - 1e-9);
  });

  it("puts a bucket whose values are all equal into one row", () => {
    const heatmap = latencyHeatmap([
      { buckets: [bucket({ count: 7, min: 3, p50: 3, p95: 3, p99: 3, max: 3 })], toMs: ms },
    ]);
    const filled = column(heatmap, 0).filter((c) => c > 0);
    expect(filled).toHaveLength(1);
    expect(filled[0]).toBeCloseTo(7);
    expect(heatmap.maxCount).toBeCloseTo(7);
  });

  it("converts units: a bucket in seconds lands where the same latency in ms does", () => {
    const inMs = latencyHeatmap([{ buckets: [bucket({ count: 1, p50: 250 }), bucket({ start: 60, count: 1, p50: 2 })], toMs: ms }]);
    const inSeconds = latencyHeatmap([
      { buckets: [bucket({ count: 1, p50: 0.25 }), bucket({ start: 60, count: 1, p50: 0.002 })], toMs: (v) => v * 1000 },
    ]);
    expect(column(inSeconds, 0)).toEqual(column(inMs, 0));
  });

  it("skips empty buckets and has no columns without data", () => {
    const heatmap = latencyHeatmap([{ buckets: [bucket({ count: 0, p50: 3 })], toMs: ms }]);
    expect(heatmap.starts).toEqual([]);
    expect(heatmap.maxCount).toBe(0);
  });
});

describe("latencySummary", () => {
  it("stands in the average for missing quantiles and keeps the order min ≤ p50 ≤ … ≤ max", () => {
    expect(latencySummary(bucket({ count: 3, avg: 12 }), ms)).toEqual({ count: 3, min: 12, p50: 12, p95: 12, p99: 12, max: 12 });
    const s = latencySummary(bucket({ count: 3, min: 5, p50: 4, p95: 3, max: 2 }), ms);
    expect(s).not.toBeNull();
    if (s === null) return;
    expect(s.min <= s.p50 && s.p50 <= s.p95 && s.p95 <= s.p99 && s.p99 <= s.max).toBe(true);
  });

  it("keeps zero latencies drawable on a log scale", () => {
    expect(latencySummary(bucket({ count: 1, min: 0, p50: 0, p95: 0, p99: 0, max: 0 }), ms)?.min).toBeGreaterThan(0);
  });
});

describe("logEdges", () => {
  it("spaces rows by equal ratios and widens a flat range", () => {
    const edges = logEdges(1, 1000, 3);
    expect(edges.map((e) => Math.round(e))).toEqual([1, 10, 100, 1000]);
    const flat = logEdges(5, 5, 4);
    expect(flat[0]).toBeLessThan(5);
    expect(flat.at(-1)).toBeGreaterThan(5);
  });
});
