import { describe, expect, it } from "vitest";
import { ApiError, QueryClient } from "./api";
import { adoptFragmentToken, checkToken, SessionToken, takeTokenFromFragment, TOKEN_STORAGE_KEY, TokenStore, type TokenStorage } from "./auth";

function memoryStorage(): TokenStorage & { items: Map<string, string> } {
  const items = new Map<string, string>();
  return {
    items,
    getItem: (key) => items.get(key) ?? null,
    setItem: (key, value) => void items.set(key, value),
    removeItem: (key) => void items.delete(key),
  };
}

describe("takeTokenFromFragment", () => {
  it("reads #token=… and leaves an empty fragment", () => {
    expect(takeTokenFromFragment("#token=s3cret")).toEqual({ token: "s3cret", hash: "" });
  });

  it("reads a token after a route and keeps the route", () => {
    expect(takeTokenFromFragment("#/alerts?token=a%20b%26c")).toEqual({ token: "a b&c", hash: "#/alerts" });
    expect(takeTokenFromFragment("#/services/api&token=t")).toEqual({ token: "t", hash: "#/services/api" });
    expect(takeTokenFromFragment("#/pipeline?x=1&token=t")).toEqual({ token: "t", hash: "#/pipeline?x=1" });
  });

  it("leaves fragments without a token alone, and an empty token is none", () => {
    expect(takeTokenFromFragment("#/services/api")).toEqual({ token: null, hash: "#/services/api" });
    expect(takeTokenFromFragment("")).toEqual({ token: null, hash: "" });
    expect(takeTokenFromFragment("#/traces/mytoken=x")).toEqual({ token: null, hash: "#/traces/mytoken=x" });
    expect(takeTokenFromFragment("#token=").token).toBeNull();
    // A malformed escape does not throw.
    expect(takeTokenFromFragment("#token=%E0%A4%A").token).not.toBeNull();
  });
});

describe("adoptFragmentToken", () => {
  it("keeps the token for the session and rewrites the address without it", () => {
    const storage = memoryStorage();
    const store = new TokenStore(storage);
    const replaced: string[] = [];
    const adopted = adoptFragmentToken(
      { pathname: "/dash/", search: "?v=2", hash: "#/alerts?token=s3cret" },
      { replaceState: (_data, _unused, url) => void replaced.push(url ?? "") },
      store,
    );
    expect(adopted).toBe(true);
    expect(storage.items.get(TOKEN_STORAGE_KEY)).toBe("s3cret");
    expect(replaced).toEqual(["/dash/?v=2#/alerts"]);
    expect(replaced.join()).not.toContain("s3cret");
  });

  it("does not touch the address when the fragment has no token", () => {
    const replaced: string[] = [];
    const adopted = adoptFragmentToken(
      { pathname: "/", search: "", hash: "#/overview" },
      { replaceState: (_data, _unused, url) => void replaced.push(url ?? "") },
      new TokenStore(memoryStorage()),
    );
    expect(adopted).toBe(false);
    expect(replaced).toEqual([]);
  });
});

describe("TokenStore", () => {
  it("keeps the token in the given (session) storage and forgets it on clear", () => {
    const storage = memoryStorage();
    const store = new TokenStore(storage);
    expect(store.get()).toBe("");
    store.set("t1");
    expect(new TokenStore(storage).get()).toBe("t1");
    store.clear();
    expect(storage.items.size).toBe(0);
    expect(store.get()).toBe("");
  });

  it("falls back to memory when storage throws", () => {
    const broken: TokenStorage = {
      getItem: () => {
        throw new Error("denied");
      },
      setItem: () => {
        throw new Error("denied");
      },
      removeItem: () => {
        throw new Error("denied");
      },
    };
    const store = new TokenStore(broken);
    store.set("t2");
    expect(store.get()).toBe("t2");
    store.clear();
    expect(store.get()).toBe("");
    expect(new TokenStore(null).get()).toBe("");
  });
});

