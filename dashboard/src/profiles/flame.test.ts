import { describe, expect, it } from "vitest";
import {
  ancestry,
  diffChange,
  diffColor,
  findPath,
  FlameError,
  formatSampleValue,
  frameColor,
  fullView,
  hitTest,
  packageOf,
  pan,
  parseDiff,
  parseFlamegraph,
  percent,
  sandwich,
  search,
  sortFunctions,
  topFunctions,
  treeFromStacks,
  visibleRects,
  zoomAround,
  zoomTo,
} from "./flame";

// total(100) → main(100, self 10) → a(0..60, self 20) → a(0..40, self 40, recursion)
//                                 → b(60..90, self 30)
const NAMES = ["total", "main", "a", "b"];
const LEVELS = [[0, 100, 0, 0], [0, 100, 10, 1], [0, 60, 20, 2, 60, 30, 30, 3], [0, 40, 40, 2]];
const tree = () => parseFlamegraph(NAMES, LEVELS);

describe("parseFlamegraph", () => {
  it("reads absolute starts and links every frame to the frame above it", () => {
    const t = tree();
    expect(t.total).toBe(100);
    expect(t.levels.map((l) => l.length)).toEqual([1, 1, 2, 1]);
    expect(t.levels[2]?.map((n) => [n.start, n.width, n.self, NAMES[n.name], n.parent])).toEqual([
      [0, 60, 20, "a", 0],
      [60, 30, 30, "b", 0],
    ]);
    expect(ancestry(t, 3, 0).map((n) => NAMES[n.name])).toEqual(["total", "main", "a", "a"]);
  });

  it("accepts pruned trees (a parent's total above its listed children's)", () => {
    // b's 30 and the pruned 10 of main's own small children are simply not listed.
    const t = parseFlamegraph(NAMES, [[0, 100, 0, 0], [0, 100, 10, 1], [0, 60, 60, 2]]);
    expect(t.levels[2]?.[0]?.parent).toBe(0);
  });

  it("refuses malformed levels with a reason (snapshot files are hostile input)", () => {
    expect(() => parseFlamegraph(NAMES, [[0, 100, 0]])).toThrow(/multiple of 4/);
    expect(() => parseFlamegraph(NAMES, [[0, 100, 0, 9]])).toThrow(/name index 9/);
    expect(() => parseFlamegraph(NAMES, [[0, -1, 0, 0]])).toThrow(FlameError);
    expect(() => parseFlamegraph(NAMES, [[0, 100, 0, 0], [0, 60, 0, 1, 50, 20, 0, 2]])).toThrow(/overlap/);
    // A child beyond every parent's extent.
    expect(() => parseFlamegraph(NAMES, [[0, 100, 0, 0], [0, 50, 0, 1], [70, 10, 10, 2]])).toThrow(/outside/);
    expect(() => parseFlamegraph(NAMES, [[0, Number.NaN, 0, 0]])).toThrow(FlameError);
  });
});

