import { describe, expect, it } from "vitest";
import { defaultWsUrl, loadConfig, resolveConfig, withToken } from "./config";

const page = { protocol: "http:", host: "127.0.0.1:8080" };

describe("resolveConfig", () => {
  it("derives the WebSocket URL from the page when config.json has none", () => {
    expect(resolveConfig({ apiBaseUrl: "", mode: "local", auth: "none" }, page)).toEqual({
      apiBaseUrl: "",
      wsUrl: "ws://127.0.0.1:8080/ws",
      authRequired: false,
    });
  });

  it("never takes a credential from config.json, even an old one that still carries a token", () => {
    const config = resolveConfig({ apiBaseUrl: "", token: "leaked", auth: "token" }, page);
    expect(JSON.stringify(config)).not.toContain("leaked");
    expect(config.authRequired).toBe(true);
  });

  it("knows when a credential is needed: auth says so, and an AWS deployment always needs one", () => {
    expect(resolveConfig({ auth: "token" }, page).authRequired).toBe(true);
    expect(resolveConfig({ auth: "none" }, page).authRequired).toBe(false);
    expect(resolveConfig({ mode: "aws" }, page).authRequired).toBe(true);
    expect(resolveConfig({ mode: "local" }, page).authRequired).toBe(false);
    expect(resolveConfig({}, page).authRequired).toBe(false);
  });

  it("uses wss on an https page so the socket is not blocked as mixed content", () => {
    expect(defaultWsUrl({ protocol: "https:", host: "dash.example.com" })).toBe("wss://dash.example.com/ws");
  });

  it("keeps an explicit wsUrl and drops a trailing slash from apiBaseUrl", () => {
    const config = resolveConfig(
      { apiBaseUrl: "https://api.example.com/prod/", wsUrl: "wss://ws.example.com/prod" },
      page,
    );
    expect(config.apiBaseUrl).toBe("https://api.example.com/prod");
    expect(config.wsUrl).toBe("wss://ws.example.com/prod");
  });

  it("falls back to defaults for malformed fields instead of failing", () => {
    expect(resolveConfig({ apiBaseUrl: 42, wsUrl: "", auth: null }, page)).toEqual({
      apiBaseUrl: "",
      wsUrl: "ws://127.0.0.1:8080/ws",
      authRequired: false,
    });
    expect(resolveConfig("not an object", page).wsUrl).toBe("ws://127.0.0.1:8080/ws");
  });
});

describe("withToken", () => {
  it("adds the token as an encoded query parameter", () => {
    expect(withToken("ws://h/ws", "a b&c")).toBe("ws://h/ws?token=a%20b%26c");
  });

  it("appends to an existing query and leaves the URL alone without a token", () => {
    expect(withToken("wss://h/prod?x=1", "t")).toBe("wss://h/prod?x=1&token=t");
    expect(withToken("ws://h/ws", "")).toBe("ws://h/ws");
  });
});

describe("loadConfig", () => {
  it("reads config.json", async () => {
    const fetchFn = (async () => new Response(JSON.stringify({ apiBaseUrl: "", auth: "token" }))) as typeof fetch;
    const { config, warning } = await loadConfig(fetchFn, page, "/config.json");
    expect(config.authRequired).toBe(true);
    expect(warning).toBeUndefined();
  });

  it("still starts, with a warning, when config.json is missing or unreachable", async () => {
    const missing = (async () => new Response("nope", { status: 404 })) as typeof fetch;
    const down = (async () => {
      throw new TypeError("connection refused");
    }) as typeof fetch;
    for (const fetchFn of [missing, down]) {
      const { config, warning } = await loadConfig(fetchFn, page, "/config.json");
      expect(config.wsUrl).toBe("ws://127.0.0.1:8080/ws");
      expect(warning).toMatch(/config\.json/);
    }
  });
});
