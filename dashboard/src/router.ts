// Pages are addressed by the URL hash, so any static host (S3, local mode) serves every page from
// one index.html and a link to a service, a trace or the graph with a panel open can be shared.

export type Route =
  | { page: "overview" }
  | { page: "pipeline"; service: string | null }
  | { page: "service"; service: string }
  | { page: "trace"; traceId: string }
  | { page: "alerts" }
  | { page: "services" }
  | { page: "profiles"; query: string }
  | { page: "explore"; query: string }
  | { page: "not_found"; hash: string };

function decode(part: string): string | null {
  try {
    return decodeURIComponent(part);
  } catch {
    return null;
  }
}

export function parseRoute(hash: string): Route {
  // The Profiles page keeps its state (service, type, range, selection, minute…) in a query.
  const profiles = /^#?\/*profiles\/*(?:\?(.*))?$/.exec(hash);
  if (profiles !== null) return { page: "profiles", query: profiles[1] ?? "" };
  // The Explore page keeps its expression (and tab) in the query beside the time range.
  const explore = /^#?\/*explore\/*(?:\?(.*))?$/.exec(hash);
  if (explore !== null) return { page: "explore", query: explore[1] ?? "" };
  // Other pages' queries hold only the global time range (`state/time-range.ts`).
  const path = hash.replace(/\?.*$/, "").replace(/^#/, "").replace(/^\/+/, "").replace(/\/+$/, "");
  if (path === "" || path === "overview") return { page: "overview" };
  if (path === "pipeline") return { page: "pipeline", service: null };
  if (path === "alerts") return { page: "alerts" };
  if (path === "services") return { page: "services" };
  const match = /^(services|pipeline|traces)\/([^/]+)$/.exec(path);
  const name = match?.[2] === undefined ? null : decode(match[2]);
  if (match === null || name === null || name === "") return { page: "not_found", hash };
  switch (match[1]) {
    case "services":
      return { page: "service", service: name };
    case "pipeline":
      return { page: "pipeline", service: name };
    default:
      return { page: "trace", traceId: name };
  }
}

export function serviceHref(service: string): string {
  return `#/services/${encodeURIComponent(service)}`;
}

/** The graph with `service`'s details panel open (or closed, for null). */
export function pipelineHref(service: string | null): string {
  return service === null ? "#/pipeline" : `#/pipeline/${encodeURIComponent(service)}`;
}

export function traceHref(traceId: string): string {
  return `#/traces/${encodeURIComponent(traceId)}`;
}

export const OVERVIEW_HREF = "#/overview";
export const ALERTS_HREF = "#/alerts";
export const SERVICES_HREF = "#/services";

export const PROFILES_HREF = "#/profiles";
export const EXPLORE_HREF = "#/explore";

/** The Profiles page of `service`. */
export function profilesHref(service: string): string {
  return `#/profiles?service=${encodeURIComponent(service)}`;
}
