import { describe, expect, it } from "vitest";
import { DEFAULT_LAYOUT, layoutGraph } from "../graph/layout";
import {
  edgeLines,
  edgeText,
  fitTransform,
  nearestInDirection,
  nodeAccessibleName,
  nodeLabel,
  nodeLines,
  nodeWidthFor,
  placeLabels,
  zoomAt,
  type PipelineNode,
} from "./pipeline";

function node(fields: Partial<PipelineNode>): PipelineNode {
  return { id: "api", name: "api", kind: "service", virtual: false, rate: 12.5, errorRatio: 0.012, p95Ms: 40, health: "ok", alerts: 0, ...fields };
}

describe("node text", () => {
  it("says health in words, not only in colour", () => {
    expect(nodeLines(node({ health: "degraded" }))[2]).toBe("degraded");
    expect(nodeLines(node({ health: "failing", alerts: 1 }))[2]).toBe("failing · 1 alert");
    expect(nodeLabel(node({ health: "failing", alerts: 2 }))).toBe("api, failing, 12.5 req/s, p95 40 ms, 1.2 % errors, 2 active alerts");
  });

  it("says why its health score is what it is", () => {
    const why = ["Health score 42 (down)", "• 60% of health probes succeeded", "Inputs: probes 60 % ok · no alerts"];
    expect(nodeLabel(node({ health: "failing", why }))).toBe(
      "api, failing, 12.5 req/s, p95 40 ms, 1.2 % errors. Health score 42 (down); • 60% of health probes succeeded; Inputs: probes 60 % ok · no alerts",
    );
    expect(nodeLabel(node({ why: [] }))).toBe("api, healthy, 12.5 req/s, p95 40 ms, 1.2 % errors");
  });

  it("is named by the text it shows, in order (what is seen is what is heard)", () => {
    const shown = node({ health: "failing", alerts: 1, why: ["Health score 42 (down)"] });
    const name = nodeAccessibleName(shown);
    expect(name.startsWith(["api", ...nodeLines(shown)].join(", "))).toBe(true);
    expect(name.endsWith("Health score 42 (down)")).toBe(true);
  });

  it("names what a virtual node is", () => {
    expect(nodeLines(node({ virtual: true, kind: "database", name: "postgresql" }))[0]).toBe("database · 12.5 calls/s");
  });

  it("shows a dash for numbers it does not have", () => {
    expect(nodeLines(node({ rate: null, errorRatio: null, p95Ms: null, health: "no_data" }))).toEqual(["—", "p95 —", "no data"]);
  });

  it("says which source a rate is from, and shows the mean latency", () => {
    expect(nodeLines(node({ rateKind: "requests", avgMs: 12 }))).toEqual(["12.5 req/s · 1.2 % err", "avg 12 ms · p95 40 ms", "healthy"]);
    expect(nodeLines(node({ rateKind: "spans" }))[0]).toBe("12.5 req/s (spans) · 1.2 % err");
  });

  it("says since when a stale node has had no data, instead of its health", () => {
    const lines = nodeLines(node({ stale: "no data since 14:03:12", alerts: 1 }));
    expect(lines[2]).toBe("no data since 14:03:12 · 1 alert");
    expect(nodeLabel(node({ stale: "no data since 14:03:12" }))).toContain("no data since 14:03:12");
  });

  it("sizes nodes to the widest text, within bounds", () => {
    const narrow = nodeWidthFor([node({ name: "db" })]);
    const wide = nodeWidthFor([node({ name: "a-rather-long-service-name", rateKind: "spans", alerts: 12 })]);
    expect(narrow).toBeGreaterThanOrEqual(168);
    expect(wide).toBeGreaterThan(narrow);
    expect(nodeWidthFor([node({ name: "x".repeat(200) })])).toBeLessThanOrEqual(300);
  });
});

describe("edge text", () => {
  it("puts throughput, errors and p95 on two short lines, and all of it in the tooltip", () => {
    const edge = { source: "a", target: "b", kind: "call", rate: 120, errorRatio: 0.02, p95Ms: 8, health: "degraded" as const };
    expect(edgeLines(edge)).toEqual(["120 calls/s · 2 %", "p95 8 ms"]);
    expect(edgeText(edge)).toBe("120 calls/s, p95 8 ms, 2 % errors");
    expect(edgeLines({ ...edge, errorRatio: 0 })[0]).toBe("120 calls/s");
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

describe("zoom and pan", () => {
  it("fits a graph into its box, centred, without shrinking text below legibility", () => {
    const fit = fitTransform(800, 300, 1200, 700);
    // The whole drawing (with padding) fits the width, and is centred vertically.
    expect(fit.scale).toBeCloseTo(1200 / 832);
    expect((800 + 32) * fit.scale).toBeLessThanOrEqual(1200 + 1e-9);
    expect(fit.y).toBeGreaterThan(16);
    expect(fitTransform(5000, 300, 800, 400).scale).toBe(0.6);
    // A phone shows more of the graph at first (pinch to read).
    expect(fitTransform(5000, 300, 390, 400).scale).toBe(0.45);
    expect(fitTransform(100, 50, 2000, 2000).scale).toBe(1.5);
  });

  it("zooms around the pointer: the point under it stays put", () => {
    const view = { scale: 1, x: 10, y: 20 };
    const zoomed = zoomAt(view, 2, 110, 220);
    expect(zoomed.scale).toBe(2);
    // Layout point (100, 200) was at (110, 220) and still is.
    expect(100 * zoomed.scale + zoomed.x).toBeCloseTo(110);
    expect(200 * zoomed.scale + zoomed.y).toBeCloseTo(220);
    expect(zoomAt(view, 1000, 0, 0).scale).toBe(4);
    expect(zoomAt(view, 0.001, 0, 0).scale).toBe(0.2);
  });
});
