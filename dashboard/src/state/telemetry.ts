// Everything the dashboard knows about metric buckets: history loaded from the query API and live
// updates from the WebSocket, combined into one bucket list per (service, metric).
//
// Memory stays bounded: per metric, buckets older than `retentionSeconds` before that metric's
// newest bucket are dropped, so a tab left open for days holds at most an hour of points per series.
// The window follows each metric's own data, not the browser clock, so neither a wrong browser clock
// nor one service with a skewed clock can empty (or overfill) the others.

import type { Bucket, LiveUpdate, MetricHistory, MetricKind, Resolution } from "../types";
import { mergeBuckets, moreComplete, quantilesApproximate } from "./merge";

export interface MetricInfo {
  kind: MetricKind;
  unit: string;
}

interface LiveMetric {
  info: MetricInfo;
  /** series id → bucket start → that series' current totals. */
  series: Map<string, Map<number, Bucket>>;
}

interface HistoryMetric {
  info: MetricInfo;
  buckets: Map<number, Bucket>;
}

export interface TelemetryOptions {
  /** Only updates at this resolution are kept (the charts' resolution). */
  resolution: Resolution;
  /** How far back from the newest bucket to keep points. */
  retentionSeconds: number;
}

export type ChangeListener = (service: string, metric: string) => void;

const KEY_SEPARATOR = "\u0000";

function keyOf(service: string, metric: string): string {
  return `${service}${KEY_SEPARATOR}${metric}`;
}

export class TelemetryState {
  private readonly live = new Map<string, LiveMetric>();
  private readonly history = new Map<string, HistoryMetric>();
  /** Services seen on the live feed, with the newest bucket start seen for each. */
  private readonly liveServices = new Map<string, number>();
  private readonly listeners = new Set<ChangeListener>();

  constructor(private readonly options: TelemetryOptions) {}

  onChange(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Applies a `metrics_update`: each update replaces that series' bucket (totals, not deltas). */
  applyUpdates(updates: readonly LiveUpdate[]): void {
    const changed = new Set<string>();
    for (const update of updates) {
      if (update.resolution !== this.options.resolution) continue;
      const key = keyOf(update.service, update.metric);
      let metric = this.live.get(key);
      if (metric === undefined) {
        metric = { info: { kind: update.kind, unit: update.unit }, series: new Map() };
        this.live.set(key, metric);
      }
      metric.info = { kind: update.kind, unit: update.unit };
      let buckets = metric.series.get(update.series_id);
      if (buckets === undefined) {
        buckets = new Map();
        metric.series.set(update.series_id, buckets);
      }
      buckets.set(update.start, toBucket(update));
      const seen = this.liveServices.get(update.service) ?? Number.NEGATIVE_INFINITY;
      this.liveServices.set(update.service, Math.max(seen, update.start));
      changed.add(key);
    }
    for (const key of changed) this.prune(key);
    this.notify(changed);
  }

  /** Applies a `snapshot`: the server could not replay what was missed, so live state starts over. */
  replaceWithSnapshot(updates: readonly LiveUpdate[]): void {
    const changed = new Set(this.live.keys());
    this.live.clear();
    this.liveServices.clear();
    this.applyUpdates(updates);
    this.notify(changed);
  }

  /**
   * Stores the server's merged history for one metric. Buckets it returns replace those held for the
   * same starts; older ones are kept (until retention drops them), so periodic reloads of the last
   * minutes do not shorten a chart that has been open for longer.
   */
  setHistory(history: MetricHistory): void {
    const key = keyOf(history.service, history.metric);
    const buckets = this.history.get(key)?.buckets ?? new Map<number, Bucket>();
    for (const bucket of history.buckets) buckets.set(bucket.start, bucket);
    this.history.set(key, { info: { kind: history.kind, unit: history.unit }, buckets });
    this.prune(key);
    this.notify(new Set([key]));
  }

  /** Records that a metric has no history (the API answered 404), so views can say "no data yet". */
  clearHistory(service: string, metric: string): void {
    const key = keyOf(service, metric);
    if (this.history.delete(key)) this.notify(new Set([key]));
  }

  /** The metric's buckets, oldest first: history and live combined, live series merged. */
  buckets(service: string, metric: string): Bucket[] {
    const key = keyOf(service, metric);
    const live = this.live.get(key);
    const history = this.history.get(key);
    const liveByStart = new Map<number, Bucket[]>();
    for (const seriesBuckets of live?.series.values() ?? []) {
      for (const [start, bucket] of seriesBuckets) {
        const list = liveByStart.get(start);
        if (list === undefined) liveByStart.set(start, [bucket]);
        else list.push(bucket);
      }
    }
    const starts = new Set<number>([...liveByStart.keys(), ...(history?.buckets.keys() ?? [])]);
    const result: Bucket[] = [];
    for (const start of [...starts].sort((a, b) => a - b)) {
      const seriesBuckets = liveByStart.get(start) ?? [];
      const liveMerged = seriesBuckets.length === 0 ? undefined : mergeBuckets(start, seriesBuckets);
      const chosen = moreComplete(
        history?.buckets.get(start),
        liveMerged,
        quantilesApproximate(seriesBuckets),
      );
      if (chosen !== undefined) result.push(chosen);
    }
    return result;
  }

  info(service: string, metric: string): MetricInfo | null {
    const key = keyOf(service, metric);
    return this.live.get(key)?.info ?? this.history.get(key)?.info ?? null;
  }

  /** Services seen on the live feed → newest bucket start seen for each. */
  servicesSeen(): ReadonlyMap<string, number> {
    return this.liveServices;
  }

  /** Number of buckets held, live and history; lets tests check that memory stays bounded. */
  size(): number {
    let total = 0;
    for (const metric of this.live.values()) {
      for (const buckets of metric.series.values()) total += buckets.size;
    }
    for (const metric of this.history.values()) total += metric.buckets.size;
    return total;
  }

  /** Drops one metric's buckets that fell out of the retention window behind its newest bucket. */
  private prune(key: string): void {
    const live = this.live.get(key);
    const history = this.history.get(key);
    let newest = Number.NEGATIVE_INFINITY;
    for (const buckets of live?.series.values() ?? []) {
      for (const start of buckets.keys()) newest = Math.max(newest, start);
    }
    for (const start of history?.buckets.keys() ?? []) newest = Math.max(newest, start);
    // A bucket exactly one window old is out: an hour of 1m buckets is 60 of them, not 61.
    const cutoff = newest - this.options.retentionSeconds;
    if (!Number.isFinite(cutoff)) return;
    if (live !== undefined) {
      for (const [seriesId, buckets] of live.series) {
        for (const start of buckets.keys()) if (start <= cutoff) buckets.delete(start);
        if (buckets.size === 0) live.series.delete(seriesId);
      }
    }
    if (history !== undefined) {
      for (const start of history.buckets.keys()) if (start <= cutoff) history.buckets.delete(start);
    }
  }

  private notify(keys: Set<string>): void {
    for (const key of keys) {
      const [service = "", metric = ""] = key.split(KEY_SEPARATOR);
      for (const listener of this.listeners) listener(service, metric);
    }
  }
}

function toBucket(update: LiveUpdate): Bucket {
  return {
    start: update.start,
    count: update.count,
    sum: update.sum,
    min: update.min,
    max: update.max,
    avg: update.avg,
    p50: update.p50,
    p95: update.p95,
    p99: update.p99,
    rate: update.rate,
  };
}
