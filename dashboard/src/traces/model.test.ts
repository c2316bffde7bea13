import { describe, expect, it } from "vitest";
import { criticalPath, parseTraceDetail, parseTraceEvent, parseTraceSummaries, type TraceSpan } from "./model";

function span(spanId: string, parentSpanId: string | null, startMs: number, durationMs: number): TraceSpan {
  return { spanId, parentSpanId, service: "s", name: spanId, kind: "internal", startMs, durationMs, error: false, attributes: {}, critical: false };
}

describe("parseTraceDetail", () => {
  it("flattens a span tree, converting nanoseconds to ms and keeping the server's critical path", () => {
    const detail = parseTraceDetail(
      {
        trace_id: "abc",
        spans: [
          {
            span_id: "r",
            service: "api",
            name: "GET /orders",
            kind: "server",
            start_unix_nano: "1764000000000000000",
            end_unix_nano: "1764000000050000000",
            status: "ok",
            critical: true,
            children: [
              { span_id: "c", service: "auth", name: "verify", start_unix_nano: 1764000000001000000, end_unix_nano: 1764000000011000000, status: "error" },
            ],
          },
        ],
      },
      "abc",
    );
    expect(detail.traceId).toBe("abc");
    expect(detail.spans.map((s) => [s.spanId, s.parentSpanId, s.critical, s.error])).toEqual([
      ["r", null, true, false],
      ["c", "r", false, true],
    ]);
    expect(detail.spans[0]?.durationMs).toBeCloseTo(50);
    expect(detail.spans[1]?.durationMs).toBeCloseTo(10, 3);
  });

  it("computes the critical path when the server did not mark one", () => {
    const detail = parseTraceDetail(
      {
        spans: [
          { span_id: "r", start_ms: 0, duration_ms: 100 },
          { span_id: "a", parent_span_id: "r", start_ms: 5, duration_ms: 30 },
          { span_id: "b", parent_span_id: "r", start_ms: 40, duration_ms: 55 },
        ],
      },
      "t",
    );
    expect(detail.spans.filter((s) => s.critical).map((s) => s.spanId)).toEqual(["r", "a", "b"]);
  });

  it("drops spans without an id or start instead of failing", () => {
    const detail = parseTraceDetail({ spans: [{ name: "x" }, { span_id: "ok", start_ms: 1 }, 7, null] }, "t");
    expect(detail.spans.map((s) => s.spanId)).toEqual(["ok"]);
    expect(parseTraceDetail("nonsense", "t")).toEqual({ traceId: "t", spans: [] });
  });
});

describe("criticalPath", () => {
  it("follows what the parent waited for, not a parallel call that finished earlier", () => {
    // cache (5–20) and db (5–60) run in parallel; then queue (60–90). The cache call is off the path.
    const spans = [span("root", null, 0, 100), span("cache", "root", 5, 15), span("db", "root", 5, 55), span("queue", "root", 60, 30), span("sql", "db", 10, 45)];
    expect([...criticalPath(spans)].sort()).toEqual(["db", "queue", "root", "sql"]);
  });

  it("is empty for no spans and survives spans whose parent is missing", () => {
    expect(criticalPath([]).size).toBe(0);
    expect(criticalPath([span("orphan", "gone", 0, 5)]).has("orphan")).toBe(true);
  });
});

describe("parseTraceEvent", () => {
  it("reads hops with offsets and marks the trace failed when a hop failed", () => {
    const event = parseTraceEvent(
      {
        type: "trace",
        trace_id: "t1",
        root_service: "api",
        duration_ms: 80,
        hops: [
          { from: "api", to: "auth", offset_ms: 2, duration_ms: 10 },
          { from: "api", to: "database", offset_ms: 15, duration_ms: 40, error: true },
          { from: "api" },
        ],
      },
      5000,
    );
    expect(event).toMatchObject({ traceId: "t1", rootService: "api", startMs: 5000, durationMs: 80, error: true });
    expect(event?.hops).toEqual([
      { from: "api", to: "auth", offsetMs: 2, durationMs: 10, error: false },
      { from: "api", to: "database", offsetMs: 15, durationMs: 40, error: true },
    ]);
  });

  it("derives hop offsets from absolute times", () => {
    const event = parseTraceEvent(
      { trace_id: "t", start_ms: 1000, hops: [{ from: "a", to: "b", start_ms: 1012, end_ms: 1030 }] },
      0,
    );
    expect(event?.hops[0]).toMatchObject({ offsetMs: 12, durationMs: 18 });
    expect(event?.durationMs).toBe(30);
  });

  it("rejects an event without a trace id", () => {
    expect(parseTraceEvent({ hops: [] }, 0)).toBeNull();
  });
});

describe("parseTraceSummaries", () => {
  it("reads a service's recent traces", () => {
    const list = parseTraceSummaries({
      traces: [
        { trace_id: "a", root_service: "api", root_name: "GET /x", start_unix_nano: 2e18, duration_ms: 12.5, span_count: 9, error: false, services: ["api", "auth"] },
        { nope: true },
      ],
    });
    expect(list).toEqual([
      { traceId: "a", rootService: "api", rootName: "GET /x", startMs: 2e12, durationMs: 12.5, spanCount: 9, error: false, services: ["api", "auth"] },
    ]);
  });
});
