// The API token: where the page gets it and where it keeps it.
//
// - Never from config.json (a public file). The user types it into the sign-in form, or opens a
//   link with `#token=…` in the fragment (fragments are not sent to servers, so it stays out of
//   access logs); the page then removes it from the address bar at once.
// - Kept in sessionStorage only: it survives reloads and in-page navigation, and is gone when the
//   tab closes. Never in localStorage or a cookie.

/** The sessionStorage key. */
export const TOKEN_STORAGE_KEY = "flowscope.token";

/** The part of the Web Storage API used here, so tests can supply a fake. */
export interface TokenStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/**
 * The session's token. Storage may be missing or throw (disabled storage, some private modes): the
 * token is then kept in memory for this page only.
 */
export class TokenStore {
  private memory = "";

  constructor(private readonly storage: TokenStorage | null) {}

  get(): string {
    try {
      const saved = this.storage?.getItem(TOKEN_STORAGE_KEY);
      if (typeof saved === "string") return saved;
    } catch {
      // fall back to memory
    }
    return this.memory;
  }

  set(token: string): void {
    this.memory = token;
    try {
      this.storage?.setItem(TOKEN_STORAGE_KEY, token);
    } catch {
      // memory only
    }
  }

  clear(): void {
    this.memory = "";
    try {
      this.storage?.removeItem(TOKEN_STORAGE_KEY);
    } catch {
      // nothing kept
    }
  }
}

/**
 * Finds `token=…` in a URL fragment (`#token=abc`, or after a route: `#/alerts?token=abc`,
 * `#/alerts&token=abc`) and returns it with the fragment that remains without it.
 */
export function takeTokenFromFragment(hash: string): { token: string | null; hash: string } {
  const body = hash.replace(/^#/, "");
  // A route (`/alerts`) never holds a raw `?`, `&` or `=`: names in routes are percent-encoded.
  const split = body.startsWith("token=") ? 0 : body.search(/[?&]/);
  if (split < 0) return { token: null, hash };
  const route = body.slice(0, split);
  const params = new URLSearchParams(body.slice(split === 0 && body.startsWith("token=") ? 0 : split + 1));
  const token = params.get("token");
  if (token === null) return { token: null, hash };
  params.delete("token");
  const others = params.toString();
  const rest = others === "" ? route : `${route}?${others}`;
  const trimmed = token.trim();
  return { token: trimmed === "" ? null : trimmed, hash: rest === "" ? "" : `#${rest}` };
}

/**
 * Takes a `#token=…` from the page's address into the store, and rewrites the address without it
 * (history.replaceState: no navigation, no history entry holding the token).
 */
export function adoptFragmentToken(
  location: { pathname: string; search: string; hash: string },
  history: { replaceState(data: unknown, unused: string, url?: string): void },
  store: TokenStore,
): boolean {
  const { token, hash } = takeTokenFromFragment(location.hash);
  if (token === null) return false;
  store.set(token);
  history.replaceState(null, "", `${location.pathname}${location.search}${hash}`);
  return true;
}

export type TokenCheck = { ok: true } | { ok: false; status: number; reason: string };

/**
 * Asks the API whether `token` is accepted (GET /api/services with it as a Bearer credential).
 * A refusal carries the server's reason, shown to the user as it is.
 */
export async function checkToken(fetchFn: typeof fetch, apiBaseUrl: string, token: string): Promise<TokenCheck> {
  let response: Response;
  try {
    const headers: Record<string, string> = { accept: "application/json" };
    if (token !== "") headers.authorization = `Bearer ${token}`;
    response = await fetchFn(`${apiBaseUrl}/api/services`, { method: "GET", headers });
  } catch (error) {
    return { ok: false, status: 0, reason: `cannot reach the API: ${String(error)}` };
  }
  if (response.ok) return { ok: true };
  return { ok: false, status: response.status, reason: await errorReason(response) };
}

/** The `error` field of a JSON error body, else `HTTP <status>`. */
export async function errorReason(response: Response): Promise<string> {
  const text = await response.text().catch(() => "");
  try {
    const body: unknown = JSON.parse(text);
    if (typeof body === "object" && body !== null && typeof (body as { error?: unknown }).error === "string") {
      return (body as { error: string }).error;
    }
  } catch {
    // not JSON
  }
  return `HTTP ${response.status}`;
}

/** A credential as the clients hold it: fixed, or read at each request (a token that is refreshed). */
export type Credential = string | (() => string);

/** The credential's value now. */
export function currentToken(credential: Credential): string {
  return typeof credential === "function" ? credential() : credential;
}

/** The answer of `POST /api/token` (and `/refresh`), the fields the page uses. */
export interface IssuedToken {
  access_token: string;
  expires_in: number;
}

/**
 * `POST /api/token` with the key, or `/api/token/refresh` with a token: the new token, or null when
 * tokens are off (404), the credential is refused or the server cannot be reached.
 */
export async function requestToken(
  fetchFn: typeof fetch,
  apiBaseUrl: string,
  path: "/api/token" | "/api/token/refresh",
  credential: string,
): Promise<IssuedToken | null> {
  try {
    const response = await fetchFn(`${apiBaseUrl}${path}`, {
      method: "POST",
      headers: { accept: "application/json", authorization: `Bearer ${credential}` },
    });
    if (!response.ok) return null;
    const body: unknown = await response.json();
    const token = body as Partial<IssuedToken>;
    if (typeof token.access_token !== "string" || typeof token.expires_in !== "number") return null;
    return { access_token: token.access_token, expires_in: token.expires_in };
  } catch {
    return null;
  }
}

/**
 * The session's short-lived token, traded for the key the user gave (`POST /api/token`) and
 * refreshed before it expires (at 80 % of its lifetime: `/api/token/refresh`, else the key again).
 * Where tokens are off, `current()` is the key itself. The key stays in sessionStorage (see above);
 * requests and WebSocket handshakes carry the token.
 */
export class SessionToken {
  private token: string;
  private timer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    private readonly key: string,
    private readonly fetchFn: typeof fetch,
    private readonly apiBaseUrl: string,
    private readonly schedule: (run: () => void, ms: number) => ReturnType<typeof setTimeout> = (run, ms) =>
      setTimeout(run, ms),
  ) {
    this.token = key;
  }

  /** The credential to send now. */
  current(): string {
    return this.token;
  }

  /** Trades the key for a token; keeps the key when tokens are off. */
  async start(): Promise<void> {
    if (this.key === "") return;
    this.adopt(await requestToken(this.fetchFn, this.apiBaseUrl, "/api/token", this.key));
  }

  /** Refreshes now: with the token, else with the key; the key itself when neither works. */
  async refresh(): Promise<void> {
    const refreshed =
      this.token !== this.key
        ? await requestToken(this.fetchFn, this.apiBaseUrl, "/api/token/refresh", this.token)
        : null;
    const issued = refreshed ?? (await requestToken(this.fetchFn, this.apiBaseUrl, "/api/token", this.key));
    if (issued === null) this.token = this.key;
    this.adopt(issued);
  }

  stop(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private adopt(issued: IssuedToken | null): void {
    if (issued === null) return;
    this.token = issued.access_token;
    this.stop();
    const ms = Math.max(5, issued.expires_in * 0.8) * 1000;
    this.timer = this.schedule(() => void this.refresh(), ms);
  }
}
