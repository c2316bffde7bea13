// What the service page shows, computed from bucket lists: the stat cards' current values and the
// charts' series. Pure functions of (buckets, now), so they are tested without a browser.

import type { Bucket } from "../types";

/** Metric names the first page reads (OpenTelemetry semantic-convention names). */
export const METRICS = {
  latency: "http.server.request.duration",
  requests: "http.server.requests",
  errors: "http.server.errors",
  cpu: "process.cpu.utilization",
  memory: "process.memory.utilization",
} as const;

export const PAGE_METRICS: string[] = Object.values(METRICS);

/** Before this many seconds of a bucket have passed, its rate is too noisy to show on its own. */
export const MIN_ELAPSED_SECONDS = 15;

/** Without a bucket for this many bucket widths, a service counts as not reporting. */
export const STALE_AFTER_BUCKETS = 3;

/**
 * Which bucket a "current rate" is read from, and the factor that turns its rate into a per-second
 * rate over the time it has actually covered. The server's `rate` divides by the full bucket width,
 * so a bucket still filling up would read low (half a minute in, half the real rate).
 */
export interface RateWindow {
  start: number;
  factor: number;
}

export function rateWindow(
  buckets: readonly Bucket[],
  nowSeconds: number,
  bucketSeconds: number,
): RateWindow | null {
  const latest = buckets.at(-1);
  if (latest === undefined) return null;
  if (latest.start + bucketSeconds * STALE_AFTER_BUCKETS < nowSeconds) return null;
  const elapsed = nowSeconds - latest.start;
  if (elapsed >= bucketSeconds) return { start: latest.start, factor: 1 };
  const previous = buckets.at(-2);
  if (elapsed < MIN_ELAPSED_SECONDS && previous?.start === latest.start - bucketSeconds) {
    return { start: previous.start, factor: 1 };
  }
  return { start: latest.start, factor: bucketSeconds / Math.max(elapsed, MIN_ELAPSED_SECONDS) };
}

/** The rate of the bucket at `window.start`, or 0 when the metric had no points then. */
export function rateIn(buckets: readonly Bucket[], window: RateWindow): number {
  const bucket = buckets.find((b) => b.start === window.start);
  return bucket === undefined ? 0 : bucket.rate * window.factor;
}

export function currentRate(
  buckets: readonly Bucket[],
  nowSeconds: number,
  bucketSeconds: number,
): number | null {
  const window = rateWindow(buckets, nowSeconds, bucketSeconds);
  return window === null ? null : rateIn(buckets, window);
}

/** Converts a utilization gauge to percent: OpenTelemetry's convention is a ratio (unit "1"); "%" is kept. */
export function toPercent(value: number, unit: string): number {
  return unit === "1" ? value * 100 : value;
}

export interface ServiceStats {
  /** Requests per second. */
  throughput: number | null;
  /** Milliseconds. */
  p95LatencyMs: number | null;
  /** Fraction of requests that failed, 0..1. */
  errorRatio: number | null;
  cpuPercent: number | null;
  memoryPercent: number | null;
}

export interface ServiceBuckets {
  latency: readonly Bucket[];
  latencyUnit: string;
  requests: readonly Bucket[];
  errors: readonly Bucket[];
  /** True when the service has an errors metric at all (no bucket then means zero errors). */
  hasErrorsMetric: boolean;
  cpu: readonly Bucket[];
  cpuUnit: string;
  memory: readonly Bucket[];
  memoryUnit: string;
}

export function serviceStats(
  data: ServiceBuckets,
  nowSeconds: number,
  bucketSeconds: number,
): ServiceStats {
  // Throughput comes from the request counter; a latency histogram counts the same requests,
  // so it stands in for services that only export the histogram.
  const requestSource = data.requests.length > 0 ? data.requests : data.latency;
  const window = rateWindow(requestSource, nowSeconds, bucketSeconds);
  const throughput = window === null ? null : rateIn(requestSource, window);
  let errorRatio: number | null = null;
  if (window !== null && throughput !== null && throughput > 0 && data.hasErrorsMetric) {
    errorRatio = Math.min(1, rateIn(data.errors, window) / throughput);
  }
  return {
    throughput,
    p95LatencyMs: latestValue(data.latency, nowSeconds, bucketSeconds, (b) =>
      b.p95 === null ? null : toMilliseconds(b.p95, data.latencyUnit),
    ),
    errorRatio,
    cpuPercent: latestValue(data.cpu, nowSeconds, bucketSeconds, (b) =>
      b.avg === null ? null : toPercent(b.avg, data.cpuUnit),
    ),
    memoryPercent: latestValue(data.memory, nowSeconds, bucketSeconds, (b) =>
      b.avg === null ? null : toPercent(b.avg, data.memoryUnit),
    ),
  };
}

