import { describe, expect, it } from "vitest";
import type { Alert } from "../alerts/model";
import type { LatencyHeatmap } from "../state/heatmap";
import { stateText, valueText } from "./alert-list";
import { describe as describeHeatmap, rampColor } from "./heatmap";
import { traceRows } from "./service-page";

describe("traceRows", () => {
  it("merges API summaries and live events, newest first, the API's row winning", () => {
    const rows = traceRows(
      [{ traceId: "a", rootService: "api", rootName: "GET /a", startMs: 1000, durationMs: 12, spanCount: 7, error: false, services: [] }],
      [
        { traceId: "a", rootService: "api", rootName: "GET /a", startMs: 1000, durationMs: 12, error: false, hops: [] },
        { traceId: "b", rootService: "api", rootName: "", startMs: 2000, durationMs: 30, error: true, hops: [] },
      ],
      10,
    );
    expect(rows).toEqual([
      { traceId: "b", operation: "api", startMs: 2000, durationMs: 30, spans: null, error: true },
      { traceId: "a", operation: "GET /a", startMs: 1000, durationMs: 12, spans: 7, error: false },
    ]);
    expect(traceRows([], [{ traceId: "x", rootService: "s", rootName: "", startMs: 0, durationMs: 1, error: false, hops: [] }], 0)).toEqual([]);
  });
});

describe("alert text", () => {
  const alert: Alert = {
    fingerprint: "f",
    rule: "latency",
    service: "api",
    severity: "warning",
    state: "firing",
    summary: "",
    value: 612.345,
    unit: "ms",
    threshold: 500,
    startsAt: 1000,
    endsAt: null,
    acknowledged: false,
    acknowledgedBy: null,
    silenced: false,
    labels: {},
    transition: null,
    changedAt: null,
  };

  it("shows the value with the rule's unit and its threshold", () => {
    expect(valueText(alert)).toBe("value 612 ms (threshold 500 ms)");
    expect(valueText({ ...alert, unit: "%", threshold: null, value: 5.25 })).toBe("value 5.25%");
    expect(valueText({ ...alert, value: null })).toBe("");
  });

  it("says how long it has been firing", () => {
    expect(stateText(alert, 1000 + 300)).toBe("firing since 5 min");
    expect(stateText({ ...alert, state: "pending", startsAt: null }, 0)).toBe("pending");
  });
});

describe("heatmap colours and summary", () => {
  it("gets brighter with more requests", () => {
    const brightness = (color: string) => (color.match(/\d+/g) ?? []).map(Number).reduce((a, b) => a + b, 0);
    expect(brightness(rampColor(1))).toBeGreaterThan(brightness(rampColor(0.5)));
    expect(brightness(rampColor(0.5))).toBeGreaterThan(brightness(rampColor(0.01)));
  });

  it("names the busiest latency band in words", () => {
    const heatmap: LatencyHeatmap = {
      starts: [0],
      edges: [1, 10, 100, 1000],
      counts: new Float64Array([5, 90, 5]),
      rows: 3,
      maxCount: 90,
    };
    expect(describeHeatmap(heatmap)).toBe("Most requests took 10 ms–100 ms; the slowest reach about 1 s.");
  });
});
