import { describe, expect, it } from "vitest";

import { applyEvent, healthFromScore, leaseLeft, scoreExplanation, scoreHistoryColumns, serviceRows } from "./model";

const services = {
  services: [
    {
      name: "payments",
      series: 4,
      last_seen: 100,
      instances: [
        {
          service: "payments", instance: "p-1", version: "1.2.0", host: null, sources: ["registered"],
          metadata: { zone: "eu-1" }, health_url: "http://10.0.0.1/healthz", metrics_url: null,
          first_seen: 10, last_seen: 90, lease: { ttl_seconds: 30, expires_at: 120 },
        },
      ],
      versions: ["1.2.0"],
      sources: ["registered"],
      health: { score: 100, status: "healthy", reasons: [], inputs: { probe_availability: 1 } },
    },
    { name: "api", series: 2, last_seen: 100, instances: [], versions: [], sources: [], health: null },
  ],
};

describe("services page rows", () => {
  it("reads instances, versions, sources and scores from /api/services", () => {
    const rows = serviceRows(services);
    expect(rows.map((r) => r.service)).toEqual(["api", "payments"]);
    expect(rows[0]).toMatchObject({ score: null, status: "unknown", instances: [] });
    expect(rows[1]).toMatchObject({ score: 100, status: "healthy", versions: ["1.2.0"], sources: ["registered"] });
    expect(rows[1]?.instances[0]?.lease).toEqual({ ttl_seconds: 30, expires_at: 120 });
  });

  it("applies live registry and health events", () => {
    const rows = serviceRows(services);
    expect(applyEvent(rows, { type: "health", service: "payments", score: 40, status: "down", reasons: ["0% of health probes succeeded"] })).toBe(true);
    expect(rows[1]).toMatchObject({ score: 40, status: "down" });
    expect(applyEvent(rows, { type: "registry", action: "expired", service: "payments", instance: "p-1", source: "registered", current: null })).toBe(true);
    expect(rows[1]?.instances).toEqual([]);
    expect(rows[1]?.sources).toEqual([]);
    const discovered = { service: "cart", instance: "c-1", version: "3.0", sources: ["otlp"], first_seen: 1, last_seen: 2, lease: null };
    expect(applyEvent(rows, { type: "registry", action: "discovered", service: "cart", instance: "c-1", source: "otlp", current: discovered })).toBe(true);
    expect(rows.map((r) => r.service)).toEqual(["api", "cart", "payments"]);
    expect(rows[1]).toMatchObject({ versions: ["3.0"], sources: ["otlp"] });
    expect(applyEvent(rows, { type: "metrics_update" })).toBe(false);
  });
});

describe("node health from the score", () => {
  it("follows the documented bounds and never calls silence healthy", () => {
    expect(healthFromScore(null)).toBe("no_data");
    expect(healthFromScore({ score: null, status: "unknown", reasons: [] })).toBe("no_data");
    expect(healthFromScore({ score: 80, status: "healthy", reasons: [] })).toBe("ok");
    expect(healthFromScore({ score: 79, status: "degraded", reasons: [] })).toBe("degraded");
    expect(healthFromScore({ score: 50, status: "degraded", reasons: [] })).toBe("degraded");
    expect(healthFromScore({ score: 49, status: "down", reasons: [] })).toBe("failing");
  });

  it("shows the lease left", () => {
    expect(leaseLeft(null, 0)).toBe("—");
    expect(leaseLeft({ ttl_seconds: 30, expires_at: 100 }, 70)).toBe("30 s");
    expect(leaseLeft({ ttl_seconds: 3600, expires_at: 3700 }, 100)).toBe("60 min");
    expect(leaseLeft({ ttl_seconds: 30, expires_at: 100 }, 100)).toBe("expired");
  });
});

describe("live health messages", () => {
  it("parse into a score for the node", async () => {
    const { parseServerMessage } = await import("../protocol");
    const message = parseServerMessage(
      JSON.stringify({ type: "health", service: "payments", score: 40, status: "down", reasons: ["x"], inputs: { probe_availability: 0.4, probe_p95_s: 0.2, last_telemetry: 1, firing_critical: 0, firing_warning: 0, pending: 0 }, at: 1 }),
    );
    expect(message).toMatchObject({ type: "health", service: "payments", health: { score: 40, status: "down" } });
    expect(parseServerMessage(JSON.stringify({ type: "health", score: 40 }))).toBeNull();
  });
});

