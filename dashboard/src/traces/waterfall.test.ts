import { describe, expect, it } from "vitest";
import type { TraceSpan } from "./model";
import { buildWaterfall } from "./waterfall";

function span(spanId: string, parentSpanId: string | null, startMs: number, durationMs: number, service = "s"): TraceSpan {
  return { spanId, parentSpanId, service, name: spanId, kind: "internal", startMs, durationMs, error: false, attributes: {}, critical: false };
}

describe("buildWaterfall", () => {
  it("lists parents before their children, children by start time, with depth and bar placement", () => {
    const w = buildWaterfall([
      span("late", "root", 1050, 50, "db"),
      span("root", null, 1000, 100, "api"),
      span("early", "root", 1010, 20, "auth"),
      span("leaf", "early", 1015, 5, "auth"),
    ]);
    expect(w.rows.map((r) => [r.span.spanId, r.depth])).toEqual([
      ["root", 0],
      ["early", 1],
      ["leaf", 2],
      ["late", 1],
    ]);
    expect(w.durationMs).toBe(100);
    const late = w.rows[3];
    expect(late?.left).toBeCloseTo(0.5);
    expect(late?.width).toBeCloseTo(0.5);
    expect(w.services).toEqual(["api", "auth", "db"]);
  });

  it("shows spans whose parent is missing or that form a parent loop, once each", () => {
    const w = buildWaterfall([span("a", "b", 0, 1), span("b", "a", 0, 1), span("orphan", "gone", 2, 1)]);
    expect(w.rows.map((r) => r.span.spanId).sort()).toEqual(["a", "b", "orphan"]);
  });

  it("handles an empty trace", () => {
    expect(buildWaterfall([])).toMatchObject({ rows: [], durationMs: 0, errors: 0 });
  });
});
