// Client for the profiles query API (`/api/profiles/...`, docs/openapi.json). Answers are validated
// (model.ts) before use. `from`/`to` are sent in unix seconds, as every other range route takes them
// (shared/src/http/params.rs).

import { currentToken, type Credential } from "../auth";
import type * as v from "valibot";
import { ApiError } from "../api";
import { parseFlamegraph, type FlameTree } from "./flame";
import {
  Diff,
  diffTree,
  Flamegraph,
  ProfileServices,
  ProfileTypes,
  Timeline,
  Top,
  violation,
  type TimelineData,
} from "./model";

export interface Window {
  from: number;
  to: number;
}

export interface ProfileQuery {
  service: string;
  type: string;
  /** Label filter `k=v,k2=v2` (only label sets with all of them); "" for all. */
  labels?: string;
}

export class ProfilesClient {
  constructor(
    private readonly baseUrl: string,
    private readonly fetchFn: typeof fetch,
    private readonly token: Credential,
    private readonly onUnauthorized: (reason: string) => void,
  ) {}

  async services(): Promise<{ service: string; types: string[] }[]> {
    return (await this.read(ProfileServices, "/api/profiles/services")).services;
  }

  async types(service: string): Promise<{ type: string; unit: string }[]> {
    return (await this.read(ProfileTypes, `/api/profiles/types?service=${encodeURIComponent(service)}`)).types;
  }

  async timeline(q: ProfileQuery, w: Window): Promise<TimelineData> {
    return this.read(Timeline, `/api/profiles/timeline?${query(q, w)}`);
  }

  async flamegraph(q: ProfileQuery, w: Window): Promise<{ tree: FlameTree; unit: string }> {
    const body = await this.read(Flamegraph, `/api/profiles/flamegraph?${query(q, w)}`);
    return { tree: parseFlamegraph(body.names, body.levels), unit: body.unit };
  }

  async diff(q: ProfileQuery, w: Window, base: Window): Promise<{ tree: FlameTree; unit: string }> {
    const body = await this.read(Diff, `/api/profiles/diff?${query(q, w)}&base_from=${base.from}&base_to=${base.to}`);
    return { tree: diffTree(body), unit: body.unit };
  }

  async top(q: ProfileQuery, w: Window, limit = 50): Promise<v.InferOutput<typeof Top>> {
    return this.read(Top, `/api/profiles/top?${query(q, w)}&limit=${limit}`);
  }

  /** A download route's body (snapshot, pprof) with the credential, and its suggested file name. */
  async download(kind: "snapshot" | "pprof", q: ProfileQuery, w: Window): Promise<{ blob: Blob; filename: string }> {
    const path = `/api/profiles/${kind}?${query(q, w)}`;
    const response = await this.send(path, "*/*");
    if (!response.ok) throw await failure(response, path, this.onUnauthorized);
    const disposition = response.headers.get("content-disposition") ?? "";
    const named = /filename="?([^";]+)"?/.exec(disposition)?.[1];
    const suffix = kind === "snapshot" ? "json.gz" : "pb.gz";
    return { blob: await response.blob(), filename: named ?? `${q.service}-${q.type}-${w.from}-${w.to}.${suffix}` };
  }

  private async send(path: string, accept: string): Promise<Response> {
    const headers: Record<string, string> = { accept };
    const token = currentToken(this.token);
    if (token !== "") headers.authorization = `Bearer ${token}`;
    try {
      return await this.fetchFn(`${this.baseUrl}${path}`, { headers });
    } catch (error) {
      throw new ApiError(`cannot reach the API: ${String(error)}`, 0);
    }
  }

  private async read<T>(schema: v.GenericSchema<unknown, T>, path: string): Promise<T> {
    const response = await this.send(path, "application/json");
    if (!response.ok) throw await failure(response, path, this.onUnauthorized);
    let body: unknown;
    try {
      body = await response.json();
    } catch {
      throw new ApiError(`${path.split("?")[0]}: HTTP ${response.status}, not JSON`, response.status);
    }
    const problem = violation(schema, body);
    if (problem !== null) {
      throw new ApiError(`${path.split("?")[0]}: the server's answer does not match the API contract (${problem})`, 200);
    }
    return body as T;
  }
}

function query(q: ProfileQuery, w: Window): string {
  const labels = q.labels === undefined || q.labels.trim() === "" ? "" : `&labels=${encodeURIComponent(q.labels.trim())}`;
  return `service=${encodeURIComponent(q.service)}&type=${encodeURIComponent(q.type)}&from=${w.from}&to=${w.to}${labels}`;
}

async function failure(response: Response, path: string, onUnauthorized: (reason: string) => void): Promise<ApiError> {
  const text = await response.text().catch(() => "");
  let message = `${path.split("?")[0]}: HTTP ${response.status}`;
  try {
    const body: unknown = JSON.parse(text);
    if (typeof body === "object" && body !== null && typeof (body as { error?: unknown }).error === "string") {
      message = (body as { error: string }).error;
    }
  } catch {
    // Not JSON: keep the status line.
  }
  if (response.status === 401) onUnauthorized(message);
  return new ApiError(message, response.status);
}
