import { describe, expect, it } from "vitest";
import type { TraceEvent } from "../traces/model";
import { edgePath, MIN_TRAVEL_MS, ParticleQueue, pointAlong } from "./particles";

function trace(hops: [string, string, number, number][], durationMs = 100): TraceEvent {
  return {
    traceId: "t",
    rootService: "api",
    rootName: "",
    startMs: 0,
    durationMs,
    error: false,
    hops: hops.map(([from, to, offsetMs, d]) => ({ from, to, offsetMs, durationMs: d, error: false })),
  };
}

const always = () => true;

describe("ParticleQueue", () => {
  it("replays hops in their order, each travelling long enough to be seen", () => {
    const queue = new ParticleQueue();
    queue.addTrace(trace([["api", "auth", 0, 10], ["api", "db", 50, 40]]), 1000, always);
    const atStart = queue.inFlight(1000);
    expect(atStart.map((p) => p.particle.target)).toEqual(["auth"]);
    expect(atStart[0]?.particle.travelMs).toBeGreaterThanOrEqual(MIN_TRAVEL_MS);
    // The second hop starts later, in slow motion (offset 50 of a 100 ms trace → 600 ms).
    expect(queue.inFlight(1500).map((p) => p.particle.target)).toEqual(["auth"]);
    expect(queue.inFlight(1700).map((p) => p.particle.target)).toEqual(["db"]);
  });

  it("forgets finished dots and reports progress between 0 and 1", () => {
    const queue = new ParticleQueue();
    queue.addTrace(trace([["a", "b", 0, 1]]), 0, always);
    const [mid] = queue.inFlight(MIN_TRAVEL_MS / 2);
    expect(mid?.progress).toBeCloseTo(0.5);
    expect(queue.inFlight(10_000)).toEqual([]);
    expect(queue.pending).toBe(0);
  });

  it("skips hops along edges that are not drawn", () => {
    const queue = new ParticleQueue();
    const added = queue.addTrace(trace([["a", "b", 0, 1], ["a", "ghost", 0, 1]]), 0, (_s, t) => t !== "ghost");
    expect(added).toBe(1);
  });

  it("caps the dots in flight and counts what it dropped", () => {
    const queue = new ParticleQueue(5);
    for (let i = 0; i < 4; i += 1) queue.addTrace(trace([["a", "b", 0, 1], ["b", "c", 0, 1]]), 0, always);
    expect(queue.pending).toBe(5);
    expect(queue.dropped).toBe(3);
  });
});

describe("edge geometry", () => {
  const points = [
    { x: 0, y: 0 },
    { x: 100, y: 50 },
    { x: 200, y: 50 },
  ];

  it("starts at the caller and ends at the callee", () => {
    expect(pointAlong(points, 0, "LR")).toEqual({ x: 0, y: 0 });
    expect(pointAlong(points, 1, "LR")).toEqual({ x: 200, y: 50 });
    expect(pointAlong(points, 0.5, "LR")).toEqual({ x: 100, y: 50 });
  });

  it("moves forward along the flow", () => {
    let previous = -1;
    for (let t = 0; t <= 1; t += 0.05) {
      const { x } = pointAlong(points, t, "LR");
      expect(x).toBeGreaterThanOrEqual(previous);
      previous = x;
    }
  });

  it("draws one curve per segment", () => {
    const d = edgePath(points, "LR");
    expect(d.startsWith("M0,0")).toBe(true);
    expect(d.match(/C/g)).toHaveLength(2);
    expect(d.endsWith("200,50")).toBe(true);
  });
});