/** The newest non-null reading, unless the metric has gone stale. */
function latestValue(
  buckets: readonly Bucket[],
  nowSeconds: number,
  bucketSeconds: number,
  read: (bucket: Bucket) => number | null,
): number | null {
  for (let i = buckets.length - 1; i >= 0; i -= 1) {
    const bucket = buckets[i];
    if (bucket === undefined) continue;
    if (bucket.start + bucketSeconds * STALE_AFTER_BUCKETS < nowSeconds) return null;
    if (bucket.count === 0) continue;
    const value = read(bucket);
    if (value !== null) return value;
  }
  return null;
}

/** Latency histograms are in ms by convention here, but OpenTelemetry's default unit is seconds. */
export function toMilliseconds(value: number, unit: string): number {
  switch (unit) {
    case "s":
      return value * 1000;
    case "us":
    case "µs":
      return value / 1000;
    case "ns":
      return value / 1_000_000;
    default:
      return value;
  }
}

/** Columns for uPlot: x = bucket starts (unix s), then one array per line; null leaves a gap. */
export type ChartColumns = [number[], ...(number | null)[][]];

export interface ServiceCharts {
  latency: ChartColumns;
  throughput: ChartColumns;
  utilization: ChartColumns;
}

export function serviceCharts(
  data: ServiceBuckets,
  nowSeconds: number,
  bucketSeconds: number,
): ServiceCharts {
  const ms = (v: number | null) => (v === null ? null : toMilliseconds(v, data.latencyUnit));
  const scaledRate = (buckets: readonly Bucket[]) => (bucket: Bucket) =>
    chartRate(bucket, buckets, nowSeconds, bucketSeconds);
  return {
    latency: columns(
      [data.latency],
      [
        [data.latency, (b) => ms(b.p50)],
        [data.latency, (b) => ms(b.p95)],
        [data.latency, (b) => ms(b.p99)],
      ],
    ),
    throughput: columns(
      [data.requests, data.errors],
      [
        [data.requests, scaledRate(data.requests)],
        [data.errors, scaledRate(data.errors)],
      ],
    ),
    utilization: columns(
      [data.cpu, data.memory],
      [
        [data.cpu, (b) => (b.avg === null ? null : toPercent(b.avg, data.cpuUnit))],
        [data.memory, (b) => (b.avg === null ? null : toPercent(b.avg, data.memoryUnit))],
      ],
    ),
  };
}

/**
 * A bucket's rate for a chart, consistent with the stat card: a bucket still filling up is scaled to
 * the time it has covered (see `rateWindow`), so the line does not dip at its right end, and is left
 * out (null) during its first seconds when the previous minute stands in for it.
 */
export function chartRate(
  bucket: Bucket,
  buckets: readonly Bucket[],
  nowSeconds: number,
  bucketSeconds: number,
): number | null {
  if (nowSeconds - bucket.start >= bucketSeconds) return bucket.rate;
  const window = rateWindow(buckets, nowSeconds, bucketSeconds);
  if (window === null || window.start !== bucket.start) return null;
  return bucket.rate * window.factor;
}

type LineSource = [readonly Bucket[], (bucket: Bucket) => number | null];

/** Aligns several bucket lists on the union of their starts. */
function columns(sources: readonly (readonly Bucket[])[], lines: LineSource[]): ChartColumns {
  const starts = new Set<number>();
  for (const source of sources) for (const bucket of source) starts.add(bucket.start);
  const xs = [...starts].sort((a, b) => a - b);
  const ys = lines.map(([buckets, read]) => {
    const byStart = new Map(buckets.map((b) => [b.start, b]));
    return xs.map((x) => {
      const bucket = byStart.get(x);
      return bucket === undefined ? null : read(bucket);
    });
  });
  return [xs, ...ys];
}

/** Number of x positions where at least one line has a value. */
export function pointCount(chart: ChartColumns): number {
  const [xs, ...ys] = chart;
  let count = 0;
  for (let i = 0; i < xs.length; i += 1) if (ys.some((y) => y[i] !== null && y[i] !== undefined)) count += 1;
  return count;
}
