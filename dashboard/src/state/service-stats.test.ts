import { describe, expect, it } from "vitest";
import type { Bucket } from "../types";
import {
  chartRate,
  currentRate,
  pointCount,
  rateWindow,
  serviceCharts,
  serviceStats,
  toMilliseconds,
  toPercent,
  type ServiceBuckets,
} from "./service-stats";

const W = 60;

function bucket(start: number, fields: Partial<Bucket> = {}): Bucket {
  return { start, count: 1, sum: 0, min: null, max: null, avg: null, p50: null, p95: null, p99: null, rate: 0, ...fields };
}

function data(fields: Partial<ServiceBuckets>): ServiceBuckets {
  return {
    latency: [],
    latencyUnit: "ms",
    requests: [],
    errors: [],
    hasErrorsMetric: false,
    cpu: [],
    cpuUnit: "%",
    memory: [],
    memoryUnit: "%",
    ...fields,
  };
}

describe("rateWindow", () => {
  const buckets = [bucket(600, { rate: 10 }), bucket(660, { rate: 2.5 })];

  it("reads a finished bucket as it is", () => {
    expect(rateWindow(buckets, 730, W)).toEqual({ start: 660, factor: 1 });
  });

  it("scales a filling bucket to the seconds it has covered", () => {
    // 15 s into the minute the bucket holds a quarter of a minute's requests.
    expect(currentRate(buckets, 675, W)).toBeCloseTo(10);
    expect(rateWindow(buckets, 690, W)).toEqual({ start: 660, factor: 2 });
  });

  it("uses the previous minute during a new bucket's first seconds", () => {
    expect(rateWindow(buckets, 665, W)).toEqual({ start: 600, factor: 1 });
    expect(currentRate(buckets, 665, W)).toBe(10);
  });

  it("has no current rate for a service that stopped reporting", () => {
    expect(rateWindow(buckets, 660 + 4 * W, W)).toBeNull();
    expect(rateWindow([], 700, W)).toBeNull();
  });
});

describe("serviceStats", () => {
  const now = 780; // the 720 bucket is 60 s old: finished

  it("computes throughput, error rate, p95, cpu and memory from the newest buckets", () => {
    const stats = serviceStats(
      data({
        requests: [bucket(660, { rate: 99 }), bucket(720, { rate: 20 })],
        errors: [bucket(720, { rate: 1 })],
        hasErrorsMetric: true,
        latency: [bucket(720, { count: 50, p95: 140, avg: 60 })],
        cpu: [bucket(720, { avg: 35.5 })],
        memory: [bucket(720, { avg: 0.62 })],
        memoryUnit: "1",
      }),
      now,
      W,
    );
    expect(stats).toEqual({
      throughput: 20,
      rateKind: "requests",
      errorRatio: 0.05,
      p95LatencyMs: 140,
      avgLatencyMs: 60,
      cpuPercent: 35.5,
      memoryPercent: 62,
    });
  });

  it("reads zero errors when the errors metric exists but had none this minute", () => {
    const stats = serviceStats(
      data({ requests: [bucket(720, { rate: 20 })], errors: [bucket(660, { rate: 3 })], hasErrorsMetric: true }),
      now,
      W,
    );
    expect(stats.errorRatio).toBe(0);
  });

  it("shows no error rate without an errors metric or without requests", () => {
    expect(serviceStats(data({ requests: [bucket(720, { rate: 20 })] }), now, W).errorRatio).toBeNull();
    const idle = serviceStats(
      data({ requests: [bucket(720, { rate: 0 })], errors: [bucket(720, { rate: 0 })], hasErrorsMetric: true }),
      now,
      W,
    );
    expect(idle.errorRatio).toBeNull();
    expect(idle.throughput).toBe(0);
  });

  it("has nothing to show for a service without data", () => {
    expect(serviceStats(data({}), now, W)).toEqual({
      throughput: null,
      rateKind: null,
      p95LatencyMs: null,
      avgLatencyMs: null,
      errorRatio: null,
      cpuPercent: null,
      memoryPercent: null,
    });
  });

  it("falls back to the latency histogram's count for throughput", () => {
    expect(serviceStats(data({ latency: [bucket(720, { rate: 7, p95: 0.2 })], latencyUnit: "s" }), now, W)).toMatchObject({
      throughput: 7,
      p95LatencyMs: 200,
    });
  });

  it("skips a newest bucket without a p95 and goes stale after a few silent minutes", () => {
    const latency = [bucket(660, { p95: 80 }), bucket(720, { count: 0 })];
    expect(serviceStats(data({ latency }), now, W).p95LatencyMs).toBe(80);
    expect(serviceStats(data({ latency }), 720 + 10 * W, W).p95LatencyMs).toBeNull();
  });
});

describe("unit conversions", () => {
  it("turns ratios into percent and leaves percent alone", () => {
    expect(toPercent(0.25, "1")).toBe(25);
    expect(toPercent(25, "%")).toBe(25);
  });

  it("turns seconds, microseconds and nanoseconds into milliseconds", () => {
    expect(toMilliseconds(0.5, "s")).toBe(500);
    expect(toMilliseconds(500, "us")).toBe(0.5);
    expect(toMilliseconds(2_000_000, "ns")).toBe(2);
    expect(toMilliseconds(7, "ms")).toBe(7);
  });
});

