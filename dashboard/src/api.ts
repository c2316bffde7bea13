// Client for the query API (`/api/...`). Every response is validated against the contract
// (`contract.ts`, docs/openapi.json) before use, so callers get well-formed data or an `ApiError`
// saying which field the server got wrong, never a half-parsed object.

import { currentToken, type Credential } from "./auth";
import type * as v from "valibot";
import {
  parseAlertHistory,
  parseAlertRules,
  parseAlerts,
  parseSilences,
  type Alert,
  type AlertRule,
  type Silence,
} from "./alerts/model";
import * as contract from "./contract";
import { contractViolation } from "./contract";
import { serviceGraph, type ServiceGraph } from "./graph/model";
import { parseTraceDetail, parseTraceSummaries, type TraceDetail, type TraceSummary } from "./traces/model";
import type { MetricHistory, MetricSummary, Resolution, ServiceSummary, ServiceView } from "./types";

export class ApiError extends Error {
  constructor(
    message: string,
    /** HTTP status, or 0 when the request never got an answer. */
    readonly status: number,
    /** For an expression error: where in the expression (1-based character), when the server says. */
    readonly position: number | null = null,
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

export class QueryClient {
  /**
   * `token`, when not empty, is sent as `Authorization: Bearer …` (the query API on AWS, and local
   * mode started with `--token`, require it). `onUnauthorized` hears the server's reason whenever a
   * request is answered 401, so the page can ask for the token again.
   */
  constructor(
    private readonly baseUrl: string,
    private readonly fetchFn: typeof fetch,
    private readonly token: Credential = "",
    private readonly onUnauthorized: (reason: string) => void = () => {},
    /** Hears answers the server served from its recent answers while its store fails
     * (`x-flowscope-stale: true`, `docs/query-caching.md`), with their `Age` in seconds. */
    private readonly onStale: (path: string, ageSeconds: number | null) => void = () => {},
  ) {}

  /** `GET /api/services`, validated: each service with its instances, versions, sources and health. */
  async serviceViews(): Promise<ServiceView[]> {
    return (await this.read(contract.ServiceList, "GET", "/api/services")).services;
  }

  async services(): Promise<ServiceSummary[]> {
    return (await this.serviceViews()).map(({ name, series, last_seen }) => ({ name, series, last_seen }));
  }

  async metrics(service: string): Promise<MetricSummary[]> {
    const path = `/api/services/${encodeURIComponent(service)}/metrics`;
    return (await this.read(contract.MetricList, "GET", path)).metrics;
  }

  /** All series of one metric of one service, merged by the server (exact quantiles). */
  async metricHistory(service: string, metric: string, range: TimeRange): Promise<MetricHistory> {
    const query = `from=${range.from}&to=${range.to}&resolution=${range.resolution}`;
    const path = `/api/services/${encodeURIComponent(service)}/metrics/${encodeURIComponent(metric)}?${query}`;
    const body = await this.read(contract.History, "GET", path);
    const buckets = body.buckets.map((b) => ({
      start: b.start,
      count: b.count,
      sum: b.sum,
      min: b.min ?? null,
      max: b.max ?? null,
      avg: b.avg ?? null,
      p50: b.p50 ?? null,
      p95: b.p95 ?? null,
      p99: b.p99 ?? null,
      rate: b.rate,
    }));
    return { service, metric, kind: body.kind, unit: body.unit, resolution: body.resolution, buckets };
  }

  /** The service graph between `from` and `to` (unix s). */
  async graph(from: number, to: number): Promise<ServiceGraph> {
    return serviceGraph(await this.read(contract.GraphView, "GET", `/api/graph?from=${from}&to=${to}`));
  }

  async trace(traceId: string): Promise<TraceDetail> {
    const body = await this.read(contract.TraceView, "GET", `/api/traces/${encodeURIComponent(traceId)}`);
    return parseTraceDetail(body, traceId);
  }

  /** The service's most recent kept traces, newest first. */
  async serviceTraces(service: string, limit: number): Promise<TraceSummary[]> {
    const path = `/api/services/${encodeURIComponent(service)}/traces?limit=${limit}`;
    return parseTraceSummaries(await this.read(contract.TraceList, "GET", path));
  }

  async alerts(): Promise<Alert[]> {
    return parseAlerts(await this.read(contract.AlertList, "GET", "/api/alerts"));
  }

  async alertHistory(): Promise<Alert[]> {
    return parseAlertHistory(await this.read(contract.AlertHistory, "GET", "/api/alerts/history"));
  }

  async acknowledgeAlert(fingerprint: string, by: string): Promise<void> {
    await this.request("POST", `/api/alerts/${encodeURIComponent(fingerprint)}/ack`, { by });
  }

  async silences(): Promise<Silence[]> {
    return parseSilences(await this.read(contract.SilenceList, "GET", "/api/silences"));
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
    return parseAlertRules(await this.read(contract.AlertRules, "GET", "/api/alert-rules"));
  }

  /** `GET /api/query` over a range: the expression's series (`contract.ExprResult`). */
  async query(expr: string, from: number, to: number, step: number): Promise<v.InferOutput<typeof contract.ExprResult>> {
    const path = `/api/query?expr=${encodeURIComponent(expr)}&from=${from}&to=${to}&step=${step}`;
    return this.read(contract.ExprResult, "GET", path);
  }

  /** `GET /api/v1/labels` (`/api/v1/label/{name}/values` with `name`; `__name__` lists metrics). */
  async labelNames(name?: string): Promise<string[]> {
    const path = name === undefined ? "/api/v1/labels" : `/api/v1/label/${encodeURIComponent(name)}/values`;
    return (await this.read(contract.PromNames, "GET", path)).data;
  }

  /** One request whose answer must be what `schema` (the contract) allows. */
  private async read<T>(schema: v.GenericSchema<unknown, T>, method: "GET" | "POST" | "DELETE", path: string): Promise<T> {
    const body = await this.request(method, path);
    const violation = contractViolation(schema, body);
    if (violation !== null) {
      throw new ApiError(`${path.split("?")[0]}: the server's answer does not match the API contract (${violation})`, 200);
    }
    return body as T;
  }

  /** One request; the body is JSON (or null for an empty answer such as 204). */
  private async request(method: "GET" | "POST" | "DELETE", path: string, payload?: unknown): Promise<unknown> {
    let response: Response;
    try {
      const headers: Record<string, string> = { accept: "application/json" };
      const token = currentToken(this.token);
      if (token !== "") headers.authorization = `Bearer ${token}`;
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
    if (response.ok && response.headers?.get("x-flowscope-stale") === "true") {
      const age = Number(response.headers.get("age"));
      this.onStale(path.split("?")[0] ?? path, Number.isFinite(age) && response.headers.get("age") !== null ? age : null);
    }
    if (!response.ok) {
      const message =
        isObject(body) && typeof body.error === "string" ? body.error : `HTTP ${response.status}`;
      if (response.status === 401) this.onUnauthorized(message);
      const position = isObject(body) && typeof body.position === "number" ? body.position : null;
      throw new ApiError(message, response.status, position);
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
