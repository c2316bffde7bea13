// The flame graph's pure parts: the API's levels → nodes (with parents), the visible rectangles of
// a zoomed view, hit testing, search, colours (by frame, and by growth in a diff), the top-functions
// table and the sandwich view's trees. No DOM here; the canvas view (page.ts) only draws what these
// return.

/** One frame of the merged tree. `start`/`width` are in sample units (the x axis). */
export interface FlameNode {
  start: number;
  /** Extent on the x axis: `total`, or `total + baseTotal` in a diff. */
  width: number;
  total: number;
  self: number;
  /** Index into `FlameTree.names`. */
  name: number;
  /** Index of the parent on the level above (-1 for the root). */
  parent: number;
  /** Diff only: the frame's values in the base range (0 elsewhere). */
  baseTotal: number;
  baseSelf: number;
}

export interface FlameTree {
  names: string[];
  /** Level 0 holds the root; children of a node lie within its [start, start + width) one level down. */
  levels: FlameNode[][];
  /** Grand total (root's total); in a diff, the compared range's. */
  total: number;
  /** Diff only: the base range's grand total (0 otherwise). */
  baseTotal: number;
  diff: boolean;
}

export class FlameError extends Error {
  override name = "FlameError";
}

function finite(value: number | undefined, what: string): number {
  if (value === undefined || !Number.isFinite(value) || value < 0) throw new FlameError(`${what}: not a non-negative number`);
  return value;
}

/** Links each node to the node above it that contains its start (both levels are sorted by start). */
function linkParents(levels: FlameNode[][]): void {
  for (let depth = 1; depth < levels.length; depth += 1) {
    const above = levels[depth - 1] ?? [];
    let p = 0;
    for (const node of levels[depth] ?? []) {
      while (p < above.length) {
        const candidate = above[p];
        if (candidate !== undefined && node.start < candidate.start + candidate.width) break;
        p += 1;
      }
      const parent = above[p];
      if (parent === undefined || node.start < parent.start) {
        throw new FlameError(`level ${depth}: a frame at ${node.start} lies outside every frame of the level above`);
      }
      node.parent = p;
    }
  }
}

function checkSorted(level: FlameNode[], depth: number): void {
  for (let i = 1; i < level.length; i += 1) {
    const a = level[i - 1];
    const b = level[i];
    if (a !== undefined && b !== undefined && b.start < a.start + a.width) {
      throw new FlameError(`level ${depth}: frames overlap or are not sorted by start`);
    }
  }
}

/**
 * `GET /api/profiles/flamegraph`'s `levels`: per level, groups of 4 `[start, total, self, name]`
 * with absolute starts. Throws `FlameError` on anything malformed (a snapshot file may be hostile).
 */
export function parseFlamegraph(names: readonly string[], levels: readonly (readonly number[])[]): FlameTree {
  const out = levels.map((raw, depth) => {
    if (raw.length % 4 !== 0) throw new FlameError(`level ${depth}: length ${raw.length} is not a multiple of 4`);
    const level: FlameNode[] = [];
    for (let i = 0; i < raw.length; i += 4) {
      const name = finite(raw[i + 3], `level ${depth} name`);
      if (!Number.isInteger(name) || name >= names.length) throw new FlameError(`level ${depth}: name index ${name} out of range`);
      const total = finite(raw[i + 1], `level ${depth} total`);
      level.push({
        start: finite(raw[i], `level ${depth} start`),
        width: total,
        total,
        self: finite(raw[i + 2], `level ${depth} self`),
        name,
        parent: -1,
        baseTotal: 0,
        baseSelf: 0,
      });
    }
    checkSorted(level, depth);
    return level;
  });
  linkParents(out);
  const root = out[0]?.[0];
  return { names: [...names], levels: out, total: root?.total ?? 0, baseTotal: 0, diff: false };
}

/**
 * `GET /api/profiles/diff`'s `levels`: groups of 7 `[start, width, name, total, self, base_total,
 * base_self]` over the union tree, `width = total + base_total`.
 */
