// Traces as the dashboard reads them: a trace's span tree (`GET /api/traces/{id}`), a service's
// recent traces (`GET /api/services/{s}/traces`) and the live `trace` events (service hops with
// timings) that animate the pipeline graph. Times are milliseconds; absolute ones are unix ms.

import { boolField, isObject, list, numberField, stringMap, textField, type Fields } from "../json";

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
  /** On the critical path, as marked by the server (or computed here when it did not say). */
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
  /** Unix ms when the trace started (or when it was received, if the server did not say). */
  startMs: number;
  durationMs: number;
  error: boolean;
  hops: TraceHop[];
}

/** A time in ms from whichever unit the field names (ns, µs, ms or s). */
function timeMs(fields: Fields, prefix: string): number | null {
  const nanos = numberField(fields, `${prefix}_unix_nano`, `${prefix}_time_unix_nano`, `${prefix}_ns`);
  if (nanos !== null) return nanos / 1e6;
  const micros = numberField(fields, `${prefix}_us`);
  if (micros !== null) return micros / 1e3;
  const millis = numberField(fields, `${prefix}_ms`, `${prefix}_unix_ms`);
  if (millis !== null) return millis;
  const seconds = numberField(fields, prefix, `${prefix}_unix`);
  return seconds === null ? null : seconds * 1000;
}

function durationMs(fields: Fields, start: number | null, end: number | null): number | null {
  const direct = numberField(fields, "duration_ms");
  if (direct !== null) return direct;
  const nanos = numberField(fields, "duration_ns", "duration_nanos");
  if (nanos !== null) return nanos / 1e6;
  const micros = numberField(fields, "duration_us");
  if (micros !== null) return micros / 1e3;
  return start !== null && end !== null ? Math.max(0, end - start) : null;
}

function isError(fields: Fields): boolean {
  const flag = boolField(fields, "error", "is_error", "failed");
  if (flag !== null) return flag;
  const status = fields.status;
  if (typeof status === "string") return status.toLowerCase() === "error";
  if (isObject(status)) {
    const code = status.code;
    return code === 2 || (typeof code === "string" && /error/i.test(code));
  }
  return (numberField(fields, "errors", "error_count") ?? 0) > 0;
}

function parseSpan(value: Fields, parentId: string | null, criticalIds: Set<string>): TraceSpan | null {
  const spanId = textField(value, "span_id", "spanId", "id");
  if (spanId === null) return null;
  const start = timeMs(value, "start");
  const end = timeMs(value, "end");
  if (start === null) return null;
  return {
    spanId,
    parentSpanId: textField(value, "parent_span_id", "parentSpanId", "parent_id") ?? parentId,
    service: textField(value, "service", "service_name") ?? "unknown_service",
    name: textField(value, "name", "operation") ?? "(unnamed)",
    kind: textField(value, "kind") ?? "internal",
    startMs: start,
    durationMs: durationMs(value, start, end) ?? 0,
    error: isError(value),
    attributes: stringMap(value.attributes),
    critical:
      boolField(value, "critical", "on_critical_path", "critical_path") === true || criticalIds.has(spanId),
  };
}

/**
 * Reads a trace. Spans may come as a flat list (with parent ids) or as a tree (`children`); both
 * end up flat. When the server marked no critical path, it is computed here.
 */
export function parseTraceDetail(body: unknown, requestedId: string): TraceDetail {
  const fields = isObject(body) ? (isObject(body.trace) ? body.trace : body) : {};
  const criticalIds = new Set(
    list(fields.critical_path ?? fields.criticalPath).filter((id): id is string => typeof id === "string"),
  );
  const spans: TraceSpan[] = [];
  const seen = new Set<string>();
  const collect = (items: unknown[], parentId: string | null) => {
    for (const item of items) {
      if (!isObject(item)) continue;
      const inner = isObject(item.span) ? item.span : item;
      const span = parseSpan(inner, parentId, criticalIds);
      if (span !== null && !seen.has(span.spanId)) {
        seen.add(span.spanId);
        spans.push(span);
      }
      collect(list(item.children), span?.spanId ?? parentId);
    }
  };
  collect([...list(fields.spans), ...list(fields.roots), ...(isObject(fields.root) ? [fields.root] : [])], null);
  if (!spans.some((s) => s.critical)) {
    const critical = criticalPath(spans);
    for (const span of spans) span.critical = critical.has(span.spanId);
  }
  return { traceId: textField(fields, "trace_id", "traceId", "id") ?? requestedId, spans };
}

