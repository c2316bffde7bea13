import { describe, expect, it } from "vitest";
import { ApiError, QueryClient } from "./api";

function fakeFetch(status: number, body: unknown, seen: string[] = []): typeof fetch {
  return (async (input: RequestInfo | URL) => {
    seen.push(String(input));
    return new Response(typeof body === "string" ? body : JSON.stringify(body), { status });
  }) as typeof fetch;
}

describe("QueryClient", () => {
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

  it("lists services and skips entries without a name", async () => {
    const client = new QueryClient(
      "",
      fakeFetch(200, { services: [{ name: "api", series: 12, last_seen: 5 }, { series: 1 }] }),
    );
    expect(await client.services()).toEqual([{ name: "api", series: 12, last_seen: 5 }]);
  });

  it("lists a service's metrics with their series", async () => {
    const client = new QueryClient(
      "",
      fakeFetch(200, {
        service: "api",
        metrics: [
          { name: "m", kind: "gauge", unit: "%", series: [{ id: "00000000000000ab", attributes: { k: "v" }, last_seen: 9 }] },
          { name: "weird", kind: "bogus", unit: "", series: [] },
        ],
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
