// Client for the query API (`/api/...`). Responses are validated through `protocol.ts`, so callers
// get well-formed data or an `ApiError`, never a half-parsed object.

import { parseAlertRules, parseAlerts, parseSilences, type Alert, type AlertRule, type Silence } from "./alerts/model";
import { parseServiceGraph, type ServiceGraph } from "./graph/model";
import { parseAttributes, parseBucket, parseKind, parseResolution } from "./protocol";
import { parseTraceDetail, parseTraceSummaries, type TraceDetail, type TraceSummary } from "./traces/model";
import type {
  Bucket,
  MetricHistory,
  MetricSummary,
  Resolution,
  SeriesSummary,
  ServiceSummary,
} from "./types";

export class ApiError extends Error {
  constructor(
    message: string,
    /** HTTP status, or 0 when the request never got an answer. */
    readonly status: number,
  ) {
    super(message);
    this.name = "ApiError";
  }

  /** True when the server refused the credential (missing or wrong token): ask for it again. */
  get isUnauthorized(): boolean {
    return this.status === 401;
  }

  /** True when the thing asked for does not exist (yet): show "no data", not an error. */
  get isNotFound(): boolean {
    return this.status === 404;
  }
}

export interface TimeRange {
  /** Unix seconds. */
  from: number;
  to: number;
  resolution: Resolution;
}

type Fields = Record<string, unknown>;

