// A layered ("Sugiyama") layout for the service graph, written here instead of pulling in dagre
// (≈ 80 kB minified with graphlib and lodash parts, unmaintained since 2018) or elkjs (≈ 1.4 MB):
// a service graph is small (tens to a few hundred nodes) and mostly flows one way, so four classic
// steps are enough and fit in one readable file:
//
//   1. break cycles by reversing DFS back edges (the drawing keeps their real direction);
//   2. layer by longest path from the sources, so every edge points forward;
//   3. order each layer by the barycenter of its neighbours (sweeps down and up, keeping the order
//      with the fewest crossings), with dummy nodes on edges that skip layers so they route
//      between nodes, not through them;
//   4. place each node as close to its neighbours' median as the order and spacing allow
//      (isotonic regression per layer: optimal for that layer, no overlap by construction).
//
// The result is deterministic for the same input, so a refresh with the same topology does not
// move anything.

export interface LayoutEdgeInput {
  source: string;
  target: string;
}

export interface LayoutOptions {
  /** "LR": layers are columns (wide screens); "TB": layers are rows (phones). */
  direction: "LR" | "TB";
  nodeWidth: number;
  nodeHeight: number;
  /** Space between layers. */
  layerGap: number;
  /** Space between neighbouring nodes of one layer. */
  nodeGap: number;
}

export const DEFAULT_LAYOUT: LayoutOptions = {
  direction: "LR",
  nodeWidth: 150,
  nodeHeight: 56,
  layerGap: 90,
  nodeGap: 22,
};

export interface Point {
  x: number;
  y: number;
}

export interface PositionedNode {
  id: string;
  /** Top-left corner. */
  x: number;
  y: number;
  layer: number;
  /** Position within its layer, 0 first. */
  order: number;
}

export interface RoutedEdge {
  source: string;
  target: string;
  /** From the source's port to the target's port, through the bends of a long edge. */
  points: Point[];
}

export interface GraphLayout {
  nodes: Map<string, PositionedNode>;
  edges: RoutedEdge[];
  width: number;
  height: number;
  layers: number;
}

/** Space a dummy node (a bend of a long edge) takes in its layer. */
const DUMMY_SIZE = 10;
const ORDERING_SWEEPS = 12;
const PLACEMENT_PASSES = 6;

interface Vertex {
  id: string;
  dummy: boolean;
  layer: number;
  /** Size along the order axis. */
  size: number;
  up: number[];
  down: number[];
}

