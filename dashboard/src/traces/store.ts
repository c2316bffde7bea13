// The last traces seen on the live feed, newest first, bounded so a tab left open for days does
// not grow: at most `capacity` traces (100 by default) are kept.

import type { TraceEvent } from "./model";

export class TraceStore {
  private readonly traces: TraceEvent[] = [];

  constructor(readonly capacity = 100) {}

  /** Adds a trace (a repeat of a known trace id replaces it); returns true when it was new. */
  add(trace: TraceEvent): boolean {
    const existing = this.traces.findIndex((t) => t.traceId === trace.traceId);
    if (existing >= 0) this.traces.splice(existing, 1);
    this.traces.unshift(trace);
    if (this.traces.length > this.capacity) this.traces.length = this.capacity;
    return existing < 0;
  }

  /** Newest first. */
  all(): readonly TraceEvent[] {
    return this.traces;
  }

  /** Traces that passed through `service` (as caller or callee of a hop, or as root), newest first. */
  involving(service: string, limit = 20): TraceEvent[] {
    const result: TraceEvent[] = [];
    for (const trace of this.traces) {
      if (result.length >= limit) break;
      if (trace.rootService === service || trace.hops.some((h) => h.from === service || h.to === service)) {
        result.push(trace);
      }
    }
    return result;
  }

  get size(): number {
    return this.traces.length;
  }
}