describe("geometry", () => {
  it("lays frames out proportionally, skipping ones thinner than the minimum", () => {
    const t = tree();
    const rects = visibleRects(t, fullView(t), 1000, 18);
    expect(rects.map((r) => [r.depth, r.x, r.y, r.w])).toEqual([
      [0, 0, 0, 1000],
      [1, 0, 18, 1000],
      [2, 0, 36, 600],
      [2, 600, 36, 300],
      [3, 0, 54, 400],
    ]);
    expect(visibleRects(t, fullView(t), 10, 18, 3.5).filter((r) => r.depth === 3)).toHaveLength(1);
    expect(visibleRects(t, fullView(t), 10, 18, 4.5).filter((r) => r.depth === 3)).toHaveLength(0);
  });

  it("zooming into a frame shows exactly its extent; ancestors span the view", () => {
    const t = tree();
    const b = t.levels[2]?.[1];
    if (b === undefined) throw new Error("no b");
    const rects = visibleRects(t, zoomTo(b), 300, 18);
    expect(rects.map((r) => [r.depth, r.index, r.x, r.w])).toEqual([
      [0, 0, 0, 300],
      [1, 0, 0, 300],
      [2, 1, 0, 300],
    ]);
  });

  it("hit testing finds the frame under the pointer, and nothing in gaps", () => {
    const t = tree();
    const view = fullView(t);
    expect(hitTest(t, view, 1000, 18, 650, 40)?.node.name).toBe(3);
    expect(hitTest(t, view, 1000, 18, 100, 60)?.depth).toBe(3);
    expect(hitTest(t, view, 1000, 18, 950, 40)).toBeNull(); // main's self, no child there
    expect(hitTest(t, view, 1000, 18, 500, 60)).toBeNull(); // right of the recursion
    expect(hitTest(t, view, 1000, 18, 10, 18 * 4 + 1)).toBeNull(); // below the deepest level
    expect(hitTest(t, view, 1000, 18, -1, 0)).toBeNull();
  });

  it("wheel zoom keeps the point under the pointer; pan and zoom stay inside the tree", () => {
    const t = tree();
    const zoomed = zoomAround(fullView(t), t, 0.25, 0.5);
    expect(zoomed).toEqual({ x0: 12.5, x1: 62.5 });
    expect(zoomAround(zoomed, t, 0.5, 100)).toEqual({ x0: 0, x1: 100 });
    expect(pan(zoomed, t, -10)).toEqual({ x0: 0, x1: 50 });
    expect(pan(zoomed, t, 10)).toEqual({ x0: 50, x1: 100 });
  });

  it("finds a frame by its path, for keeping the zoom across minutes", () => {
    const t = tree();
    expect(findPath(t, ["main", "a", "a"])?.node.total).toBe(40);
    expect(findPath(t, ["main", "b"])?.node.total).toBe(30);
    expect(findPath(t, ["main", "c"])).toBeNull();
    expect(findPath(t, [])).toBeNull();
  });
});

describe("search", () => {
  it("marks matching names and counts nested matches once", () => {
    const t = parseFlamegraph(["total", "main", "alpha", "beta"], LEVELS);
    const result = search(t, "ALP");
    expect(result?.matches).toEqual([false, false, true, false]);
    expect(result?.frames).toBe(2);
    expect(result?.total).toBe(60); // the inner a is inside the outer one
    expect(search(t, "  ")).toBeNull();
    expect(search(t, "zzz")?.total).toBe(0);
  });
});

describe("top functions and sandwich", () => {
  it("sums self per function and counts a recursive function's total once", () => {
    expect(topFunctions(tree())).toEqual([
      { name: "a", self: 60, total: 60 },
      { name: "b", self: 30, total: 30 },
      { name: "main", self: 10, total: 100 },
    ]);
  });

  it("sorts by any column, both ways, ties by name", () => {
    const rows = topFunctions(tree());
    expect(sortFunctions(rows, "total", "desc").map((r) => r.name)).toEqual(["main", "a", "b"]);
    expect(sortFunctions(rows, "self", "asc").map((r) => r.name)).toEqual(["main", "b", "a"]);
    expect(sortFunctions(rows, "name", "asc").map((r) => r.name)).toEqual(["a", "b", "main"]);
  });

  it("builds trees from stacks with exact totals", () => {
    const t = treeFromStacks([
      { frames: ["main", "x"], value: 3 },
      { frames: ["main", "y"], value: 2 },
      { frames: ["main"], value: 1 },
      { frames: ["ignored"], value: 0 },
    ]);
    expect(t.total).toBe(6);
    expect(t.levels[2]?.map((n) => [t.names[n.name], n.start, n.total])).toEqual([
      ["x", 0, 3],
      ["y", 3, 2],
    ]);
    expect(t.levels[1]?.[0]?.self).toBe(1);
  });

  it("sandwich: callers inverted under the function, callees merged under it", () => {
    const t = parseFlamegraph(
      ["total", "main", "handler", "db", "worker"],
      [
        [0, 100, 0, 0],
        [0, 100, 0, 1],
        [0, 70, 0, 2, 70, 30, 0, 4],
        [0, 50, 50, 3, 70, 30, 30, 3],
      ],
    );
    const { callers, callees } = sandwich(t, "db");
    expect(callers.total).toBe(80);
    expect(callers.levels[1]?.map((n) => [callers.names[n.name], n.total])).toEqual([
      ["handler", 50],
      ["worker", 30],
    ]);
    expect(callees.total).toBe(80);
    expect(callees.levels).toHaveLength(1); // db calls nothing
    expect(callees.levels[0]?.[0]?.self).toBe(80);
  });
});