/**
 * The spans that decide the trace's duration: from the root, the child that ends last, then the
 * child that ended last before that one started, and so on, recursively. Children running past
 * their parent (asynchronous consumers) count up to the parent's end.
 */
export function criticalPath(spans: readonly TraceSpan[]): Set<string> {
  const ids = new Set(spans.map((s) => s.spanId));
  const children = new Map<string, TraceSpan[]>();
  const roots: TraceSpan[] = [];
  for (const span of spans) {
    if (span.parentSpanId !== null && ids.has(span.parentSpanId)) {
      const list = children.get(span.parentSpanId) ?? [];
      list.push(span);
      children.set(span.parentSpanId, list);
    } else {
      roots.push(span);
    }
  }
  const marked = new Set<string>();
  const end = (s: TraceSpan) => s.startMs + s.durationMs;
  const visit = (span: TraceSpan, limit: number) => {
    const stack: [TraceSpan, number][] = [[span, limit]];
    while (stack.length > 0) {
      const [current, until] = stack.pop() ?? [span, limit];
      if (marked.has(current.spanId)) continue;
      marked.add(current.spanId);
      let cursor = Math.min(end(current), until);
      const kids = [...(children.get(current.spanId) ?? [])].sort((a, b) => end(b) - end(a));
      for (const kid of kids) {
        if (kid.startMs >= cursor) continue;
        // The kid that finished last before `cursor` is what the parent was waiting for.
        stack.push([kid, cursor]);
        cursor = kid.startMs;
      }
    }
  };
  // The longest root is the trace (others are spans whose parent was not kept).
  const root = [...roots].sort((a, b) => b.durationMs - a.durationMs)[0];
  if (root !== undefined) visit(root, Number.POSITIVE_INFINITY);
  return marked;
}

export function parseTraceSummaries(body: unknown): TraceSummary[] {
  const fields = isObject(body) ? body : {};
  return list(fields.traces ?? fields.items).flatMap((item) => {
    if (!isObject(item)) return [];
    const traceId = textField(item, "trace_id", "traceId", "id");
    if (traceId === null) return [];
    const start = timeMs(item, "start");
    return [
      {
        traceId,
        rootService: textField(item, "root_service", "service") ?? "",
        rootName: textField(item, "root_name", "root_operation", "operation", "name") ?? "",
        startMs: start,
        durationMs: durationMs(item, start, timeMs(item, "end")),
        spanCount: numberField(item, "span_count", "spans"),
        error: isError(item),
        services: list(item.services).filter((s): s is string => typeof s === "string"),
      },
    ];
  });
}

/** Reads a `trace` WebSocket event; `receivedMs` stands in for a missing start time. */
export function parseTraceEvent(value: unknown, receivedMs: number): TraceEvent | null {
  if (!isObject(value)) return null;
  const fields = isObject(value.trace) ? value.trace : value;
  const traceId = textField(fields, "trace_id", "traceId", "id");
  if (traceId === null) return null;
  const start = timeMs(fields, "start");
  const hops: TraceHop[] = list(fields.hops).flatMap((item) => {
    if (!isObject(item)) return [];
    const from = textField(item, "from", "source", "client", "caller");
    const to = textField(item, "to", "target", "server", "callee");
    if (from === null || to === null) return [];
    let offset = numberField(item, "offset_ms", "start_offset_ms", "at_ms");
    const hopStart = timeMs(item, "start");
    if (offset === null && hopStart !== null && start !== null) offset = hopStart - start;
    const hopDuration = durationMs(item, hopStart, timeMs(item, "end")) ?? 0;
    return [{ from, to, offsetMs: Math.max(0, offset ?? 0), durationMs: Math.max(0, hopDuration), error: isError(item) }];
  });
  const lastEnd = hops.reduce((max, h) => Math.max(max, h.offsetMs + h.durationMs), 0);
  return {
    traceId,
    rootService: textField(fields, "root_service", "service") ?? hops[0]?.from ?? "",
    rootName: textField(fields, "root_name", "root_operation", "operation", "name") ?? "",
    startMs: start ?? receivedMs,
    durationMs: durationMs(fields, start, timeMs(fields, "end")) ?? lastEnd,
    error: isError(fields) || hops.some((h) => h.error),
    hops,
  };
}
