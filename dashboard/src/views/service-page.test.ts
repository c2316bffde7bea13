import { describe, expect, it } from "vitest";
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
