// Client for the query API (`/api/...`). Responses are validated through `protocol.ts`, so callers
// get well-formed data or an `ApiError`, never a half-parsed object.

import { parseAttributes, parseBucket, parseKind, parseResolution } from "./protocol";
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
  constructor(
    private readonly baseUrl: string,
    private readonly fetchFn: typeof fetch,
  ) {}

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

  private async get(path: string): Promise<Fields> {
    let response: Response;
    try {
      response = await this.fetchFn(`${this.baseUrl}${path}`, {
        headers: { accept: "application/json" },
      });
    } catch (error) {
      throw new ApiError(`cannot reach the API: ${String(error)}`, 0);
    }
    let body: unknown;
    try {
      body = await response.json();
    } catch {
      throw new ApiError(`${path}: HTTP ${response.status}, not JSON`, response.status);
    }
    if (!response.ok) {
      const message =
        isObject(body) && typeof body.error === "string" ? body.error : `HTTP ${response.status}`;
      throw new ApiError(message, response.status);
    }
    if (!isObject(body)) throw new ApiError(`${path}: expected a JSON object`, response.status);
    return body;
  }
}
