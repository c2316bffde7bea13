import { describe, expect, it } from "vitest";
import { DEFAULT_LAYOUT, layoutGraph } from "../graph/layout";
import { edgeLines, edgeText, nearestInDirection, nodeLabel, nodeLines, placeLabels, type PipelineNode } from "./pipeline";

function node(fields: Partial<PipelineNode>): PipelineNode {
  return { id: "api", name: "api", kind: "service", virtual: false, rate: 12.5, errorRatio: 0.012, p95Ms: 40, health: "ok", alerts: 0, ...fields };
}

describe("node text", () => {
  it("says health in words, not only in colour", () => {
    expect(nodeLines(node({ health: "degraded" }))[1]).toBe("p95 40 ms · degraded");
    expect(nodeLabel(node({ health: "failing", alerts: 2 }))).toBe("api, failing, 12.5/s requests, p95 40 ms, 1.2 % errors, 2 active alerts");
  });

  it("says why its health score is what it is", () => {
    const why = ["Health score 42 (down)", "• 60% of health probes succeeded", "Inputs: probes 60 % ok · no alerts"];
    expect(nodeLabel(node({ health: "failing", why }))).toBe(
      "api, failing, 12.5/s requests, p95 40 ms, 1.2 % errors. Health score 42 (down); • 60% of health probes succeeded; Inputs: probes 60 % ok · no alerts",
    );
    expect(nodeLabel(node({ why: [] }))).toBe("api, healthy, 12.5/s requests, p95 40 ms, 1.2 % errors");
  });

  it("names what a virtual node is", () => {
    expect(nodeLines(node({ virtual: true, kind: "database", name: "postgresql" }))[0]).toBe("database · 12.5/s");
  });

  it("shows a dash for numbers it does not have", () => {
    expect(nodeLines(node({ rate: null, errorRatio: null, p95Ms: null, health: "no_data" }))).toEqual(["—", "p95 — · no data"]);
  });
});

describe("edge text", () => {
  it("puts throughput, errors and p95 on two short lines, and all of it in the tooltip", () => {
    const edge = { source: "a", target: "b", kind: "call", rate: 120, errorRatio: 0.02, p95Ms: 8, health: "degraded" as const };
    expect(edgeLines(edge)).toEqual(["120/s · 2 %", "p95 8 ms"]);
    expect(edgeText(edge)).toBe("120/s, p95 8 ms, 2 % errors");
    expect(edgeLines({ ...edge, errorRatio: 0 })[0]).toBe("120/s");
  });
});

describe("placeLabels", () => {
  it("never puts a label on a node or on another label", () => {
    const ids = ["api", "auth", "cache", "db", "queue"];
    const edges = [
      { source: "api", target: "auth" },
      { source: "api", target: "cache" },
      { source: "api", target: "db" },
      { source: "api", target: "queue" },
      { source: "cache", target: "db" },
    ];
    for (const direction of ["LR", "TB"] as const) {
      const layout = layoutGraph(ids, edges, { ...DEFAULT_LAYOUT, direction });
      const spots = placeLabels(layout, direction, DEFAULT_LAYOUT.nodeWidth, DEFAULT_LAYOUT.nodeHeight);
      const boxes = spots.flatMap((p) => (p === null ? [] : [{ x: p.x - 52, y: p.y - 14, w: 104, h: 28 }]));
      expect(boxes.length).toBeGreaterThan(0);
      for (const box of boxes) {
        for (const n of layout.nodes.values()) {
          const apart =
            box.x + box.w <= n.x || n.x + DEFAULT_LAYOUT.nodeWidth <= box.x || box.y + box.h <= n.y || n.y + DEFAULT_LAYOUT.nodeHeight <= box.y;
          expect(apart, `${direction}: label over ${n.id}`).toBe(true);
        }
      }
      for (let i = 0; i < boxes.length; i += 1) {
        for (let j = i + 1; j < boxes.length; j += 1) {
          const a = boxes[i];
          const b = boxes[j];
          if (a === undefined || b === undefined) continue;
          expect(a.x + a.w <= b.x || b.x + b.w <= a.x || a.y + a.h <= b.y || b.y + b.h <= a.y).toBe(true);
        }
      }
    }
  });
});

describe("nearestInDirection", () => {
  const layout = layoutGraph(["api", "auth", "cache", "db"], [
    { source: "api", target: "auth" },
    { source: "api", target: "cache" },
    { source: "cache", target: "db" },
  ]);

  it("moves right to a callee and back left to the caller", () => {
    const right = nearestInDirection(layout, "api", [1, 0]);
    expect(["auth", "cache"]).toContain(right);
    expect(nearestInDirection(layout, right ?? "", [-1, 0])).toBe("api");
  });

  it("moves up and down within a layer", () => {
    const auth = layout.nodes.get("auth");
    const cache = layout.nodes.get("cache");
    const [upper, lower] = (auth?.y ?? 0) < (cache?.y ?? 0) ? ["auth", "cache"] : ["cache", "auth"];
    expect(nearestInDirection(layout, upper, [0, 1])).toBe(lower);
    expect(nearestInDirection(layout, lower, [0, -1])).toBe(upper);
  });

  it("stays put at the edge of the graph", () => {
    expect(nearestInDirection(layout, "api", [-1, 0])).toBeNull();
    expect(nearestInDirection(layout, "ghost", [1, 0])).toBeNull();
  });
});
