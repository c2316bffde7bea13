// The service registry and health scores as the dashboard shows them (docs/registry.md,
// docs/health-score.md): rows of the Services page from `GET /api/services`, kept current by live
// `registry` and `health` events, and a node's health word from its score instead of guessing it
// from request metrics.

import { formatAge } from "../format";
import type { Health } from "../graph/health";

export type InstanceSource = "otlp" | "registered" | "scraped";

/** The series the health scores are stored as, under each service (docs/health-score.md). */
export const SCORE_METRIC = "flowscope.health.score";

export interface Lease {
  ttl_seconds: number;
  expires_at: number;
}

export interface Instance {
  service: string;
  instance: string;
  version: string | null;
  host: string | null;
  sources: InstanceSource[];
  metadata: Record<string, string>;
  health_url: string | null;
  metrics_url: string | null;
  first_seen: number;
  last_seen: number;
  lease: Lease | null;
}

export type HealthStatus = "healthy" | "degraded" | "down" | "unknown";

/** What a score is computed from (docs/health-score.md), as the live `health` event carries it. */
export interface ScoreInputs {
  probe_availability?: number | null;
  probe_p95_s?: number | null;
  /** Unix seconds of the newest telemetry point; null when the service never sent any. */
  last_telemetry?: number | null;
  firing_critical?: number | null;
  firing_warning?: number | null;
  pending?: number | null;
}

export interface HealthScore {
  score: number | null;
  status: HealthStatus;
  reasons: string[];
  inputs?: ScoreInputs;
}

export interface ServiceHealthRow {
  service: string;
  score: number | null;
  status: HealthStatus;
  reasons: string[];
  /** The score's inputs, when the server sent them. */
  inputs?: ScoreInputs;
  instances: Instance[];
  versions: string[];
  sources: InstanceSource[];
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : [];
}

