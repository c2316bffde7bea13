// Where the API and WebSocket live. The page reads `config.json` from its own origin, so one build
// works from local mode, an S3 bucket or a dev server: only that file differs per deployment.
//
// `config.json` is public, so it never carries a credential: it only says whether one is needed.
// The token itself comes from the user (see `auth.ts`) and is kept for the browser session.

export interface DashboardConfig {
  /** Prefix for `/api/...` requests; "" means the page's own origin. */
  apiBaseUrl: string;
  /** WebSocket endpoint without the token. */
  wsUrl: string;
  /**
   * True when the server says a credential is needed (`"auth": "token"`, or any AWS deployment):
   * the page asks for it before its first request instead of waiting for a 401.
   */
  authRequired: boolean;
}

export interface PageLocation {
  protocol: string;
  host: string;
}

/** Builds a config from whatever `config.json` held; missing or malformed fields fall back to defaults. */
export function resolveConfig(raw: unknown, location: PageLocation): DashboardConfig {
  const fields = typeof raw === "object" && raw !== null ? (raw as Record<string, unknown>) : {};
  const text = (name: string): string | undefined => {
    const value = fields[name];
    return typeof value === "string" ? value.trim() : undefined;
  };
  const apiBaseUrl = (text("apiBaseUrl") ?? "").replace(/\/+$/, "");
  const wsUrl = text("wsUrl") || defaultWsUrl(location);
  const auth = text("auth");
  const authRequired = auth === undefined ? text("mode") === "aws" : auth !== "none" && auth !== "";
  return { apiBaseUrl, wsUrl, authRequired };
}

/** `ws(s)://<host>/ws`, matching the page's scheme so an https page never opens an insecure socket. */
export function defaultWsUrl(location: PageLocation): string {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${location.host}/ws`;
}

/** Adds the token to a WebSocket URL, keeping any query the URL already has. */
export function withToken(wsUrl: string, token: string): string {
  if (token === "") return wsUrl;
  const separator = wsUrl.includes("?") ? "&" : "?";
  return `${wsUrl}${separator}token=${encodeURIComponent(token)}`;
}

/**
 * Fetches `config.json` next to the page. A missing or broken file is not fatal: the page then
 * talks to its own origin, and asks for a token only if the server answers 401.
 */
export async function loadConfig(
  fetchFn: typeof fetch,
  location: PageLocation,
  configUrl: string,
): Promise<{ config: DashboardConfig; warning?: string }> {
  try {
    const response = await fetchFn(configUrl, { cache: "no-store" });
    if (!response.ok) {
      return {
        config: resolveConfig({}, location),
        warning: `config.json: HTTP ${response.status}; using this page's origin`,
      };
    }
    return { config: resolveConfig(await response.json(), location) };
  } catch (error) {
    return {
      config: resolveConfig({}, location),
      warning: `config.json unreadable (${String(error)}); using this page's origin`,
    };
  }
}
