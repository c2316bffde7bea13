import { describe, expect, it } from "vitest";
import type { LiveUpdate, MetricHistory } from "../types";
import { TelemetryState } from "./telemetry";

function live(fields: Partial<LiveUpdate>): LiveUpdate {
  return {
    series_id: "s1",
    service: "api",
    metric: "http.server.requests",
    attributes: {},
    kind: "counter",
    unit: "{request}",
    resolution: "1m",
    start: 600,
    count: 1,
    sum: 60,
    min: 60,
    max: 60,
    avg: 60,
    p50: null,
    p95: null,
    p99: null,
    rate: 1,
    ...fields,
  };
}

function history(buckets: { start: number; count: number; rate?: number; p95?: number }[]): MetricHistory {
  return {
    service: "api",
    metric: "http.server.requests",
    kind: "counter",
    unit: "{request}",
    resolution: "1m",
    buckets: buckets.map((b) => ({
      start: b.start,
      count: b.count,
      sum: (b.rate ?? 0) * 60,
      min: null,
      max: null,
      avg: null,
      p50: null,
      p95: b.p95 ?? null,
      p99: null,
      rate: b.rate ?? 0,
    })),
  };
}

const state = () => new TelemetryState({ resolution: "1m", retentionSeconds: 3600 });

describe("TelemetryState", () => {
  it("replaces a series' bucket with each update (totals, not increments)", () => {
    const s = state();
    s.applyUpdates([live({ count: 1, rate: 1 })]);
    s.applyUpdates([live({ count: 3, rate: 2.5 })]);
    expect(s.buckets("api", "http.server.requests")).toMatchObject([{ start: 600, count: 3, rate: 2.5 }]);
  });

  it("merges the series of one metric into one line", () => {
    const s = state();
    s.applyUpdates([
      live({ series_id: "2xx", count: 4, rate: 3 }),
      live({ series_id: "5xx", count: 4, rate: 0.5 }),
      live({ series_id: "2xx", start: 660, count: 1, rate: 2 }),
    ]);
    expect(s.buckets("api", "http.server.requests")).toMatchObject([
      { start: 600, count: 8, rate: 3.5 },
      { start: 660, count: 1, rate: 2 },
    ]);
  });

  it("keeps services and metrics apart", () => {
    const s = state();
    s.applyUpdates([live({ service: "auth", rate: 7 }), live({ metric: "http.server.errors", rate: 0.1 })]);
    expect(s.buckets("auth", "http.server.requests")).toMatchObject([{ rate: 7 }]);
    expect(s.buckets("api", "http.server.errors")).toMatchObject([{ rate: 0.1 }]);
    expect(s.buckets("api", "http.server.requests")).toEqual([]);
    expect([...s.servicesSeen().keys()].sort()).toEqual(["api", "auth"]);
  });

  it("ignores updates at other resolutions", () => {
    const s = state();
    s.applyUpdates([live({ resolution: "5m", start: 300 }), live({ resolution: "1h", start: 0 })]);
    expect(s.buckets("api", "http.server.requests")).toEqual([]);
  });

  it("combines history with live buckets, taking the more complete one per start", () => {
    const s = state();
    s.setHistory(history([{ start: 540, count: 50, rate: 5 }, { start: 600, count: 20, rate: 2, p95: 9 }]));
    s.applyUpdates([live({ start: 600, count: 10, rate: 1 })]);
    expect(s.buckets("api", "http.server.requests")).toMatchObject([
      { start: 540, count: 50 },
      { start: 600, count: 20, p95: 9 },
    ]);
    s.applyUpdates([live({ start: 600, count: 25, rate: 2.5 }), live({ start: 660, count: 2 })]);
    expect(s.buckets("api", "http.server.requests")).toMatchObject([
      { start: 540, count: 50 },
      { start: 600, count: 25, rate: 2.5 },
      { start: 660, count: 2 },
    ]);
  });

  it("shows live counts with the server's exact quantiles while several series are merged", () => {
    const s = state();
    s.setHistory(history([{ start: 600, count: 10, rate: 1, p95: 175 }]));
    s.applyUpdates([
      live({ series_id: "a", start: 600, count: 8, rate: 0.8, p95: 100 }),
      live({ series_id: "b", start: 600, count: 4, rate: 0.4, p95: 200 }),
    ]);
    expect(s.buckets("api", "http.server.requests")).toMatchObject([{ start: 600, count: 12, p95: 175 }]);
  });

  it("holds at most an hour of buckets per series however long it runs", () => {
    const s = state();
    for (let minute = 0; minute < 180; minute += 1) {
      s.applyUpdates([live({ series_id: "a", start: minute * 60 }), live({ series_id: "b", start: minute * 60 })]);
    }
    const buckets = s.buckets("api", "http.server.requests");
    expect(buckets).toHaveLength(60);
    expect(buckets[0]?.start).toBe(120 * 60);
    expect(s.size()).toBe(120);
  });

  it("prunes each metric by its own newest bucket, so a skewed service cannot empty the others", () => {
    const s = state();
    s.applyUpdates([live({ service: "api", start: 600 })]);
    s.applyUpdates([live({ service: "skewed", start: 600 + 86_400 })]);
    expect(s.buckets("api", "http.server.requests")).toHaveLength(1);
  });

  it("starts live state over on a snapshot but keeps loaded history", () => {
    const s = state();
    s.setHistory(history([{ start: 540, count: 50, rate: 5 }]));
    s.applyUpdates([live({ series_id: "gone", start: 600, count: 9 }), live({ service: "auth" })]);
    s.replaceWithSnapshot([live({ series_id: "kept", start: 600, count: 4 })]);
    expect(s.buckets("api", "http.server.requests")).toMatchObject([
      { start: 540, count: 50 },
      { start: 600, count: 4 },
    ]);
    expect(s.buckets("auth", "http.server.requests")).toEqual([]);
  });

  it("tells listeners which metric changed", () => {
    const s = state();
    const seen: string[] = [];
    s.onChange((service, metric) => seen.push(`${service}/${metric}`));
    s.applyUpdates([live({}), live({ series_id: "s2" }), live({ service: "db", metric: "m" })]);
    expect(seen.sort()).toEqual(["api/http.server.requests", "db/m"]);
  });

  it("adds reloaded history to what it holds instead of shortening the chart", () => {
    const s = state();
    s.setHistory(history([{ start: 540, count: 5 }, { start: 600, count: 1 }]));
    s.setHistory(history([{ start: 600, count: 9 }, { start: 660, count: 2 }]));
    expect(s.buckets("api", "http.server.requests")).toMatchObject([
      { start: 540, count: 5 },
      { start: 600, count: 9 },
      { start: 660, count: 2 },
    ]);
  });

  it("remembers kind and unit, and forgets history the API no longer has", () => {
    const s = state();
    expect(s.info("api", "http.server.requests")).toBeNull();
    s.setHistory(history([{ start: 540, count: 1 }]));
    expect(s.info("api", "http.server.requests")).toEqual({ kind: "counter", unit: "{request}" });
    s.clearHistory("api", "http.server.requests");
    expect(s.buckets("api", "http.server.requests")).toEqual([]);
  });
});
