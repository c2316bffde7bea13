import { describe, expect, it } from "vitest";
import { ApiError, QueryClient } from "./api";

function fakeFetch(status: number, body: unknown, seen: string[] = []): typeof fetch {
  return (async (input: RequestInfo | URL) => {
    seen.push(String(input));
    return new Response(typeof body === "string" ? body : JSON.stringify(body), { status });
  }) as typeof fetch;
}

describe("QueryClient", () => {
  it("reports an answer served stale while the store fails, with its age, and not a fresh one", async () => {
    const stale: Array<[string, number | null]> = [];
    let headers: Record<string, string> = { "x-flowscope-stale": "true", age: "42" };
    const fetchFn = (async () =>
      new Response(JSON.stringify({ services: [], stale: true }), { status: 200, headers })) as typeof fetch;
    const client = new QueryClient("", fetchFn, "", () => {}, (path, age) => stale.push([path, age]));
    await client.services();
    headers = {};
    await client.services();
    expect(stale).toEqual([["/api/services", 42]]);
  });

  it("sends the configured token as a bearer key, and no header without one", async () => {
    const headersSeen: Array<Record<string, string>> = [];
    const recording = (async (_input: RequestInfo | URL, init?: RequestInit) => {
      headersSeen.push({ ...(init?.headers as Record<string, string>) });
      return new Response(JSON.stringify({ services: [] }), { status: 200 });
    }) as typeof fetch;
    await new QueryClient("https://api.example.com", recording, "k3y").services();
    await new QueryClient("", recording).services();
    expect(headersSeen[0]?.authorization).toBe("Bearer k3y");
    expect(headersSeen[1]?.authorization).toBeUndefined();
  });

  it("requests a metric's history with the range and percent-encoded names", async () => {
    const seen: string[] = [];
    const client = new QueryClient(
      "https://api.example.com",
      fakeFetch(
        200,
        {
          service: "my svc",
          metric: "a/b",
          kind: "counter",
          unit: "1",
          resolution: "1m",
          from: 0,
          to: 900,
          buckets: [{ start: 60, count: 2, sum: 10, min: 4, max: 6, avg: 5, p50: null, p95: null, p99: null, rate: 0.16 }],
        },
        seen,
      ),
    );
    const history = await client.metricHistory("my svc", "a/b", { from: 0, to: 900, resolution: "1m" });
    expect(seen).toEqual(["https://api.example.com/api/services/my%20svc/metrics/a%2Fb?from=0&to=900&resolution=1m"]);
    expect(history.kind).toBe("counter");
    expect(history.buckets).toHaveLength(1);
    expect(history.buckets[0]?.sum).toBe(10);
  });

  it("lists services", async () => {
    const api = { name: "api", series: 12, last_seen: 5, instances: [], versions: [], sources: [], health: null };
    const client = new QueryClient("", fakeFetch(200, { services: [api] }));
    expect(await client.services()).toEqual([{ name: "api", series: 12, last_seen: 5 }]);
    expect(await client.serviceViews()).toEqual([api]);
  });

  it("refuses an answer the contract forbids, naming the field, instead of showing part of it", async () => {
    // A service without a name, and a metric kind the server never sends.
    const nameless = new QueryClient("", fakeFetch(200, { services: [{ name: "api", series: 12, last_seen: 5, instances: [], versions: [], sources: [], health: null }, { series: 1 }] }));
    await expect(nameless.services()).rejects.toMatchObject({
      message: expect.stringMatching(/^\/api\/services: the server's answer does not match the API contract \(services\.1\.name: /),
    });
    const bogus = new QueryClient("", fakeFetch(200, { service: "api", metrics: [{ name: "weird", kind: "bogus", unit: "", series: [] }] }));
    await expect(bogus.metrics("api")).rejects.toMatchObject({ message: expect.stringMatching(/metrics\.0\.kind/) });
  });

  it("lists a service's metrics with their series", async () => {
    const client = new QueryClient(
      "",
      fakeFetch(200, {
        service: "api",
        metrics: [{ name: "m", kind: "gauge", unit: "%", series: [{ id: "00000000000000ab", attributes: { k: "v" }, last_seen: 9 }] }],
      }),
    );
    expect(await client.metrics("api")).toEqual([
      { name: "m", kind: "gauge", unit: "%", series: [{ id: "00000000000000ab", attributes: { k: "v" }, last_seen: 9 }] },
    ]);
  });

  it("turns an error response into an ApiError carrying the server's message", async () => {
    const client = new QueryClient("", fakeFetch(404, { error: "no such metric" }));
    const error = await client.metricHistory("api", "x", { from: 0, to: 60, resolution: "1m" }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).message).toBe("no such metric");
    expect((error as ApiError).isNotFound).toBe(true);
  });

  it("reports an unreachable API with status 0 and a non-JSON body clearly", async () => {
    const down = new QueryClient("", (async () => {
      throw new TypeError("failed to fetch");
    }) as typeof fetch);
    await expect(down.services()).rejects.toMatchObject({ status: 0 });
    const html = new QueryClient("", fakeFetch(502, "<html>bad gateway</html>"));
    await expect(html.services()).rejects.toMatchObject({ status: 502, message: expect.stringMatching(/not JSON/) });
  });
});

