// A latency heatmap (time × latency, colour = how many requests) built from bucket summaries.
//
// The API returns no histogram, only each bucket's count, min, max and the sketch's p50/p95/p99.
// Those five values cut the distribution into four ranges whose share of the count is known
// exactly: [min, p50] holds 50 %, [p50, p95] 45 %, [p95, p99] 4 % and [p99, max] 1 %. Within each
// range the requests are spread evenly on a log scale (latencies are roughly log-normal, so this is
// much closer than linear). What is exact: each column's total and how much lies below p50, p95
// and p99 (to within one cell); what is approximate: the shape inside each range. Buckets of several
// services add up, which is right for a mixture (unlike merging quantiles).

import type { Bucket } from "../types";

export interface LatencyHeatmap {
  /** Bucket starts (unix seconds), ascending: the columns. */
  starts: number[];
  /** Row edges in ms, ascending, rows + 1 of them (log-spaced). */
  edges: number[];
  /** counts[column * rows + row]: approximate requests per cell. */
  counts: Float64Array;
  rows: number;
  /** Largest cell, for the colour scale. */
  maxCount: number;
}

/** Latencies below this (ms) are drawn in the lowest row: a log scale cannot reach 0. */
export const FLOOR_MS = 0.001;

const SHARES: readonly [from: "min" | "p50" | "p95" | "p99", to: "p50" | "p95" | "p99" | "max", share: number][] = [
  ["min", "p50", 0.5],
  ["p50", "p95", 0.45],
  ["p95", "p99", 0.04],
  ["p99", "max", 0.01],
];

/** A bucket's latencies in ms, with missing ends filled from the nearest known value. */
export interface LatencySummary {
  count: number;
  min: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

/**
 * Fills gaps: a bucket without quantiles (a gauge, or one observation) is treated as all at its
 * average. Returns null when there is nothing to place.
 */
export function latencySummary(bucket: Bucket, toMs: (value: number) => number): LatencySummary | null {
  if (bucket.count <= 0) return null;
  const known = [bucket.min, bucket.p50, bucket.p95, bucket.p99, bucket.max, bucket.avg].filter(
    (v): v is number => v !== null && Number.isFinite(v),
  );
  if (known.length === 0) return null;
  const fallback = bucket.p50 ?? bucket.avg ?? known[0] ?? 0;
  const p50 = bucket.p50 ?? fallback;
  const p95 = Math.max(p50, bucket.p95 ?? p50);
  const p99 = Math.max(p95, bucket.p99 ?? p95);
  const min = Math.min(p50, bucket.min ?? p50);
  const max = Math.max(p99, bucket.max ?? p99);
  return {
    count: bucket.count,
    min: Math.max(FLOOR_MS, toMs(min)),
    p50: Math.max(FLOOR_MS, toMs(p50)),
    p95: Math.max(FLOOR_MS, toMs(p95)),
    p99: Math.max(FLOOR_MS, toMs(p99)),
    max: Math.max(FLOOR_MS, toMs(max)),
  };
}

/** Log-spaced row edges covering [low, high], at least `rows` rows (a flat range gets a decade). */
export function logEdges(low: number, high: number, rows: number): number[] {
  let lo = Math.max(FLOOR_MS, low);
  let hi = Math.max(lo, high);
  if (hi / lo < 1.5) {
    lo /= 3.2;
    hi *= 3.2;
  }
  const a = Math.log(lo);
  const b = Math.log(hi);
  return Array.from({ length: rows + 1 }, (_, i) => Math.exp(a + ((b - a) * i) / rows));
}

/** Adds `mass` spread log-uniformly over [lo, hi] into `column` (a slice of rows). */
function spread(column: Float64Array, edges: readonly number[], lo: number, hi: number, mass: number): void {
  const rows = column.length;
  const rowOf = (v: number) => {
    // Index of the row holding v; values outside land in the first or last row.
    let low = 0;
    let high = rows - 1;
    while (low < high) {
      const mid = (low + high + 1) >> 1;
      if ((edges[mid] ?? 0) <= v) low = mid;
      else high = mid - 1;
    }
    return low;
  };
  if (hi <= lo * (1 + 1e-12)) {
    const row = rowOf(lo);
    column[row] = (column[row] ?? 0) + mass;
    return;
  }
  const span = Math.log(hi) - Math.log(lo);
  const first = rowOf(lo);
  const last = rowOf(hi);
  for (let row = first; row <= last; row += 1) {
    const from = Math.max(lo, row === 0 ? lo : (edges[row] ?? lo));
    const to = Math.min(hi, row === rows - 1 ? hi : (edges[row + 1] ?? hi));
    if (to <= from) continue;
    column[row] = (column[row] ?? 0) + (mass * (Math.log(to) - Math.log(from))) / span;
  }
}

export interface HeatmapSource {
  buckets: readonly Bucket[];
  /** Converts the metric's unit to ms. */
  toMs: (value: number) => number;
}

/** Builds the heatmap of several services' latency buckets over the same columns. */
export function latencyHeatmap(sources: readonly HeatmapSource[], rows = 24): LatencyHeatmap {
  const byStart = new Map<number, LatencySummary[]>();
  let low = Number.POSITIVE_INFINITY;
  let high = 0;
  for (const source of sources) {
    for (const bucket of source.buckets) {
      const summary = latencySummary(bucket, source.toMs);
      if (summary === null) continue;
      low = Math.min(low, summary.min);
      high = Math.max(high, summary.max);
      const list = byStart.get(bucket.start);
      if (list === undefined) byStart.set(bucket.start, [summary]);
      else list.push(summary);
    }
  }
  const starts = [...byStart.keys()].sort((a, b) => a - b);
  if (starts.length === 0) {
    return { starts, edges: logEdges(1, 1000, rows), counts: new Float64Array(0), rows, maxCount: 0 };
  }
  const edges = logEdges(low, high, rows);
  const counts = new Float64Array(starts.length * rows);
  let maxCount = 0;
  starts.forEach((start, columnIndex) => {
    const column = counts.subarray(columnIndex * rows, (columnIndex + 1) * rows);
    for (const summary of byStart.get(start) ?? []) {
      for (const [from, to, share] of SHARES) {
        spread(column, edges, summary[from], summary[to], summary.count * share);
      }
    }
    for (const value of column) maxCount = Math.max(maxCount, value);
  });
  return { starts, edges, counts, rows, maxCount };
}