describe("checkToken", () => {
  const answering = (status: number, body: unknown, seen: Array<Record<string, string>> = []) =>
    (async (_input: RequestInfo | URL, init?: RequestInit) => {
      seen.push({ ...(init?.headers as Record<string, string>) });
      return new Response(JSON.stringify(body), { status });
    }) as typeof fetch;

  it("sends the token as a bearer credential and accepts a 200", async () => {
    const seen: Array<Record<string, string>> = [];
    expect(await checkToken(answering(200, { services: [] }, seen), "", "t")).toEqual({ ok: true });
    expect(seen[0]?.authorization).toBe("Bearer t");
  });

  it("returns the server's reason for a refusal", async () => {
    expect(await checkToken(answering(401, { error: "invalid credential" }), "", "x")).toEqual({
      ok: false,
      status: 401,
      reason: "invalid credential",
    });
    const down = (async () => {
      throw new TypeError("connection refused");
    }) as typeof fetch;
    const unreachable = await checkToken(down, "", "x");
    expect(unreachable.ok).toBe(false);
    expect(!unreachable.ok && unreachable.status).toBe(0);
  });
});

describe("QueryClient and a refused credential", () => {
  it("reports the server's reason on a 401 and throws an unauthorized ApiError", async () => {
    const reasons: string[] = [];
    const fetchFn = (async () =>
      new Response(JSON.stringify({ error: "missing credential: send `Authorization: Bearer <token>`" }), {
        status: 401,
      })) as typeof fetch;
    const client = new QueryClient("", fetchFn, "", (reason) => reasons.push(reason));
    const error = await client.services().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).isUnauthorized).toBe(true);
    expect(reasons).toEqual(["missing credential: send `Authorization: Bearer <token>`"]);
  });

  it("does not call it for other errors", async () => {
    const reasons: string[] = [];
    const fetchFn = (async () => new Response(JSON.stringify({ error: "nope" }), { status: 404 })) as typeof fetch;
    await new QueryClient("", fetchFn, "t", (reason) => reasons.push(reason)).services().catch(() => undefined);
    expect(reasons).toEqual([]);
  });
});

describe("SessionToken", () => {
  type Call = { url: string; authorization: string };
  const answering = (answers: Record<string, () => Response>, calls: Call[]): typeof fetch =>
    (async (input: RequestInfo | URL, init?: RequestInit) => {
      const url = String(input);
      const headers = (init?.headers ?? {}) as Record<string, string>;
      calls.push({ url, authorization: headers.authorization ?? "" });
      const path = url.replace("http://api", "");
      return (answers[path] ?? (() => new Response("{}", { status: 404 })))();
    }) as typeof fetch;
  const issued = (token: string, expiresIn = 900) => () =>
    new Response(JSON.stringify({ access_token: token, expires_in: expiresIn, token_type: "Bearer" }), {
      status: 200,
    });

  it("trades the key for a token and refreshes it at 80 % of its lifetime", async () => {
    const calls: Call[] = [];
    const scheduled: { run: () => void; ms: number }[] = [];
    const answers: Record<string, () => Response> = { "/api/token": issued("jwt-1") };
    const session = new SessionToken("the-key", answering(answers, calls), "http://api", (run, ms) => {
      scheduled.push({ run, ms });
      return 0 as unknown as ReturnType<typeof setTimeout>;
    });
    expect(session.current()).toBe("the-key");
    await session.start();
    expect(session.current()).toBe("jwt-1");
    expect(calls[0]).toEqual({ url: "http://api/api/token", authorization: "Bearer the-key" });
    expect(scheduled[0]?.ms).toBe(720_000);

    answers["/api/token/refresh"] = issued("jwt-2");
    await session.refresh();
    expect(session.current()).toBe("jwt-2");
    expect(calls[1]).toEqual({ url: "http://api/api/token/refresh", authorization: "Bearer jwt-1" });

    // An expired token cannot be refreshed: the key buys a new one.
    answers["/api/token/refresh"] = () => new Response('{"error":"token expired"}', { status: 401 });
    answers["/api/token"] = issued("jwt-3");
    await session.refresh();
    expect(session.current()).toBe("jwt-3");
    expect(calls.at(-1)).toEqual({ url: "http://api/api/token", authorization: "Bearer the-key" });
  });

  it("keeps sending the key where tokens are off", async () => {
    const calls: Call[] = [];
    const session = new SessionToken("the-key", answering({}, calls), "http://api", () => {
      throw new Error("nothing to schedule");
    });
    await session.start();
    expect(session.current()).toBe("the-key");
    expect(calls).toHaveLength(1);
  });
});