export function layoutGraph(
  nodeIds: readonly string[],
  edgeInputs: readonly LayoutEdgeInput[],
  options: LayoutOptions = DEFAULT_LAYOUT,
): GraphLayout {
  const ids = [...new Set(nodeIds)];
  const index = new Map(ids.map((id, i) => [id, i]));
  const edges = uniqueEdges(edgeInputs, index);
  const forward = breakCycles(ids.length, edges);
  const layerOf = longestPathLayers(ids.length, forward);

  const along = options.direction === "LR" ? options.nodeHeight : options.nodeWidth;
  const across = options.direction === "LR" ? options.nodeWidth : options.nodeHeight;
  const vertices: Vertex[] = ids.map((id, i) => ({
    id,
    dummy: false,
    layer: layerOf[i] ?? 0,
    size: along,
    up: [],
    down: [],
  }));
  // Each forward edge becomes a chain through one dummy per skipped layer.
  const chains: { source: string; target: string; reversed: boolean; chain: number[] }[] = [];
  for (const edge of forward) {
    const chain = [edge.from];
    let previous = edge.from;
    const fromLayer = vertices[edge.from]?.layer ?? 0;
    const toLayer = vertices[edge.to]?.layer ?? 0;
    for (let layer = fromLayer + 1; layer < toLayer; layer += 1) {
      const dummy = vertices.length;
      vertices.push({ id: `dummy:${dummy}`, dummy: true, layer, size: DUMMY_SIZE, up: [], down: [] });
      link(vertices, previous, dummy);
      chain.push(dummy);
      previous = dummy;
    }
    link(vertices, previous, edge.to);
    chain.push(edge.to);
    chains.push({ source: edge.source, target: edge.target, reversed: edge.reversed, chain });
  }

  const layers = orderLayers(vertices);
  const position = placeAlong(vertices, layers, options.nodeGap);

  // Order-axis coordinates start at 0; the rank axis steps by layer.
  const rankStep = across + options.layerGap;
  const nodes = new Map<string, PositionedNode>();
  const centerOf = (v: number): Point => {
    const vertex = vertices[v];
    const rank = (vertex?.layer ?? 0) * rankStep + across / 2;
    const alongCenter = position[v] ?? 0;
    return options.direction === "LR" ? { x: rank, y: alongCenter } : { x: alongCenter, y: rank };
  };
  layers.forEach((layer, layerIndex) =>
    layer.forEach((v, order) => {
      const vertex = vertices[v];
      if (vertex === undefined || vertex.dummy) return;
      const center = centerOf(v);
      nodes.set(vertex.id, {
        id: vertex.id,
        x: center.x - options.nodeWidth / 2,
        y: center.y - options.nodeHeight / 2,
        layer: layerIndex,
        order,
      });
    }),
  );

  const port = (v: number, side: "out" | "in"): Point => {
    const c = centerOf(v);
    const offset = (side === "out" ? 1 : -1) * (across / 2);
    return options.direction === "LR" ? { x: c.x + offset, y: c.y } : { x: c.x, y: c.y + offset };
  };
  const routed: RoutedEdge[] = chains.map(({ source, target, reversed, chain }) => {
    const first = chain[0] ?? 0;
    const last = chain.at(-1) ?? 0;
    const points = [port(first, "out"), ...chain.slice(1, -1).map(centerOf), port(last, "in")];
    // A reversed (cycle-closing) edge is drawn in its real direction.
    return { source, target, points: reversed ? points.reverse() : points };
  });

  let alongExtent = 0;
  for (const [v, p] of position.entries()) {
    alongExtent = Math.max(alongExtent, p + (vertices[v]?.size ?? 0) / 2);
  }
  const rankExtent = layers.length === 0 ? 0 : layers.length * rankStep - options.layerGap;
  return {
    nodes,
    edges: routed,
    width: options.direction === "LR" ? rankExtent : alongExtent,
    height: options.direction === "LR" ? alongExtent : rankExtent,
    layers: layers.length,
  };
}

interface IndexedEdge {
  from: number;
  to: number;
  source: string;
  target: string;
  reversed: boolean;
}

function uniqueEdges(edges: readonly LayoutEdgeInput[], index: Map<string, number>): IndexedEdge[] {
  const seen = new Set<string>();
  const result: IndexedEdge[] = [];
  for (const edge of edges) {
    const from = index.get(edge.source);
    const to = index.get(edge.target);
    // Self-loops (a service calling itself) say nothing about the flow between services.
    if (from === undefined || to === undefined || from === to) continue;
    const key = `${from}>${to}`;
    if (seen.has(key)) continue;
    seen.add(key);
    result.push({ from, to, source: edge.source, target: edge.target, reversed: false });
  }
  return result;
}

/** Reverses the edges that close a cycle (DFS back edges), so the rest is a DAG. */
function breakCycles(count: number, edges: IndexedEdge[]): IndexedEdge[] {
  const out: number[][] = Array.from({ length: count }, () => []);
  edges.forEach((edge, i) => out[edge.from]?.push(i));
  const state = new Uint8Array(count); // 0 new, 1 on the DFS stack, 2 done
  const reversed = new Set<number>();
  // Sources first, so back edges are the ones pointing "upstream".
  const hasIncoming = new Uint8Array(count);
  for (const edge of edges) hasIncoming[edge.to] = 1;
  const roots = [...Array(count).keys()].sort((a, b) => (hasIncoming[a] ?? 0) - (hasIncoming[b] ?? 0));
  for (const root of roots) {
    if (state[root] !== 0) continue;
    // Iterative DFS: a deep chain must not overflow the call stack.
    const stack: { node: number; next: number }[] = [{ node: root, next: 0 }];
    state[root] = 1;
    while (stack.length > 0) {
      const frame = stack[stack.length - 1];
      if (frame === undefined) break;
      const outgoing = out[frame.node] ?? [];
      if (frame.next >= outgoing.length) {
        state[frame.node] = 2;
        stack.pop();
        continue;
      }
      const edgeIndex = outgoing[frame.next] ?? 0;
      frame.next += 1;
      const to = edges[edgeIndex]?.to ?? 0;
      if (state[to] === 1) reversed.add(edgeIndex);
      else if (state[to] === 0) {
        state[to] = 1;
        stack.push({ node: to, next: 0 });
      }
    }
  }
  return edges.map((edge, i) =>
    reversed.has(i) ? { ...edge, from: edge.to, to: edge.from, reversed: true } : edge,
  );
}