export function parseDiff(
  names: readonly string[],
  levels: readonly (readonly number[])[],
  total: number,
  baseTotal: number,
): FlameTree {
  const out = levels.map((raw, depth) => {
    if (raw.length % 7 !== 0) throw new FlameError(`level ${depth}: length ${raw.length} is not a multiple of 7`);
    const level: FlameNode[] = [];
    for (let i = 0; i < raw.length; i += 7) {
      const name = finite(raw[i + 2], `level ${depth} name`);
      if (!Number.isInteger(name) || name >= names.length) throw new FlameError(`level ${depth}: name index ${name} out of range`);
      level.push({
        start: finite(raw[i], `level ${depth} start`),
        width: finite(raw[i + 1], `level ${depth} width`),
        name,
        total: finite(raw[i + 3], `level ${depth} total`),
        self: finite(raw[i + 4], `level ${depth} self`),
        baseTotal: finite(raw[i + 5], `level ${depth} base_total`),
        baseSelf: finite(raw[i + 6], `level ${depth} base_self`),
        parent: -1,
      });
    }
    checkSorted(level, depth);
    return level;
  });
  linkParents(out);
  return { names: [...names], levels: out, total: finite(total, "total"), baseTotal: finite(baseTotal, "base_total"), diff: true };
}

/** The x extent of the whole tree (the root's width). */
export function treeWidth(tree: FlameTree): number {
  return tree.levels[0]?.[0]?.width ?? 0;
}

/** What part of the tree is on screen: [x0, x1) in sample units. */
export interface FlameView {
  x0: number;
  x1: number;
}

export function fullView(tree: FlameTree): FlameView {
  return { x0: 0, x1: Math.max(treeWidth(tree), 1) };
}

/** Zooming into a frame shows exactly its extent. */
export function zoomTo(node: FlameNode): FlameView {
  return { x0: node.start, x1: node.start + Math.max(node.width, 1e-9) };
}

/**
 * Zooms by `factor` (< 1 zooms in) around `anchor` (0..1 across the canvas), clamped to the tree.
 */
export function zoomAround(view: FlameView, tree: FlameTree, anchor: number, factor: number): FlameView {
  const full = Math.max(treeWidth(tree), 1);
  const span = view.x1 - view.x0;
  const next = Math.min(full, Math.max(span * factor, full * 1e-6));
  const pivot = view.x0 + span * Math.min(1, Math.max(0, anchor));
  const x0 = pivot - (pivot - view.x0) * (next / span);
  return clampView({ x0, x1: x0 + next }, full);
}

/** Moves the view by `fraction` of its width (negative: left), clamped to the tree. */
export function pan(view: FlameView, tree: FlameTree, fraction: number): FlameView {
  const span = view.x1 - view.x0;
  return clampView({ x0: view.x0 + span * fraction, x1: view.x1 + span * fraction }, Math.max(treeWidth(tree), 1));
}

function clampView(view: FlameView, full: number): FlameView {
  const span = Math.min(view.x1 - view.x0, full);
  const x0 = Math.min(Math.max(0, view.x0), full - span);
  return { x0, x1: x0 + span };
}

export interface FlameRect {
  depth: number;
  index: number;
  /** Pixels. */
  x: number;
  y: number;
  w: number;
}

/**
 * The rectangles to draw for `view` on a canvas `widthPx` wide: frames overlapping the view and at
 * least `minWidthPx` wide (thinner ones are skipped: their parent's colour shows through).
 */
export function visibleRects(
  tree: FlameTree,
  view: FlameView,
  widthPx: number,
  rowHeight: number,
  minWidthPx = 0.5,
): FlameRect[] {
  const scale = widthPx / Math.max(view.x1 - view.x0, 1e-12);
  const rects: FlameRect[] = [];
  tree.levels.forEach((level, depth) => {
    for (let index = firstEndingAfter(level, view.x0); index < level.length; index += 1) {
      const node = level[index];
      if (node === undefined || node.start >= view.x1) break;
      const left = Math.max(node.start, view.x0);
      const right = Math.min(node.start + node.width, view.x1);
      const w = (right - left) * scale;
      if (w < minWidthPx) continue;
      rects.push({ depth, index, x: (left - view.x0) * scale, y: depth * rowHeight, w });
    }
  });
  return rects;
}

