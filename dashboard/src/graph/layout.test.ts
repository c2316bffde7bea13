import { describe, expect, it } from "vitest";
import { DEFAULT_LAYOUT, layoutGraph, separatedClosest, type GraphLayout } from "./layout";

function overlaps(layout: GraphLayout): string[] {
  const nodes = [...layout.nodes.values()];
  const clashes: string[] = [];
  for (let i = 0; i < nodes.length; i += 1) {
    for (let j = i + 1; j < nodes.length; j += 1) {
      const a = nodes[i];
      const b = nodes[j];
      if (a === undefined || b === undefined) continue;
      const apart =
        a.x + DEFAULT_LAYOUT.nodeWidth <= b.x ||
        b.x + DEFAULT_LAYOUT.nodeWidth <= a.x ||
        a.y + DEFAULT_LAYOUT.nodeHeight <= b.y ||
        b.y + DEFAULT_LAYOUT.nodeHeight <= a.y;
      if (!apart) clashes.push(`${a.id}/${b.id}`);
    }
  }
  return clashes;
}

function segmentsCross(p1: [number, number], p2: [number, number], q1: [number, number], q2: [number, number]): boolean {
  const d = (a: [number, number], b: [number, number], c: [number, number]) =>
    (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]);
  return d(p1, p2, q1) * d(p1, p2, q2) < 0 && d(q1, q2, p1) * d(q1, q2, p2) < 0;
}

describe("layoutGraph", () => {
  it("puts callers before callees, left to right", () => {
    const layout = layoutGraph(["db", "api", "auth"], [
      { source: "api", target: "auth" },
      { source: "auth", target: "db" },
    ]);
    const x = (id: string) => layout.nodes.get(id)?.x ?? Number.NaN;
    expect(x("api")).toBeLessThan(x("auth"));
    expect(x("auth")).toBeLessThan(x("db"));
    expect(layout.layers).toBe(3);
  });

  it("flows top to bottom when asked (phones)", () => {
    const layout = layoutGraph(["a", "b"], [{ source: "a", target: "b" }], { ...DEFAULT_LAYOUT, direction: "TB" });
    const a = layout.nodes.get("a");
    const b = layout.nodes.get("b");
    expect(a?.x).toBe(b?.x);
    expect((a?.y ?? 0) + DEFAULT_LAYOUT.nodeHeight).toBeLessThan(b?.y ?? 0);
    expect(layout.width).toBe(DEFAULT_LAYOUT.nodeWidth);
  });

  it("never overlaps nodes, and every node fits inside the reported size", () => {
    const ids = Array.from({ length: 40 }, (_, i) => `s${i}`);
    const edges = ids.slice(1).map((id, i) => ({ source: ids[Math.floor(i / 3)] ?? "s0", target: id }));
    const layout = layoutGraph(ids, edges);
    expect(overlaps(layout)).toEqual([]);
    for (const node of layout.nodes.values()) {
      expect(node.x).toBeGreaterThanOrEqual(0);
      expect(node.y).toBeGreaterThanOrEqual(-1e-9);
      expect(node.x + DEFAULT_LAYOUT.nodeWidth).toBeLessThanOrEqual(layout.width + 1e-9);
      expect(node.y + DEFAULT_LAYOUT.nodeHeight).toBeLessThanOrEqual(layout.height + 1e-9);
    }
  });

  it("survives cycles and keeps every edge in its real direction", () => {
    const layout = layoutGraph(["a", "b", "c"], [
      { source: "a", target: "b" },
      { source: "b", target: "c" },
      { source: "c", target: "a" },
    ]);
    expect(layout.nodes.size).toBe(3);
    expect(layout.edges).toHaveLength(3);
    const back = layout.edges.find((e) => e.source === "c" && e.target === "a");
    const c = layout.nodes.get("c");
    const a = layout.nodes.get("a");
    // The drawn path starts at c's side and ends at a's side.
    expect(back?.points[0]?.x).toBeCloseTo(c?.x ?? 0);
    expect(back?.points.at(-1)?.x).toBeCloseTo((a?.x ?? 0) + DEFAULT_LAYOUT.nodeWidth);
  });

  it("orders layers to remove avoidable crossings", () => {
    // Discovery order puts x above y; then b→x crosses a→y. Swapping x and y removes the crossing.
    const layout = layoutGraph(["a", "b", "x", "y"], [
      { source: "a", target: "x" },
      { source: "a", target: "y" },
      { source: "b", target: "x" },
    ]);
    const seg = (e: (typeof layout.edges)[number]) =>
      [
        [e.points[0]?.x ?? 0, e.points[0]?.y ?? 0],
        [e.points.at(-1)?.x ?? 0, e.points.at(-1)?.y ?? 0],
      ] as [[number, number], [number, number]];
    for (const e1 of layout.edges) {
      for (const e2 of layout.edges) {
        if (e1 === e2) continue;
        const [p1, p2] = seg(e1);
        const [q1, q2] = seg(e2);
        expect(segmentsCross(p1, p2, q1, q2), `${e1.source}→${e1.target} × ${e2.source}→${e2.target}`).toBe(false);
      }
    }
  });

  it("routes an edge that skips layers around the nodes in between", () => {
    const layout = layoutGraph(["api", "auth", "cache", "db"], [
      { source: "api", target: "auth" },
      { source: "auth", target: "cache" },
      { source: "api", target: "db" },
      { source: "cache", target: "db" },
    ]);
    const long = layout.edges.find((e) => e.source === "api" && e.target === "db");
    expect(long?.points.length).toBe(4); // two ports and one bend per skipped layer
    for (const bend of long?.points.slice(1, -1) ?? []) {
      for (const node of layout.nodes.values()) {
        const inside =
          bend.x > node.x && bend.x < node.x + DEFAULT_LAYOUT.nodeWidth && bend.y > node.y && bend.y < node.y + DEFAULT_LAYOUT.nodeHeight;
        expect(inside, `bend inside ${node.id}`).toBe(false);
      }
    }
  });

  it("ignores self-loops, duplicate edges and edges to unknown nodes", () => {
    const layout = layoutGraph(["a", "b"], [
      { source: "a", target: "a" },
      { source: "a", target: "b" },
      { source: "a", target: "b" },
      { source: "a", target: "ghost" },
    ]);
    expect(layout.edges).toEqual([expect.objectContaining({ source: "a", target: "b" })]);
  });

  it("gives the same positions for the same graph", () => {
    const edges = [
      { source: "api", target: "auth" },
      { source: "api", target: "cache" },
      { source: "api", target: "db" },
    ];
    const one = layoutGraph(["api", "auth", "cache", "db"], edges);
    const two = layoutGraph(["api", "auth", "cache", "db"], edges);
    expect([...two.nodes.values()]).toEqual([...one.nodes.values()]);
  });

  it("lays out an empty graph", () => {
    expect(layoutGraph([], [])).toMatchObject({ width: 0, height: 0, layers: 0 });
  });
});

describe("separatedClosest", () => {
  it("keeps wanted positions that are far enough apart", () => {
    expect(separatedClosest([0, 100], [10, 10], 5)).toEqual([0, 100]);
  });

  it("spreads clashing positions evenly around their mean, keeping the order", () => {
    const placed = separatedClosest([50, 50, 50], [10, 10, 10], 10);
    expect(placed).toEqual([30, 50, 70]);
  });
});
