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
 * Which bucket a "current rate" is read from, and how its rate becomes a per-second rate over the
 * time its data actually covers: `(bucket.rate - minus) * factor`. The server's `rate` divides by
 * the full bucket width, so a bucket still filling up would read low (half a minute in, half the
 * real rate).
 */
export interface RateWindow {
  start: number;
  factor: number;
  /** Subtracted from the bucket's rate first (the part already there when the series was first seen). */
  minus?: number;
  /** The rate measured for this bucket by the page itself (it replaces the formula above). */
  measured?: number;
}

/**
 * What the dashboard saw of a metric's newest bucket (see `CoverageTracker` in `rates.ts`). Without
 * it, the open bucket is read as covering everything from its start to now.
 */
export interface Coverage {
  /** When the bucket's total last grew (unix s): the time its data covers ends here, not at now. */
  asOf?: number;
  /**
   * The series began inside this bucket (no bucket just before it): the first total seen and when.
   * The rate is then the growth since then, so start-up shows no ramp.
   */
  first?: { at: number; total: number } | null;
  /**
   * The bucket before the newest one, when the series began inside it: its rate over the time the
   * page saw data arrive (null: not seen long enough to tell). Such a bucket's own rate (its total
   * over 60 s) would read low, so it cannot stand in for the new bucket's first seconds.
   */
  previousRate?: number | null;
  /**
   * When the data in the newest bucket starts (unix s, as seen by the page): the moment the bucket
   * before it last grew. An exporter that sends every few seconds puts the requests since its last
   * export into its first point of a new minute, so that bucket's data starts before the minute
   * does; dividing by the time since the minute started would read high.
   */
  from?: number;
}

export function rateWindow(
  buckets: readonly Bucket[],
  nowSeconds: number,
  bucketSeconds: number,
  coverage: Coverage = {},
): RateWindow | null {
  const latest = buckets.at(-1);
  if (latest === undefined) return null;
  if (latest.start + bucketSeconds * STALE_AFTER_BUCKETS < nowSeconds) return null;
  // Data covers time up to its last growth: a value does not decay while nothing new arrives.
  const until = Math.min(nowSeconds, coverage.asOf ?? nowSeconds);
  const elapsed = until - latest.start;
  // The newest bucket counts as filling until a newer one arrives (an exporter's last point of a
  // minute can come seconds after it ended); it is complete once its data reaches its end.
  if (elapsed >= bucketSeconds) return { start: latest.start, factor: 1 };
  const previous = buckets.at(-2);
  const consecutive = previous !== undefined && previous.start === latest.start - bucketSeconds;
  if (elapsed < MIN_ELAPSED_SECONDS && consecutive) {
    if (coverage.previousRate !== undefined) {
      return coverage.previousRate === null ? null : { start: previous.start, factor: 1, measured: coverage.previousRate };
    }
    return { start: previous.start, factor: 1 };
  }
  if (!consecutive && coverage.first !== undefined && coverage.first !== null) {
    // The series started inside this bucket: the time before it is not part of its rate.
    const span = until - coverage.first.at;
    if (span < MIN_ELAPSED_SECONDS) return null;
    return { start: latest.start, factor: bucketSeconds / span, minus: coverage.first.total / bucketSeconds };
  }
  const covered = coverage.from !== undefined && coverage.from < latest.start && consecutive ? until - coverage.from : elapsed;
  return { start: latest.start, factor: bucketSeconds / Math.min(bucketSeconds, Math.max(covered, MIN_ELAPSED_SECONDS)) };
}

/** The rate of the bucket at `window.start`, or 0 when the metric had no points then. */
export function rateIn(buckets: readonly Bucket[], window: RateWindow): number {
  const bucket = buckets.find((b) => b.start === window.start);
  return bucket === undefined ? 0 : windowRate(bucket, window);
}

function windowRate(bucket: Bucket, window: RateWindow): number {
  if (window.measured !== undefined) return window.measured;
  return Math.max(0, (bucket.rate - (window.minus ?? 0)) * window.factor);
}

export function currentRate(
  buckets: readonly Bucket[],
  nowSeconds: number,
  bucketSeconds: number,
  coverage: Coverage = {},
): number | null {
  const window = rateWindow(buckets, nowSeconds, bucketSeconds, coverage);
  return window === null ? null : rateIn(buckets, window);
}

/** Where a service's request rate comes from: request metrics, or RED from all of its spans. */
export type RateKind = "requests" | "spans";

/**
 * The one source of a service's request rate (documented in docs/dashboard.md): the
 * `http.server.requests` counter; else the count of its latency histogram (the same requests);
 * else `red.requests`, derived by the server from every entry span (not from sampled traces).
 */
