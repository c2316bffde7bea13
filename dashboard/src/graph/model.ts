// The service graph (`GET /api/graph?from&to`): services and virtual nodes (databases, queues,
// external hosts) with their RED summary, and the calls between them. Built by the server from
// spans: client→server and producer→consumer pairs become edges.

import type { Schemas } from "../contract";

/** Rate, errors and duration over the graph's window. Durations in milliseconds. */
export interface RedSummary {
  /** Spans (requests) in the window. */
  count: number;
  errors: number;
  /** Requests per second over the window. */
  rate: number | null;
  /** errors / count, 0..1; null without requests. */
  errorRatio: number | null;
  p50Ms: number | null;
  p95Ms: number | null;
  p99Ms: number | null;
}

export interface GraphNode extends RedSummary {
  id: string;
  /** Shown name: the service name, or e.g. "postgresql" for a database. */
  name: string;
  /** "service", or what a virtual node stands for: "database", "messaging", "external". */
  kind: string;
  /** Not a service that reports itself, but something services call (a database, a broker). */
  virtual: boolean;
}

export interface GraphEdge extends RedSummary {
  source: string;
  target: string;
  /** "call" (client→server) or "messaging" (producer→consumer). */
  kind: string;
}

export interface ServiceGraph {
  /** Unix seconds. */
  from: number;
  to: number;
  nodes: GraphNode[];
  edges: GraphEdge[];
}

type Red = Schemas["RedView"];

function red(fields: Red): RedSummary {
  return {
    count: fields.count,
    errors: fields.errors,
    rate: fields.rate,
    errorRatio: fields.error_rate === null || fields.error_rate === undefined ? null : Math.min(1, Math.max(0, fields.error_rate)),
    p50Ms: fields.p50_ms ?? null,
    p95Ms: fields.p95_ms ?? null,
    p99Ms: fields.p99_ms ?? null,
  };
}

/**
 * The graph of a (validated) `GET /api/graph` answer. Nodes that edges mention but the node list
 * lacks are added (without numbers), so an edge never points at nothing.
 */
export function serviceGraph(body: Schemas["GraphView"]): ServiceGraph {
  const nodes = new Map<string, GraphNode>();
  for (const node of body.nodes) {
    if (nodes.has(node.id)) continue;
    nodes.set(node.id, { id: node.id, name: node.name, kind: node.kind, virtual: node.virtual, ...red(node) });
  }
  const edges: GraphEdge[] = body.edges.map((edge) => {
    for (const id of [edge.source, edge.target]) {
      if (!nodes.has(id)) nodes.set(id, emptyNode(id));
    }
    return { source: edge.source, target: edge.target, kind: edge.kind === "messaging" ? "messaging" : "call", ...red(edge) };
  });
  return { from: body.from, to: body.to, nodes: [...nodes.values()], edges };
}

export function emptyNode(id: string, virtual = false): GraphNode {
  return {
    id,
    name: id,
    kind: virtual ? "external" : "service",
    virtual,
    count: 0,
    errors: 0,
    rate: null,
    errorRatio: null,
    p50Ms: null,
    p95Ms: null,
    p99Ms: null,
  };
}

/** A key that changes only when nodes or edges come or go: the layout is redone only then. */
export function topologyKey(nodeIds: readonly string[], edges: readonly { source: string; target: string }[]): string {
  const n = [...nodeIds].sort().join("\u0001");
  const e = edges
    .map((edge) => `${edge.source}\u0002${edge.target}`)
    .sort()
    .join("\u0001");
  return `${n}\u0000${e}`;
}