/** Layer = length of the longest path from a source (Kahn's order over the DAG). */
function longestPathLayers(count: number, edges: IndexedEdge[]): number[] {
  const layer = new Array<number>(count).fill(0);
  const indegree = new Array<number>(count).fill(0);
  const out: number[][] = Array.from({ length: count }, () => []);
  for (const edge of edges) {
    out[edge.from]?.push(edge.to);
    indegree[edge.to] = (indegree[edge.to] ?? 0) + 1;
  }
  const queue = [...Array(count).keys()].filter((v) => indegree[v] === 0);
  for (let head = 0; head < queue.length; head += 1) {
    const v = queue[head] ?? 0;
    for (const w of out[v] ?? []) {
      layer[w] = Math.max(layer[w] ?? 0, (layer[v] ?? 0) + 1);
      indegree[w] = (indegree[w] ?? 0) - 1;
      if (indegree[w] === 0) queue.push(w);
    }
  }
  return layer;
}

function link(vertices: Vertex[], from: number, to: number): void {
  vertices[from]?.down.push(to);
  vertices[to]?.up.push(from);
}

/** Orders every layer to reduce crossings; returns vertex indices per layer. */
function orderLayers(vertices: Vertex[]): number[][] {
  const layerCount = vertices.reduce((max, v) => Math.max(max, v.layer + 1), 0);
  const layers: number[][] = Array.from({ length: layerCount }, () => []);
  // Initial order: DFS from the first layer, so connected nodes start out close together.
  const visited = new Uint8Array(vertices.length);
  const visit = (start: number) => {
    const stack = [start];
    while (stack.length > 0) {
      const v = stack.pop() ?? 0;
      if (visited[v] === 1) continue;
      visited[v] = 1;
      const vertex = vertices[v];
      if (vertex === undefined) continue;
      layers[vertex.layer]?.push(v);
      for (let i = vertex.down.length - 1; i >= 0; i -= 1) stack.push(vertex.down[i] ?? 0);
    }
  };
  vertices.forEach((v, i) => {
    if (v.layer === 0) visit(i);
  });
  vertices.forEach((_, i) => visit(i));

  let best = layers.map((l) => [...l]);
  let bestCrossings = totalCrossings(vertices, best);
  for (let sweep = 0; sweep < ORDERING_SWEEPS && bestCrossings > 0; sweep += 1) {
    const downward = sweep % 2 === 0;
    const range = downward
      ? [...Array(layerCount).keys()].slice(1)
      : [...Array(layerCount).keys()].reverse().slice(1);
    for (const l of range) {
      const neighbourLayer = layers[downward ? l - 1 : l + 1] ?? [];
      const rank = new Map(neighbourLayer.map((v, i) => [v, i]));
      const current = layers[l] ?? [];
      const keyed = current.map((v, i) => {
        const neighbours = (downward ? vertices[v]?.up : vertices[v]?.down) ?? [];
        const ranks = neighbours.map((n) => rank.get(n)).filter((r): r is number => r !== undefined);
        // A vertex without neighbours on that side keeps its place.
        const key = ranks.length === 0 ? i : ranks.reduce((a, b) => a + b, 0) / ranks.length;
        return { v, key, i };
      });
      keyed.sort((a, b) => a.key - b.key || a.i - b.i);
      layers[l] = keyed.map((k) => k.v);
    }
    const crossings = totalCrossings(vertices, layers);
    if (crossings < bestCrossings) {
      bestCrossings = crossings;
      best = layers.map((l) => [...l]);
    }
  }
  return best;
}

