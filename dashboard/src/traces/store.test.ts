import { describe, expect, it } from "vitest";
import type { TraceEvent } from "./model";
import { TraceStore } from "./store";

function trace(traceId: string, hops: [string, string][] = [["api", "auth"]]): TraceEvent {
  return {
    traceId,
    rootService: hops[0]?.[0] ?? "api",
    rootName: "GET /",
    startMs: 0,
    durationMs: 10,
    error: false,
    hops: hops.map(([from, to]) => ({ from, to, offsetMs: 0, durationMs: 1, error: false })),
  };
}

describe("TraceStore", () => {
  it("keeps only the newest traces, up to its capacity", () => {
    const store = new TraceStore(100);
    for (let i = 0; i < 250; i += 1) store.add(trace(`t${i}`));
    expect(store.size).toBe(100);
    expect(store.all()[0]?.traceId).toBe("t249");
    expect(store.all().at(-1)?.traceId).toBe("t150");
  });

  it("replaces a repeated trace instead of keeping it twice", () => {
    const store = new TraceStore(10);
    expect(store.add(trace("a"))).toBe(true);
    store.add(trace("b"));
    expect(store.add(trace("a"))).toBe(false);
    expect(store.all().map((t) => t.traceId)).toEqual(["a", "b"]);
  });

  it("finds the traces that passed through a service", () => {
    const store = new TraceStore(10);
    store.add(trace("1", [["api", "auth"]]));
    store.add(trace("2", [["api", "database"]]));
    store.add(trace("3", [["queue", "worker"]]));
    expect(store.involving("database").map((t) => t.traceId)).toEqual(["2"]);
    expect(store.involving("api").map((t) => t.traceId)).toEqual(["2", "1"]);
    expect(store.involving("api", 1)).toHaveLength(1);
  });
});