describe("the registry through the contract", () => {
  const instance = {
    service: "payments",
    instance: "p-1",
    version: "1.2.0",
    host: "h1",
    sources: ["registered"],
    metadata: { zone: "a" },
    health_url: "http://127.0.0.1:9/healthz",
    metrics_url: "http://127.0.0.1:9/metrics",
    first_seen: 10,
    last_seen: 20,
    lease: { ttl_seconds: 30, expires_at: 50 },
  };

  it("keeps the instances of GET /api/services for the Services page", async () => {
    const { QueryClient } = await import("../api");
    const body = {
      services: [{ name: "payments", series: 0, last_seen: 20, instances: [instance], versions: ["1.2.0"], sources: ["registered"], health: null }],
    };
    const fetchFn = (async () => new Response(JSON.stringify(body), { status: 200 })) as unknown as typeof fetch;
    const rows = serviceRows({ services: await new QueryClient("", fetchFn).serviceViews() });
    expect(rows).toHaveLength(1);
    expect(rows[0]?.instances).toEqual([instance]);
    expect(rows[0]?.versions).toEqual(["1.2.0"]);
  });

  it("passes a registry event as validated, and drops one the contract forbids", async () => {
    const { parseServerMessage } = await import("../protocol");
    const event = { type: "registry", action: "registered", service: "payments", instance: "p-1", source: "registered", current: instance, at: 20 };
    expect(parseServerMessage(JSON.stringify(event))).toEqual({ type: "registry", event });
    expect(parseServerMessage(JSON.stringify({ ...event, action: "exploded" }))).toBeNull();
    expect(parseServerMessage(JSON.stringify({ ...event, current: { service: "payments" } }))).toBeNull();
  });
});

describe("why a score is what it is", () => {
  it("lists the score, the reasons and every input", () => {
    const lines = scoreExplanation(
      {
        score: 42,
        status: "down",
        reasons: ["60% of health probes succeeded", "1 critical alert firing"],
        inputs: { probe_availability: 0.6, probe_p95_s: 0.25, last_telemetry: 90, firing_critical: 1, firing_warning: 0, pending: 2 },
      },
      100,
    );
    expect(lines[0]).toBe("Health score 42 (down)");
    expect(lines).toContain("• 60% of health probes succeeded");
    expect(lines.at(-1)).toBe(
      "Inputs: probes 60 % ok · probe p95 250 ms · last telemetry 10 s ago · alerts: 1 critical, 0 warning firing, 2 pending",
    );
  });

  it("says unknown and silent plainly, never healthy", () => {
    const lines = scoreExplanation({ score: null, status: "unknown", reasons: [], inputs: { last_telemetry: null } }, 100);
    expect(lines[0]).toContain("unknown");
    expect(lines.at(-1)).toBe("Inputs: no telemetry · no alerts");
    expect(scoreExplanation(null, 100)[0]).toContain("No health score yet");
  });
});

describe("score history chart", () => {
  it("puts each service's bucket averages on one x axis, gaps as null", () => {
    const columns = scoreHistoryColumns(
      [
        { service: "a", buckets: [{ start: 60, avg: 100, count: 6 }, { start: 180, avg: 40, count: 6 }] },
        { service: "b", buckets: [{ start: 120, avg: 75.5, count: 3 }, { start: 120 + 60 * 10, avg: 1, count: 1 }] },
      ],
      60,
      240,
      60,
    );
    expect(columns).toEqual([
      [60, 120, 180],
      [100, null, 40],
      [null, 75.5, null],
    ]);
  });

  it("drops empty and non-finite buckets", () => {
    const columns = scoreHistoryColumns(
      [{ service: "a", buckets: [{ start: 0, avg: 5, count: 0 }, { start: 60, avg: Number.NaN, count: 2 }] }],
      0,
      120,
      60,
    );
    expect(columns).toEqual([[0, 60], [null, null]]);
  });
});