function isObject(value: unknown): value is Fields {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function list(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

export class QueryClient {
  /**
   * `token`, when not empty, is sent as `Authorization: Bearer …` (the query API on AWS, and local
   * mode started with `--token`, require it). `onUnauthorized` hears the server's reason whenever a
   * request is answered 401, so the page can ask for the token again.
   */
  constructor(
    private readonly baseUrl: string,
    private readonly fetchFn: typeof fetch,
    private readonly token: string = "",
    private readonly onUnauthorized: (reason: string) => void = () => {},
  ) {}

  /** `GET /api/services` as sent (instances, versions, sources and health included). */
  async servicesRaw(): Promise<unknown> {
    return this.get("/api/services");
  }

  async services(): Promise<ServiceSummary[]> {
    const body = await this.get("/api/services");
    return list(body.services).flatMap((item) => {
      if (!isObject(item) || typeof item.name !== "string") return [];
      return [
        {
          name: item.name,
          series: typeof item.series === "number" ? item.series : 0,
          last_seen: typeof item.last_seen === "number" ? item.last_seen : 0,
        },
      ];
    });
  }

  async metrics(service: string): Promise<MetricSummary[]> {
    const body = await this.get(`/api/services/${encodeURIComponent(service)}/metrics`);
    return list(body.metrics).flatMap((item) => {
      if (!isObject(item) || typeof item.name !== "string") return [];
      const kind = parseKind(item.kind);
      if (kind === null) return [];
      const series: SeriesSummary[] = list(item.series).flatMap((s) =>
        isObject(s) && typeof s.id === "string"
          ? [
              {
                id: s.id,
                attributes: parseAttributes(s.attributes),
                last_seen: typeof s.last_seen === "number" ? s.last_seen : 0,
              },
            ]
          : [],
      );
      return [{ name: item.name, kind, unit: typeof item.unit === "string" ? item.unit : "", series }];
    });
  }

  /** All series of one metric of one service, merged by the server (exact quantiles). */
  async metricHistory(service: string, metric: string, range: TimeRange): Promise<MetricHistory> {
    const query = `from=${range.from}&to=${range.to}&resolution=${range.resolution}`;
    const body = await this.get(
      `/api/services/${encodeURIComponent(service)}/metrics/${encodeURIComponent(metric)}?${query}`,
    );
    const kind = parseKind(body.kind);
    if (kind === null) throw new ApiError(`unknown metric kind ${String(body.kind)}`, 200);
    const buckets: Bucket[] = list(body.buckets).flatMap((b) => {
      const bucket = parseBucket(b);
      return bucket === null ? [] : [bucket];
    });
    return {
      service,
      metric,
      kind,
      unit: typeof body.unit === "string" ? body.unit : "",
      resolution: parseResolution(body.resolution) ?? range.resolution,
      buckets,
    };
  }

  /** The service graph between `from` and `to` (unix s). */
  async graph(from: number, to: number): Promise<ServiceGraph> {
    return parseServiceGraph(await this.request("GET", `/api/graph?from=${from}&to=${to}`), from, to);
  }

  async trace(traceId: string): Promise<TraceDetail> {
    return parseTraceDetail(await this.request("GET", `/api/traces/${encodeURIComponent(traceId)}`), traceId);
  }

  /** The service's most recent kept traces, newest first. */
  async serviceTraces(service: string, limit: number): Promise<TraceSummary[]> {
    const path = `/api/services/${encodeURIComponent(service)}/traces?limit=${limit}`;
    return parseTraceSummaries(await this.request("GET", path));
  }

  async alerts(): Promise<Alert[]> {
    return parseAlerts(await this.request("GET", "/api/alerts"));
  }

  async alertHistory(): Promise<Alert[]> {
    return parseAlerts(await this.request("GET", "/api/alerts/history"));
  }

  async acknowledgeAlert(fingerprint: string, by: string): Promise<void> {
    await this.request("POST", `/api/alerts/${encodeURIComponent(fingerprint)}/ack`, { by });
  }

  async silences(): Promise<Silence[]> {
    return parseSilences(await this.request("GET", "/api/silences"));
  }

  /**
   * Silences alerts whose labels match every matcher, for `durationSeconds` from now. The duration
   * is sent rather than an end time, so the browser's clock does not matter.
   */
  async createSilence(silence: NewSilence): Promise<void> {
    await this.request("POST", "/api/silences", {
      matchers: silence.matchers.map((m) => ({ name: m.name, value: m.value, op: "=" })),
      duration: `${Math.max(1, Math.round(silence.durationSeconds))}s`,
      created_by: silence.createdBy,
      comment: silence.comment,
    });
  }

  async deleteSilence(id: string): Promise<void> {
    await this.request("DELETE", `/api/silences/${encodeURIComponent(id)}`);
  }

  async alertRules(): Promise<AlertRule[]> {
    return parseAlertRules(await this.request("GET", "/api/alert-rules"));
  }

  private async get(path: string): Promise<Fields> {
    const body = await this.request("GET", path);
    if (!isObject(body)) throw new ApiError(`${path}: expected a JSON object`, 200);
    return body;
  }

  /** One request; the body is JSON (or null for an empty answer such as 204). */
  private async request(method: "GET" | "POST" | "DELETE", path: string, payload?: unknown): Promise<unknown> {
    let response: Response;
    try {
      const headers: Record<string, string> = { accept: "application/json" };
      if (this.token !== "") headers.authorization = `Bearer ${this.token}`;
      const init: RequestInit = { method, headers };
      if (payload !== undefined) {
        headers["content-type"] = "application/json";
        init.body = JSON.stringify(payload);
      }
      response = await this.fetchFn(`${this.baseUrl}${path}`, init);
    } catch (error) {
      throw new ApiError(`cannot reach the API: ${String(error)}`, 0);
    }
    const text = await response.text().catch(() => "");
    let body: unknown = null;
    if (text.trim() !== "") {
      try {
        body = JSON.parse(text);
      } catch {
        throw new ApiError(`${path}: HTTP ${response.status}, not JSON`, response.status);
      }
    }
    if (!response.ok) {
      const message =
        isObject(body) && typeof body.error === "string" ? body.error : `HTTP ${response.status}`;
      if (response.status === 401) this.onUnauthorized(message);
      throw new ApiError(message, response.status);
    }
    return body;
  }
}

export interface NewSilence {
  matchers: { name: string; value: string }[];
  durationSeconds: number;
  createdBy: string;
  comment: string;
}
