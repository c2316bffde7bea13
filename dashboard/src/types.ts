// The dashboard's types for what the server sends. The wire types are the contract's, generated
// from the server's code (`generated/api.ts`, docs/contract.md); `Bucket`, `LiveUpdate`,
// `MetricHistory` and `ServerMessage` are their shapes after the boundary (`api.ts`, `protocol.ts`),
// with absent statistics as `null`.

import type { Alert } from "./alerts/model";
import type { Schemas } from "./contract";
import type { TraceEvent } from "./traces/model";

export type MetricKind = Schemas["MetricKind"];

export type Resolution = Schemas["Resolution"];

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

export type ServiceSummary = Pick<Schemas["ServiceView"], "name" | "series" | "last_seen">;
/** A `GET /api/services` entry: the summary plus instances, versions, sources and health. */
export type ServiceView = Schemas["ServiceView"];

export type SeriesSummary = Schemas["SeriesSummary"];

export type MetricSummary = Schemas["MetricSummary"];

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
  /** A registry change (docs/registry.md), validated against the contract. */
  | { type: "registry"; event: Schemas["RegistryEvent"] }
  /** A service/profile type's minute (start, unix ms) got samples (the Profiles page refreshes). */
  | { type: "profile"; service: string; profileType: string; minute: number; total: number };

export type ClientMessage = Schemas["ClientMessage"];
