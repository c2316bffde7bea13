// The overview page's numbers: system-wide stat cards and the per-service charts, computed from
// every service's buckets. Pure functions of (buckets, now), like `service-stats.ts`.

import type { Bucket } from "../types";
import {
  chartRate,
  currentRate,
  requestSource,
  serviceStats,
  toMilliseconds,
  type ChartColumns,
  type ServiceBuckets,
} from "./service-stats";

export interface OverviewStats {
  /** Requests per second, all services together. */
  throughput: number | null;
  /** Services whose rate in `throughput` comes from spans (no request metrics), by name. */
  throughputFromSpans: string[];
  /** The highest current p95 of any service, and which one: quantiles of different services cannot be merged. */
  p95LatencyMs: number | null;
  slowestService: string | null;
  /** Failed / all requests, over every service that reports errors. */
  errorRatio: number | null;
  activeAlerts: number;
  criticalAlerts: number;
}

export function overviewStats(
  services: ReadonlyMap<string, ServiceBuckets>,
  nowSeconds: number,
  bucketSeconds: number,
  alerts: { active: number; critical: number },
): OverviewStats {
  let throughput: number | null = null;
  let errorRequests = 0;
  let errors = 0;
  let p95: number | null = null;
  let slowest: string | null = null;
  const fromSpans: string[] = [];
  for (const [name, data] of services) {
    const stats = serviceStats(data, nowSeconds, bucketSeconds, false);
    if (stats.throughput !== null) throughput = (throughput ?? 0) + stats.throughput;
    if (stats.throughput !== null && stats.rateKind === "spans") fromSpans.push(name);
    if (stats.throughput !== null && stats.errorRatio !== null) {
      errorRequests += stats.throughput;
      errors += stats.errorRatio * stats.throughput;
    }
    if (stats.p95LatencyMs !== null && (p95 === null || stats.p95LatencyMs > p95)) {
      p95 = stats.p95LatencyMs;
      slowest = name;
    }
  }
  return {
    throughput,
    throughputFromSpans: fromSpans,
    p95LatencyMs: p95,
    slowestService: slowest,
    errorRatio: errorRequests > 0 ? errors / errorRequests : null,
    activeAlerts: alerts.active,
    criticalAlerts: alerts.critical,
  };
}

export interface LabelledColumns {
  labels: string[];
  columns: ChartColumns;
}

export interface OverviewCharts {
  /** p95 latency (ms) of the busiest services, one line each. */
  latency: LabelledColumns;
  /** Requests/s per service, stacked: `stacked` for drawing, `columns` for the legend's own values. */
  throughput: LabelledColumns & { stacked: ChartColumns };
  /** Errors per second, all services together, one bar per bucket. */
  errors: LabelledColumns;
}

/** Services ranked by total requests over the buckets held, busiest first. */
export function busiest(services: ReadonlyMap<string, ServiceBuckets>, limit: number): string[] {
  const volume = (data: ServiceBuckets) =>
    (requestSource(data)?.requests ?? []).reduce((sum, b) => sum + b.rate, 0);
  return [...services.entries()]
    .map(([name, data]) => ({ name, volume: volume(data) }))
    .sort((a, b) => b.volume - a.volume || a.name.localeCompare(b.name))
    .slice(0, limit)
    .map((s) => s.name);
}

export function overviewCharts(
  services: ReadonlyMap<string, ServiceBuckets>,
  nowSeconds: number,
  bucketSeconds: number,
  maxLines = 8,
): OverviewCharts {
  // Busiest first to choose, then by name: a line keeps its place (and colour) as volumes shift.
  const top = busiest(services, maxLines).sort((a, b) => a.localeCompare(b));
  const others = [...services.keys()].filter((name) => !top.includes(name)).sort();
  const xs = allStarts(services);

  const latencyLines = top.map((name) => {
    const data = services.get(name);
    const byStart = indexed(data?.latency ?? []);
    return xs.map((x) => {
      const p95 = byStart.get(x)?.p95 ?? null;
      return p95 === null ? null : toMilliseconds(p95, data?.latencyUnit ?? "ms");
    });
  });

  // The same source and window as the stat cards (`requestSource`, `rateWindow`).
  const newestX = xs.at(-1);
  const rateOf = (data: ServiceBuckets | undefined) => {
    const source = data === undefined ? [] : (requestSource(data)?.requests ?? []);
    const byStart = indexed(source);
    const line = xs.map((x) => {
      const bucket = byStart.get(x);
      return bucket === undefined ? null : chartRate(bucket, source, nowSeconds, bucketSeconds, data?.coverage);
    });
    // Services' first points of a new minute arrive seconds apart: one whose new bucket has not
    // arrived yet is drawn at its current reading (the card's), not left out of the newest column,
    // so the stack's right end is the throughput card's total rather than a dip.
    const last = source.at(-1);
    const open = newestX !== undefined && nowSeconds - newestX < bucketSeconds;
    if (open && last !== undefined && last.start === newestX - bucketSeconds && line.length > 0) {
      line[line.length - 1] = currentRate(source, nowSeconds, bucketSeconds, data?.coverage);
    }
    return line;
  };
  const throughputLines = top.map((name) => rateOf(services.get(name)));
  const throughputLabels = [...top];
  if (others.length > 0) {
    const otherLines = others.map((name) => rateOf(services.get(name)));
    throughputLines.push(xs.map((_, i) => sumNullable(otherLines.map((line) => line[i] ?? null))));
    throughputLabels.push(`${others.length} other${others.length === 1 ? "" : "s"}`);
  }
  const stacked = stackLines(throughputLines);

  const errorLines = [...services.values()].map((data) => {
    const byStart = indexed(data.errors);
    return xs.map((x) => {
      const bucket = byStart.get(x);
      return bucket === undefined
        ? null
        : chartRate(bucket, data.errors, nowSeconds, bucketSeconds, { asOf: data.coverage?.asOf });
    });
  });
  const errors = xs.map((_, i) => sumNullable(errorLines.map((line) => line[i] ?? null)));

  return {
    latency: { labels: top, columns: [xs, ...latencyLines] },
    throughput: { labels: throughputLabels, columns: [xs, ...throughputLines], stacked: [xs, ...stacked] },
    errors: { labels: ["errors/s"], columns: [xs, errors] },
  };
}

/**
 * Stacked lines: line k is the sum of lines 0..k, so each band's height is that service's rate.
 * A null stays null (a gap, never a zero): a band without a value at x is not drawn there, and the
 * bands above it rest on the highest band below that has one.
 */
export function stackLines(lines: readonly (number | null)[][]): (number | null)[][] {
  const stacked: (number | null)[][] = [];
  const length = lines[0]?.length ?? 0;
  const total: (number | null)[] = new Array<number | null>(length).fill(null);
  for (const line of lines) {
    stacked.push(
      line.map((v, i) => {
        if (v === null || v === undefined) return null;
        const sum = (total[i] ?? 0) + v;
        total[i] = sum;
        return sum;
      }),
    );
  }
  return stacked;
}

function allStarts(services: ReadonlyMap<string, ServiceBuckets>): number[] {
  const starts = new Set<number>();
  for (const data of services.values()) {
    for (const list of [data.latency, data.requests, data.errors]) for (const b of list) starts.add(b.start);
  }
  return [...starts].sort((a, b) => a - b);
}

function indexed(buckets: readonly Bucket[]): Map<number, Bucket> {
  return new Map(buckets.map((b) => [b.start, b]));
}

function sumNullable(values: (number | null)[]): number | null {
  let total: number | null = null;
  for (const v of values) if (v !== null) total = (total ?? 0) + v;
  return total;
}
