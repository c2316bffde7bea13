import { describe, expect, it } from "vitest";
import { spansText, traceRows } from "./service-page";

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
      { traceId: "b", operation: "api", startMs: 2000, durationMs: 30, spans: 1, spansAtLeast: true, error: true },
      { traceId: "a", operation: "GET /a", startMs: 1000, durationMs: 12, spans: 7, error: false },
    ]);
    expect(traceRows([], [{ traceId: "x", rootService: "s", rootName: "", startMs: 0, durationMs: 1, error: false, hops: [] }], 0)).toEqual([]);
  });

  it("shows a live trace's span count as a lower bound, never a dash", () => {
    const hop = { from: "api", to: "db", offsetMs: 1, durationMs: 2, error: false };
    const [live] = traceRows([], [{ traceId: "c", rootService: "api", rootName: "GET /c", startMs: 5, durationMs: 9, error: false, hops: [hop, hop] }], 10);
    expect(live === undefined ? "" : spansText(live)).toBe("≥ 3");
    expect(spansText({ traceId: "d", operation: "", startMs: null, durationMs: null, spans: 7, error: false })).toBe("7");
  });
});