/** Index of the first node whose end is past `x` (binary search; nodes are sorted and disjoint). */
function firstEndingAfter(level: readonly FlameNode[], x: number): number {
  let lo = 0;
  let hi = level.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const node = level[mid];
    if (node !== undefined && node.start + node.width <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The frame under pixel (x, y), or null. */
export function hitTest(
  tree: FlameTree,
  view: FlameView,
  widthPx: number,
  rowHeight: number,
  x: number,
  y: number,
): { depth: number; index: number; node: FlameNode } | null {
  if (x < 0 || x >= widthPx || y < 0) return null;
  const depth = Math.floor(y / rowHeight);
  const level = tree.levels[depth];
  if (level === undefined) return null;
  const u = view.x0 + (x / widthPx) * (view.x1 - view.x0);
  const index = firstEndingAfter(level, u);
  const node = level[index];
  if (node === undefined || node.start > u) return null;
  return { depth, index, node };
}

/** The chain from the root to `depth`/`index` (inclusive), for a breadcrumb. */
export function ancestry(tree: FlameTree, depth: number, index: number): FlameNode[] {
  const chain: FlameNode[] = [];
  for (let d = depth, i = index; d >= 0 && i >= 0; d -= 1) {
    const node = tree.levels[d]?.[i];
    if (node === undefined) break;
    chain.unshift(node);
    i = node.parent;
  }
  return chain;
}

/** The node at `path` (names from below the root), or null when the tree does not have it. */
export function findPath(tree: FlameTree, path: readonly string[]): { depth: number; node: FlameNode } | null {
  if (path.length === 0) return null;
  let parent = 0;
  let found: FlameNode | null = null;
  for (let depth = 1; depth <= path.length; depth += 1) {
    const level = tree.levels[depth] ?? [];
    const index = level.findIndex((n) => n.parent === parent && tree.names[n.name] === path[depth - 1]);
    const node = level[index];
    if (node === undefined) return null;
    found = node;
    parent = index;
  }
  return found === null ? null : { depth: path.length, node: found };
}

export interface SearchResult {
  /** `matches[nameIndex]` is true for names containing the query. */
  matches: boolean[];
  /** Matching frames counted once (none inside another match): their share of the total. */
  total: number;
  frames: number;
}

/** Case-insensitive substring search over frame names; null for an empty query. */
export function search(tree: FlameTree, query: string): SearchResult | null {
  const q = query.trim().toLowerCase();
  if (q === "") return null;
  const matches = tree.names.map((n) => n.toLowerCase().includes(q));
  let total = 0;
  let frames = 0;
  const covered: boolean[][] = [];
  tree.levels.forEach((level, depth) => {
    const row: boolean[] = [];
    level.forEach((node) => {
      const parentCovered = depth > 0 && (covered[depth - 1]?.[node.parent] ?? false);
      const hit = matches[node.name] ?? false;
      if (hit) frames += 1;
      if (hit && !parentCovered) total += node.total;
      row.push(parentCovered || hit);
    });
    covered.push(row);
  });
  return { matches, total, frames };
}

/** A stable colour per frame: warm hues, the same for every frame of one package/module. */
export function frameColor(name: string): string {
  const module = packageOf(name);
  let hash = 2166136261;
  for (let i = 0; i < module.length; i += 1) hash = Math.imul(hash ^ module.charCodeAt(i), 16777619);
  const h = (hash >>> 0) % 1000;
  const hue = 8 + (h % 47);
  const light = 52 + ((h >> 3) % 12);
  return `hsl(${hue}, 78%, ${light}%)`;
}

/** `github.com/x/y.Func` → `github.com/x/y`; `pkg.mod.fn` → `pkg.mod`; `a::b::c` → `a::b`; `f (file.py:3)` → `file.py`. */
export function packageOf(name: string): string {
  const file = /\(([^():]+)(?::\d+)?\)\s*$/.exec(name);
  if (file?.[1] !== undefined) return file[1];
  const colons = name.lastIndexOf("::");
  if (colons > 0) return name.slice(0, colons);
  const slash = name.lastIndexOf("/");
  const dot = name.indexOf(".", slash + 1);
  return dot > 0 ? name.slice(0, dot) : name;
}

/**
 * A diff frame's colour by growth: each frame's share of its range's total, compared. Red grew
 * (deeper red = more), blue shrank, grey about the same; new frames are full red, gone ones full blue.
 */
export function diffColor(node: FlameNode, total: number, baseTotal: number): string {
  const change = diffChange(node, total, baseTotal);
  const strength = Math.min(1, Math.abs(change));
  if (strength < 0.05) return "rgb(200, 200, 200)";
  const fade = Math.round(200 - 170 * strength);
  return change > 0 ? `rgb(235, ${fade}, ${fade})` : `rgb(${fade}, ${fade + 20}, 240)`;
}

/** Relative change of the frame's share, in [-1, 1]: +1 new, -1 gone, 0 unchanged. */
export function diffChange(node: FlameNode, total: number, baseTotal: number): number {
  const now = total > 0 ? node.total / total : 0;
  const before = baseTotal > 0 ? node.baseTotal / baseTotal : 0;
  const larger = Math.max(now, before);
  return larger === 0 ? 0 : (now - before) / larger;
}

export interface FunctionRow {
  name: string;
  self: number;
  /** Counted once per stack (a recursive function's inner frames are inside its outer ones). */
  total: number;
}

/** Self and total per function name over the whole tree, sorted by self (largest first). */
export function topFunctions(tree: FlameTree): FunctionRow[] {
  const self = new Map<number, number>();
  const total = new Map<number, number>();
  tree.levels.forEach((level, depth) => {
    for (const node of level) {
      if (depth === 0) continue;
      self.set(node.name, (self.get(node.name) ?? 0) + node.self);
      if (!hasAncestorNamed(tree, depth, node)) total.set(node.name, (total.get(node.name) ?? 0) + node.total);
    }
  });
  const rows = [...total.entries()].map(([name, t]) => ({ name: tree.names[name] ?? "?", self: self.get(name) ?? 0, total: t }));
  return sortFunctions(rows, "self", "desc");
}

function hasAncestorNamed(tree: FlameTree, depth: number, node: FlameNode): boolean {
  let index = node.parent;
  for (let d = depth - 1; d > 0 && index >= 0; d -= 1) {
    const up = tree.levels[d]?.[index];
    if (up === undefined) return false;
    if (up.name === node.name) return true;
    index = up.parent;
  }
  return false;
}

export type SortKey = "name" | "self" | "total";

export function sortFunctions(rows: readonly FunctionRow[], key: SortKey, direction: "asc" | "desc"): FunctionRow[] {
  const sign = direction === "asc" ? 1 : -1;
  return [...rows].sort((a, b) => {
    const order = key === "name" ? a.name.localeCompare(b.name) : a[key] - b[key];
    return order !== 0 ? sign * order : a.name.localeCompare(b.name);
  });
}

interface Stack {
  frames: string[];
  value: number;
}

/** A tree (same shape as the API's) from weighted stacks, children sorted by name. */
export function treeFromStacks(stacks: readonly Stack[], rootName = "total"): FlameTree {
  interface Trie {
    total: number;
    self: number;
    children: Map<string, Trie>;
  }
  const root: Trie = { total: 0, self: 0, children: new Map() };
  for (const stack of stacks) {
    if (!(stack.value > 0)) continue;
    root.total += stack.value;
    let at = root;
    for (const frame of stack.frames) {
      let child = at.children.get(frame);
      if (child === undefined) {
        child = { total: 0, self: 0, children: new Map() };
        at.children.set(frame, child);
      }
      child.total += stack.value;
      at = child;
    }
    at.self += stack.value;
  }
  const names: string[] = [rootName];
  const nameIndex = new Map<string, number>([[rootName, 0]]);
  const levels: FlameNode[][] = [];
  const place = (node: Trie, name: string, depth: number, start: number, parent: number) => {
    let index = nameIndex.get(name);
    if (index === undefined) {
      index = names.length;
      names.push(name);
      nameIndex.set(name, index);
    }
    const level = levels[depth] ?? [];
    levels[depth] = level;
    level.push({ start, width: node.total, total: node.total, self: node.self, name: index, parent, baseTotal: 0, baseSelf: 0 });
    const me = level.length - 1;
    let offset = start;
    for (const [childName, child] of [...node.children.entries()].sort((a, b) => a[0].localeCompare(b[0]))) {
      place(child, childName, depth + 1, offset, me);
      offset += child.total;
    }
  };
  if (root.total > 0) place(root, rootName, 0, 0, -1);
  // Depth-first placement fills each level left to right, so every level is sorted by start.
  return { names, levels, total: root.total, baseTotal: 0, diff: false };
}

/** The frames of each node from the root down (the root itself excluded). */
function pathOf(tree: FlameTree, depth: number, index: number): string[] {
  return ancestry(tree, depth, index)
    .slice(1)
    .map((n) => tree.names[n.name] ?? "?");
}

/**
 * The sandwich view of function `name`: its callers (inverted: the function at the root, callers
 * below) and its callees (every call of it merged at the root). Recursive calls count once.
 */
export function sandwich(tree: FlameTree, name: string): { callers: FlameTree; callees: FlameTree } {
  const callers: Stack[] = [];
  const callees: Stack[] = [];
  const target = tree.names.indexOf(name);
  tree.levels.forEach((level, depth) => {
    if (depth === 0) return;
    level.forEach((node, index) => {
      if (node.name !== target || hasAncestorNamed(tree, depth, node)) return;
      callers.push({ frames: pathOf(tree, depth, index).reverse().slice(1), value: node.total });
    });
  });
  // Callees: every stack below an outermost frame of `name`, re-rooted there.
  tree.levels.forEach((level, depth) => {
    if (depth === 0) return;
    level.forEach((node, index) => {
      if (node.self <= 0) return;
      const path = pathOf(tree, depth, index);
      const at = path.indexOf(name);
      if (at >= 0) callees.push({ frames: path.slice(at + 1), value: node.self });
    });
  });
  return { callers: treeFromStacks(callers, name), callees: treeFromStacks(callees, name) };
}

/** A value in the profile's unit, short: `1.2 s`, `340 MB`, `12.3k`. */
export function formatSampleValue(value: number, unit: string): string {
  if (unit === "nanoseconds") {
    const abs = Math.abs(value);
    if (abs >= 1e9) return `${trim(value / 1e9)} s`;
    if (abs >= 1e6) return `${trim(value / 1e6)} ms`;
    if (abs >= 1e3) return `${trim(value / 1e3)} µs`;
    return `${trim(value)} ns`;
  }
  if (unit === "bytes") {
    const steps = ["B", "KB", "MB", "GB", "TB"];
    let v = value;
    let i = 0;
    while (Math.abs(v) >= 1024 && i < steps.length - 1) {
      v /= 1024;
      i += 1;
    }
    return `${trim(v)} ${steps[i]}`;
  }
  const abs = Math.abs(value);
  if (abs >= 1e9) return `${trim(value / 1e9)}G`;
  if (abs >= 1e6) return `${trim(value / 1e6)}M`;
  if (abs >= 1e3) return `${trim(value / 1e3)}k`;
  return trim(value);
}

function trim(value: number): string {
  return Math.abs(value) >= 100 || Number.isInteger(value) ? String(Math.round(value)) : value.toPrecision(3).replace(/\.?0+$/, "");
}

export function percent(part: number, whole: number): string {
  if (!(whole > 0)) return "—";
  const p = (100 * part) / whole;
  return `${p >= 10 ? p.toFixed(1) : p.toFixed(2)}%`;
}
