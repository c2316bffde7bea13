// Combining buckets: the live feed is per series, the charts show a metric (all its series) per service.

import type { Bucket } from "../types";

/**
 * Merges the same time bucket of several series into one. Counts, sums, min, max and rates add up
 * exactly (all buckets share one width). Quantiles cannot be merged from quantiles: with one series
 * they are exact, with several this is a count-weighted mean, an approximation that the periodic
 * history reload (server-side sketch merge, exact) replaces once the bucket is reloaded.
 */
export function mergeBuckets(start: number, buckets: readonly Bucket[]): Bucket {
  let count = 0;
  let sum = 0;
  let rate = 0;
  let min: number | null = null;
  let max: number | null = null;
  for (const bucket of buckets) {
    count += bucket.count;
    sum += bucket.sum;
    rate += bucket.rate;
    if (bucket.min !== null) min = min === null ? bucket.min : Math.min(min, bucket.min);
    if (bucket.max !== null) max = max === null ? bucket.max : Math.max(max, bucket.max);
  }
  return {
    start,
    count,
    sum,
    min,
    max,
    avg: count > 0 ? sum / count : null,
    p50: mergeQuantile(buckets, "p50"),
    p95: mergeQuantile(buckets, "p95"),
    p99: mergeQuantile(buckets, "p99"),
    rate,
  };
}

function mergeQuantile(buckets: readonly Bucket[], field: "p50" | "p95" | "p99"): number | null {
  let weighted = 0;
  let weight = 0;
  let only: number | null = null;
  let contributors = 0;
  for (const bucket of buckets) {
    const value = bucket[field];
    if (value === null) continue;
    contributors += 1;
    only = value;
    weighted += value * bucket.count;
    weight += bucket.count;
  }
  if (contributors === 0) return null;
  if (contributors === 1) return only;
  return weight > 0 ? weighted / weight : only;
}

/** True when `mergeBuckets` had to approximate quantiles (more than one series had them). */
export function quantilesApproximate(buckets: readonly Bucket[]): boolean {
  return buckets.filter((b) => b.p50 !== null || b.p95 !== null || b.p99 !== null).length > 1;
}

/**
 * Chooses between the server's merged bucket (from a history request) and the client's merge of
 * live updates for the same start. Bucket totals only grow, so the one with the larger count holds
 * more points; on a tie both saw the same points and the server's exact quantiles win. When live is
 * ahead but its quantiles are only approximated, the server's (exact, if slightly older) are kept:
 * quantiles move slowly, while counts and rates must be current.
 */
export function moreComplete(
  history: Bucket | undefined,
  live: Bucket | undefined,
  liveQuantilesApproximate = false,
): Bucket | undefined {
  if (history === undefined) return live;
  if (live === undefined) return history;
  if (live.count <= history.count) return history;
  if (!liveQuantilesApproximate || (history.p50 === null && history.p95 === null && history.p99 === null)) {
    return live;
  }
  return { ...live, p50: history.p50, p95: history.p95, p99: history.p99 };
}