describe("diff", () => {
  // total: now 100 (x 80, y 20), before 100 (x 20, y 70, gone 10).
  const diff = () =>
    parseDiff(
      ["total", "x", "y", "gone"],
      [
        [0, 200, 0, 100, 0, 100, 0],
        [0, 100, 1, 80, 80, 20, 20, 100, 90, 2, 20, 20, 70, 70, 190, 10, 3, 0, 0, 10, 10],
      ],
      100,
      100,
    );

  it("reads groups of 7 over the union tree", () => {
    const t = diff();
    expect(t.diff).toBe(true);
    expect(t.levels[1]?.map((n) => [t.names[n.name], n.width, n.total, n.baseTotal])).toEqual([
      ["x", 100, 80, 20],
      ["y", 90, 20, 70],
      ["gone", 10, 0, 10],
    ]);
    expect(() => parseDiff(["total"], [[0, 1, 0, 1, 0, 0]], 1, 0)).toThrow(/multiple of 7/);
  });

  it("colours growth red, shrinkage blue, no change grey", () => {
    const [x, y, gone] = diff().levels[1] ?? [];
    if (x === undefined || y === undefined || gone === undefined) throw new Error("missing frames");
    expect(diffChange(x, 100, 100)).toBeCloseTo(0.75);
    expect(diffChange(y, 100, 100)).toBeCloseTo(-50 / 70);
    expect(diffChange(gone, 100, 100)).toBe(-1);
    expect(diffColor(x, 100, 100)).toMatch(/^rgb\(235, /);
    expect(diffColor(y, 100, 100)).toMatch(/, 240\)$/);
    const same = { ...x, total: 50, baseTotal: 50 };
    expect(diffColor(same, 100, 100)).toBe("rgb(200, 200, 200)");
    // Shares, not raw values: twice the samples in a range twice as long is no change.
    expect(diffChange({ ...x, total: 40, baseTotal: 20 }, 200, 100)).toBe(0);
  });
});

describe("colours and formatting", () => {
  it("colours by package, stably", () => {
    expect(packageOf("github.com/acme/shop/db.(*Conn).Query")).toBe("github.com/acme/shop/db");
    expect(packageOf("tokio::runtime::park")).toBe("tokio::runtime");
    expect(packageOf("handle (app/server.py:42)")).toBe("app/server.py");
    expect(packageOf("main")).toBe("main");
    expect(frameColor("db.Query")).toBe(frameColor("db.Exec"));
    expect(frameColor("db.Query")).toMatch(/^hsl\(\d+, 78%, \d+%\)$/);
  });

  it("formats values in the profile's unit", () => {
    expect(formatSampleValue(1_500_000_000, "nanoseconds")).toBe("1.5 s");
    expect(formatSampleValue(2_340_000, "nanoseconds")).toBe("2.34 ms");
    expect(formatSampleValue(512, "nanoseconds")).toBe("512 ns");
    expect(formatSampleValue(3 * 1024 * 1024, "bytes")).toBe("3 MB");
    expect(formatSampleValue(12_300, "count")).toBe("12.3k");
    expect(percent(1, 3)).toBe("33.3%");
    expect(percent(1, 0)).toBe("—");
  });
});
