// The wire contract with the Flowscope server (query API and WebSocket), as TypeScript types.
// Mirrors `shared/src/query.rs` and `shared/src/live/wire.rs`.

import type { Alert } from "./alerts/model";
import type { TraceEvent } from "./traces/model";

export type MetricKind =
  | "gauge"
  | "counter"
  | "up_down_counter"
  | "histogram"
  | "exponential_histogram"
  | "summary";

export type Resolution = "1m" | "5m" | "1h";

export type Attributes = Record<string, string>;

/** One aggregated bucket's totals; `start` is unix seconds. Quantiles are null when unknown. */
export interface Bucket {
  start: number;
  count: number;
  sum: number;
  min: number | null;
  max: number | null;
  avg: number | null;
  p50: number | null;
  p95: number | null;
  p99: number | null;
  /** Per second over the bucket width: summed value for counters, observations otherwise. */
  rate: number;
}

export interface ServiceSummary {
  name: string;
  series: number;
  last_seen: number;
}

export interface SeriesSummary {
  id: string;
  attributes: Attributes;
  last_seen: number;
}

export interface MetricSummary {
  name: string;
  kind: MetricKind;
  unit: string;
  series: SeriesSummary[];
}

export interface MetricHistory {
  service: string;
  metric: string;
  kind: MetricKind;
  unit: string;
  resolution: Resolution;
  buckets: Bucket[];
}

/** One bucket's current totals for one series; replaces what the client holds for that bucket. */
export interface LiveUpdate extends Bucket {
  series_id: string;
  service: string;
  metric: string;
  attributes: Attributes;
  kind: MetricKind;
  unit: string;
  resolution: Resolution;
}

import type { HealthScore } from "./registry/model";

export type ServerMessage =
  | { type: "hello"; connection_id: string; seq: number }
  /** Kept traces' service hops, for the pipeline graph's animation (one event or a batch). */
  | { type: "traces"; traces: TraceEvent[] }
  /** An alert changed state (started firing, resolved, was acknowledged or silenced). */
  | { type: "alert"; alert: Alert }
  /** `part`/`parts` (1-based) only on a message split to stay under 128 KB; absent = whole. */
  | { type: "metrics_update"; seq: number; updates: LiveUpdate[]; traces: TraceEvent[]; part?: number; parts?: number }
  | { type: "snapshot"; seq: number; updates: LiveUpdate[]; traces: TraceEvent[]; part?: number; parts?: number }
  | { type: "pong" }
  | { type: "error"; message: string }
  /** A service's health score (docs/health-score.md), every 10 s in local mode. */
  | { type: "health"; service: string; health: HealthScore }
  /** A registry change (docs/registry.md), as sent. */
  | { type: "registry"; event: unknown };

export type ClientMessage =
  | { type: "subscribe"; services: string[]; metrics: string[]; last_seq?: number }
  | { type: "ping" };
