// Parsing of what the server sends. Every message is validated against the contract
// (`contract.ts`) before use: a message the contract does not allow is dropped (and reported)
// instead of corrupting chart state or throwing inside an event handler.

import * as v from "valibot";
import { alertTransition } from "./alerts/model";
import * as contract from "./contract";
import { parseTraceEvent, type TraceEvent } from "./traces/model";
import type { ClientMessage, LiveUpdate, ServerMessage } from "./types";

function liveUpdate(u: v.InferOutput<typeof contract.LiveUpdate>): LiveUpdate {
  return {
    series_id: u.series_id,
    service: u.service,
    metric: u.metric,
    attributes: u.attributes,
    kind: u.kind,
    unit: u.unit,
    resolution: u.resolution,
    start: u.start,
    count: u.count,
    sum: u.sum,
    min: u.min ?? null,
    max: u.max ?? null,
    avg: u.avg ?? null,
    p50: u.p50 ?? null,
    p95: u.p95 ?? null,
    p99: u.p99 ?? null,
    rate: u.rate,
  };
}

/**
 * Parses one WebSocket text frame, validated against the contract
 * (docs/websocket.server.schema.json); null for anything the contract does not allow (the
 * connection reports it through `onProtocolError`).
 */
export function parseServerMessage(text: string): ServerMessage | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  const result = v.safeParse(contract.ServerMessage, value);
  if (!result.success) return null;
  const message = result.output;
  switch (message.type) {
    case "hello":
      return { type: "hello", connection_id: message.connection_id, seq: message.seq };
    case "metrics_update":
    case "snapshot": {
      // A message split to stay under 128 KB carries `part` of `parts` (1-based, same seq).
      const part = message.part ?? 1;
      const parts = message.parts ?? 1;
      if (part > parts) return null;
      const out = { type: message.type, seq: message.seq, updates: message.updates.map(liveUpdate), traces: [] };
      return parts > 1 ? { ...out, part, parts } : out;
    }
    case "pong":
      return { type: "pong" };
    case "trace": {
      const traces: TraceEvent[] = message.traces.map(parseTraceEvent);
      return traces.length === 0 ? null : { type: "traces", traces };
    }
    case "alert":
      return { type: "alert", alert: alertTransition(message) };
    case "registry":
      return { type: "registry", event: message };
    case "health":
      return {
        type: "health",
        service: message.service,
        health: { score: message.score ?? null, status: message.status, reasons: message.reasons, inputs: message.inputs },
      };
    case "error":
      return { type: "error", message: message.message };
    case "profile":
      return { type: "profile", service: message.service, profileType: message.profile_type, minute: message.minute, total: message.total };
  }
}

export function encodeClientMessage(message: ClientMessage): string {
  return JSON.stringify(message);
}