/** Edge crossings between every pair of adjacent layers. */
export function totalCrossings(vertices: readonly { down: number[] }[], layers: number[][]): number {
  let total = 0;
  for (let l = 0; l + 1 < layers.length; l += 1) {
    const below = new Map((layers[l + 1] ?? []).map((v, i) => [v, i]));
    const pairs: [number, number][] = [];
    (layers[l] ?? []).forEach((v, i) => {
      for (const w of vertices[v]?.down ?? []) {
        const j = below.get(w);
        if (j !== undefined) pairs.push([i, j]);
      }
    });
    for (let a = 0; a < pairs.length; a += 1) {
      for (let b = a + 1; b < pairs.length; b += 1) {
        const [ai, aj] = pairs[a] ?? [0, 0];
        const [bi, bj] = pairs[b] ?? [0, 0];
        if ((ai - bi) * (aj - bj) < 0) total += 1;
      }
    }
  }
  return total;
}

/** Center of each vertex along the order axis. */
function placeAlong(vertices: Vertex[], layers: number[][], gap: number): number[] {
  const position = new Array<number>(vertices.length).fill(0);
  // Start packed and centred on the tallest layer.
  const extent = (layer: number[]) =>
    layer.reduce((sum, v) => sum + (vertices[v]?.size ?? 0), 0) + Math.max(0, layer.length - 1) * gap;
  const tallest = Math.max(0, ...layers.map(extent));
  for (const layer of layers) {
    let cursor = (tallest - extent(layer)) / 2;
    for (const v of layer) {
      const size = vertices[v]?.size ?? 0;
      position[v] = cursor + size / 2;
      cursor += size + gap;
    }
  }
  for (let pass = 0; pass < PLACEMENT_PASSES; pass += 1) {
    const downward = pass % 2 === 0;
    const order = downward ? layers : [...layers].reverse();
    for (const layer of order) {
      const desired = layer.map((v) => {
        const vertex = vertices[v];
        const neighbours = [...(vertex?.up ?? []), ...(vertex?.down ?? [])];
        if (neighbours.length === 0) return position[v] ?? 0;
        return median(neighbours.map((n) => position[n] ?? 0));
      });
      const sizes = layer.map((v) => vertices[v]?.size ?? 0);
      const placed = separatedClosest(desired, sizes, gap);
      layer.forEach((v, i) => {
        position[v] = placed[i] ?? 0;
      });
    }
  }
  // Shift so the smallest edge sits at 0.
  let min = Number.POSITIVE_INFINITY;
  vertices.forEach((v, i) => {
    min = Math.min(min, (position[i] ?? 0) - v.size / 2);
  });
  if (Number.isFinite(min)) for (let i = 0; i < position.length; i += 1) position[i] = (position[i] ?? 0) - min;
  return position;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  if (sorted.length % 2 === 1) return sorted[mid] ?? 0;
  return ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

/**
 * Positions closest (least squares) to `desired` that keep the given order and at least
 * `gap` between neighbours. With offsets removing the spacing, this is isotonic regression,
 * solved exactly by pool-adjacent-violators.
 */
export function separatedClosest(desired: readonly number[], sizes: readonly number[], gap: number): number[] {
  const offsets: number[] = [];
  let offset = 0;
  for (let i = 0; i < desired.length; i += 1) {
    if (i > 0) offset += ((sizes[i - 1] ?? 0) + (sizes[i] ?? 0)) / 2 + gap;
    offsets.push(offset);
  }
  const blocks: { sum: number; count: number }[] = [];
  desired.forEach((d, i) => {
    blocks.push({ sum: d - (offsets[i] ?? 0), count: 1 });
    while (blocks.length > 1) {
      const last = blocks[blocks.length - 1];
      const before = blocks[blocks.length - 2];
      if (last === undefined || before === undefined || before.sum / before.count <= last.sum / last.count) break;
      blocks.pop();
      before.sum += last.sum;
      before.count += last.count;
    }
  });
  const result: number[] = [];
  for (const block of blocks) {
    const value = block.sum / block.count;
    for (let k = 0; k < block.count; k += 1) result.push(value + (offsets[result.length] ?? 0));
  }
  return result;
}