export function requestSource(data: ServiceBuckets): { kind: RateKind; requests: readonly Bucket[]; errors: readonly Bucket[]; hasErrors: boolean } | null {
  if (data.requests.length > 0) return { kind: "requests", requests: data.requests, errors: data.errors, hasErrors: data.hasErrorsMetric };
  if (data.latency.length > 0) return { kind: "requests", requests: data.latency, errors: data.errors, hasErrors: data.hasErrorsMetric };
  const red = data.red;
  if (red !== undefined && red.requests.length > 0) return { kind: "spans", requests: red.requests, errors: red.errors, hasErrors: true };
  return null;
}

/** Converts a utilization gauge to percent: OpenTelemetry's convention is a ratio (unit "1"); "%" is kept. */
export function toPercent(value: number, unit: string): number {
  return unit === "1" ? value * 100 : value;
}

export interface ServiceStats {
  /** Requests per second. */
  throughput: number | null;
  /** Where `throughput` and `errorRatio` come from (null: no source at all). */
  rateKind: RateKind | null;
  /** Milliseconds, the newest bucket's mean. */
  avgLatencyMs: number | null;
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
  /** RED from all of the service's entry spans: the rate source when it has no request metrics. */
  red?: { requests: readonly Bucket[]; errors: readonly Bucket[]; duration: readonly Bucket[]; durationUnit: string };
  /** What the dashboard saw of the request source's newest bucket (see `Coverage`). */
  coverage?: Coverage;
}

export function serviceStats(
  data: ServiceBuckets,
  nowSeconds: number,
  bucketSeconds: number,
  /** False: leave CPU and memory out (null), for views that do not show them. */
  utilization = true,
): ServiceStats {
  const source = requestSource(data);
  const window = source === null ? null : rateWindow(source.requests, nowSeconds, bucketSeconds, data.coverage);
  const throughput = source === null || window === null ? null : rateIn(source.requests, window);
  let errorRatio: number | null = null;
  if (source !== null && window !== null && source.hasErrors) {
    // Errors and requests of the same bucket: the window's scaling cancels out.
    const requests = source.requests.find((b) => b.start === window.start)?.rate ?? 0;
    const errors = source.errors.find((b) => b.start === window.start)?.rate ?? 0;
    if (requests > 0) errorRatio = Math.min(1, errors / requests);
  }
  const spans = source?.kind === "spans" ? data.red : undefined;
  const latency = spans === undefined ? data.latency : spans.duration;
  const latencyUnit = spans === undefined ? data.latencyUnit : spans.durationUnit;
  return {
    throughput,
    rateKind: source?.kind ?? null,
    p95LatencyMs: latestValue(latency, nowSeconds, bucketSeconds, (b) =>
      b.p95 === null ? null : toMilliseconds(b.p95, latencyUnit),
    ),
    avgLatencyMs: latestValue(latency, nowSeconds, bucketSeconds, (b) =>
      b.avg === null ? null : toMilliseconds(b.avg, latencyUnit),
    ),
    errorRatio,
    cpuPercent: !utilization
      ? null
      : latestValue(data.cpu, nowSeconds, bucketSeconds, (b) => (b.avg === null ? null : toPercent(b.avg, data.cpuUnit))),
    memoryPercent: !utilization
      ? null
      : latestValue(data.memory, nowSeconds, bucketSeconds, (b) =>
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
  const scaledRate = (buckets: readonly Bucket[], coverage: Coverage) => (bucket: Bucket) =>
    chartRate(bucket, buckets, nowSeconds, bucketSeconds, coverage);
  const coverage = data.coverage ?? {};
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
        [data.requests, scaledRate(data.requests, coverage)],
        [data.errors, scaledRate(data.errors, { asOf: coverage.asOf })],
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
  coverage: Coverage = {},
): number | null {
  // The same window as the stat card's, so the line's right end reads what the card reads.
  const window = rateWindow(buckets, nowSeconds, bucketSeconds, coverage);
  if (window !== null && window.start === bucket.start) return windowRate(bucket, window);
  const newest = buckets.at(-1);
  if (window !== null && newest !== undefined && bucket.start === newest.start) {
    // The open bucket is drawn at the current reading (the previous minute stands in during its
    // first seconds): the line's right end is what the stat card reads, never a dip or a gap.
    const standIn = buckets.find((b) => b.start === window.start);
    return standIn === undefined ? null : windowRate(standIn, window);
  }
  // The series' first (partial) minute that the page could not measure: unknown, not its low average.
  const latest = buckets.at(-1);
  if (coverage.previousRate === null && latest !== undefined && bucket.start === latest.start - bucketSeconds) return null;
  return nowSeconds - bucket.start >= bucketSeconds ? bucket.rate : null;
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
