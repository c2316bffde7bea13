import { describe, expect, it } from "vitest";
import * as v from "valibot";
import { contractViolation, TraceEvent, TraceList, TraceView } from "../contract";
import { parseTraceDetail, parseTraceEvent, parseTraceSummaries } from "./model";

const summary = {
  trace_id: "abc",
  root_service: "api",
  root_name: "GET /orders",
  start_unix_nano: "1764000000000000000",
  duration_ms: 50,
  span_count: 2,
  error: true,
  services: ["api", "auth"],
};

function span(fields: Record<string, unknown>) {
  return {
    parent_span_id: null,
    depth: 0,
    kind: "internal",
    status: "ok",
    error: false,
    critical: false,
    critical_ms: 0,
    attributes: {},
    ...fields,
  };
}

describe("parseTraceDetail", () => {
  it("reads the span list, converting nanoseconds to ms and keeping the server's critical path", () => {
    const body = v.parse(TraceView, {
      ...summary,
      critical_path: ["r"],
      critical_sections: [],
      spans: [
        span({ span_id: "r", service: "api", name: "GET /orders", kind: "server", start_unix_nano: "1764000000000000000", end_unix_nano: "1764000000050000000", duration_ms: 50, critical: true }),
        span({ span_id: "c", parent_span_id: "r", depth: 1, service: "auth", name: "verify", status: "error", error: true, start_unix_nano: "1764000000001000000", end_unix_nano: "1764000000011000000", duration_ms: 10, attributes: { "http.method": "GET" } }),
      ],
    });
    const detail = parseTraceDetail(body, "abc");
    expect(detail.traceId).toBe("abc");
    expect(detail.spans.map((s) => [s.spanId, s.parentSpanId, s.critical, s.error])).toEqual([
      ["r", null, true, false],
      ["c", "r", false, true],
    ]);
    expect(detail.spans[0]?.startMs).toBeCloseTo(1764000000000, 0);
    expect(detail.spans[1]?.durationMs).toBe(10);
    expect(detail.spans[1]?.attributes).toEqual({ "http.method": "GET" });
  });

  it("is refused at the boundary when spans come as a tree or without ids", () => {
    const tree = { ...summary, critical_path: [], critical_sections: [], spans: [{ span_id: "r", children: [] }] };
    expect(contractViolation(TraceView, tree)).not.toBeNull();
    expect(contractViolation(TraceView, { ...summary, critical_path: [], critical_sections: [], spans: [span({ name: "x" })] })).toMatch(/span_id/);
    expect(contractViolation(TraceView, "nonsense")).not.toBeNull();
  });
});

describe("parseTraceEvent", () => {
  it("reads hops with offsets and marks the trace failed when a hop failed", () => {
    const hop = { kind: "call", to_kind: "service", error: false };
    const event = parseTraceEvent(
      v.parse(TraceEvent, {
        trace_id: "t1",
        root_service: "api",
        root_name: null,
        start_unix_ms: 5000,
        duration_ms: 80,
        error: false,
        reason: "quota",
        hops: [
          { ...hop, from: "api", to: "auth", offset_ms: 2, duration_ms: 10 },
          { ...hop, from: "api", to: "database", to_kind: "database", offset_ms: 15, duration_ms: 40, error: true },
        ],
      }),
    );
    expect(event).toMatchObject({ traceId: "t1", rootService: "api", rootName: "", startMs: 5000, durationMs: 80, error: true });
    expect(event.hops).toEqual([
      { from: "api", to: "auth", offsetMs: 2, durationMs: 10, error: false },
      { from: "api", to: "database", offsetMs: 15, durationMs: 40, error: true },
    ]);
  });

  it("is refused at the boundary without a trace id or with hops in absolute times", () => {
    expect(contractViolation(TraceEvent, { hops: [] })).toMatch(/trace_id/);
    const absolute = { trace_id: "t", root_service: "a", start_unix_ms: 1000, duration_ms: 30, error: false, hops: [{ from: "a", to: "b", start_ms: 1012, end_ms: 1030 }] };
    expect(contractViolation(TraceEvent, absolute)).not.toBeNull();
  });
});

describe("parseTraceSummaries", () => {
  it("reads a service's recent traces", () => {
    const list = parseTraceSummaries(v.parse(TraceList, { service: "api", traces: [{ ...summary, trace_id: "a", start_unix_nano: "2000000000000000000", duration_ms: 12.5, span_count: 9, error: false }] }));
    expect(list).toEqual([
      { traceId: "a", rootService: "api", rootName: "GET /orders", startMs: 2e12, durationMs: 12.5, spanCount: 9, error: false, services: ["api", "auth"] },
    ]);
    expect(contractViolation(TraceList, { service: "api", traces: [{ nope: true }] })).not.toBeNull();
  });
});