describe("QueryClient, graph, traces and alerts", () => {
  function recordingFetch(status: number, body: unknown) {
    const calls: { url: string; method: string; body: unknown }[] = [];
    const fetchFn = (async (input: RequestInfo | URL, init?: RequestInit) => {
      calls.push({
        url: String(input),
        method: init?.method ?? "GET",
        body: typeof init?.body === "string" ? JSON.parse(init.body) : undefined,
      });
      return new Response(body === null ? null : JSON.stringify(body), { status });
    }) as typeof fetch;
    return { calls, fetchFn };
  }

  it("asks for the graph over a window", async () => {
    const node = { id: "api", name: "api", kind: "service", virtual: false, count: 60, errors: 0, rate: 1 };
    const { calls, fetchFn } = recordingFetch(200, { from: 1000, to: 1060, resolution: "1m", nodes: [node], edges: [] });
    const graph = await new QueryClient("", fetchFn).graph(1000, 1060);
    expect(calls[0]?.url).toBe("/api/graph?from=1000&to=1060");
    expect(graph.nodes[0]).toMatchObject({ id: "api", rate: 1 });
  });

  it("acknowledges with a POST and accepts an empty answer", async () => {
    const { calls, fetchFn } = recordingFetch(204, null);
    await new QueryClient("", fetchFn).acknowledgeAlert("a/b", "dashboard");
    expect(calls).toEqual([{ url: "/api/alerts/a%2Fb/ack", method: "POST", body: { by: "dashboard" } }]);
  });

  it("creates a silence lasting the asked duration", async () => {
    const { calls, fetchFn } = recordingFetch(201, { id: "s1" });
    await new QueryClient("", fetchFn).createSilence({
      matchers: [{ name: "service", value: "api" }],
      durationSeconds: 3600,
      createdBy: "dashboard",
      comment: "deploy",
    });
    expect(calls[0]?.method).toBe("POST");
    // Exactly the fields the server accepts (it rejects unknown ones), with a duration, not a
    // browser-clock end time.
    expect(calls[0]?.body).toEqual({
      matchers: [{ name: "service", value: "api", op: "=" }],
      duration: "3600s",
      created_by: "dashboard",
      comment: "deploy",
    });
  });

  it("reads the active alerts, and refuses a bare array the contract does not allow", async () => {
    const alert = {
      fingerprint: "x",
      rule: "latency",
      description: "",
      labels: { service: "api" },
      status: "firing",
      severity: "critical",
      value: 1200,
      unit: "ms",
      threshold: 1000,
      summary: "p95 is 1200 ms",
      reason: "threshold",
      since: 100,
      firing_since: 100,
      acknowledged: null,
      silenced: false,
    };
    const ok = recordingFetch(200, { alerts: [alert] });
    expect((await new QueryClient("", ok.fetchFn).alerts()).map((a) => [a.fingerprint, a.state, a.service])).toEqual([["x", "firing", "api"]]);
    const bare = recordingFetch(200, [alert]);
    await expect(new QueryClient("", bare.fetchFn).alerts()).rejects.toMatchObject({ message: expect.stringMatching(/does not match the API contract/) });
  });
});