describe("serviceCharts", () => {
  it("aligns lines on shared bucket starts, leaving gaps where a metric has no bucket", () => {
    const charts = serviceCharts(
      data({ cpu: [bucket(600, { avg: 10 }), bucket(660, { avg: 20 })], memory: [bucket(660, { avg: 50 })] }),
      900,
      W,
    );
    expect(charts.utilization).toEqual([[600, 660], [10, 20], [null, 50]]);
    expect(pointCount(charts.utilization)).toBe(2);
    expect(pointCount(charts.latency)).toBe(0);
  });

  it("plots latency quantiles in milliseconds", () => {
    const charts = serviceCharts(
      data({ latency: [bucket(600, { p50: 0.01, p95: 0.1, p99: null })], latencyUnit: "s" }),
      900,
      W,
    );
    expect(charts.latency).toEqual([[600], [10], [100], [null]]);
  });

  it("does not let the filling minute dip the throughput line", () => {
    const buckets = [bucket(540, { rate: 4 }), bucket(600, { rate: 5 })];
    expect(chartRate(bucket(540, { rate: 4 }), buckets, 700, W)).toBe(4);
    // Half-way through the minute, half a minute's requests: twice the bucket's full-width rate.
    expect(chartRate(bucket(600, { rate: 5 }), buckets, 630, W)).toBe(10);
    // In the first seconds the previous minute stands in (as on the stat card): the new bucket is
    // drawn at that reading, so the line's right end neither dips nor breaks off.
    expect(chartRate(bucket(600, { rate: 0.1 }), buckets, 603, W)).toBe(4);
    expect(currentRate(buckets, 603, W)).toBe(4);
    const charts = serviceCharts(data({ requests: buckets }), 630, W);
    expect(charts.throughput[1]).toEqual([4, 10]);
  });

  it("shows a brand-new service's first bucket like its stat card does", () => {
    const first = [bucket(600, { rate: 1 })];
    const now = 605;
    expect(chartRate(bucket(600, { rate: 1 }), first, now, W)).toBe(currentRate(first, now, W));
  });
});

describe("one truth per number", () => {
  it("reads a service without request metrics from RED of all its spans, and says so", () => {
    const stats = serviceStats(
      data({
        red: {
          requests: [bucket(660, { rate: 40 }), bucket(720, { rate: 30 })],
          errors: [bucket(720, { rate: 3 })],
          duration: [bucket(720, { p95: 0.05, avg: 0.02 })],
          durationUnit: "s",
        },
      }),
      780,
      W,
    );
    expect(stats).toMatchObject({ throughput: 30, rateKind: "spans", errorRatio: 0.1, p95LatencyMs: 50, avgLatencyMs: 20 });
  });

  it("prefers request metrics over spans when a service has both", () => {
    const stats = serviceStats(
      data({
        requests: [bucket(720, { rate: 20 })],
        red: { requests: [bucket(720, { rate: 5 })], errors: [], duration: [], durationUnit: "ms" },
      }),
      780,
      W,
    );
    expect(stats).toMatchObject({ throughput: 20, rateKind: "requests" });
  });

  it("divides the open bucket by the time its data covers, so a value does not decay while no data arrives", () => {
    // 30 s of data at 10/s = 300 requests; the bucket's rate is 300 / 60 = 5.
    const buckets = [bucket(600, { rate: 10 }), bucket(660, { rate: 5 })];
    const coverage = { asOf: 690 };
    expect(currentRate(buckets, 690, W, coverage)).toBeCloseTo(10);
    // 20 s later nothing new has arrived (a stopped server): still 10/s, not 300 / 50 s = 6/s.
    expect(currentRate(buckets, 710, W, coverage)).toBeCloseTo(10);
    // Without coverage the old reading decays: that is what `asOf` prevents.
    expect(currentRate(buckets, 710, W)).toBeCloseTo(6);
  });

  it("has no start-up ramp: a series that began inside the open bucket is read from its growth since first seen", () => {
    // The service started at 690 (30 s into the 660 bucket) at 50/s. Seen first at 695 (250 so far),
    // then at 710 (1000 so far).
    const first = { at: 695, total: 250 };
    const at710 = [bucket(660, { rate: 1000 / 60 })];
    expect(currentRate(at710, 710, W, { asOf: 710, first })).toBeCloseTo(50);
    // Dividing by the 50 s since the bucket's start reads 20/s: the ramp.
    expect(currentRate(at710, 710, W)).toBeCloseTo(20);
    // Too soon after first seen to tell: nothing rather than a wrong low number.
    expect(currentRate([bucket(660, { rate: 500 / 60 })], 700, W, { asOf: 700, first })).toBeNull();
  });

  it("draws the open bucket at the same rate as the stat card, never as a zero", () => {
    const buckets = [bucket(600, { rate: 10 }), bucket(660, { rate: 5 })];
    expect(chartRate(bucket(660, { rate: 5 }), buckets, 690, W, { asOf: 690 })).toBeCloseTo(10);
    expect(chartRate(bucket(660, { rate: 0.5 }), [bucket(600, { rate: 10 }), bucket(660, { rate: 0.5 })], 665, W)).toBe(10);
    expect(chartRate(bucket(600, { rate: 10 }), buckets, 665, W)).toBe(10);
  });

  it("counts the open bucket's data from when the previous bucket's data ended (exporters send every few seconds)", () => {
    // An exporter sends every 10 s: its last point of the 600 minute came at 651, so the 660 bucket's
    // first point (at 661) holds the requests since 651. At 690 (last growth seen at 681) it holds
    // 30 s of data at 10/s = 300: rate 5 (300 / 60 s).
    const buckets = [bucket(600, { rate: 10 }), bucket(660, { rate: 5 })];
    expect(currentRate(buckets, 690, W, { asOf: 681, from: 651 })).toBeCloseTo(10);
    // Counting from the minute's start (21 s) would read 14.3/s.
    expect(currentRate(buckets, 690, W, { asOf: 681 })).toBeCloseTo(300 / 21);
  });
});
