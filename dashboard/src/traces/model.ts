// Traces as the dashboard reads them: a trace's span tree (`GET /api/traces/{id}`), a service's
// recent traces (`GET /api/services/{s}/traces`) and the live `trace` events (service hops with
// timings) that animate the pipeline graph. Times are milliseconds; absolute ones are unix ms.

import type { Schemas } from "../contract";

export interface TraceSpan {
  spanId: string;
  parentSpanId: string | null;
  service: string;
  name: string;
  kind: string;
  /** Unix milliseconds (fractional). */
  startMs: number;
  durationMs: number;
  error: boolean;
  attributes: Record<string, string>;
  /** On the critical path, as marked by the server. */
  critical: boolean;
}

export interface TraceDetail {
  traceId: string;
  spans: TraceSpan[];
}

export interface TraceSummary {
  traceId: string;
  rootService: string;
  rootName: string;
  /** Unix ms; null when unknown. */
  startMs: number | null;
  durationMs: number | null;
  spanCount: number | null;
  error: boolean;
  services: string[];
}

/** One step of a request from one service to the next, relative to the trace's start. */
export interface TraceHop {
  from: string;
  to: string;
  offsetMs: number;
  durationMs: number;
  error: boolean;
}

export interface TraceEvent {
  traceId: string;
  rootService: string;
  rootName: string;
  /** Unix ms when the trace started. */
  startMs: number;
  durationMs: number;
  error: boolean;
  hops: TraceHop[];
}

/** Unix nanoseconds (sent as decimal text: they exceed 2^53) → unix milliseconds. */
function nanosToMs(text: string): number {
  return Number(text) / 1e6;
}

/** A kept trace (`GET /api/traces/{id}`, validated): its spans in the server's tree order. */
export function parseTraceDetail(body: Schemas["TraceView"], requestedId: string): TraceDetail {
  const critical = new Set(body.critical_path);
  const spans: TraceSpan[] = body.spans.map((span) => ({
    spanId: span.span_id,
    parentSpanId: span.parent_span_id ?? null,
    service: span.service,
    name: span.name,
    kind: span.kind,
    startMs: nanosToMs(span.start_unix_nano),
    durationMs: span.duration_ms,
    error: span.error,
    attributes: span.attributes,
    critical: span.critical || critical.has(span.span_id),
  }));
  return { traceId: body.trace_id === "" ? requestedId : body.trace_id, spans };
}

/** A service's recent kept traces (`GET /api/services/{s}/traces`, validated). */
export function parseTraceSummaries(body: Schemas["TraceList"]): TraceSummary[] {
  return body.traces.map((item) => ({
    traceId: item.trace_id,
    rootService: item.root_service ?? "",
    rootName: item.root_name ?? "",
    startMs: nanosToMs(item.start_unix_nano),
    durationMs: item.duration_ms,
    spanCount: item.span_count,
    error: item.error,
    services: item.services,
  }));
}

/** A live `trace` event (validated). */
export function parseTraceEvent(value: Schemas["TraceEvent"]): TraceEvent {
  const hops: TraceHop[] = value.hops.map((hop) => ({
    from: hop.from,
    to: hop.to,
    offsetMs: Math.max(0, hop.offset_ms),
    durationMs: Math.max(0, hop.duration_ms),
    error: hop.error,
  }));
  return {
    traceId: value.trace_id,
    rootService: value.root_service,
    rootName: value.root_name ?? "",
    startMs: value.start_unix_ms,
    durationMs: value.duration_ms,
    error: value.error || hops.some((h) => h.error),
    hops,
  };
}
