import { describe, expect, it } from "vitest";
import type { Bucket } from "../types";
import { busiest, overviewCharts, overviewStats } from "./overview";
import type { ServiceBuckets } from "./service-stats";

function bucket(start: number, fields: Partial<Bucket>): Bucket {
  return { start, count: 1, sum: 0, min: null, max: null, avg: null, p50: null, p95: null, p99: null, rate: 0, ...fields };
}

function service(fields: Partial<ServiceBuckets>): ServiceBuckets {
  return {
    latency: [],
    latencyUnit: "ms",
    requests: [],
    errors: [],
    hasErrorsMetric: true,
    cpu: [],
    cpuUnit: "%",
    memory: [],
    memoryUnit: "%",
    ...fields,
  };
}

// `now` is past the end of the 600 bucket, so rates are read as they are (no scaling).
const NOW = 700;

describe("overviewStats", () => {
  it("names the services whose throughput comes from spans (they have no request metrics)", () => {
    const red = { requests: [bucket(600, { rate: 7 })], errors: [], duration: [], durationUnit: "ms" };
    const services = new Map([
      ["api", service({ requests: [bucket(600, { rate: 100 })] })],
      ["worker", service({ red })],
    ]);
    const stats = overviewStats(services, NOW, 60, { active: 0, critical: 0 });
    expect(stats.throughput).toBeCloseTo(107);
    expect(stats.throughputFromSpans).toEqual(["worker"]);
  });

  it("adds throughput, weights error ratios by traffic and names the slowest service", () => {
    const services = new Map([
      ["api", service({ requests: [bucket(600, { rate: 100 })], errors: [bucket(600, { rate: 10 })], latency: [bucket(600, { p95: 40 })] })],
      ["db", service({ requests: [bucket(600, { rate: 300 })], errors: [], latency: [bucket(600, { p95: 0.2 })], latencyUnit: "s" })],
    ]);
    const stats = overviewStats(services, NOW, 60, { active: 3, critical: 1 });
    expect(stats.throughput).toBeCloseTo(400);
    // 10 failed of 400.
    expect(stats.errorRatio).toBeCloseTo(0.025);
    expect(stats.p95LatencyMs).toBeCloseTo(200);
    expect(stats.slowestService).toBe("db");
    expect(stats).toMatchObject({ activeAlerts: 3, criticalAlerts: 1, throughputFromSpans: [] });
  });

  it("shows nothing rather than zero when no service reports", () => {
    const stats = overviewStats(new Map(), NOW, 60, { active: 0, critical: 0 });
    expect(stats).toMatchObject({ throughput: null, p95LatencyMs: null, errorRatio: null });
  });
});

describe("overviewCharts", () => {
  const services = new Map([
    ["a", service({ requests: [bucket(540, { rate: 1 }), bucket(600, { rate: 2 })], latency: [bucket(600, { p95: 5 })] })],
    ["b", service({ requests: [bucket(600, { rate: 10 })], errors: [bucket(600, { rate: 3 })] })],
    ["c", service({ requests: [bucket(540, { rate: 4 })], errors: [bucket(540, { rate: 1 }), bucket(600, { rate: 1 })] })],
  ]);

  it("stacks throughput so each band is one service's rate, and groups the rest", () => {
    const charts = overviewCharts(services, NOW, 60, 2);
    // The two busiest (b, c) by name, the rest grouped.
    expect(charts.throughput.labels).toEqual(["b", "c", "1 other"]);
    expect(charts.throughput.columns).toEqual([[540, 600], [null, 10], [4, null], [1, 2]]);
    // A service without a bucket is a gap in its band, never a zero; the bands above rest on the rest.
    expect(charts.throughput.stacked).toEqual([[540, 600], [null, 10], [4, null], [5, 12]]);
  });

  it("draws a service whose new minute has not arrived yet at its current reading in the newest column", () => {
    const services = new Map([
      ["a", service({ requests: [bucket(540, { rate: 10 }), bucket(600, { rate: 2 })] })],
      ["b", service({ requests: [bucket(540, { rate: 20 })] })],
    ]);
    // 605: a's 600 bucket is 5 s old (its previous minute stands in: 10/s); b has none yet (20/s).
    const charts = overviewCharts(services, 605, 60);
    expect(charts.throughput.columns).toEqual([[540, 600], [10, 10], [20, 20]]);
    expect(charts.throughput.stacked.at(-1)?.at(-1)).toBe(30);
    expect(overviewStats(services, 605, 60, { active: 0, critical: 0 }).throughput).toBe(30);
  });

  it("sums errors of every service per bucket", () => {
    expect(overviewCharts(services, NOW, 60).errors.columns).toEqual([[540, 600], [1, 4]]);
  });

  it("draws p95 lines for the busiest services only, in a stable (name) order", () => {
    expect(busiest(services, 3)).toEqual(["b", "c", "a"]);
    expect(overviewCharts(services, NOW, 60, 2).latency.labels).toEqual(["b", "c"]);
    expect(overviewCharts(services, NOW, 60, 3).latency.labels).toEqual(["a", "b", "c"]);
  });
});
