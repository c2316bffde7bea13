// A trace as waterfall rows: spans in tree order (each parent followed by its children, by start
// time), with their depth and their bar's place on the trace's time axis.

import type { TraceSpan } from "./model";

export interface WaterfallRow {
  span: TraceSpan;
  depth: number;
  /** Bar start and width as fractions (0..1) of the trace's duration. */
  left: number;
  width: number;
  offsetMs: number;
}

export interface Waterfall {
  rows: WaterfallRow[];
  startMs: number;
  durationMs: number;
  services: string[];
  errors: number;
}

export function buildWaterfall(spans: readonly TraceSpan[]): Waterfall {
  const ids = new Set(spans.map((s) => s.spanId));
  const children = new Map<string | null, TraceSpan[]>();
  for (const span of spans) {
    // A span whose parent was not kept is shown as a root rather than dropped.
    const parent = span.parentSpanId !== null && ids.has(span.parentSpanId) ? span.parentSpanId : null;
    const list = children.get(parent) ?? [];
    list.push(span);
    children.set(parent, list);
  }
  for (const list of children.values()) list.sort((a, b) => a.startMs - b.startMs || a.name.localeCompare(b.name));
  const startMs = spans.reduce((min, s) => Math.min(min, s.startMs), Number.POSITIVE_INFINITY);
  const endMs = spans.reduce((max, s) => Math.max(max, s.startMs + s.durationMs), Number.NEGATIVE_INFINITY);
  const durationMs = Number.isFinite(startMs) && Number.isFinite(endMs) ? Math.max(0, endMs - startMs) : 0;
  const rows: WaterfallRow[] = [];
  const visited = new Set<string>();
  const stack: { span: TraceSpan; depth: number }[] = [...(children.get(null) ?? [])]
    .reverse()
    .map((span) => ({ span, depth: 0 }));
  while (stack.length > 0) {
    const item = stack.pop();
    if (item === undefined) break;
    // Parent ids can form a loop in bad data; each span is shown once.
    if (visited.has(item.span.spanId)) continue;
    visited.add(item.span.spanId);
    const offsetMs = item.span.startMs - startMs;
    rows.push({
      span: item.span,
      depth: item.depth,
      offsetMs,
      left: durationMs > 0 ? offsetMs / durationMs : 0,
      width: durationMs > 0 ? item.span.durationMs / durationMs : 1,
    });
    const kids = children.get(item.span.spanId) ?? [];
    for (let i = kids.length - 1; i >= 0; i -= 1) {
      const kid = kids[i];
      if (kid !== undefined) stack.push({ span: kid, depth: item.depth + 1 });
    }
  }
  // Spans only reachable through a parent loop are appended flat.
  for (const span of spans) {
    if (!visited.has(span.spanId)) {
      const offsetMs = span.startMs - startMs;
      rows.push({ span, depth: 0, offsetMs, left: durationMs > 0 ? offsetMs / durationMs : 0, width: durationMs > 0 ? span.durationMs / durationMs : 1 });
    }
  }
  return {
    rows,
    startMs: Number.isFinite(startMs) ? startMs : 0,
    durationMs,
    services: [...new Set(spans.map((s) => s.service))].sort(),
    errors: spans.filter((s) => s.error).length,
  };
}
