// The service graph (`GET /api/graph?from&to`): services and virtual nodes (databases, queues,
// external hosts) with their RED summary, and the calls between them. Built by the server from
// spans: client→server and producer→consumer pairs become edges.

import { isObject, list, numberField, textField, boolField, type Fields } from "../json";

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

function red(fields: Fields, windowSeconds: number): RedSummary {
  // The summary may sit in a nested object (`red: {…}`) or directly on the node.
  const source = isObject(fields.red) ? fields.red : isObject(fields.stats) ? fields.stats : fields;
  const count = numberField(source, "count", "requests", "calls") ?? 0;
  const errors = numberField(source, "errors", "error_count") ?? 0;
  const rate =
    numberField(source, "rate", "rps", "throughput") ?? (windowSeconds > 0 ? count / windowSeconds : null);
  const errorRatio = numberField(source, "error_rate", "error_ratio") ?? (count > 0 ? errors / count : null);
  return {
    count,
    errors,
    rate,
    errorRatio: errorRatio === null ? null : Math.min(1, Math.max(0, errorRatio)),
    p50Ms: numberField(source, "p50_ms", "p50"),
    p95Ms: numberField(source, "p95_ms", "p95"),
    p99Ms: numberField(source, "p99_ms", "p99"),
  };
}

function parseNode(value: unknown, windowSeconds: number): GraphNode | null {
  if (!isObject(value)) return null;
  const id = textField(value, "id", "name", "service");
  if (id === null) return null;
  const kind = textField(value, "kind", "type") ?? "service";
  return {
    id,
    name: textField(value, "name", "label", "service") ?? id,
    kind,
    virtual: boolField(value, "virtual", "is_virtual") ?? kind !== "service",
    ...red(value, windowSeconds),
  };
}

function parseEdge(value: unknown, windowSeconds: number): GraphEdge | null {
  if (!isObject(value)) return null;
  const source = textField(value, "source", "from", "client", "caller", "producer");
  const target = textField(value, "target", "to", "server", "callee", "consumer");
  if (source === null || target === null) return null;
  const kind = textField(value, "connection", "kind", "type") ?? "call";
  return {
    source,
    target,
    kind: /messag|producer|consumer|async/i.test(kind) ? "messaging" : "call",
    ...red(value, windowSeconds),
  };
}

/**
 * Reads a graph response. Nodes that edges mention but the node list lacks are added (without
 * numbers), so an edge never points at nothing.
 */
export function parseServiceGraph(body: unknown, fallbackFrom: number, fallbackTo: number): ServiceGraph {
  const fields = isObject(body) ? body : {};
  const from = numberField(fields, "from") ?? fallbackFrom;
  const to = numberField(fields, "to") ?? fallbackTo;
  const windowSeconds = Math.max(0, to - from);
  const nodes = new Map<string, GraphNode>();
  for (const item of list(fields.nodes)) {
    const node = parseNode(item, windowSeconds);
    if (node !== null && !nodes.has(node.id)) nodes.set(node.id, node);
  }
  const edges: GraphEdge[] = [];
  for (const item of list(fields.edges)) {
    const edge = parseEdge(item, windowSeconds);
    if (edge === null) continue;
    for (const id of [edge.source, edge.target]) {
      if (!nodes.has(id)) nodes.set(id, emptyNode(id));
    }
    edges.push(edge);
  }
  return { from, to, nodes: [...nodes.values()], edges };
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