function numberOrNull(value: unknown): number | null {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

const SOURCES: readonly InstanceSource[] = ["otlp", "registered", "scraped"];
const STATUSES: readonly HealthStatus[] = ["healthy", "degraded", "down", "unknown"];

function sources(value: unknown): InstanceSource[] {
  return strings(value).filter((s): s is InstanceSource => (SOURCES as readonly string[]).includes(s));
}

export function parseHealth(value: unknown): HealthScore | null {
  if (!isRecord(value)) return null;
  const status = typeof value.status === "string" && (STATUSES as readonly string[]).includes(value.status)
    ? (value.status as HealthStatus)
    : "unknown";
  const inputs = isRecord(value.inputs)
    ? {
        probe_availability: numberOrNull(value.inputs.probe_availability),
        probe_p95_s: numberOrNull(value.inputs.probe_p95_s),
        last_telemetry: numberOrNull(value.inputs.last_telemetry),
        firing_critical: numberOrNull(value.inputs.firing_critical),
        firing_warning: numberOrNull(value.inputs.firing_warning),
        pending: numberOrNull(value.inputs.pending),
      }
    : undefined;
  return { score: numberOrNull(value.score), status, reasons: strings(value.reasons), inputs };
}

export function parseInstance(value: unknown): Instance | null {
  if (!isRecord(value) || typeof value.service !== "string" || typeof value.instance !== "string") return null;
  const lease = isRecord(value.lease) && numberOrNull(value.lease.ttl_seconds) !== null && numberOrNull(value.lease.expires_at) !== null
    ? { ttl_seconds: value.lease.ttl_seconds as number, expires_at: value.lease.expires_at as number }
    : null;
  const metadata: Record<string, string> = {};
  if (isRecord(value.metadata)) {
    for (const [k, v] of Object.entries(value.metadata)) if (typeof v === "string") metadata[k] = v;
  }
  return {
    service: value.service,
    instance: value.instance,
    version: typeof value.version === "string" ? value.version : null,
    host: typeof value.host === "string" ? value.host : null,
    sources: sources(value.sources),
    metadata,
    health_url: typeof value.health_url === "string" ? value.health_url : null,
    metrics_url: typeof value.metrics_url === "string" ? value.metrics_url : null,
    first_seen: numberOrNull(value.first_seen) ?? 0,
    last_seen: numberOrNull(value.last_seen) ?? 0,
    lease,
  };
}

/** Rows of the Services page from `GET /api/services` (entries without the registry fields are kept, empty). */
export function serviceRows(body: unknown): ServiceHealthRow[] {
  const list = isRecord(body) && Array.isArray(body.services) ? body.services : [];
  const rows: ServiceHealthRow[] = [];
  for (const entry of list) {
    if (!isRecord(entry) || typeof entry.name !== "string") continue;
    const health = parseHealth(entry.health);
    const instances = Array.isArray(entry.instances)
      ? entry.instances.map(parseInstance).filter((i): i is Instance => i !== null)
      : [];
    rows.push({
      service: entry.name,
      score: health?.score ?? null,
      status: health?.status ?? "unknown",
      reasons: health?.reasons ?? [],
      inputs: health?.inputs,
      instances,
      versions: strings(entry.versions),
      sources: sources(entry.sources),
    });
  }
  return rows.sort((a, b) => a.service.localeCompare(b.service));
}

/**
 * Applies a live `registry` or `health` event to the rows (a new service gets a row); other
 * messages leave them as they are. Returns whether anything changed.
 */
export function applyEvent(rows: ServiceHealthRow[], message: unknown): boolean {
  if (!isRecord(message) || typeof message.service !== "string") return false;
  const service = message.service;
  let row = rows.find((r) => r.service === service);
  const ensureRow = (): ServiceHealthRow => {
    if (row === undefined) {
      row = { service, score: null, status: "unknown", reasons: [], instances: [], versions: [], sources: [] };
      rows.push(row);
      rows.sort((a, b) => a.service.localeCompare(b.service));
    }
    return row;
  };
  if (message.type === "health") {
    const health = parseHealth(message);
    if (health === null) return false;
    const target = ensureRow();
    target.score = health.score;
    target.status = health.status;
    target.reasons = health.reasons;
    target.inputs = health.inputs;
    return true;
  }
  if (message.type === "registry" && typeof message.instance === "string") {
    const target = ensureRow();
    const instance = message.instance;
    target.instances = target.instances.filter((i) => i.instance !== instance);
    const current = parseInstance(message.current);
    if (current !== null) target.instances.push(current);
    target.instances.sort((a, b) => a.instance.localeCompare(b.instance));
    target.versions = [...new Set(target.instances.flatMap((i) => (i.version === null ? [] : [i.version])))].sort();
    target.sources = SOURCES.filter((s) => target.instances.some((i) => i.sources.includes(s)));
    return true;
  }
  return false;
}

/**
 * A graph node's health word from its service's score (docs/health-score.md): healthy ≥ 80,
 * degraded ≥ 50, below that failing; unknown (silence, no probes) is "no data", never healthy.
 */
export function healthFromScore(score: HealthScore | null): Health {
  if (score === null || score.score === null || score.status === "unknown") return "no_data";
  if (score.score >= 80) return "ok";
  if (score.score >= 50) return "degraded";
  return "failing";
}

/** "42 s", "3 min" until a lease ends (or "expired"). */
export function leaseLeft(lease: Lease | null, nowSeconds: number): string {
  if (lease === null) return "—";
  const left = lease.expires_at - nowSeconds;
  if (left <= 0) return "expired";
  if (left < 120) return `${Math.round(left)} s`;
  return `${Math.round(left / 60)} min`;
}

/**
 * Why a score is what it is, as short lines for a node's tooltip and the details panel: the score
 * and status, the formula's reasons, then every input the server sent (docs/health-score.md).
 */
export function scoreExplanation(health: HealthScore | null, nowSeconds: number): string[] {
  if (health === null) return ["No health score yet (no probes, telemetry or alerts seen)."];
  const head = health.score === null ? `Health unknown` : `Health score ${Math.round(health.score)} (${health.status})`;
  const lines = [health.score === null ? `${head}: no fresh telemetry or probes` : head];
  for (const reason of health.reasons) lines.push(`• ${reason}`);
  const inputs = health.inputs;
  if (inputs === undefined) return lines;
  const facts: string[] = [];
  if (inputs.probe_availability != null) facts.push(`probes ${Math.round(inputs.probe_availability * 100)} % ok`);
  if (inputs.probe_p95_s != null) facts.push(`probe p95 ${Math.round(inputs.probe_p95_s * 1000)} ms`);
  facts.push(
    inputs.last_telemetry != null && inputs.last_telemetry > 0
      ? `last telemetry ${formatAge(inputs.last_telemetry, nowSeconds)}`
      : "no telemetry",
  );
  const critical = inputs.firing_critical ?? 0;
  const warning = inputs.firing_warning ?? 0;
  const pending = inputs.pending ?? 0;
  facts.push(
    critical + warning + pending === 0
      ? "no alerts"
      : `alerts: ${critical} critical, ${warning} warning firing, ${pending} pending`,
  );
  lines.push(`Inputs: ${facts.join(" · ")}`);
  return lines;
}

/** A service's score series, one value per bucket (the bucket's average; null where there is none). */
export interface ScoreHistory {
  service: string;
  buckets: readonly { start: number; avg: number | null; count: number }[];
}

/**
 * Chart columns of score histories: x = every bucket start from `from` up to `to` (step
 * `stepSeconds`), one line per service, null where a service has no score in a bucket (a gap,
 * never a made-up value).
 */
export function scoreHistoryColumns(
  histories: readonly ScoreHistory[],
  from: number,
  to: number,
  stepSeconds: number,
): [number[], ...(number | null)[][]] {
  const xs: number[] = [];
  for (let t = Math.floor(from / stepSeconds) * stepSeconds; t < to; t += stepSeconds) xs.push(t);
  const index = new Map(xs.map((x, i) => [x, i]));
  const lines = histories.map((h) => {
    const line: (number | null)[] = xs.map(() => null);
    for (const b of h.buckets) {
      const i = index.get(b.start);
      if (i !== undefined && b.count > 0 && b.avg !== null && Number.isFinite(b.avg)) line[i] = b.avg;
    }
    return line;
  });
  return [xs, ...lines];
}
