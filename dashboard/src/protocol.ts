// Parsing of what the server sends. Every message is checked before use: a malformed message is
// dropped (and reported) instead of corrupting chart state or throwing inside an event handler.

import { parseAlert } from "./alerts/model";
import { parseHealth } from "./registry/model";
import { parseTraceEvent, type TraceEvent } from "./traces/model";
import type {
  Attributes,
  Bucket,
  ClientMessage,
  LiveUpdate,
  MetricKind,
  Resolution,
  ServerMessage,
} from "./types";

const KINDS: readonly MetricKind[] = [
  "gauge",
  "counter",
  "up_down_counter",
  "histogram",
  "exponential_histogram",
  "summary",
];
const RESOLUTIONS: readonly Resolution[] = ["1m", "5m", "1h"];

type Fields = Record<string, unknown>;

function isObject(value: unknown): value is Fields {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function finite(value: unknown): number | null {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

export function parseKind(value: unknown): MetricKind | null {
  return KINDS.includes(value as MetricKind) ? (value as MetricKind) : null;
}

export function parseResolution(value: unknown): Resolution | null {
  return RESOLUTIONS.includes(value as Resolution) ? (value as Resolution) : null;
}

export function parseAttributes(value: unknown): Attributes {
  const attributes: Attributes = {};
  if (!isObject(value)) return attributes;
  for (const [key, v] of Object.entries(value)) {
    attributes[key] = typeof v === "string" ? v : JSON.stringify(v);
  }
  return attributes;
}

/** A bucket needs a start and a count; optional statistics become null when absent or not numbers. */
export function parseBucket(value: unknown): Bucket | null {
  if (!isObject(value)) return null;
  const start = finite(value.start);
  const count = finite(value.count);
  if (start === null || count === null) return null;
  return {
    start,
    count,
    sum: finite(value.sum) ?? 0,
    min: finite(value.min),
    max: finite(value.max),
    avg: finite(value.avg),
    p50: finite(value.p50),
    p95: finite(value.p95),
    p99: finite(value.p99),
    rate: finite(value.rate) ?? 0,
  };
}

export function parseLiveUpdate(value: unknown): LiveUpdate | null {
  const bucket = parseBucket(value);
  if (bucket === null || !isObject(value)) return null;
  const kind = parseKind(value.kind);
  const resolution = parseResolution(value.resolution);
  const { series_id: seriesId, service, metric } = value;
  if (
    kind === null ||
    resolution === null ||
    typeof seriesId !== "string" ||
    typeof service !== "string" ||
    typeof metric !== "string"
  ) {
    return null;
  }
  return {
    ...bucket,
    series_id: seriesId,
    service,
    metric,
    attributes: parseAttributes(value.attributes),
    kind,
    unit: typeof value.unit === "string" ? value.unit : "",
    resolution,
  };
}

function parseUpdates(value: unknown): LiveUpdate[] {
  if (!Array.isArray(value)) return [];
  const updates: LiveUpdate[] = [];
  for (const item of value) {
    const update = parseLiveUpdate(item);
    if (update !== null) updates.push(update);
  }
  return updates;
}

function parseTraces(value: unknown, receivedMs: number): TraceEvent[] {
  if (!Array.isArray(value)) return [];
  const traces: TraceEvent[] = [];
  for (const item of value) {
    const trace = parseTraceEvent(item, receivedMs);
    if (trace !== null) traces.push(trace);
  }
  return traces;
}

/**
 * Parses one WebSocket text frame; null for anything that is not a known, well-formed message.
 * `receivedMs` dates a trace event that carries no start time.
 */
export function parseServerMessage(text: string, receivedMs: number = Date.now()): ServerMessage | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (!isObject(value)) return null;
  const seq = finite(value.seq);
  switch (value.type) {
    case "hello":
      if (seq === null) return null;
      return {
        type: "hello",
        connection_id: typeof value.connection_id === "string" ? value.connection_id : "",
        seq,
      };
    case "metrics_update":
    case "snapshot": {
      if (seq === null) return null;
      // A message split to stay under 128 KB carries `part` of `parts` (1-based, same seq).
      const part = value.part === undefined ? 1 : finite(value.part);
      const parts = value.parts === undefined ? 1 : finite(value.parts);
      if (part === null || parts === null || !Number.isInteger(part) || !Number.isInteger(parts)) return null;
      if (part < 1 || part > parts) return null;
      // Trace events may ride along with a flush's metric updates.
      const message = { type: value.type, seq, updates: parseUpdates(value.updates), traces: parseTraces(value.traces, receivedMs) };
      return parts > 1 ? { ...message, part, parts } : message;
    }
    case "pong":
      return { type: "pong" };
    case "trace":
    case "traces": {
      // A flush's batch (`{"type":"trace","seq":42,"traces":[…]}`, docs/websocket.md), or one event.
      const traces = Array.isArray(value.traces) ? parseTraces(value.traces, receivedMs) : parseTraces([value], receivedMs);
      return traces.length === 0 ? null : { type: "traces", traces };
    }
    case "alert": {
      const alert = parseAlert(value);
      return alert === null ? null : { type: "alert", alert };
    }
    case "registry":
      return typeof value.service === "string" && typeof value.instance === "string" ? { type: "registry", event: value } : null;
    case "health": {
      const health = parseHealth(value);
      return health === null || typeof value.service !== "string" ? null : { type: "health", service: value.service, health };
    }
    case "error":
      return {
        type: "error",
        message: typeof value.message === "string" ? value.message : "unknown error",
      };
    default:
      return null;
  }
}

export function encodeClientMessage(message: ClientMessage): string {
  return JSON.stringify(message);
}
