// Pages are addressed by the URL hash, so any static host (S3, local mode) serves every page from
// one index.html and a link to a service can be shared. New pages (pipeline graph, alerts, traces)
// add a variant here and a view in `views/`.

export type Route = { page: "services" } | { page: "service"; service: string } | { page: "not_found"; hash: string };

export function parseRoute(hash: string): Route {
  const path = hash.replace(/^#/, "").replace(/^\/+/, "").replace(/\/+$/, "");
  if (path === "" || path === "services") return { page: "services" };
  const match = /^services\/([^/]+)$/.exec(path);
  if (match?.[1] !== undefined) {
    try {
      return { page: "service", service: decodeURIComponent(match[1]) };
    } catch {
      return { page: "not_found", hash };
    }
  }
  return { page: "not_found", hash };
}

export function serviceHref(service: string): string {
  return `#/services/${encodeURIComponent(service)}`;
}
